"""What a training run writes, and when: its log (history, TensorBoard), its checkpoints on a
time budget, its report (metrics.json, pictures, the HParams entry), and the one cleanup path
(:class:`RunFiles`). A sweep's stacked networks write theirs with the same class: a sweep's save
is written beside the real files (:data:`SIDE`) and installed once the sweep has committed it
(:func:`install`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import math
import os
import shutil
from collections.abc import Collection, Iterator
from pathlib import Path

from .. import plots
from ..config.config import fields_with
from ..core.losses import score
from ..errors import UserError, print_stderr
from ..runtime.distributed import launch_command
from ..store.checkpoints import (
    BEST,
    LATEST,
    checkpoint_bytes,
    clone_weights,
    load_run_file,
    model_checkpoint,
    save_checkpoint,
    training_checkpoint,
)
from ..store.files import fsync_dir, link_atomically, write_atomically
from ..store.run_contents import SIDE, TEACHER
from ..store.run_log import RunLog
from ..store.runs import read_history
from .run_loop import val_metrics
from .run_setup import Run

__all__ = [
    "SIDE",
    "RunFiles",
    "final_metrics",
    "hparams_of",
    "install",
    "run_metrics",
    "without_resume_hint",
]

# Config fields that describe how a run is watched, not what it trains: not hyperparameters.
NOT_HPARAMS = fields_with("hparam", has=False)


def final_metrics(run: Run) -> dict:
    """The loss (without the L2 term) and accuracy of the model now in ``run`` on the clean
    training digits, and on the validation digits where there are some (else None): what
    metrics.json and the HParams tab report."""
    loss = run.recipe.objective.loss
    train_loss, train_accuracy = score(run.model, *run.train, loss)
    return {
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        **val_metrics(run.model, run.val, loss),
    }


def run_metrics(final: dict, run: Run, history: list[dict], world: int) -> dict:
    """metrics.json of ``run`` where it stands: ``final`` (its model's
    :func:`final_metrics`), the last epoch's objective and seconds from ``history`` (the run's,
    or [] where none is read), the sizes of its split, and the processes that trained it
    together (``world``: a torchrun job's, else 1)."""
    return {
        **final,
        "last_epoch_objective": history[-1]["train_loss"] if history else None,
        "train_examples": len(run.rows[0]),
        "val_examples": len(run.rows[1]),
        "epochs": run.epoch,
        "best_epoch": run.stopping.best_epoch_,
        "stopped": run.status,
        "seconds": history[-1]["seconds"] if history else 0.0,
        "device": str(run.device),
        "ranks": world,
        "preset": run.plan.running.preset,
    }


def hparams_of(saved_config: dict) -> dict:
    """The fields of a run's config that its HParams entry lists: what it trained with."""
    return {k: v for k, v in saved_config.items() if k not in NOT_HPARAMS}


class RunFiles:
    """What a run writes: its log (history, TensorBoard), its checkpoints (its
    :class:`~digits_torch.train.run_loop.Saves`) and its report.

    Args:
        run_dir: the run's directory (made; held under its lock).
        run: the network: what it trains with, its epoch, training seconds and best weights
            so far, read when a checkpoint is written.
        resumed: whether ``run_dir`` holds the network's checkpoint already.
        world: the processes of a torchrun job training the run, else 1.
        swept: the fields its sweep varies (shown first in the HParams tab).
        figures: draw the pictures at the end (default: the plan's ``figures``; a sweep
            draws its networks' once training is over, and passes False).
    """

    def __init__(
        self,
        run_dir: Path,
        run: Run,
        resumed: bool,
        world: int = 1,
        swept: Collection[str] = (),
        figures: bool | None = None,
    ) -> None:
        self.dir, self.run, running = run_dir, run, run.plan.running
        self.world, self.swept = world, swept
        self.figures = running.figures if figures is None else figures
        self.budget = running.checkpoint_every  # seconds of training between checkpoints
        self.image_every = running.image_every
        # What resumes the command, not just this run, when it was stopped: a teacher trained
        # for a student is finished by running the student's command again (else: --resume).
        self.again: str | None = None
        self.resumable = resumed  # a run that has saved a checkpoint is kept, whatever happens
        self.saved_config = run.config.to_dict()  # once: every checkpoint carries it
        self.log: RunLog | None = None
        self.best_saved_epoch = run.best_epoch  # what best.pt holds
        self.saved_epoch, self.saved_seconds = run.epoch, run.seconds  # checkpoint.pt's

    @property
    def best_saved(self) -> bool:
        """Whether best.pt holds the run's best weights."""
        return self.best_saved_epoch == self.run.best_epoch

    def open(self) -> None:
        """Open the log; a new run records its split and saves epoch 0 as latest and best."""
        resume_epoch = self.run.epoch if self.resumable else None
        self.log = RunLog(self.dir, self.saved_config, resume_epoch=resume_epoch)
        if not self.resumable:
            teacher = self._teacher_bytes()
            kept = (
                {} if teacher is None else {"teacher_sha256": hashlib.sha256(teacher).hexdigest()}
            )
            self.log.write_split(self.run.rows, self.run.digits.sha256, **kept)
            if teacher is not None:
                write_atomically(self.dir / TEACHER, teacher)
            self.log.start_hparams(hparams_of(self.saved_config), swept=self.swept)
            save_checkpoint(self._latest(), self.dir / LATEST)
            link_atomically(self.dir / LATEST, self.dir / BEST)
            self.resumable = True

    def _teacher_bytes(self) -> bytes | None:
        """A distilled run's copy of its teacher (teacher.pt, a model file as best.pt is), or
        None: a resume distils from it, whatever has become of the file it came from, and
        split.json records its SHA-256, so a teacher.pt replaced since is refused."""
        teacher = self.run.teacher
        if teacher is None:
            return None
        state = model_checkpoint(teacher, teacher.state_dict(), 0, self.run.teacher_config)
        return checkpoint_bytes(state)

    def log_epoch(self, record: dict) -> None:
        """One epoch's record, in the history and TensorBoard."""
        self.log.log_epoch(record)

    def pictured(self, epoch: int) -> bool:
        """Whether TensorBoard gets a picture of the hidden units after ``epoch``."""
        every = self.image_every
        return bool(every) and epoch % every == 0

    def log_picture(self) -> None:
        """The hidden units of the model as it is now (the run's epoch's)."""
        image = plots.hidden_units_image(self.run.model)
        self.log.log_image("hidden_units", image, self.run.epoch)

    def after_epoch(self, stop: bool) -> None:
        """Checkpoint if training stops now (``stop``: Ctrl-C or SIGTERM) or the budget says
        (as a run's :class:`~digits_torch.train.run_loop.Saves`).

        The budget is measured on the training clock (the history's seconds): no epoch the
        history records after a checkpoint ends ``budget`` seconds or more after it, except the
        one whose checkpoint a kill beat.
        """
        if stop or self.run.seconds - self.saved_seconds >= self.budget:
            self.save()

    def final(self) -> None:
        """Checkpoint the last epoch once training ends, whatever the budget."""
        self.save()

    def save(self, beside: bool = False) -> bool:
        """The history, best.pt (if it changed), then the latest checkpoint, of the run's
        last finished epoch (the live model is that epoch's). ``beside``: as a sweep's save,
        under the :data:`SIDE` names. Returns whether anything was written."""
        run = self.run
        epoch = run.epoch
        if epoch == self.saved_epoch and self.best_saved:
            return False
        # The NaN guard, on what is saved: the loss an epoch reports was computed before its
        # last step, so weights that took one step too far are scored here. (A stack checks its
        # networks itself.)
        if run.epoch_function is not None and not (
            self._scores_finite(None) and (self.best_saved or self._scores_finite(run.best))
        ):
            self.stop_on_nan(epoch)
        self.log.flush()  # the checkpoint claims these epochs: their records come first
        names = SIDE if beside else {LATEST: LATEST, BEST: BEST}
        same = run.best_epoch == epoch and not run.has_val
        if not self.best_saved and not same:  # (a sweep links the two when it installs)
            self._save_best(self.dir / names[BEST])
        save_checkpoint(self._latest(), self.dir / names[LATEST])
        if same and not beside:  # the best is the latest: one file, two names
            link_atomically(self.dir / LATEST, self.dir / BEST)
        self.best_saved_epoch = run.best_epoch
        self.saved_epoch, self.saved_seconds = epoch, run.seconds
        return True

    def _save_best(self, path: Path) -> None:
        run = self.run
        best = model_checkpoint(run.model, run.best, run.best_epoch, self.saved_config)
        save_checkpoint(best, path)
        self.best_saved_epoch = run.best_epoch

    def _scores_finite(self, weights: dict | None) -> bool:
        """Whether the model (with ``weights``, else as it is) has a finite loss on the
        training digits. A forward pass, made only when a checkpoint is about to be written."""
        model = self.run.model
        current = None if weights is None else clone_weights(model)
        if weights is not None:
            model.load_state_dict(weights)
        try:
            loss, _ = score(model, *self.run.train, self.run.recipe.objective.loss)
        finally:
            if current is not None:
                model.load_state_dict(current)
        return math.isfinite(loss)

    def stop_on_nan(self, epoch: int, loss: float | None = None) -> None:
        """The NaN guard: the live weights are lost; keep what was finite, then say so."""
        self.log.flush()
        if not self.best_saved and self._scores_finite(self.run.best):
            self._save_best(self.dir / BEST)  # the best finite model so far, kept in memory
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

    def _latest(self) -> dict:
        """What checkpoint.pt holds: everything a resume needs, at the run's epoch."""
        run = self.run
        return training_checkpoint(
            run.model,
            run.epoch,
            self.saved_config,
            run.seconds,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            rng=run.rng,
            stopping=run.stopping,
        )

    def report(self) -> tuple[dict, list[dict]]:
        """metrics.json, the pictures and the HParams entry, for the model now in ``run`` (the
        best one: the caller has loaded it). Returns the metrics and the run's history."""
        final = final_metrics(self.run)
        self.log.flush()
        history = read_history(self.dir)
        metrics = run_metrics(final, self.run, history, self.world)
        self.log.write_metrics(metrics)
        if self.figures:
            self._figures(self.run.epoch)
        self.log.log_hparams(final, step=self.run.epoch)
        self.log.close()
        return metrics, history

    def _figures(self, epoch: int) -> None:
        """Pictures of the reported model, on the validation digits when some were held out."""
        run = self.run
        images = plots.write_run_figures(
            run.model, run.train, run.val, self.dir, data=(run.digits.X, run.digits.labels % 10)
        )
        for name in plots.TENSORBOARD_FIGURES:
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
        elif interrupted and _HINTED.get():
            epoch = load_run_file(self.dir / LATEST)["epoch"]
            again = launch_command(f"python train.py --resume {self.dir}", self.world)
            if self.again is not None:  # the teacher, then the student it was trained for
                words = "the same command: it finishes this teacher, then trains its student"
                again = f"{launch_command(self.again, self.world)}   ({words})"
            print_stderr(
                f"\ninterrupted; the checkpoint of epoch {epoch} is in {self.dir}\n"
                f"resume with: {again}"
            )


# Whether an interrupted run says how to resume it: not a sweep's network, whose sweep says it
# (resuming the sweep resumes the network; one hint, not two).
_HINTED: contextvars.ContextVar[bool] = contextvars.ContextVar("resume_hint", default=True)


@contextlib.contextmanager
def without_resume_hint() -> Iterator[None]:
    """Runs trained inside do not say how to resume them when interrupted: their caller does."""
    token = _HINTED.set(False)
    try:
        yield
    finally:
        _HINTED.reset(token)


def install(directory: Path, has_val: bool) -> None:
    """A sweep's committed save: its side files become the real ones (best.pt first)."""
    for name in (BEST, LATEST):
        side = directory / SIDE[name]
        if side.exists():
            os.replace(side, directory / name)
    fsync_dir(directory)
    if not has_val:  # the best is the latest: one file, two names
        link_atomically(directory / LATEST, directory / BEST)
