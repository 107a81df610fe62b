"""A TensorBoard event file, written in the training thread, every error one ``UserError``.

``torch.utils.tensorboard.SummaryWriter`` writes from a thread of its own, whose errors (a full
disk) escape as tracebacks and are lost to the run; :class:`EventFile` writes the same records,
which TensorBoard reads the same, through :func:`~digits_torch.errors.writing`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import time
from pathlib import Path

from .errors import writing

__all__ = ["EventFile"]

_EVENT_FILES = itertools.count()  # a suffix that keeps two event files of one second apart


class EventFile:
    """A TensorBoard event file, written in this thread (SummaryWriter writes from a thread of
    its own, whose errors would escape as tracebacks): every write and flush goes through
    :func:`~digits_torch.errors.writing`, so a full disk is one error naming the file.

    Args:
        purge_step: on a resumed run, the first step it writes again: TensorBoard hides the
            steps from there on that earlier event files hold.
    """

    def __init__(self, directory: Path, purge_step: int | None = None) -> None:
        # TensorBoard here, not at the top: importing it takes longer than many a run's epoch.
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event = Event
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = directory / f"{name}.{next(_EVENT_FILES)}"
        with writing(self.path):
            self._file = open(self.path, "xb")
        self._records = RecordWriter(self._file)
        self.add(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:
            start = SessionLog(status=SessionLog.START)
            self.add(Event(wall_time=time.time(), step=purge_step, session_log=start))

    def add_summary(self, summary, step: int = 0) -> None:
        """Write a ``Summary`` protobuf at ``step``."""
        self.add(self._event(wall_time=time.time(), step=step, summary=summary))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        from torch.utils.tensorboard.summary import scalar

        self.add_summary(scalar(tag, value), step)

    def add(self, event) -> None:
        """Write an ``Event`` protobuf."""
        with writing(self.path):
            self._records.write(event.SerializeToString())

    def flush(self) -> None:
        with writing(self.path):
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.flush()
            finally:
                with contextlib.suppress(OSError):
                    self._file.close()
