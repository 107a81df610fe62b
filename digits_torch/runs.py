"""Run directories: everything one training run leaves behind, in one folder.

    <logdir>/<timestamp>-<preset>[-<name>]/
        config.json      the TrainConfig the run was made with
        history.jsonl    one JSON record per finished epoch (losses, accuracies, lr, seconds)
        metrics.json     the final figures, written when the run ends
        checkpoint.pt    the latest epoch;  best.pt: the best epoch (see digits_torch.checkpoints)
        events.out.tfevents.*   TensorBoard: scalars per epoch, config text, hparams, images
        figures/         PNGs drawn at the end of the run

TensorBoard sees the same run when a run is resumed: the new event file purges any step after
the checkpoint, so no epoch appears twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from .errors import UserError

__all__ = ["RunLog", "new_run_dir", "read_history"]

CONFIG, HISTORY, METRICS = "config.json", "history.jsonl", "metrics.json"

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


def read_history(run_dir: str | Path) -> list[dict]:
    """The per-epoch records of a run, in epoch order (an empty list before the first epoch)."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash mid-write
            break
    return records


class RunLog:
    """Writes a run directory's records and its TensorBoard events.

    Args:
        run_dir: an existing run directory.
        config: the run's config as a JSON-ready dict (written to config.json on a new run).
        resume_epoch: the epoch a resumed run continues after; ``None`` for a new run.
    """

    def __init__(self, run_dir: Path, config: dict, resume_epoch: int | None = None) -> None:
        self.dir = Path(run_dir)
        if resume_epoch is None:
            write_json(self.dir / CONFIG, config)
            kept: list[dict] = []
        else:  # drop epochs logged after the checkpoint: they will be trained again
            kept = [r for r in read_history(self.dir) if r["epoch"] <= resume_epoch]
        with open(self.dir / HISTORY, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        self._history = open(self.dir / HISTORY, "a")
        purge = None if resume_epoch is None else resume_epoch + 1
        self.writer = SummaryWriter(str(self.dir), purge_step=purge)
        if resume_epoch is None:
            text = "```\n" + json.dumps(config, indent=2) + "\n```"
            self.writer.add_text("config", text, 0)

    def log_epoch(self, record: dict) -> None:
        """Append one epoch's record (``epoch`` plus any of SCALAR_TAGS) and flush it to disk."""
        step = record["epoch"]
        for key, tag in SCALAR_TAGS.items():
            if record.get(key) is not None:
                self.writer.add_scalar(tag, record[key], step)
        self._history.write(json.dumps(record) + "\n")
        self._history.flush()
        self.writer.flush()

    def log_hparams(self, hyperparameters: dict, metrics: dict, step: int) -> None:
        """Hyperparameters with final metrics in TensorBoard's HParams tab, in this same run."""
        values = {
            k: v if isinstance(v, int | float | str | bool) else str(v)
            for k, v in hyperparameters.items()
        }
        metrics = {f"hparams/{k}": v for k, v in metrics.items() if v is not None}
        for summary in hparams(values, metrics):
            self.writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.dir / METRICS, metrics)

    def close(self) -> None:
        self.writer.close()
        self._history.close()


def write_json(path: Path, value: dict) -> None:
    """Write JSON through a temp file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)
