"""Writing a run directory's records as it trains: :class:`RunLog` appends the history and the
TensorBoard events (scalars per epoch, the config, the HParams entry, images), and writes the
split and the metrics. TensorBoard sees the same run when a run is resumed: the new event file
purges any step after the checkpoint, so no epoch appears twice.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Collection
from pathlib import Path

import numpy as np
import PIL.Image

from ..errors import writing
from .events import EventFile, hparams_end, hparams_start
from .files import remove_stale_temps, write_atomically, write_json
from .runs import CONFIG, HISTORY, METRICS, SPLIT, read_history

__all__ = ["DISTILLED_TRAIN_LOSS", "SCALAR_TAGS", "RunLog", "image_summary", "trial_name"]

# Per-epoch record key -> TensorBoard tag. The Scalars tab groups tags by their prefix before
# "/", groups in name order, and opens the first two: accuracy and loss, then lr and metrics.
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "train_accuracy": "accuracy/train",
    "val_loss": "loss/val",
    "val_accuracy": "accuracy/val",
    "lr": "lr",
}
# A distilled run's training objective is distillation's (soft and true targets), not the
# cross-entropy other runs' loss/train is: its tag says so, beside theirs in the same group.
DISTILLED_TRAIN_LOSS = "loss/train_distillation"
# The reported model's metrics (metrics.json's), in the HParams table's column order: each
# ``metrics/<name>``, shown as ``<name>``. Every run declares all four (see events.py).
HPARAM_METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
# The hyperparameters the HParams table shows at first, after a sweep's swept ones (five shown).
FIRST_HPARAMS = ("preset", "optimizer", "lr", "l2", "hidden")
SHOWN_HPARAMS = 5
# The Custom Scalars tab: train and validation on one chart.
LAYOUT = {
    "train and validation": {
        "accuracy": ["Multiline", [r"^accuracy/(train|val)$"]],
        "loss": ["Multiline", [r"^loss/(train|train_distillation|val)$"]],
    }
}


def _hparam_tag(metric: str) -> str:
    return f"metrics/{metric}"


def trial_name(run_dir: Path, name: str = "") -> str:
    """The run's name in the HParams table, whose Trial ID column shows about a dozen
    characters: what tells it from its neighbours comes first, and the rest keeps it unique.

    A run: ``20261201-101500-tuned-l2=0.1`` -> ``101500-tuned-l2=0.1 (20261201)``. A sweep's
    network (``name``, its config's, in a directory :func:`new_run_dir` made):
    ``101500-3-l2=0.1-seed=1 (20261201-sweep)``: the sweep's time first, so that two sweeps'
    networks of one name differ where the column shows. Any other directory:
    ``<name> (<parent>)``.
    """
    parent = _STAMPED.fullmatch(run_dir.parent.name)
    if name and parent:
        clock, rest = parent[2].split("-", 1)
        return f"{clock}-{name} ({parent[1]}-{rest})"
    stamped = _STAMPED.fullmatch(run_dir.name)
    if stamped:
        return f"{stamped[2]} ({stamped[1]})"
    return f"{run_dir.name} ({run_dir.parent.name})"


_STAMPED = re.compile(r"(\d{8})-(\d{6}-.+)")  # new_run_dir's names: <date>-<time>-<rest>


def _valid_text(value: str) -> str:
    """``value`` as valid UTF-8 text: a path's undecodable bytes (lone surrogates) as \\xNN."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def image_summary(tag: str, image: np.ndarray):
    """A TensorBoard ``Summary`` of one image.

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
    return Summary(value=[Summary.Value(tag=tag, image=picture)])


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
        self.tags = dict(SCALAR_TAGS)
        if config.get("teacher") is not None:
            self.tags["train_loss"] = DISTILLED_TRAIN_LOSS
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
        """Append one epoch's record (``epoch`` plus any of SCALAR_TAGS' keys): buffered, made
        durable by :meth:`flush`."""
        # All of an epoch's scalars in one event: add_scalar writes one event per value, at
        # about 60 us each (a fair share of a 10 ms epoch); TensorBoard reads either the same.
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [
            Summary.Value(tag=tag, simple_value=float(record[key]))
            for key, tag in self.tags.items()
            if record.get(key) is not None
        ]
        self.events.add_summary(Summary(value=values), record["epoch"])
        with writing(self.dir / HISTORY):
            self._history.write(json.dumps(record) + "\n")

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
        """An image in TensorBoard's Images tab, one per step on its slider
        (:func:`image_summary`)."""
        self.events.add_summary(image_summary(tag, image), step)

    def write_split(self, rows: tuple[np.ndarray, np.ndarray], data_sha256: str, **more) -> None:
        """Record which rows of the data file the run trains on and validates on (1-d ints), the
        file's SHA-256, and ``more`` (``teacher_sha256``: of a distilled run's teacher.pt)."""
        train, val = rows
        record = {"train": train.tolist(), "val": val.tolist(), "data_sha256": data_sha256}
        write_json(self.dir / SPLIT, {**record, **more})

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
