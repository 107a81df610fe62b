"""What a training run writes, and when: its log (history, TensorBoard), its checkpoints on a
time budget, its report (metrics.json, pictures, the HParams entry), and the one cleanup path
(:class:`RunFiles`). A sweep reports its networks with the same functions.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from . import plots
from .checkpoints import (
    BEST,
    LATEST,
    clone_weights,
    load_run_file,
    model_checkpoint,
    save_checkpoint,
    training_checkpoint,
)
from .config import TrainConfig, fields_with
from .errors import UserError, tell
from .files import link_atomically
from .losses import score
from .model import MLP
from .run_setup import Setup
from .runs import RunLog, read_history

__all__ = [
    "RunFiles",
    "final_figures",
    "hparams_of",
    "report_metrics",
    "run_final_figures",
    "run_metrics",
]

# Config fields that describe how a run is watched, not what it trains: not hyperparameters.
NOT_HPARAMS = fields_with("hparam", has=False)


def val_figures(run: Setup, config: TrainConfig) -> dict:
    if run.val is None:
        return {"val_loss": None, "val_accuracy": None}
    val_loss, val_accuracy = score(run.model, *run.val, config.loss)
    return {"val_loss": val_loss, "val_accuracy": val_accuracy}


def run_final_figures(run: Setup, config: TrainConfig) -> dict:
    """:func:`final_figures` of the model now in ``run``."""
    return final_figures(run.model, run.train, run.val, config.loss)


def final_figures(model: MLP, train: tuple, val: tuple | None, loss: str) -> dict:
    """The reported model's loss (without the L2 term) and accuracy on the clean training
    digits, and on the validation digits where there are some (else None): what metrics.json
    and the HParams tab report. ``train``, ``val``: ((m, n) images, (m,) digits) on the device."""
    train_loss, train_accuracy = score(model, *train, loss)
    val_loss, val_accuracy = score(model, *val, loss) if val is not None else (None, None)
    return {
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
    }


def report_metrics(final: dict, history: list[dict], rows: tuple, **run) -> dict:
    """metrics.json of a run: ``final`` (:func:`final_figures`), the last epoch's objective and
    seconds from ``history``, the sizes of the split ``rows`` (training, validation), and
    ``run``'s ``epochs``, ``best_epoch``, ``stopped``, ``device``, ``preset`` and ``ranks`` (the
    processes that trained it together: a torchrun job's, else 1)."""
    return {
        **final,
        "last_epoch_objective": history[-1]["train_loss"] if history else None,
        "train_examples": len(rows[0]),
        "val_examples": len(rows[1]),
        "epochs": run["epochs"],
        "best_epoch": run["best_epoch"],
        "stopped": run["stopped"],
        "seconds": history[-1]["seconds"] if history else 0.0,
        "device": run["device"],
        "ranks": run["ranks"],
        "preset": run["preset"],
    }


def run_metrics(
    final: dict,
    run: Setup,
    config: TrainConfig,
    history: list[dict],
    epoch: int,
    stopped: str,
    world: int,
) -> dict:
    """:func:`report_metrics` of ``run`` after ``epoch`` epochs: ``final`` (its model's
    :func:`final_figures`), ``history`` (the run's, or [] where none is read), ``world`` (the
    processes that trained it)."""
    return report_metrics(
        final,
        history,
        run.rows,
        epochs=epoch,
        best_epoch=run.stopping.best_epoch_,
        stopped=stopped,
        device=str(run.device),
        preset=config.preset,
        ranks=world,
    )


def hparams_of(saved_config: dict) -> dict:
    """The fields of a run's config that its HParams entry lists: what it trained with."""
    return {k: v for k, v in saved_config.items() if k not in NOT_HPARAMS}


