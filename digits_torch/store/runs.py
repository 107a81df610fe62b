"""Run directories: everything one training run leaves behind, in one folder.

    <logdir>/<timestamp>-<preset>[-<name>]/    (name: --name, else what the run changed from
                                                the preset: 20261201-101500-tuned-l2=0.1-hidden=100)
        config.json      the TrainConfig the run was made with
        split.json       the rows of the data file it trains on and validates on, and the
                         SHA-256 of that file (and of teacher.pt, for a distilled run)
        history.jsonl    one JSON record per finished epoch (losses, accuracies, lr, seconds)
        metrics.json     the final metrics, written when the run ends
        checkpoint.pt    the latest epoch;  best.pt: the best epoch (see
        digits_torch.store.checkpoints) teacher.pt       a distilled run's copy of its teacher
        events.out.tfevents.*   TensorBoard: scalars per epoch, config text, hparams, images
        figures/         PNGs drawn at the end of the run

        .lock            held (flock) by the one process writing into the run

(every name in one list: :mod:`digits_torch.store.run_contents`)

A run directory has one writer at a time (:class:`RunLock`); readers need no lock, since every
file but the logs is replaced whole. History and events are appended without a sync per epoch
(:mod:`digits_torch.store.run_log`) and made durable before each checkpoint: a checkpoint never
claims an epoch its history lacks. What a run directory holds is checked when it is read
(:func:`read_config`, :func:`read_history`): a hand-edited or foreign file is one error naming
the file (and line), not a traceback later.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config.bounds import EMPTY_LOGDIR
from ..config.config import TrainConfig, fields_with
from ..config.presets import LOGDIR
from ..core.read_files import parse_json, read_bytes
from ..errors import UserError, writing
from .run_contents import CONFIG, HISTORY, LOCK, METRICS, SPLIT

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a run directory is then not guarded
    fcntl = None

__all__ = [
    "RESUME_MAY_CHANGE",
    "RunInUse",
    "RunLock",
    "counted_label",
    "name_safe",
    "new_run_dir",
    "read_config",
    "read_history",
    "read_metrics",
    "read_split",
    "read_split_record",
    "run_label",
    "value_text",
    "writer_of",
]

# What a resume may change: how a run is trained and watched, not what it trains. A checkpoint's
# config may differ from the run's config.json in these fields alone.
RESUME_MAY_CHANGE = fields_with("resumable")
TEXT_METRICS = ("stopped", "device", "preset")  # metrics.json's text; its other values are numbers

# What every history record holds: key -> whether it may be null (no validation split).
RECORD_FIELDS = {
    "epoch": False,
    "train_loss": False,
    "train_accuracy": False,
    "val_loss": True,
    "val_accuracy": True,
    "lr": False,
    "seconds": False,
}


def new_run_dir(logdir: str | Path, preset: str, name: str = "") -> Path:
    """Create and return ``<logdir>/<YYYYmmdd-HHMMSS>-<preset>[-<name>]`` (suffixed if taken)."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{preset}" + (f"-{name}" if name else "")
    if str(logdir) == "":  # Path("") is the working directory: an unset $LOGDIR, most often
        raise UserError(EMPTY_LOGDIR)
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise UserError("is a file, not a directory for runs", logdir)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            run_dir = logdir / (stem if attempt == 1 else f"{stem}-{attempt}")
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                continue
    except OSError as err:
        raise UserError(f"cannot create a run directory ({err.strerror or err})", logdir) from None
    raise UserError("too many runs with the same name this second", logdir)


def find_run(run: str | Path, logdir: str | Path = LOGDIR) -> Path:
    """What a run reference means in every command: ``run`` as given if it exists, else the run
    of that name under ``logdir`` (a bare name, as ``train.py --resume NAME`` takes).

    Raises:
        UserError: ``run`` is a directory of runs (a logdir), not a run; the message names the
            latest run in it (the last whose config.json was written).
    """
    path, named = Path(run), Path(logdir) / run
    if not path.exists() and path.name == str(run) and named.exists():
        path = named
    if path.is_dir() and not (path / CONFIG).exists():
        runs = [child for child in _subdirs(path) if (child / CONFIG).is_file()]
        if runs:
            latest = max(runs, key=lambda child: ((child / CONFIG).stat().st_mtime_ns, child.name))
            raise UserError(f"a directory of runs, not a run (latest: {latest})", path)
    return path


def _subdirs(path: Path) -> list[Path]:
    try:
        return [child for child in path.iterdir() if child.is_dir()]
    except OSError:  # unreadable: what reads it next says why
        return []


LABEL_LENGTH = 48  # most characters of a run name's label, so directory names stay readable


