"""Ctrl-C and SIGTERM during training: noted, agreed on by a job's ranks, acted on between
epochs (:class:`StopRequests`), for one network and for a sweep's stack alike; held while a run
that has already failed or stopped cleans up (:func:`cleanup_first`)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from ..errors import Interrupted
from .distributed import SOLO, Ranks, any_rank

__all__ = ["StopRequests", "cleanup_first", "sigterm_interrupts"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Ctrl-C and SIGTERM while training: the first is noted and acted on at the end of the
    epoch (:meth:`agreed`, then :meth:`act` after the checkpoint); a second stops training at
    once. Under torchrun a signal to any rank stops every rank at the same epoch end. Off the
    main thread, where Python allows no signal handlers, signals act as they would."""

    def __init__(self, ranks: Ranks = SOLO) -> None:
        self.ranks = ranks
        self.signum: int | None = None
        self.stopping = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _note(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def agreed(self) -> bool:
        """Whether training stops after this epoch: a signal here (or on any rank of the job)."""
        self.stopping = any_rank(self.ranks, self.signum is not None)
        return self.stopping

    def act(self) -> None:
        """Stop (raise :class:`~digits_torch.errors.Interrupted`) if :meth:`agreed` said so."""
        if self.stopping:
            raise Interrupted(signal.SIGTERM if self.signum is None else self.signum)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`~digits_torch.errors.Interrupted` as Ctrl-C raises
    KeyboardInterrupt, so that what a run cleans up on Ctrl-C is cleaned up on SIGTERM too
    (outside the epochs, where :class:`StopRequests` does not hold them). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cleanup_first() -> StopRequests:
    """Ctrl-C and SIGTERM wait while inside, for the cleanup on the way out of a run that has
    already failed or been stopped: the cleanup is not cut short (a run that never saved is
    removed, not half left), and the error that ended the run is the one said. A signal held
    here is dropped, since the run is ending anyway; a second one acts at once. Main thread
    only.

    torchrun sends SIGTERM to every rank once one has died, at about the time the others meet
    :class:`~digits_torch.runtime.distributed.RankLost` and begin to clean up.
    """
    return StopRequests()  # a first signal noted and never acted on; a second raises at once
