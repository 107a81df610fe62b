"""A TensorBoard event file, written in the training thread, every error one ``UserError``;
and the HParams records, made for what TensorBoard shows first.

``torch.utils.tensorboard.SummaryWriter`` writes from a thread of its own, whose errors (a full
disk) escape as tracebacks and are lost to the run; :class:`EventFile` writes the same records,
which TensorBoard reads the same, through :func:`~digits_torch.errors.writing`.

How TensorBoard 2.x's HParams table picks what it shows (its plugin's backend and frontend):
it takes the *experiment* record of one run, any one, for every run, so every run declares
the same columns; its hyperparameter columns are sorted those marked ``differs`` first, then by
name, and the first five are shown; its metric columns are the experiment's, in its order, the
first five shown; a row is a session *group*, named by the session's ``group_name``, in a
column that shows about a dozen characters.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import writing
from .crc32c import masked_crc32c

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

__all__ = ["EventFile", "hparams_end", "hparams_start", "record"]

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

        self._event = Event
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = directory / f"{name}.{next(_EVENT_FILES)}"
        with writing(self.path):
            self._file = open(self.path, "xb")
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
            self._file.write(record(event.SerializeToString()))

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


def record(data: bytes) -> bytes:
    """``data`` as a TFRecord, an event file's record: its length (8 bytes, little-endian), the
    length's masked CRC-32C, the data and the data's (4 bytes each), as TensorBoard's
    ``RecordWriter`` writes it, with the checksum computed by numpy, not a byte at a time."""
    length = struct.pack("<Q", len(data))
    crcs = struct.pack("<I", masked_crc32c(length)), struct.pack("<I", masked_crc32c(data))
    return length + crcs[0] + data + crcs[1]


def hparams_start(
    hparams: dict, shown: Collection[str], metrics: dict[str, str], trial: str
) -> list[Summary]:
    """The two ``Summary`` protobufs that open a run's HParams entry: the experiment (every
    hyperparameter's and metric's column) and the session start (this run's values).

    Args:
        hparams: name -> value: a bool, int, float or str.
        shown: the hyperparameters whose columns the table shows at first (marked ``differs``:
            it shows five of them, in name order).
        metrics: scalar tag -> column name, in column order; every run declares the same, so
            the columns are there whichever run's experiment TensorBoard takes.
        trial: the run's name in the Trial ID column (its session group: runs given the same
            one are shown as one row, their metrics averaged).
    """
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionStartInfo

    start = SessionStartInfo(group_name=trial, start_time_secs=time.time())
    infos = []
    for name, value in hparams.items():
        kind, field = _HPARAM_TYPES[type(value)]
        setattr(start.hparams[name], field, value)
        infos.append(api_pb2.HParamInfo(name=name, type=kind, differs=name in shown))
    columns = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=column)
        for tag, column in metrics.items()
    ]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=columns)
    return [
        _hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment),
        _hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
    ]


def hparams_end() -> Summary:
    """The ``Summary`` protobuf that marks a run's HParams entry ended (its status: success)."""
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionEndInfo

    end = SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return _hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end)


# A hyperparameter's Python type -> (its HParams data type, the protobuf Value field it fills).
_HPARAM_TYPES = {
    bool: ("DATA_TYPE_BOOL", "bool_value"),
    int: ("DATA_TYPE_FLOAT64", "number_value"),
    float: ("DATA_TYPE_FLOAT64", "number_value"),
    str: ("DATA_TYPE_STRING", "string_value"),
}


def _hparams_summary(tag: str, **record) -> Summary:
    """A ``Summary`` holding one HParams record (``experiment=``, ``session_start_info=``...)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    data = metadata.create_summary_metadata(HParamsPluginData(**record))
    return Summary(value=[Summary.Value(tag=tag, metadata=data)])
