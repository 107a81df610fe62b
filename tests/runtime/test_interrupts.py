"""Ctrl-C and SIGTERM in-process (digits_torch.runtime.interrupts), each signal sent to this
process itself: StopRequests notes a first signal and stops at the agreed epoch end, a second at
once, a stop on another rank too; sigterm_interrupts makes SIGTERM raise as Ctrl-C does; both
hold their signals inside only, on the main thread only, and give back the handlers they found;
cleanup_first holds a first signal till a failed run has cleaned up, and drops it."""

from __future__ import annotations

import signal
import threading

import pytest

from digits_torch.errors import Interrupted
from digits_torch.runtime import interrupts
from digits_torch.runtime.distributed import Ranks
from digits_torch.runtime.interrupts import StopRequests, cleanup_first, sigterm_interrupts

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture
def found():
    """signum -> the handler each test starts with: one that records the signals it gets, so that
    a signal the code under test fails to hold never ends pytest; pytest's own put back after."""
    caught: list[int] = []

    def record(signum, frame):
        caught.append(signum)

    before = {signum: signal.signal(signum, record) for signum in SIGNALS}
    yield {signum: record for signum in SIGNALS} | {"caught": caught}
    for signum, handler in before.items():
        signal.signal(signum, handler)


def _goes_on(call, *args) -> None:
    """``call(*args)``, which must not stop training: an Interrupted (a KeyboardInterrupt) that
    escaped would end the whole pytest session, so it fails this test instead."""
    try:
        call(*args)
    except KeyboardInterrupt as err:
        pytest.fail(f"{call.__name__}{args} stopped training: {err!r}")


def _handlers() -> dict[int, object]:
    return {signum: signal.getsignal(signum) for signum in SIGNALS}


def test_stop_requests_hold_both_signals_inside_and_give_back_those_found(found):
    with StopRequests():
        assert all(signal.getsignal(s) is not found[s] for s in SIGNALS), _handlers()
    assert _handlers() == {s: found[s] for s in SIGNALS}
    with pytest.raises(Interrupted), StopRequests():  # left by the second signal's exception
        _goes_on(signal.raise_signal, signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert _handlers() == {s: found[s] for s in SIGNALS}
    assert found["caught"] == []


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_first_signal_is_noted_then_acted_on_once_agreed(found, signum):
    with StopRequests() as requests:
        assert not requests.agreed()
        _goes_on(requests.act)  # nothing asked: training goes on
        _goes_on(signal.raise_signal, signum)  # noted, nothing raised
        assert requests.signum == signum and not requests.stopping
        _goes_on(requests.act)  # not agreed yet: the epoch ends first
        assert requests.agreed() and requests.stopping
        with pytest.raises(Interrupted) as caught:
            requests.act()
    assert caught.value.signum == signum
    assert found["caught"] == []


@pytest.mark.parametrize("first, second", [SIGNALS, SIGNALS[::-1]])
def test_a_second_signal_stops_at_once(found, first, second):
    with StopRequests() as requests:
        _goes_on(signal.raise_signal, first)
        with pytest.raises(Interrupted) as caught:
            signal.raise_signal(second)
        assert requests.signum == first  # the request that stands is the first
    assert caught.value.signum == second
    assert isinstance(caught.value, KeyboardInterrupt)
    assert found["caught"] == []


def test_a_signal_on_another_rank_stops_this_one_too(monkeypatch, found):
    """Under torchrun the ranks vote; a stop that no signal here asked for says SIGTERM, which
    torchrun passes on to every rank."""
    votes = []

    def any_rank(ranks, flag):
        votes.append((ranks, flag))
        return True  # another rank was signalled

    monkeypatch.setattr(interrupts, "any_rank", any_rank)
    job = Ranks(rank=1, world=2, local=1)
    with StopRequests(job) as requests:
        assert requests.agreed()
        with pytest.raises(Interrupted) as caught:
            requests.act()
    assert votes == [(job, False)]  # this rank's own vote: no signal here
    assert caught.value.signum == signal.SIGTERM


def _in_a_thread(work) -> list:
    """Run ``work()`` on another thread; what it returned or raised."""
    outcome: list = []

    def run():
        try:
            outcome.append(work())
        except BaseException as err:  # noqa: BLE001 - checked by the caller
            outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return outcome


def test_off_the_main_thread_nothing_is_held(found):
    def stop_requests():
        with StopRequests() as requests:
            inside = _handlers()
        return inside, requests.agreed()

    def sigterm():
        with sigterm_interrupts():
            return _handlers()

    expected = {s: found[s] for s in SIGNALS}
    assert _in_a_thread(stop_requests) == [(expected, False)]
    assert _in_a_thread(sigterm) == [expected]
    assert _handlers() == expected


def test_sigterm_interrupts_raises_sigterm_as_ctrl_c_raises(found):
    with pytest.raises(Interrupted) as caught, sigterm_interrupts():
        assert signal.getsignal(signal.SIGINT) is found[signal.SIGINT]  # Ctrl-C left as it is
        signal.raise_signal(signal.SIGTERM)
    assert caught.value.signum == signal.SIGTERM
    assert isinstance(caught.value, KeyboardInterrupt)
    assert _handlers() == {s: found[s] for s in SIGNALS}
    with sigterm_interrupts():
        pass
    assert _handlers() == {s: found[s] for s in SIGNALS}
    assert found["caught"] == []


def test_stop_requests_inside_sigterm_interrupts_hold_sigterm_till_the_epochs_end(found):
    """As a run nests them: epochs inside StopRequests, the rest inside sigterm_interrupts."""
    with pytest.raises(Interrupted) as caught, sigterm_interrupts():
        with StopRequests() as requests:
            _goes_on(signal.raise_signal, signal.SIGTERM)
            assert requests.signum == signal.SIGTERM
        signal.raise_signal(signal.SIGTERM)  # after the epochs: raised at once
    assert caught.value.signum == signal.SIGTERM
    assert found["caught"] == []


@pytest.mark.parametrize("signum", SIGNALS)
def test_cleanup_first_holds_a_signal_till_the_cleanup_ends_and_drops_it(found, signum):
    """torchrun's SIGTERM comes as a failed rank cleans up: the cleanup finishes, the error it
    cleans up after is what leaves."""
    done = []
    with pytest.raises(ValueError, match="the error"):
        try:
            raise ValueError("the error")
        except ValueError:
            with cleanup_first():
                _goes_on(signal.raise_signal, signum)
                done.append("cleaned up")
            raise
    assert done == ["cleaned up"]
    assert _handlers() == {s: found[s] for s in SIGNALS}
    assert found["caught"] == []


@pytest.mark.parametrize("first, second", [SIGNALS, SIGNALS[::-1]])
def test_cleanup_first_gives_way_to_a_second_signal(found, first, second):
    with pytest.raises(Interrupted) as caught, cleanup_first():
        _goes_on(signal.raise_signal, first)
        signal.raise_signal(second)
    assert caught.value.signum == second
    assert _handlers() == {s: found[s] for s in SIGNALS}
    assert found["caught"] == []


def test_cleanup_first_holds_nothing_off_the_main_thread(found):
    def held():
        with cleanup_first():
            return _handlers()

    expected = {s: found[s] for s in SIGNALS}
    assert _in_a_thread(held) == [expected]
