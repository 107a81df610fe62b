"""The epochs of one network or of a sweep's stack, in one loop (:func:`train_epochs`).

    train_epochs(OneNetwork(run), run.files, requests, bar)

What differs between one network and a stack is only the arithmetic of an epoch: an
:class:`EpochTrainer` trains every network still training for one epoch and returns each one's
record. The loop then does, for each network, what a run does after an epoch: its bookkeeping
(:meth:`~digits_torch.train.run_setup.Run.end_epoch`), its clock, the divergence check, its log
and pictures (:class:`~digits_torch.train.run_files.RunFiles`) and the best weights so far; then
the checkpoints (a :class:`Saves`: a run's files, on its own time budget, or a sweep's stack
saved as one) and Ctrl-C or SIGTERM (:class:`~digits_torch.runtime.interrupts.StopRequests`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import torch
from tqdm.auto import tqdm

from ..core.losses import score
from ..core.model import MLP
from ..recipes.dead_units import revival_due, revival_generator, revive
from ..runtime.interrupts import StopRequests
from ..store.checkpoints import clone_weights
from .run_setup import Run

__all__ = ["EpochTrainer", "OneNetwork", "Saves", "train_epochs"]


class EpochTrainer(Protocol):
    """How the networks still training (``trainees``) train one epoch."""

    trainees: list[Run]

    def train_epoch(self) -> list[tuple[Run, dict, bool]]:
        """One epoch of every network still training: (network, its record, whether its loss
        and weights are finite). A record holds ``epoch``, ``train_loss``, ``train_accuracy``,
        ``val_loss`` and ``val_accuracy`` (None without validation digits)."""

    def keep_best(self, run: Run) -> None:
        """Keep the network's weights now as its best (``run.best``, now or at
        :meth:`sync`)."""

    def end_epoch(self) -> None:
        """After the bookkeeping: networks whose ``status`` says they ended stop training."""

    def sync(self) -> None:
        """Make each network's model, optimizer, generator and ``best`` hold its state now."""


class Saves(Protocol):
    """When and how the networks' checkpoints are written."""

    def after_epoch(self, stop: bool) -> None:
        """After every epoch; ``stop``: training stops now (Ctrl-C or SIGTERM)."""

    def final(self) -> None:
        """Once training ends (not when it is interrupted)."""


def train_epochs(
    trainer: EpochTrainer,
    saves: Saves | None,
    requests: StopRequests,
    bar: tqdm,
    on_diverged: Callable[[Run, dict], None] | None = None,
) -> None:
    """Train ``trainer``'s networks until each has ended (or a signal stops them all).

    Args:
        saves: what writes the checkpoints; None where nothing is written (the other ranks of
            a torchrun job).
        requests: Ctrl-C and SIGTERM, held (entered) by the caller.
        bar: counts epochs.
        on_diverged: called for a network whose loss or weights stopped being finite, before
            it leaves (a run raises; a sweep's network ends, and the others go on).

    Raises:
        Interrupted: on Ctrl-C or SIGTERM, once the checkpoints are written.
    """
    started = time.perf_counter()
    seconds_before = {id(t): t.seconds for t in trainer.trainees}
    while trainer.trainees:
        results = trainer.train_epoch()
        pictured = []
        for run, record, finite in results:
            improved = run.end_epoch(record, finite)
            run.seconds = seconds_before[id(run)] + time.perf_counter() - started
            record["seconds"] = run.seconds
            if run.status == "diverged":  # that epoch is not logged
                if on_diverged is not None:
                    on_diverged(run, record)
                continue
            if run.files is not None:
                run.files.log_epoch(record)
                if run.files.pictured(run.epoch):
                    pictured.append(run)
            if improved:
                trainer.keep_best(run)
        trainer.end_epoch()
        if pictured:
            trainer.sync()  # the pictures are of this epoch's weights
            for run in pictured:
                run.files.log_picture()
        stop = requests.agreed()  # on every rank, saves or not: the ranks agree on it
        if saves is not None:
            saves.after_epoch(stop)
        requests.act()
        if len(results) == 1:
            bar.set_postfix(_postfix(results[0][1]), refresh=False)
        bar.update(1)
    if saves is not None:
        saves.final()


class OneNetwork:
    """The :class:`EpochTrainer` of one network: its run's epoch function, the revival of its
    dead units (if due), then its metrics on the validation digits, read from the device at
    once."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.trainees = [run] if run.status == "training" else []

    def train_epoch(self) -> list[tuple[Run, dict, bool]]:
        run = self.run
        epoch = run.epoch + 1
        loss, accuracy = run.epoch_function()
        recipe = run.recipe
        if recipe.revive_dead_units and revival_due(epoch, recipe.epochs):
            revive(run.model, run.optimizer, run.train[0], revival_generator(recipe.seed, epoch))
        record = {
            "epoch": epoch,
            **val_metrics(run.model, run.val, recipe.objective.loss),
        }
        # the epoch's one read from the device (float64 holds either dtype exactly)
        finite = torch.stack([p.isfinite().all() for p in run.model.parameters()]).all()
        read = torch.stack([loss.double(), accuracy.double(), finite.double()]).tolist()
        record["train_loss"], record["train_accuracy"], weights_finite = read
        finite = math.isfinite(record["train_loss"]) and weights_finite == 1.0
        return [(self.run, record, finite)]

    def keep_best(self, run: Run) -> None:
        run.best = clone_weights(run.model)

    def end_epoch(self) -> None:
        if self.run.status != "training":
            self.trainees = []

    def sync(self) -> None:
        pass  # the model is the run's own


def val_metrics(model: MLP, val: tuple | None, loss: str) -> dict:
    """An epoch's ``val_loss`` and ``val_accuracy`` of ``model`` on ``val`` ((v, n) images,
    (v,) digits), None without it."""
    if val is None:
        return {"val_loss": None, "val_accuracy": None}
    val_loss, val_accuracy = score(model, *val, loss)
    return {"val_loss": val_loss, "val_accuracy": val_accuracy}


def _postfix(record: dict) -> dict:
    """The progress bar's numbers for one network's epoch."""
    postfix = {"loss": f"{record['train_loss']:.4f}", "acc": f"{record['train_accuracy']:.4f}"}
    if record["val_accuracy"] is not None:
        postfix["val_acc"] = f"{record['val_accuracy']:.4f}"
    return postfix
