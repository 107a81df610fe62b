"""Run directories: everything one training run leaves behind, in one folder.

    <logdir>/<timestamp>-<preset>[-<name>]/    (name: --name, else what the run changed from
                                                the preset: 20261201-101500-tuned-l2=0.1-hidden=100)
        config.json      the TrainConfig the run was made with
        split.json       the rows of the data file it trains on and validates on
        history.jsonl    one JSON record per finished epoch (losses, accuracies, lr, seconds)
        metrics.json     the final figures, written when the run ends
        checkpoint.pt    the latest epoch;  best.pt: the best epoch (see digits_torch.checkpoints)
        events.out.tfevents.*   TensorBoard: scalars per epoch, config text, hparams, images
        figures/         PNGs drawn at the end of the run

        .lock            held (flock) by the one process writing into the run

TensorBoard sees the same run when a run is resumed: the new event file purges any step after
the checkpoint, so no epoch appears twice.

A run directory has one writer at a time (:class:`RunLock`); readers need no lock, since every
file but the logs is replaced whole. History and events are appended without a sync per epoch
and made durable by :meth:`RunLog.flush`, which the loop calls before each checkpoint: a
checkpoint never claims an epoch its history lacks. What a run directory holds is checked when
it is read (:func:`read_config`, :func:`read_history`): a hand-edited or foreign file is one
error naming the file (and line), not a traceback later.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
import PIL.Image

from .checkpoints import BEST, LATEST
from .config import TrainConfig
from .errors import UserError, reading, writing
from .events import EventFile, hparams_end, hparams_start
from .files import remove_stale_temps, write_atomically, write_json

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a run directory is then not guarded
    fcntl = None

__all__ = [
    "RunLock",
    "RunLog",
    "new_run_dir",
    "read_config",
    "read_history",
    "read_metrics",
    "read_split",
    "run_label",
    "run_owning",
    "trial_name",
]

CONFIG, HISTORY, METRICS, SPLIT = "config.json", "history.jsonl", "metrics.json", "split.json"
LOCK = ".lock"
TEXT_METRICS = ("stopped", "device", "preset")  # metrics.json's text; its other values are numbers

# Per-epoch record key -> TensorBoard tag. The Scalars tab groups tags by their prefix before
# "/", groups in name order, and opens the first two: accuracy and loss, then lr and metrics.
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "train_accuracy": "accuracy/train",
    "val_loss": "loss/val",
    "val_accuracy": "accuracy/val",
    "lr": "lr",
}
# The reported model's figures (metrics.json's), in the HParams table's column order: each
# ``metrics/<name>``, shown as ``<name>``. Every run declares all four (see events.py).
HPARAM_METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
# The hyperparameters the HParams table shows at first, after a sweep's swept ones (five shown).
FIRST_HPARAMS = ("preset", "optimizer", "lr", "l2", "hidden")
SHOWN_HPARAMS = 5
# The Custom Scalars tab: train and validation on one chart.
LAYOUT = {
    "train and validation": {
        "accuracy": ["Multiline", [r"^accuracy/(train|val)$"]],
        "loss": ["Multiline", [r"^loss/(train|val)$"]],
    }
}
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


def find_run(run: str | Path, logdir: str | Path = TrainConfig.logdir) -> Path:
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
    digits and ``. _ + = -``; fields that would pass :data:`LABEL_LENGTH` are counted, ``+2``.
    """
    parts = [f"{key}={_short(value)}" for key, value in changes.items()]
    label, shown = "", 0
    for part in parts:
        longer = f"{label}-{part}" if label else part
        if len(longer) > LABEL_LENGTH:
            break
        label, shown = longer, shown + 1
    if shown < len(parts):
        label += f"{'-' if label else ''}+{len(parts) - shown}"
    return label


def _short(value) -> str:
    if isinstance(value, list | tuple):
        text = "x".join(map(str, value))
    elif isinstance(value, str) and ("/" in value or "\\" in value or "." in value):
        text = Path(value).stem  # a data file
    else:
        text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^\w.+=-]", "_", text)


