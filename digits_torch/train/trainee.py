"""One network in training, alone or in a sweep's stack: its set-up and where it stands, and
the bookkeeping that ends each of its epochs (:meth:`Trainee.end_epoch`), the same for both.

    trainee = Trainee(set_up(config))
    record = {"epoch": trainee.epoch + 1, "train_loss": ..., ...}   # an epoch's metrics
    improved = trainee.end_epoch(record, finite=True)               # lr, schedule, stopping
    trainee.status                                                  # "training" until it ends
"""

from __future__ import annotations

from pathlib import Path

from ..config.config import TrainConfig
from ..optim.schedule import advance, lower_on_plateau
from ..store.checkpoints import check_fits, clone_weights, restore
from ..store.runs import check_split
from .run_setup import Setup

__all__ = ["Trainee"]


class Trainee:
    """One network being trained: its :class:`~digits_torch.train.run_setup.Setup` and its progress.

    Attributes:
        run: what it trains with (model, optimizer, scheduler, stopping rule, random draws).
        epoch: epochs completed (a resumed network: its checkpoint's).
        seconds: training seconds through ``epoch`` (the history's clock, across resumes).
        best: the best model's weights so far (a state dict on the device), None until known.
        best_epoch: the epoch ``best`` is of.
        status: ``"training"``, or how it ended, as metrics.json's "stopped" says it:
            ``"max_epochs"``, ``"converged"`` or ``"diverged"``.
        order: its place in every stack it joins (a sweep's network's index).
        files: what writes its run directory (:class:`~digits_torch.train.run_files.RunFiles`), or
            None where nothing is written (the other ranks of a torchrun job).
    """

    def __init__(
        self,
        run: Setup,
        epoch: int = 0,
        seconds: float = 0.0,
        best: dict | None = None,
        order: int = 0,
    ) -> None:
        self.run, self.epoch, self.seconds, self.order = run, epoch, seconds, order
        self.best = clone_weights(run.model) if best is None else best
        self.best_epoch = run.stopping.best_epoch_ if epoch else 0
        self.files = None
        self.status = "training"
        if run.stopping.should_stop:  # a resumed network that had already converged
            self.status = "converged"
        elif epoch >= run.recipe.epochs:
            self.status = "max_epochs"

    @classmethod
    def restored(cls, run: Setup, checkpoint: dict, path: Path, order: int = 0) -> Trainee:
        """The network of ``run`` as its checkpoint (read from ``path``) left it: weights,
        optimizer, schedule, stopping rule and random draws. Its ``best`` is the restored model
        until the caller gives it best.pt's.

        Raises:
            UserError: the checkpoint does not fit ``run`` (its shapes, data or state), or the
                data file or split is not the one the run recorded.
        """
        check_fits(checkpoint, run.model, path, run.data_path)
        check_split(path.parent, run.rows, run.data_path, run.digits.sha256)  # the same digits
        epoch, seconds = restore(
            checkpoint,
            path,
            model=run.model,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            rng=run.rng,
            stopping=run.stopping,
        )
        return cls(run, epoch, seconds, order=order)

    @property
    def config(self) -> TrainConfig:
        """The network's config: what its run saves."""
        return self.run.config

    @property
    def lr(self) -> float:
        """The lr its next epoch trains with."""
        return self.run.optimizer.param_groups[0]["lr"]

    def end_epoch(self, record: dict, finite: bool) -> bool:
        """An epoch's bookkeeping, after its arithmetic: the lr it trained with goes into
        ``record``; the lr schedule advances; the stopping rule counts the epoch (with
        scikit-learn's adaptive lr: lr / 5 on a plateau, and go on).

        Args:
            record: the epoch's metrics (``epoch``, ``train_loss``, ``train_accuracy``,
                ``val_loss``, ``val_accuracy``); gains ``lr``.
            finite: whether the loss (and the weights) stayed finite; if not, the network has
                diverged and the epoch does not count.

        Returns whether the epoch's model is the best so far; ``status`` says if training ends.
        """
        run = self.run
        record["lr"] = self.lr
        if run.scheduler is not None:
            advance(run.scheduler)
        if not finite:
            self.status = "diverged"
            return False
        self.epoch = record["epoch"]
        improved = run.stopping.update(record)
        stop = run.stopping.should_stop
        if stop and run.recipe.schedule.lowers_on_plateau and lower_on_plateau(run.optimizer):
            stop = False
            run.stopping.restart()
        if improved:
            self.best_epoch = self.epoch
        if stop:
            self.status = "converged"
        elif self.epoch >= run.recipe.epochs:
            self.status = "max_epochs"
        return improved