class RunFiles:
    """What a run writes: its log (history, TensorBoard), its checkpoints and its report.

    ``best`` holds the best model's weights so far (None until the run has started), written
    to best.pt with the latest checkpoint, on the time budget.
    """

    def __init__(
        self, run_dir: Path, config: TrainConfig, run: Setup, resumed: bool, world: int = 1
    ) -> None:
        self.dir, self.config, self.run = run_dir, config, run
        self.world = world  # the processes of a torchrun job training the run, else 1
        self.resumable = resumed  # a run that has saved a checkpoint is kept, whatever happens
        self.saved_config = config.to_dict()  # once: every checkpoint carries it
        self.log: RunLog | None = None
        self.best: dict | None = None
        self.best_epoch = self.best_saved_epoch = 0
        self.best_saved = True  # best.pt holds self.best
        self.saved_epoch, self.saved_seconds = 0, 0.0  # what checkpoint.pt holds
        self.last_epoch, self.last_seconds = 0, 0.0  # the last finished epoch

    def open(self, start: int, seconds: float, best: dict) -> None:
        """Open the log; a new run records its split and saves epoch 0 as latest and best.
        ``best``: the best model's weights so far (a new run's: its initial ones)."""
        resume_epoch = start if self.resumable else None
        self.log = RunLog(self.dir, self.saved_config, resume_epoch=resume_epoch)
        self.saved_epoch = self.last_epoch = self.best_epoch = self.best_saved_epoch = start
        self.saved_seconds = self.last_seconds = seconds
        if not self.resumable:
            self.log.write_split(*self.run.rows)
            self.log.start_hparams(hparams_of(self.saved_config))
            self._save_latest(0, 0.0)
            link_atomically(self.dir / LATEST, self.dir / BEST)
            self.resumable = True
        self.best = best

    def log_epoch(self, record: dict) -> None:
        self.log.log_epoch(record)
        every = self.config.image_every
        if every and record["epoch"] % every == 0:
            image = plots.hidden_units_image(self.run.model)
            self.log.log_image("hidden_units", image, record["epoch"])

    def end_epoch(self, epoch: int, seconds: float, best: dict | None, save: bool) -> None:
        """Keep ``best``, this epoch's weights where they are the best so far (else None);
        checkpoint if ``save`` or the budget says.

        The budget is measured on the training clock (``seconds``, the history's): no epoch
        the history records after a checkpoint ends ``checkpoint_every`` seconds or more after
        it, except the one whose checkpoint a kill beat.
        """
        if best is not None:
            self.best, self.best_epoch, self.best_saved = best, epoch, False
        self.last_epoch, self.last_seconds = epoch, seconds
        if save or seconds - self.saved_seconds >= self.config.checkpoint_every:
            self.save(epoch)

    def save(self, epoch: int) -> None:
        """The history, best.pt (if it changed), then the latest checkpoint of ``epoch`` (the
        last finished one: the live model is that epoch's)."""
        if epoch == self.saved_epoch and self.best_saved:
            return
        # The NaN guard, on what is saved: the loss an epoch reports was computed before its
        # last step, so weights that took one step too far are scored here.
        if not self._scores_finite(None) or not (self.best_saved or self._scores_finite(self.best)):
            self.stop_on_nan(epoch)
        self.log.flush()  # the checkpoint claims these epochs: their records come first
        same = self.best_epoch == epoch and self.run.val is None
        if not self.best_saved and not same:
            self._save_best()
        self._save_latest(epoch, self.last_seconds)
        if same:  # the best is the latest: one file, two names
            link_atomically(self.dir / LATEST, self.dir / BEST)
            self.best_saved_epoch = epoch
        self.best_saved = True
        self.saved_epoch, self.saved_seconds = epoch, self.last_seconds

    def _save_best(self) -> None:
        best = model_checkpoint(self.run.model, self.best, self.best_epoch, self.saved_config)
        save_checkpoint(best, self.dir / BEST)
        self.best_saved, self.best_saved_epoch = True, self.best_epoch

    def _scores_finite(self, weights: dict | None) -> bool:
        """Whether the model (with ``weights``, else as it is) has a finite loss on the
        training digits. A forward pass, made only when a checkpoint is about to be written."""
        model = self.run.model
        current = None if weights is None else clone_weights(model)
        if weights is not None:
            model.load_state_dict(weights)
        try:
            loss, _ = score(model, *self.run.train, self.config.loss)
        finally:
            if current is not None:
                model.load_state_dict(current)
        return math.isfinite(loss)

    def stop_on_nan(self, epoch: int, loss: float | None = None) -> None:
        """The NaN guard: the live weights are lost; keep what was finite, then say so."""
        self.log.flush()
        if not self.best_saved and self._scores_finite(self.best):
            self._save_best()  # best.pt: the best finite model so far, kept in memory
        what = (
            f"training loss became {loss}"
            if loss is not None and not math.isfinite(loss)
            else "the weights stopped giving a finite loss"
        )
        raise UserError(
            f"{what} at epoch {epoch}; the last good checkpoint (epoch {self.saved_epoch}) and "
            f"best.pt (epoch {self.best_saved_epoch}) are kept; try a smaller --lr",
            self.dir,
        )

    def _save_latest(self, epoch: int, seconds: float) -> None:
        run = self.run
        state = training_checkpoint(
            run.model,
            epoch,
            self.saved_config,
            seconds,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            rng=run.rng,
            stopping=run.stopping,
        )
        save_checkpoint(state, self.dir / LATEST)

    def report(self, epoch: int, stopped: str) -> tuple[dict, list[dict]]:
        """metrics.json, the pictures and the HParams entry, for the model now in ``run``.

        Returns the metrics and the run's history.
        """
        run, config = self.run, self.config
        final = run_final_figures(run, config)
        self.log.flush()
        history = read_history(self.dir)
        metrics = run_metrics(final, run, config, history, epoch, stopped, self.world)
        self.log.write_metrics(metrics)
        if config.figures:
            self._figures(epoch)
        self.log.log_hparams(final, step=epoch)
        self.log.close()
        return metrics, history

    def _figures(self, epoch: int) -> None:
        """Pictures of the reported model, on the validation digits when some were held out."""
        run = self.run
        images = plots.write_run_figures(run.model, run.train, run.val, self.dir)
        for name in ("mistakes", "confusion"):
            self.log.log_image(f"figures/{name}", images[name], epoch)

    def abandon(self, interrupted: bool) -> None:
        """The one cleanup path: close what is open; a run that never saved is removed."""
        if self.log is not None:
            try:
                self.log.close()
            except Exception:  # noqa: S110 - the disk may be what failed; the first error stands
                pass
        if not self.resumable:  # nothing resumable was written: leave no half-made run behind
            shutil.rmtree(self.dir, ignore_errors=True)
        elif interrupted:
            epoch = load_run_file(self.dir / LATEST)["epoch"]
            launch = "python" if self.world == 1 else f"torchrun --nproc-per-node {self.world}"
            tell(
                f"\ninterrupted; the checkpoint of epoch {epoch} is in {self.dir}\n"
                f"resume with: {launch} train.py --resume {self.dir}"
            )
