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

TensorBoard sees the same run when a run is resumed: the new event file purges any step after
the checkpoint, so no epoch appears twice.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import PIL.Image

from .errors import UserError, writing
from .files import write_atomically, write_json

__all__ = ["RunLog", "new_run_dir", "read_history", "read_split", "run_label"]

CONFIG, HISTORY, METRICS, SPLIT = "config.json", "history.jsonl", "metrics.json", "split.json"

# Per-epoch record key -> TensorBoard tag.
SCALAR_TAGS = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "lr": "lr",
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


def read_history(run_dir: str | Path) -> list[dict]:
    """The per-epoch records of a run, in epoch order (an empty list before the first epoch)."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash mid-write
            break
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            break  # not a record this package wrote: what follows cannot be trusted either
        records.append(record)
    return records


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


def _hparam_tag(metric: str) -> str:
    return f"hparams/{metric}"


class RunLog:
    """Writes a run directory's records and its TensorBoard events.

    Args:
        run_dir: an existing run directory.
        config: the run's config as a JSON-ready dict (written to config.json on a new run).
        resume_epoch: the epoch a resumed run continues after; ``None`` for a new run.
    """

    def __init__(self, run_dir: Path, config: dict, resume_epoch: int | None = None) -> None:
        # TensorBoard here, not at the top: importing it takes longer than many a run's epoch.
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(run_dir)
        history = self.dir / HISTORY
        if resume_epoch is None:
            write_json(self.dir / CONFIG, config)
            kept: list[dict] = []
        else:  # drop epochs logged after the checkpoint: they will be trained again
            kept = [r for r in read_history(self.dir) if r["epoch"] <= resume_epoch]
        # Rewritten through a temp file and a rename: a run killed right here keeps its history.
        write_atomically(history, "".join(json.dumps(r) + "\n" for r in kept).encode())
        with writing(history):
            self._history = open(history, "a")
        purge = None if resume_epoch is None else resume_epoch + 1
        with writing(self.dir):
            self.writer = SummaryWriter(str(self.dir), purge_step=purge)
        if resume_epoch is None:
            text = "```\n" + json.dumps(config, indent=2) + "\n```"
            self.writer.add_text("config", text, 0)

    def log_epoch(self, record: dict) -> None:
        """Append one epoch's record (``epoch`` plus any of SCALAR_TAGS) and sync it to disk.

        Synced, not just flushed: the checkpoint that follows claims this epoch, so its record
        must survive a power cut too.
        """
        self.log_epochs([record])

    def log_epochs(self, records: list[dict]) -> None:
        """Append several epochs' records in order, with one sync for all (a sweep writes each
        network's epochs in batches, on a time budget)."""
        # All of an epoch's scalars in one event: add_scalar writes one event per value, at
        # about 60 us each (a fair share of a 10 ms epoch); TensorBoard reads either the same.
        from tensorboard.compat.proto.summary_pb2 import Summary

        for record in records:
            values = [
                Summary.Value(tag=tag, simple_value=float(record[key]))
                for key, tag in SCALAR_TAGS.items()
                if record.get(key) is not None
            ]
            self.writer.file_writer.add_summary(Summary(value=values), record["epoch"])
        with writing(self.dir / HISTORY):
            self._history.write("".join(json.dumps(record) + "\n" for record in records))
            self._history.flush()
            os.fsync(self._history.fileno())
        self.writer.flush()

    def start_hparams(self, hyperparameters: dict, metric_names: list[str]) -> None:
        """The run's entry in TensorBoard's HParams tab, written when it starts: its
        hyperparameters, and the names of the metrics :meth:`log_hparams` fills in at the end,
        so a running or interrupted run is listed too."""
        from torch.utils.tensorboard.summary import hparams

        values = {
            k: v if isinstance(v, int | float | str | bool) else str(v)
            for k, v in hyperparameters.items()
        }
        experiment, session_start, _ = hparams(values, {_hparam_tag(k): 0.0 for k in metric_names})
        for summary in (experiment, session_start):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def log_hparams(self, metrics: dict, step: int) -> None:
        """The HParams entry's metrics (scalars ``hparams/<name>``), and the run marked ended."""
        from torch.utils.tensorboard.summary import hparams

        _, _, session_end = hparams({}, {})
        self.writer.file_writer.add_summary(session_end)
        for key, value in metrics.items():
            if value is not None:
                self.writer.add_scalar(_hparam_tag(key), value, step)

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
        self.writer.file_writer.add_summary(summary, step)

    def write_split(self, train_rows: np.ndarray, val_rows: np.ndarray) -> None:
        """Record which rows of the data file the run trains on and validates on (1-d ints)."""
        write_json(self.dir / SPLIT, {"train": train_rows.tolist(), "val": val_rows.tolist()})

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.dir / METRICS, metrics)

    def close(self) -> None:
        self.writer.close()
        self._history.close()
