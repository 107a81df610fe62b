"""A stack's saves (digits_torch.sweep.train._CommittedSaves) on a clock of the test's own."""

from __future__ import annotations

from digits_torch.sweep import train as sweep_train


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Stack:
    """Saving takes ``cost`` seconds of the clock; records when each save began."""

    def __init__(self, clock: _Clock, cost: float) -> None:
        self.clock, self.cost, self.saves = clock, cost, []

    def save(self) -> None:
        self.saves.append(self.clock.now)
        self.clock.now += self.cost


def _epochs(monkeypatch, cost: float, epochs: int, save_every: float = 5.0) -> list[float]:
    """One-second epochs; the times at which the stack saved."""
    clock = _Clock()
    monkeypatch.setattr(sweep_train.time, "perf_counter", clock)
    stack = _Stack(clock, cost)
    saves = sweep_train._CommittedSaves(stack, save_every)
    for _ in range(epochs):
        clock.now += 1.0
        saves.after_epoch(stop=False)
    return stack.saves


def test_cheap_saves_come_every_save_every_seconds(monkeypatch):
    assert _epochs(monkeypatch, cost=0.1, epochs=16) == [5.0, 10.1, 15.2]


def test_saves_that_cost_more_than_a_tenth_of_their_interval_come_less_often(monkeypatch):
    """A save of 2 s: the next comes 20 s after it ended, so saving is a tenth of the time."""
    assert _epochs(monkeypatch, cost=2.0, epochs=40) == [5.0, 27.0]


def test_a_stop_saves_at_once(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(sweep_train.time, "perf_counter", clock)
    stack = _Stack(clock, cost=2.0)
    saves = sweep_train._CommittedSaves(stack, 5.0)
    clock.now = 1.0
    saves.after_epoch(stop=True)
    assert stack.saves == [1.0]


def test_save_every_zero_saves_every_epoch_whatever_it_costs(monkeypatch):
    """--checkpoint-every 0 asks for every epoch: the tenth-of-the-time rule does not stretch it."""
    assert _epochs(monkeypatch, cost=2.0, epochs=4, save_every=0.0) == [1.0, 4.0, 7.0, 10.0]