def run_label(changes: dict) -> str:
    """A short label for a run directory's name from the fields a run changed:
    ``{"l2": 0.1, "hidden": [100]}`` -> ``l2=0.1-hidden=100``.

    Values are shortened (a path to its stem, a list joined by ``x``) and sanitised to letters,
    digits and ``. _ + = -``; it is at most :data:`LABEL_LENGTH` long, the fields past it
    counted (``+2``).
    """
    parts = [f"{key}={_short(value)}" for key, value in changes.items()]
    return counted_label(parts, lambda label: len(label) <= LABEL_LENGTH)


def counted_label(parts: list[str], fits: Callable[[str], bool]) -> str:
    """``parts`` joined by ``-``, as many as make a label that ``fits``, the rest counted:
    ``l2=0.1-+2`` (a run's label, a sweep's network names)."""
    shown, label = len(parts), "-".join(parts)
    while shown and not fits(label):
        shown -= 1
        label = "-".join([*parts[:shown], f"+{len(parts) - shown}"])
    return label


def value_text(value) -> str:
    """A field's value as names and tables show it: a list or tuple joined by ``x`` (100x50)."""
    return "x".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def name_safe(text: str) -> str:
    """``text`` with each character but letters, digits and ``. _ + = -`` made ``_``: a
    directory name's part."""
    return re.sub(r"[^\w.+=-]", "_", text)


def _short(value) -> str:
    if isinstance(value, str) and ("/" in value or "\\" in value or "." in value):
        return name_safe(Path(value).stem)  # a data file
    return name_safe(f"{value:g}" if isinstance(value, float) else value_text(value))


class RunInUse(UserError):
    """Another process holds a run directory's lock; ``holder`` is ``pid N`` where known."""

    def __init__(self, holder: str, run_dir: Path) -> None:
        self.holder = holder
        wait = "wait for it to end or stop it, then try again"
        super().__init__(f"in use by another process ({holder}); {wait}", run_dir)


class RunLock:
    """The one writer of a run directory: an exclusive ``flock`` on its ``.lock`` file, held
    until :meth:`release` (or the end of a ``with RunLock(run_dir):`` block, or of the process,
    however it ends).

    Raises:
        UserError: another process holds it (the message names its pid where the OS says).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self._fd: int | None = None
        if fcntl is None:
            return
        path = self.dir / LOCK
        with writing(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunInUse(_lock_holder(path), self.dir) from None
        except OSError:  # a file system without locks: go on unguarded rather than not at all
            pass
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def writer_of(run_dir: str | Path) -> str | None:
    """``pid N`` (or ``pid unknown``) of the process that writes into ``run_dir`` now, else
    None: a shared flock on its .lock, tried and dropped, read-only (a reader may not write)."""
    path = Path(run_dir) / LOCK
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:  # no lock file: no writer ever took it
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _lock_holder(path)
    except OSError:  # a file system without locks
        return None
    finally:
        os.close(fd)  # the shared lock, if taken, goes with it
    return None


def _lock_holder(path: Path) -> str:
    """``pid N`` of the process holding ``path``'s flock, from /proc/locks (Linux), if found."""
    with contextlib.suppress(OSError):
        st = path.stat()
        where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "FLOCK" in fields and where in fields:
                return f"pid {fields[fields.index(where) - 1]}"
    return "pid unknown"


def read_config(run_dir: str | Path) -> dict:
    """A run's config.json, checked: a JSON object that makes a valid :class:`TrainConfig`.

    Raises:
        UserError: naming config.json, when it is missing, not JSON, or not a valid config.
    """
    path = Path(run_dir) / CONFIG
    values = _read_object(path, "config fields")
    try:
        TrainConfig.from_dict(values)
    except (UserError, TypeError) as err:
        raise UserError(f"not a valid config ({err})", path) from None
    return values


def read_metrics(run_dir: str | Path) -> dict:
    """A finished run's metrics.json, checked: a JSON object whose values are numbers (or
    null), bar the text of :data:`TEXT_METRICS`.

    Raises:
        UserError: naming metrics.json, when it is missing, not JSON, or holds other values.
    """
    path = Path(run_dir) / METRICS
    metrics = _read_object(path, "metrics")
    for key, value in metrics.items():
        text = key in TEXT_METRICS
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(value, str) if text else value is None or number):
            raise UserError(f"{key} must be {'text' if text else 'a number'}, got {value!r}", path)
    return metrics


def _read_object(path: Path, holds: str) -> dict:
    """The JSON object (of ``holds``) in the file at ``path``, or a UserError naming it."""
    content = read_bytes(path)
    try:
        values = parse_json(content)
    except ValueError as err:
        raise UserError(f"not JSON ({err})", path) from None
    if not isinstance(values, dict):
        raise UserError(f"not a JSON object of {holds} (a {type(values).__name__})", path)
    return values


