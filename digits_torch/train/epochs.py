"""One epoch of training, chosen once per run: :func:`make_epoch`.

The kinds of epoch, by config:

* minibatch SGD or Adam: a shuffle (a permutation drawn on the CPU generator, so every device sees
  the same order), then each batch gathered by its slice of it, its gradients, a step;
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

from ..config.config import TrainConfig
from ..core.model import MLP
from ..fast.backprop import GRADIENTS, effective_backprop
from ..fast.cudagraph import EpochGraph
from ..fast.data_parallel import DataParallel
from ..optim.optimizers import optimizer_step
from ..recipes.augment import random_affine
from ..recipes.distillation import Soft, soft_targets
from ..reference import sklearn_exact
from ..runtime.distributed import SOLO, Ranks

__all__ = ["Epoch", "make_epoch", "run_batches", "train_epoch"]

# An epoch: no arguments; returns 0-dim device tensors (mean training objective, accuracy).
Epoch = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def make_epoch(
    config: TrainConfig,
    model: MLP,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    stream: sklearn_exact.RandomStream | None = None,
    ranks: Ranks = SOLO,
    teacher: MLP | None = None,
) -> Epoch:
    """The epoch function of a run: trains ``model`` on (m, n) images X and (m,) labels y.

    Args:
        generator: the run's CPU generator; shuffles and augmentation draw from it.
        stream: scikit-learn's random stream, in sklearn-exact mode (else None).
        ranks: the torchrun job that trains the model together (a process group is up), or
            SOLO. (sklearn-exact mode and CUDA graphs are one process's: see run_setup.)
        teacher: the model to distil from (config.teacher's), or None.
    """
    if stream is not None:  # the config rules out augmenting here
        return functools.partial(
            sklearn_exact.train_epoch, model, optimizer, X, y, config.batch_size, config.l2, stream
        )
    augmentation = config.augmentation
    if config.cuda_graph and X.device.type == "cuda":
        graph = EpochGraph(
            model, optimizer, X, y, functools.partial(run_batches, model, config=config)
        )

        def graph_epoch() -> tuple[torch.Tensor, torch.Tensor]:
            return graph(random_affine(X, generator, *augmentation), generator)

        return graph_epoch

    parallel = DataParallel(model, config, ranks) if ranks.parallel else None

    def epoch() -> tuple[torch.Tensor, torch.Tensor]:
        X_epoch = random_affine(X, generator, *augmentation)  # X itself without augmentation
        soft = None if teacher is None else teacher_soft(teacher, X_epoch, config)
        return train_epoch(model, optimizer, X_epoch, y, config, generator, parallel, soft)

    return epoch


def train_epoch(
    model: MLP,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
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
    if config.full_batch:  # L-BFGS, fmincg: one step on the whole training set
        return _full_batch_iteration(model, optimizer, X, y, config, parallel, soft)
    # A CPU permutation (the same on every device), then each batch gathered by index: a
    # batch-sized gather stays in cache for the matrix products that follow.
    order = torch.randperm(X.shape[0], generator=generator).to(X.device)
    return run_batches(model, optimizer_step(optimizer), X, y, order, config, parallel, soft)


def teacher_soft(teacher: MLP, X: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """(m, classes) the teacher's soft targets of (m, n) images X, at the config's temperature."""
    with torch.no_grad():
        return soft_targets(teacher(X), config.distill_temperature)


def _soft_rows(
    soft: torch.Tensor | None, index: torch.Tensor | None, config: TrainConfig
) -> Soft | None:
    """The soft targets of a batch (rows ``index`` of ``soft``; all of them for None)."""
    if soft is None:
        return None
    rows = soft if index is None else soft.index_select(0, index)
    return Soft(rows, config.distill_temperature, config.distill_weight)


def run_batches(
    model: MLP,
    step: Callable[[], None],
    X: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    config: TrainConfig,
    parallel: DataParallel | None = None,
    soft: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batches of one epoch of minibatch training, in ``order`` (m,), each followed by ``step``.
    With ``parallel``, each batch's gradients are those of every rank's share, summed; with
    ``soft`` (m, classes), distilled from those soft targets.

    Nothing here waits for the device or reads a tensor on the host, so that on CUDA the whole
    epoch can be captured as one graph (:mod:`digits_torch.fast.cudagraph`).
    """
    m = X.shape[0]
    gradients = GRADIENTS[effective_backprop(config.backprop, config.activation, config.loss)]
    batch = min(config.batch_size, m)
    objectives, hits = [], []  # 0-dim tensors, summed once at the end: no per-batch additions
    for start in range(0, m, batch):
        index = order[start : start + batch]
        if parallel is None:
            xb, yb = X.index_select(0, index), y.index_select(0, index)  # (b, n), (b,)
            soft_b = _soft_rows(soft, index, config)  # (b, classes) or None
            objective, correct = gradients(
                model, xb, yb, config.loss, config.l2, config.label_smoothing, soft=soft_b
            )  # fills p.grad
        else:  # this rank's share, summed over ranks
            objective, correct = parallel(X, y, index, soft)
        step()
        objectives.append(objective)
        hits.append(correct)
    # Batch objectives weighted by batch size: only the last batch may be smaller.
    sizes = torch.full((len(objectives),), batch, dtype=X.dtype, device=X.device)
    sizes[-1].fill_(m - batch * (len(objectives) - 1))  # a kernel, not a host-to-device copy
    return torch.stack(objectives) @ sizes / m, torch.stack(hits).sum() / m


def _full_batch_iteration(
    model: MLP,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    parallel: DataParallel | None,
    soft: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One full-batch iteration (L-BFGS or fmincg), then the objective and accuracy it reached."""
    gradients = GRADIENTS[effective_backprop(config.backprop, config.activation, config.loss)]
    batch_soft = _soft_rows(soft, None, config)

    def full_batch() -> tuple[torch.Tensor, torch.Tensor]:
        if parallel is not None:  # the ranks' shares of the one batch, summed
            return parallel(X, y, soft=soft)
        c = config
        return gradients(model, X, y, c.loss, c.l2, c.label_smoothing, soft=batch_soft)

    optimizer.step(lambda: full_batch()[0])
    objective, correct = full_batch()
    return objective, correct / X.shape[0]