class RunLock:
    """The one writer of a run directory: an exclusive ``flock`` on its ``.lock`` file, held
    until :meth:`release` (or until the process ends, however it ends).

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
            raise UserError(
                f"in use by another process ({_lock_holder(path)}); wait for it to end or stop "
                "it, then try again",
                self.dir,
            ) from None
        except OSError:  # a file system without locks: go on unguarded rather than not at all
            pass
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the lock
            self._fd = None


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
    """A finished run's metrics.json, checked: a JSON object whose figures are numbers (or
    null), bar the text of :data:`TEXT_METRICS`.

    Raises:
        UserError: naming metrics.json, when it is missing, not JSON, or holds other values.
    """
    path = Path(run_dir) / METRICS
    metrics = _read_object(path, "figures")
    for key, value in metrics.items():
        text = key in TEXT_METRICS
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(value, str) if text else value is None or number):
            raise UserError(f"{key} must be {'text' if text else 'a number'}, got {value!r}", path)
    return metrics


def _read_object(path: Path, holds: str) -> dict:
    """The JSON object (of ``holds``) in the file at ``path``, or a UserError naming it."""
    with reading(path):
        content = path.read_bytes()
    try:
        values = json.loads(content)
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
    with reading(path):
        lines = path.read_bytes().decode(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # the line a crash cut short
                break
            raise UserError(f"line {number}: not a JSON record", path) from None
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
    path = Path(run_dir) / SPLIT
    if not path.exists():
        return None
    try:
        split = json.loads(path.read_text())
        return np.asarray(split["train"], dtype=np.int64), np.asarray(split["val"], dtype=np.int64)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise UserError(f"unreadable ({err})", path) from None


RUN_FILES = (CONFIG, SPLIT, HISTORY, METRICS, LATEST, BEST, LOCK)  # and events, figures/*
FIGURES = "figures"


def run_owning(path: str | Path) -> Path | None:
    """The run directory of which ``path`` is one of the files, or None: a file a run writes
    (config.json, a checkpoint, its events, a picture in figures/, ...), replaced by anything
    else, breaks the run (it cannot resume, or reads back wrong). A run directory is one holding
    config.json and a checkpoint; links are followed."""
    path = Path(os.path.realpath(path))
    folder, name = path.parent, path.name
    if folder.name == FIGURES and _is_run(folder.parent):
        return folder.parent
    owned = name in RUN_FILES or name.startswith("events.out.tfevents.")
    return folder if owned and _is_run(folder) else None


def _is_run(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and any((folder / n).is_file() for n in (LATEST, BEST))


def _hparam_tag(metric: str) -> str:
    return f"metrics/{metric}"


def trial_name(run_dir: Path, name: str = "") -> str:
    """The run's name in the HParams table, whose Trial ID column shows about a dozen
    characters: what tells it from its neighbours comes first, and the rest keeps it unique.

    A run: ``20261201-101500-tuned-l2=0.1`` -> ``101500-tuned-l2=0.1 (20261201)``. A sweep's
    network (``name``, its config's, in a directory :func:`new_run_dir` made):
    ``3-l2=0.1-seed=1 (20261201-101500-sweep)``. Any other directory: ``<name> (<parent>)``.
    """
    if name and _STAMPED.fullmatch(run_dir.parent.name):
        return f"{name} ({run_dir.parent.name})"
    stamped = _STAMPED.fullmatch(run_dir.name)
    if stamped:
        return f"{stamped[2]} ({stamped[1]})"
    return f"{run_dir.name} ({run_dir.parent.name})"


_STAMPED = re.compile(r"(\d{8})-(\d{6}-.+)")  # new_run_dir's names: <date>-<time>-<rest>


def _valid_text(value: str) -> str:
    """``value`` as valid UTF-8 text: a path's undecodable bytes (lone surrogates) as \\xNN."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class RunLog:
    """Writes a run directory's records and its TensorBoard events (hold its :class:`RunLock`).

    Args:
        run_dir: an existing run directory.
        config: the run's config as a JSON-ready dict (written to config.json on a new run).
        resume_epoch: the epoch a resumed run continues after; ``None`` for a new run.
    """

    def __init__(self, run_dir: Path, config: dict, resume_epoch: int | None = None) -> None:
        from torch.utils.tensorboard.summary import custom_scalars, text

        self.dir = Path(run_dir)
        self.name = config.get("name") or ""  # a sweep's network's: its HParams row's name
        remove_stale_temps(self.dir)  # a killed writer's: the lock says none is alive
        history = self.dir / HISTORY
        if resume_epoch is None:
            write_json(self.dir / CONFIG, config)
            kept: list[dict] = []
        else:  # drop epochs logged after the checkpoint: they will be trained again
            kept = read_history(self.dir, through=resume_epoch)
        # Rewritten through a temp file and a rename: a run killed right here keeps its history.
        write_atomically(history, "".join(json.dumps(r) + "\n" for r in kept).encode())
        with writing(history):
            self._history = open(history, "a")
        self.events = EventFile(self.dir, None if resume_epoch is None else resume_epoch + 1)
        if resume_epoch is None:
            shown = "```\n" + json.dumps(config, indent=2) + "\n```"
            self.events.add_summary(text("config", shown), 0)
            self.events.add_summary(custom_scalars(LAYOUT), 0)

    def log_epoch(self, record: dict) -> None:
        """Append one epoch's record (``epoch`` plus any of SCALAR_TAGS): buffered, made
        durable by :meth:`flush`."""
        # All of an epoch's scalars in one event: add_scalar writes one event per value, at
        # about 60 us each (a fair share of a 10 ms epoch); TensorBoard reads either the same.
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [
            Summary.Value(tag=tag, simple_value=float(record[key]))
            for key, tag in SCALAR_TAGS.items()
            if record.get(key) is not None
        ]
        self.events.add_summary(Summary(value=values), record["epoch"])
        with writing(self.dir / HISTORY):
            self._history.write(json.dumps(record) + "\n")

    def log_epochs(self, records: list[dict]) -> None:
        """Append several epochs' records in order, then :meth:`flush` (a sweep writes each
        network's epochs in batches, on a time budget)."""
        for record in records:
            self.log_epoch(record)
        self.flush()

    def flush(self) -> None:
        """Sync the history to disk (a checkpoint that follows claims its epochs, so they must
        survive a power cut too) and hand the events to the OS."""
        with writing(self.dir / HISTORY):
            self._history.flush()
            os.fsync(self._history.fileno())
        self.events.flush()

    def start_hparams(self, hyperparameters: dict, swept: Collection[str] = ()) -> None:
        """The run's entry in TensorBoard's HParams tab, written when it starts: its
        hyperparameters (``swept``: those its sweep varies, shown first), and the metrics
        :meth:`log_hparams` fills in at the end, so a running or interrupted run is listed too."""
        values = {
            k: v if isinstance(v, int | float | bool) else _valid_text(str(v))
            for k, v in hyperparameters.items()
        }
        shown = list(dict.fromkeys([*swept, *FIRST_HPARAMS]))[: max(SHOWN_HPARAMS, len(swept))]
        metrics = {_hparam_tag(name): name for name in HPARAM_METRICS}
        for summary in hparams_start(values, shown, metrics, trial_name(self.dir, self.name)):
            self.events.add_summary(summary)
        self.events.flush()

    def log_hparams(self, metrics: dict, step: int) -> None:
        """The HParams entry's metrics (scalars ``metrics/<name>``), and the run marked ended."""
        self.events.add_summary(hparams_end())
        for key, value in metrics.items():
            if value is not None:
                self.events.add_scalar(_hparam_tag(key), value, step)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An image in TensorBoard's Images tab, one per step on its slider.

        Args:
            image: (H, W) grey or (H, W, 3) RGB; uint8, or floats in [0, 1].

        Written as a PNG at zlib level 1, in as many channels as it has: for the hidden units
        during training that takes a fraction of a millisecond, about ten times less than
        ``SummaryWriter.add_image``, which always stores three channels at level 6.
        """
        from tensorboard.compat.proto.summary_pb2 import Summary

        if image.dtype != np.uint8:
            image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
        png = io.BytesIO()
        PIL.Image.fromarray(image).save(png, format="PNG", compress_level=1)
        picture = Summary.Image(
            height=image.shape[0],
            width=image.shape[1],
            colorspace=1 if image.ndim == 2 else image.shape[2],
            encoded_image_string=png.getvalue(),
        )
        summary = Summary(value=[Summary.Value(tag=tag, image=picture)])
        self.events.add_summary(summary, step)

    def write_split(self, train_rows: np.ndarray, val_rows: np.ndarray) -> None:
        """Record which rows of the data file the run trains on and validates on (1-d ints)."""
        write_json(self.dir / SPLIT, {"train": train_rows.tolist(), "val": val_rows.tolist()})

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.dir / METRICS, metrics)

    def close(self) -> None:
        """Flush and close the history and the events (both, even if the first fails)."""
        try:
            self.flush()
        finally:
            with contextlib.suppress(OSError):
                self._history.close()
            self.events.close()
