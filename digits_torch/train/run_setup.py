"""One network's run (:class:`Run`): what it trains with (its data on the device, its split,
model, optimizer, schedule, stopping rule, random draws and epoch function), all built from its
config (:func:`set_up`) before anything is written, so a run that cannot start leaves nothing
behind; and where its training stands, with the bookkeeping that ends each of its epochs
(:meth:`Run.end_epoch`). A network a sweep trains in a stack is set up by the same function
(without an epoch function: the stack's arithmetic trains it), on digits read once for the whole
stack (:func:`read_digits`), and ends its epochs the same way.

    run = set_up(config)                         # or run.restore(checkpoint, path): go on
    record = {"epoch": run.epoch + 1, "train_loss": ..., ...}   # an epoch's metrics
    improved = run.end_epoch(record, finite=True)               # lr, schedule, stopping
    run.status                                                  # "training" until it ends
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.config import TrainConfig
from ..config.plan import Plan, Recipe, Steps, as_plan
from ..core.data import default_data_path, file_sha256, load_digits, stratified_split
from ..core.model import MLP
from ..errors import UserError
from ..optim.optimizers import OPTIMIZERS
from ..optim.schedule import advance, lower_on_plateau
from ..optim.stopping import EarlyStopping
from ..reference import sklearn_exact
from ..runtime.devices import resolve_device
from ..runtime.distributed import SOLO, Ranks
from ..store.checkpoints import check_fits, clone_weights, restore
from ..store.run_contents import TEACHER
from ..store.runs import check_split
from .epochs import EpochFunction, make_epoch_function
from .teachers import kept_teacher, load_teacher

__all__ = [
    "TEACHER",
    "Digits",
    "Run",
    "make_optimizer",
    "read_digits",
    "set_up",
    "split_rows",
]


@dataclass(frozen=True)
class Digits:
    """A data file's digits, read once (a stack's networks share them).

    ``X``: (rows, n) images in the config's dtype; ``labels``: (rows,) as the file stores them
    (Coursera's 10 for the digit 0); ``on_device``: (X, digits 0-9) as tensors on the device.
    """

    path: Path
    X: np.ndarray
    labels: np.ndarray
    on_device: tuple[torch.Tensor, torch.Tensor]
    sha256: str  # of the file: what the run records (split.json), and what a teacher must share


def read_digits(plan: Plan | TrainConfig, device: torch.device) -> Digits:
    """The digits a run trains on (its data file, else the shipped one), on ``device``."""
    recipe = as_plan(plan).recipe
    path = default_data_path() if recipe.data is None else recipe.data
    X, labels = load_digits(path, dtype=recipe.dtype, stored_labels=True)
    y = labels % 10  # digits: Coursera's label 10 is the digit 0
    on_device = (torch.from_numpy(X).to(device), torch.from_numpy(y).to(device))
    return Digits(path, X, labels, on_device, file_sha256(path, "a MAT file"))


@dataclass(eq=False)  # one object per network: hashed and compared by identity, not tensors
class Run:
    """One network's run: everything it trains with, built before its run directory is
    touched, and where its training stands.

    Attributes (where it stands):
        epoch: epochs completed (a resumed network: its checkpoint's).
        seconds: training seconds through ``epoch`` (the history's clock, across resumes).
        best: the best model's weights so far (a state dict on the device).
        best_epoch: the epoch ``best`` is of.
        status: ``"training"``, or how it ended, as metrics.json's "stopped" says it:
            ``"max_epochs"``, ``"converged"`` or ``"diverged"``.
        order: its place in every stack it joins (a sweep's network's index).
        files: what writes its run directory (:class:`~digits_torch.train.run_files.RunFiles`),
            or None where nothing is written (the other ranks of a torchrun job).
    """

    plan: Plan
    device: torch.device
    digits: Digits
    rows: tuple[np.ndarray, np.ndarray]  # training and validation rows of the data file
    model: MLP
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    stopping: EarlyStopping
    rng: torch.Generator | sklearn_exact.RandomStream  # what a checkpoint saves to resume draws
    epoch_function: EpochFunction | None  # trains one epoch; None for a network a stack trains
    teacher: MLP | None = None  # distillation's, in eval mode, on the device, in the dtype
    teacher_config: dict | None = None  # the config its checkpoint saved (what teacher.pt keeps)
    epoch: int = 0
    seconds: float = 0.0
    best: dict | None = None
    best_epoch: int = 0
    status: str = "training"
    order: int = 0
    files: Any = None  # RunFiles (whose module imports this one) or None

    @property
    def recipe(self) -> Recipe:
        return self.plan.recipe

    @property
    def config(self) -> TrainConfig:
        """The run's config: what it saves (its plan's)."""
        return self.plan.config

    @property
    def data_path(self) -> Path:
        return self.digits.path

    @property
    def has_val(self) -> bool:
        return len(self.rows[1]) > 0

    @functools.cached_property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, n) training images and (m,) their digits, on the device (made on first use)."""
        return self._on_device(self.rows[0])

    @functools.cached_property
    def val(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Likewise for the validation digits; None without a split."""
        return self._on_device(self.rows[1]) if self.has_val else None

    def _on_device(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        X, y = self.digits.on_device
        index = torch.from_numpy(rows).to(self.device)
        return X.index_select(0, index), y.index_select(0, index)

    def drop_copies(self) -> None:
        """Forget the device copies of the split (a stacked network's, once it has reported:
        a sweep's networks would otherwise each hold a copy of the data)."""
        self.__dict__.pop("train", None)
        self.__dict__.pop("val", None)

    def start(self, epoch: int = 0, seconds: float = 0.0) -> None:
        """Where the network stands before training on: ``epoch`` epochs done in ``seconds``
        (a new run: none); its best weights so far are its model's now (a resumed run's until
        the caller gives it best.pt's)."""
        self.epoch, self.seconds = epoch, seconds
        self.best = clone_weights(self.model)
        self.best_epoch = self.stopping.best_epoch_ if epoch else 0
        self.status = "training"
        self._settle()  # a resumed network may have ended already

    def restore(self, checkpoint: dict, path: Path) -> None:
        """Go on from the checkpoint read from ``path``: its weights, optimizer, schedule,
        stopping rule, random draws, epoch and seconds (see :meth:`start`).

        Raises:
            UserError: the checkpoint does not fit the run (its shapes, data or state), or the
                data file or split is not the one the run recorded.
        """
        check_fits(checkpoint, self.model, path, self.data_path)
        check_split(path.parent, self.rows, self.data_path, self.digits.sha256)  # same digits
        epoch, seconds = restore(
            checkpoint,
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            rng=self.rng,
            stopping=self.stopping,
        )
        self.start(epoch, seconds)

    @property
    def lr(self) -> float:
        """The lr its next epoch trains with."""
        return self.optimizer.param_groups[0]["lr"]

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
        record["lr"] = self.lr
        if self.scheduler is not None:
            advance(self.scheduler)
        if not finite:
            self.status = "diverged"
            return False
        self.epoch = record["epoch"]
        improved = self.stopping.update(record)
        if (
            self.stopping.should_stop
            and self.recipe.schedule.lowers_on_plateau
            and lower_on_plateau(self.optimizer)
        ):
            self.stopping.restart()  # should_stop is false again
        if improved:
            self.best_epoch = self.epoch
        self._settle()
        return improved

    def _settle(self) -> None:
        """``status`` after an epoch (or a restore): converged if the stopping rule says stop,
        else max_epochs once its epochs are done, else as it was."""
        if self.stopping.should_stop:
            self.status = "converged"
        elif self.epoch >= self.recipe.epochs:
            self.status = "max_epochs"


def set_up(
    plan: Plan | TrainConfig,
    ranks: Ranks = SOLO,
    digits: Digits | None = None,
    stacked: bool = False,
    resumed_from: Path | None = None,
) -> Run:
    """The run of ``plan`` (or of a config's), at its start; with ``ranks`` of a torchrun job,
    this rank's part of it (every rank sets up the same run: the same data, split, model and
    random draws).

    Args:
        digits: the data, already read (a stack's); default: read from the recipe's data file.
        stacked: a network a stack trains: no epoch function of its own.
        resumed_from: the directory of the run this resumes, whose own copy of its teacher
            (:data:`TEACHER`) it distils from, not the recipe's teacher.
    """
    plan = as_plan(plan)
    r = plan.recipe
    device = resolve_device(plan.running.device) if digits is None else digits.on_device[0].device
    if ranks.parallel:
        _check_parallel(r, device)
    digits = read_digits(plan, device) if digits is None else digits

    # Initialisation, augmentation and shuffling draw from one CPU generator: the same numbers
    # on every device.
    generator = torch.Generator().manual_seed(r.seed)
    model = MLP(digits.X.shape[1], r.hidden, 10, r.activation, r.init, generator)
    model.to(device, r.torch_dtype)
    stream, train_idx, val_idx = split_rows(r, digits.labels, model)
    if len(train_idx) == 0:
        problem = f"val fraction {r.val_fraction} holds out every example; lower it"
        raise UserError(problem, digits.path)
    optimizer = make_optimizer(r.steps, model)
    teacher, teacher_config = None, None
    if r.teacher is None and r.teacher_preset is not None:
        raise UserError(
            f"teacher preset {r.teacher_preset}: fit (or a sweep) trains the teacher "
            "first; set up the run with its teacher (dataclasses.replace(config, teacher=...))"
        )
    if r.teacher is not None:
        teacher, teacher_config = _teacher(plan, digits, val_idx, resumed_from)
    run = Run(
        plan=plan,
        device=device,
        digits=digits,
        rows=(train_idx, val_idx),
        model=model,
        optimizer=optimizer,
        scheduler=r.schedule.scheduler(optimizer, len(train_idx)),
        stopping=r.early_stopping(),
        rng=generator if stream is None else stream,
        epoch_function=None,
        teacher=teacher,
        teacher_config=teacher_config,
    )
    if not stacked:
        run.epoch_function = make_epoch_function(
            r, model, optimizer, *run.train, generator, stream, ranks, teacher
        )
    run.start()
    return run


def _teacher(
    plan: Plan, digits: Digits, val_rows: np.ndarray, resumed_from: Path | None
) -> tuple[MLP, dict]:
    """The teacher the plan distils from (checked: :mod:`digits_torch.train.teachers`), on the
    digits' device in the recipe's dtype, in eval mode; and the config its file saved. A resume
    distils from the run's own copy."""
    pixels, r = digits.X.shape[1], plan.recipe
    if resumed_from is None:
        trained = load_teacher(
            r.teacher, r.teacher_any_split, plan.running.logdir, pixels, digits.sha256, val_rows
        )
    else:
        trained = kept_teacher(resumed_from, pixels)
    device = digits.on_device[0].device
    teacher = trained.model.to(device, r.torch_dtype).eval().requires_grad_(False)
    return teacher, dict(trained.config) or {"loss": trained.loss}


def make_optimizer(of: Steps | Plan | TrainConfig, model: MLP) -> torch.optim.Optimizer:
    """The optimizer of a recipe's :class:`~digits_torch.config.plan.Steps` (or a plan's, or a
    config's) over ``model``'s parameters: its :data:`~digits_torch.optim.optimizers.OPTIMIZERS`
    entry, or scikit-learn's SGD in sklearn-exact mode."""
    steps = of if isinstance(of, Steps) else as_plan(of).recipe.steps
    params = model.parameters()
    if steps.sklearn_exact:
        return sklearn_exact.SklearnSGD(params, steps.lr, steps.momentum, steps.nesterov)
    return OPTIMIZERS[steps.optimizer](params, steps.lr, steps.momentum, steps.nesterov)


def _check_parallel(recipe: Recipe, device: torch.device) -> None:
    """What data parallelism cannot do: repeat scikit-learn's one process, or replay one
    process's epoch as a CUDA graph."""
    if recipe.steps.sklearn_exact:
        raise UserError(
            "sklearn-exact mode repeats scikit-learn's one-process SGD; "
            "run it without torchrun (or with --nproc-per-node 1)"
        )
    if recipe.cuda_graph and device.type == "cuda":
        raise UserError("--cuda-graph replays one process's epoch; under torchrun drop it")


def split_rows(
    recipe: Recipe, labels: np.ndarray, model: MLP
) -> tuple[sklearn_exact.RandomStream | None, np.ndarray, np.ndarray]:
    """The training and validation rows of a run of ``recipe`` on data labelled ``labels``
    (as the file stores them).

    Returns ``(stream, training rows, validation rows)``. ``stream`` is None, except in
    sklearn-exact mode: there scikit-learn's random stream first draws ``model``'s initial
    weights and then the split, and the epochs go on shuffling from it.
    """
    if not recipe.steps.sklearn_exact:
        return None, *stratified_split(labels % 10, recipe.val_fraction, recipe.seed)
    if len(np.unique(labels)) != 10:
        # MLPClassifier sizes its output layer by the classes present; ours always has ten.
        raise UserError("sklearn-exact mode needs every digit 0..9 in the data", recipe.data)
    stream = sklearn_exact.RandomStream(recipe.seed)
    stream.init_(model, sklearn_exact.unit_digits(labels))
    if recipe.val_fraction == 0:
        return stream, np.arange(len(labels)), np.arange(0)
    train_idx, val_idx = stream.split(len(labels), recipe.val_fraction)
    return stream, train_idx, val_idx
