"""A run's plan: its config read once, into the resolved values the run machinery takes.

    plan = make_plan(config)        # the only place a run's TrainConfig fields are read
    plan.recipe.batch_size          # what is learned: the data, network, objective, steps
    plan.running.checkpoint_every   # how it is run: device, files, intervals, words

Below the plan nothing sees :class:`~digits_torch.config.config.TrainConfig`: the epoch
functions, data parallelism, the run's set-up, files and loop take a :class:`Plan` (or plain
values from it). The config is still what a run saves (config.json, and every
checkpoint's copy: ``plan.config``) and what the command line is made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import loop
from ..optim.schedule import make_scheduler
from ..optim.stopping import EarlyStopping
from .bounds import DTYPES
from .config import TrainConfig, fields_with

__all__ = ["Objective", "Plan", "Recipe", "Running", "Schedule", "Steps", "as_plan", "make_plan"]


@dataclass(frozen=True)
class Objective(loop.Objective):
    """What a batch minimises: the core loop's :class:`~digits_torch.core.loop.Objective` (the
    loss, lambda per example, the label smoothing) and the soft targets' terms where a teacher
    is distilled from: its temperature T and their share w of the loss (w T^2 KL + (1 - w) CE).
    Called as the core's gradients, it is the objective without the soft targets."""

    temperature: float = 1.0
    soft_weight: float = 0.0


@dataclass(frozen=True)
class Schedule:
    """The lr schedule, interpreted here alone: its name (a key of ``optim.schedule.SCHEDULES``),
    the epochs it spans and invscaling's exponent."""

    name: str
    epochs: int
    power_t: float

    def scheduler(
        self, optimizer: torch.optim.Optimizer, samples_per_epoch: int
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        """What the loop steps after each epoch (None: the lr stays, or acts on a plateau)."""
        return make_scheduler(self.name, optimizer, self.epochs, samples_per_epoch, self.power_t)

    @property
    def lowers_on_plateau(self) -> bool:
        """scikit-learn's adaptive lr: lr / 5 where the stopping rule would stop, and go on."""
        return self.name == "adaptive"

    @property
    def spans_epochs(self) -> bool:
        """Whether the schedule is drawn over the run's epochs (cosine): they cannot change."""
        return self.name == "cosine"


@dataclass(frozen=True)
class Steps:
    """How the weights move: the optimizer (a key of ``optim.optimizers.OPTIMIZERS``) and its
    settings, or scikit-learn's own SGD step for step (``sklearn_exact``)."""

    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    sklearn_exact: bool
    full_batch: bool  # one full-batch iteration an epoch (L-BFGS, fmincg)


@dataclass(frozen=True)
class Recipe:
    """What a run learns, resolved: every value that changes its weights."""

    data: Path | None  # an ex4-style .mat; None: the shipped digits
    seed: int
    val_fraction: float
    hidden: tuple[int, ...]
    activation: str
    init: str
    dtype: str  # "float32" or "float64", of the weights and the data
    objective: Objective
    batch_size: int
    epochs: int
    steps: Steps
    schedule: Schedule
    stopping: tuple[str, float, int]  # (monitor, tol, patience): EarlyStopping's arguments
    augmentation: tuple  # what recipes.augment.random_affine takes after the generator
    augmented: bool
    distilled: bool  # learns a teacher's soft targets (its teacher, or its teacher preset's)
    revive_dead_units: bool
    backprop: str  # "explicit" or "autograd", as asked (fast.backprop falls back by itself)
    cuda_graph: bool
    teacher: str | None  # a run or model file to distil from (fit decides it)
    teacher_preset: str | None  # the preset fit trains a teacher with, before it sets up
    teacher_any_split: bool
    # A sweep's networks with equal keys train in one stack (the fields whose role is
    # "stacked": shapes, data, loss); those of a stack with equal groups see the same batches
    # (the seed and the fields whose role is "augments": distortions, teacher, temperature).
    stack_key: tuple
    batch_group: tuple

    def early_stopping(self) -> EarlyStopping:
        """A fresh stopping rule."""
        return EarlyStopping(*self.stopping)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def step_name(self) -> str:
        """What one epoch is called: "iteration" for a full-batch optimizer, else "epoch"."""
        return "iteration" if self.steps.full_batch else "epoch"


@dataclass(frozen=True)
class Running:
    """How a run is run, not what it learns."""

    device: str  # as asked: "auto", "cpu", "cuda", "cuda:N" (runtime.devices resolves it)
    threads: int
    logdir: str
    quiet: bool
    checkpoint_every: float  # seconds of training between checkpoints
    image_every: int  # epochs between TensorBoard's hidden-unit images (0: never)
    figures: bool  # draw the pictures at the end
    rank_timeout: float
    preset: str
    name: str  # appended to the run directory's name


@dataclass(frozen=True)
class Plan:
    """A run's config, read once: what it learns, how it is run, and what it saves."""

    recipe: Recipe
    running: Running
    # The config itself: what the run saves (config.json, every checkpoint's copy) and what a
    # sweep's stacks are keyed by; the run machinery reads the recipe and running, not it.
    config: TrainConfig


def make_plan(config: TrainConfig) -> Plan:
    """The plan of ``config``: the one function that reads a run's config fields."""
    c = config
    recipe = Recipe(
        data=None if c.data is None else Path(c.data),
        seed=c.seed,
        val_fraction=c.val_fraction,
        hidden=c.hidden,
        activation=c.activation,
        init=c.init,
        dtype=c.dtype,
        objective=Objective(
            loss=c.loss,
            l2=c.l2,
            label_smoothing=c.label_smoothing,
            temperature=c.distill_temperature,
            soft_weight=c.distill_weight,
        ),
        batch_size=c.batch_size,
        epochs=c.epochs,
        steps=Steps(c.optimizer, c.lr, c.momentum, c.nesterov, c.sklearn_exact, c.full_batch),
        schedule=Schedule(c.schedule, c.epochs, c.power_t),
        stopping=(c.stop_on, c.tol, c.patience),
        augmentation=c.augmentation,
        augmented=c.augmented,
        distilled=c.distilled,
        revive_dead_units=c.revive_dead_units,
        backprop=c.backprop,
        cuda_graph=c.cuda_graph,
        teacher=c.teacher,
        teacher_preset=c.teacher_preset,
        teacher_any_split=c.teacher_any_split,
        stack_key=tuple(getattr(c, name) for name in fields_with("stacked")),
        batch_group=(c.seed, *(getattr(c, name) for name in fields_with("augments"))),
    )
    running = Running(
        device=c.device,
        threads=c.threads,
        logdir=c.logdir,
        quiet=c.quiet,
        checkpoint_every=c.checkpoint_every,
        image_every=c.image_every,
        figures=c.figures,
        rank_timeout=c.rank_timeout,
        preset=c.preset,
        name=c.name,
    )
    return Plan(recipe, running, c)


def as_plan(plan: Plan | TrainConfig) -> Plan:
    """``plan``, or the plan of a config (where the Python API hands the run machinery one)."""
    return plan if isinstance(plan, Plan) else make_plan(plan)
