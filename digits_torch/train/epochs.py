"""One epoch of training, chosen once per run: :func:`make_epoch_function`.

The kinds of epoch, by the run's recipe (its plan's: :mod:`digits_torch.config.plan`):

* minibatch SGD or Adam: a shuffle (a permutation drawn on the CPU generator, so every device sees
  the same order), then the core loop's epoch (:func:`digits_torch.core.loop.train_epoch`) with
  the hand-written backward pass and the fused step: each batch gathered by its slice of it, its
  gradients, a step;
* on CUDA with ``cuda_graph``: the same batches, replayed as one captured CUDA graph
  (:mod:`digits_torch.fast.cudagraph`);
* L-BFGS or fmincg: one full-batch iteration (fmincg: one line search);
* sklearn-exact: MLPClassifier's own epoch
(:func:`digits_torch.reference.sklearn_exact.train_epoch`).

With augmentation, every epoch but sklearn-exact's first distorts the whole training set at once
(:mod:`digits_torch.recipes.augment`); with a teacher, the teacher then labels the epoch's digits
with its soft targets, in one forward pass (:mod:`digits_torch.recipes.distillation`). Under
torchrun the ranks of a job compute each batch's gradients together
(:class:`~digits_torch.fast.data_parallel.DataParallel`): the same batches, the same steps.
Nothing in an epoch waits for the device: its loss and accuracy come back as 0-dim device
tensors, which the loop reads once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ..config.plan import Recipe
from ..core.loop import Gradients
from ..core.loop import train_epoch as minibatch_epoch
from ..core.model import MLP
from ..fast.backprop import GRADIENTS, effective_backprop
from ..fast.cudagraph import EpochGraph
from ..fast.data_parallel import DataParallel
from ..optim.optimizers import optimizer_step
from ..recipes.augment import random_affine
from ..recipes.distillation import Soft, soft_targets
from ..reference import sklearn_exact
from ..runtime.distributed import SOLO, Ranks

__all__ = [
    "EpochFunction",
    "batch_gradients",
    "make_epoch_function",
    "run_batches",
    "train_epoch",
]

# An epoch function: no arguments; trains one epoch and returns 0-dim device tensors (mean
# training objective, accuracy).
EpochFunction = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def make_epoch_function(
    recipe: Recipe,
    model: MLP,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    stream: sklearn_exact.RandomStream | None = None,
    ranks: Ranks = SOLO,
    teacher: MLP | None = None,
) -> EpochFunction:
    """The epoch function of a run: trains ``model`` on (m, n) images X and (m,) labels y.

    Args:
        recipe: what the run learns (its plan's).
        generator: the run's CPU generator; shuffles and augmentation draw from it.
        stream: scikit-learn's random stream, in sklearn-exact mode (else None).
        ranks: the torchrun job that trains the model together (a process group is up), or
            SOLO. (sklearn-exact mode and CUDA graphs are one process's: see run_setup.)
        teacher: the model to distil from (the recipe's teacher), or None.
    """
    if stream is not None:  # the config rules out augmenting here
        l2 = recipe.objective.l2
        return functools.partial(
            sklearn_exact.train_epoch, model, optimizer, X, y, recipe.batch_size, l2, stream
        )
    augmentation = recipe.augmentation
    if recipe.cuda_graph and X.device.type == "cuda":
        batches = functools.partial(run_batches, model, recipe=recipe)
        graph = EpochGraph(model, optimizer, X, y, batches)

        def graph_epoch() -> tuple[torch.Tensor, torch.Tensor]:
            return graph(random_affine(X, generator, *augmentation), generator)

        return graph_epoch

    backprop = effective_backprop(recipe.backprop, recipe.activation, recipe.objective.loss)
    parallel = DataParallel(model, recipe.objective, backprop, ranks) if ranks.parallel else None

    def epoch_function() -> tuple[torch.Tensor, torch.Tensor]:
        X_epoch = random_affine(X, generator, *augmentation)  # X itself without augmentation
        soft = None if teacher is None else teacher_soft(teacher, X_epoch, recipe)
        return train_epoch(model, optimizer, X_epoch, y, recipe, generator, parallel, soft)

    return epoch_function


def train_epoch(
    model: MLP,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    recipe: Recipe,
    generator: torch.Generator,
    parallel: DataParallel | None = None,
    soft: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over (X (m, n), y (m,)), minibatch or (L-BFGS) full batch; with ``parallel``,
    this rank's share of each batch, the gradients summed over the job's ranks; with ``soft``,
    (m, classes) a teacher's soft targets of X, distilled.

    Returns 0-dim device tensors: the mean training objective (scikit-learn's ``loss_curve_``:
    batch objectives weighted by batch size) and the accuracy over the epoch's batches, each
    counted as it was trained on (the model changes during the epoch; with augmentation, the
    distorted images).
    """
    model.train()
    if recipe.steps.full_batch:  # L-BFGS, fmincg: one step on the whole training set
        return _full_batch_iteration(model, optimizer, X, y, recipe, parallel, soft)
    # A CPU permutation: the same on every device.
    order = torch.randperm(X.shape[0], generator=generator).to(X.device)
    return run_batches(model, optimizer_step(optimizer), X, y, order, recipe, parallel, soft)


def teacher_soft(teacher: MLP, X: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """(m, classes) the teacher's soft targets of (m, n) images X, at the recipe's temperature."""
    with torch.no_grad():
        return soft_targets(teacher(X), recipe.objective.temperature)


def batch_gradients(recipe: Recipe, parallel: DataParallel | None = None) -> Gradients:
    """A batch's objective and gradients by the recipe (the hand-written backward pass where it
    knows the activation and loss, else autograd), as :data:`~digits_torch.core.loop.Gradients`
    taking a batch's soft targets (b, classes) after its labels, if any; with ``parallel``, the
    job's ranks' shares of it, summed."""
    if parallel is not None:
        return parallel
    o = recipe.objective
    gradients = GRADIENTS[effective_backprop(recipe.backprop, recipe.activation, o.loss)]

    def fast(model: MLP, x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None = None):
        terms = None if soft is None else Soft(soft, o.temperature, o.soft_weight)
        return gradients(model, x, y, o.loss, o.l2, o.label_smoothing, soft=terms)

    return fast


def run_batches(
    model: MLP,
    step: Callable[[], None],
    X: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    recipe: Recipe,
    parallel: DataParallel | None = None,
    soft: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batches of one epoch of minibatch training, in ``order`` (m,), each followed by
    ``step``: the core loop's epoch (:func:`digits_torch.core.loop.train_epoch`) with the
    recipe's gradients. With ``parallel``, each batch's gradients are those of every rank's
    share, summed; with ``soft`` (m, classes), distilled from those soft targets.

    Nothing here waits for the device or reads a tensor on the host, so that on CUDA the whole
    epoch can be captured as one graph (:mod:`digits_torch.fast.cudagraph`).
    """
    batch = min(recipe.batch_size, X.shape[0])
    rows = () if soft is None else (soft,)
    gradients = batch_gradients(recipe, parallel)
    return minibatch_epoch(model, None, X, y, order, batch, gradients, step=step, rows=rows)


def _full_batch_iteration(
    model: MLP,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    recipe: Recipe,
    parallel: DataParallel | None,
    soft: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One full-batch iteration (L-BFGS or fmincg), then the objective and accuracy it reached."""
    gradients = batch_gradients(recipe, parallel)
    rows = () if soft is None else (soft,)

    def full_batch() -> tuple[torch.Tensor, torch.Tensor]:
        return gradients(model, X, y, *rows)

    optimizer.step(lambda: full_batch()[0])
    objective, correct = full_batch()
    return objective, correct / X.shape[0]