def read_history(run_dir: str | Path, through: int | None = None) -> list[dict]:
    """The per-epoch records of a run, in epoch order (an empty list before the first epoch).

    A last line cut short (a crash mid-write) is left out. With ``through``, records past that
    epoch are left out unread (a resume drops them: they will be trained again).

    Raises:
        UserError: naming the file and line, for a record that is not one this package writes.
    """
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return []
    lines = read_bytes(path, limit=None).decode(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = parse_json(line)
        except json.JSONDecodeError:
            if number == len(lines):  # the line a crash cut short
                break
            raise UserError(f"line {number}: not a JSON record", path) from None
        except ValueError as err:  # nested too deeply: no crash writes that
            raise UserError(f"line {number}: not a JSON record ({err})", path) from None
        if isinstance(record, dict) and through is not None:
            epoch = record.get("epoch")
            if isinstance(epoch, int) and epoch > through:
                break
        problem = _record_problem(record)
        if problem:
            raise UserError(f"line {number}: {problem}", path)
        records.append(record)
    return records


def _record_problem(record) -> str | None:
    """What is wrong with a history record, or None."""
    if not isinstance(record, dict):
        return f"not a JSON object (a {type(record).__name__})"
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        return f"a record without {', '.join(missing)}"
    if not isinstance(record["epoch"], int) or isinstance(record["epoch"], bool):
        return f"epoch must be an integer, got {record['epoch']!r}"
    for key, nullable in RECORD_FIELDS.items():
        value = record[key]
        if value is None and nullable:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            return f"{key} must be a number, got {value!r}"
    return None


def check_history(run_dir: Path, epoch: int, checkpoint: Path) -> None:
    """A resumed run's history must hold epochs 1..``epoch`` (those its checkpoint counts).

    Raises:
        UserError: naming history.jsonl, when it falls short of the checkpoint or skips epochs.
    """
    epochs = [r["epoch"] for r in read_history(run_dir, through=epoch)]
    if epochs != list(range(1, epoch + 1)):
        reach = f"reach epoch {epochs[-1]}" if epochs else "hold no epoch"
        if epochs and epochs[-1] == epoch:
            reach = "skip or repeat epochs"
        raise UserError(
            f"its records {reach}, but {checkpoint} is at epoch {epoch}: not this run's history",
            Path(run_dir) / HISTORY,
        )


def read_split(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(training rows, validation rows) of the run's data file, or None if it recorded none."""
    record = read_split_record(run_dir)
    if record is None:
        return None
    return (np.asarray(record["train"], dtype=np.int64), np.asarray(record["val"], dtype=np.int64))


def read_split_record(run_dir: str | Path) -> dict | None:
    """split.json, checked, or None if the run recorded none: ``train`` and ``val``, the rows
    (each a whole number >= 0, no row twice), and where recorded, ``data_sha256`` (of the data
    file) and ``teacher_sha256`` (of teacher.pt).

    Raises:
        UserError: naming split.json, when it is unreadable or holds anything else.
    """
    path = Path(run_dir) / SPLIT
    if not path.exists():
        return None
    content = read_bytes(path)
    try:
        split = parse_json(content)
        record = {"train": split["train"], "val": split["val"]}
    except (ValueError, TypeError, KeyError) as err:
        raise UserError(f"unreadable ({err})", path) from None
    problem = _rows_problem(record["train"], record["val"])
    for key in ("data_sha256", "teacher_sha256"):
        value = split.get(key)
        if value is not None and not (
            isinstance(value, str) and re.fullmatch("[0-9a-f]{64}", value)
        ):
            problem = problem or f"{key} must be a SHA-256 in hex, got {value!r}"
        record[key] = value
    if problem:
        raise UserError(problem, path)
    return record


def _rows_problem(train, val) -> str | None:
    """What is wrong with the rows a split.json holds, or None: rows of a data file are whole
    numbers >= 0, each in one of the two lists once."""
    for name, rows in (("train", train), ("val", val)):
        if not isinstance(rows, list):
            return f"{name} must be a list of rows, got {type(rows).__name__}"
        for row in rows:
            if not isinstance(row, int) or isinstance(row, bool) or row < 0:
                return f"{name} rows must be whole numbers >= 0, got {row!r}"
    if len(set(train) | set(val)) != len(train) + len(val):
        return "a row is named twice"
    return None


def check_split(
    run_dir: Path, rows: tuple[np.ndarray, np.ndarray], data: Path, sha256: str
) -> None:
    """A resumed run must train on what it started on: the data file it recorded (by its
    SHA-256), and the rows of it split.json holds (those its config picks from that file).

    Raises:
        UserError: naming the data file, when it changed since the run started, or split.json.
    """
    record = read_split_record(run_dir)
    if record is None:  # a run made before runs kept one: nothing to check against
        return
    if record["data_sha256"] not in (None, sha256):
        raise UserError(
            f"changed since the run started (its SHA-256 is not the one {Path(run_dir) / SPLIT} "
            "records); a resumed run trains on the digits it started on: put that file back",
            data,
        )
    if record["train"] != rows[0].tolist() or record["val"] != rows[1].tolist():
        raise UserError(
            f"its rows are not those the run's config picks from {data}: edited, or another run's?",
            Path(run_dir) / SPLIT,
        )
