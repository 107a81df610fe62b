"""The training loop, plain: minibatch training of a model on tensors in memory.

Read this first: shuffle, take a batch, compute the objective and its gradients, step the
optimizer; after each epoch, one record of its metrics, handed to the callbacks. Nothing is
written anywhere. A run adds files, checkpoints, TensorBoard, pictures and signals around it;
the fast paths (hand-written backprop, fused steps, many networks at once) are tested against it.

    model = MLP(activation="relu", init="glorot", generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    history = train(model, optimizer, X, y, epochs=200, gradients=Objective(l2=1e-4))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .losses import data_loss, score
from .model import MLP

__all__ = ["Callback", "Gradients", "Objective", "train", "train_epoch"]

# One batch's gradients: (model, images (b, n), labels (b,), more rows of the batch if any) ->
# (objective, number right), 0-dim tensors; fills each parameter's .grad with d objective / d it.
Gradients = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Objective:
    """What a batch of b examples minimises: its mean data loss plus l2 / (2 b) times the sum of
    the squared weights (biases excluded), as ex4 and scikit-learn write it. Called as
    :data:`Gradients`, autograd computes the gradients.

    Args:
        loss: a key of :data:`digits_torch.core.losses.LOSSES` ("softmax" or ex4's "coursera").
        l2: lambda (scikit-learn's alpha), per example.
        label_smoothing: the part of each target spread evenly over the classes.
    """

    loss: str = "softmax"
    l2: float = 0.0
    label_smoothing: float = 0.0

    def __call__(self, model: MLP, x: torch.Tensor, y: torch.Tensor):
        model.zero_grad(set_to_none=True)
        logits = model(x)  # (b, classes)
        objective = self.data_loss(logits, y) + self.l2 / (2 * len(y)) * model.squared_weights()
        objective.backward()
        return objective.detach(), (logits.detach().argmax(dim=1) == y).sum()

    def data_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean data loss of (b, classes) logits against (b,) labels."""
        return data_loss(logits, y, self.loss, self.label_smoothing)


class Callback(Protocol):
    """Called after every epoch with the epoch's record (see :func:`train`); returns why training
    should stop now, or None to go on. Early stopping, checkpoints and logging are callbacks."""

    def on_epoch_end(self, model: MLP, record: dict) -> str | None: ...


def train_epoch(
    model: MLP,
    optimizer: torch.optim.Optimizer | None,
    X: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
    gradients: Gradients,
    step: Callable[[], None] | None = None,
    rows: tuple[torch.Tensor, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over images X (m, n) and labels y (m,) in ``order`` (m,), ``batch_size`` rows a
    step (the last batch may be smaller).

    Args:
        gradients: a batch's objective and gradients (autograd's :class:`Objective`, the
            hand-written backward pass, or a rank's share of it summed over the ranks).
        step: what follows each batch's gradients (default ``optimizer.step``).
        rows: more (m, ...) tensors of the examples (a teacher's soft targets), gathered with
            each batch and passed to ``gradients`` after its labels.

    Returns two 0-dim tensors on X's device, not read on the host (a CUDA epoch never waits):
    the epoch's loss (batch objectives weighted by size, over m: scikit-learn's ``loss_curve_``)
    and its accuracy, each batch counted as it was trained on.
    """
    model.train()
    step = optimizer.step if step is None else step
    m = len(order)
    objectives, hits = [], []  # 0-dim tensors, summed once at the end: no per-batch additions
    for start in range(0, m, batch_size):
        index = order[start : start + batch_size]
        # a batch-sized gather stays in cache for the matrix products that follow
        batch = [t.index_select(0, index) for t in (X, y, *rows)]  # (b, n), (b,), ...
        objective, correct = gradients(model, *batch)  # fills p.grad
        step()
        objectives.append(objective)
        hits.append(correct)
    # Batch objectives weighted by batch size: only the last batch may be smaller.
    objective = torch.stack(objectives)
    sizes = torch.full_like(objective, batch_size)
    sizes[-1].fill_(m - batch_size * (len(objectives) - 1))  # a kernel, not a host-to-device copy
    return objective @ sizes / m, torch.stack(hits).sum() / m


def train(
    model: MLP,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 200,
    gradients: Gradients = Objective(),
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    callbacks: Sequence[Callback] = (),
) -> list[dict]:
    """Train ``model`` on images X (m, n) and labels y (m,) for at most ``epochs`` epochs.

    Args:
        gradients: one batch's objective and gradients (default: softmax cross-entropy, no L2).
        val: held-out (images, labels), scored after each epoch with the objective's data loss.
        generator: shuffles the rows each epoch (a CPU generator; None: torch's global one).
        scheduler: stepped once per epoch, after it.
        callbacks: each told every epoch's record; the first to give a reason stops training.

    Returns the history, a record per epoch: ``epoch`` (1, 2, ...), ``train_loss`` and
    ``train_accuracy`` (as trained), ``val_loss`` and ``val_accuracy`` (None without ``val``),
    ``lr``, ``seconds`` (scoring included); the last also ``stopped``, why training ended.
    """
    history: list[dict] = []
    loss_name = getattr(gradients, "loss", "softmax")
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        # A CPU permutation, the same on every device, then the batches gathered by index.
        order = torch.randperm(len(y), generator=generator).to(X.device)
        loss, accuracy = train_epoch(
            model, optimizer, X, y, order, min(batch_size, len(y)), gradients
        )
        if scheduler is not None:
            scheduler.step()
        val_loss, val_accuracy = (None, None) if val is None else score(model, *val, loss_name)
        record = {
            "epoch": epoch,
            "train_loss": loss.item(),
            "train_accuracy": accuracy.item(),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        stopped = _first_reason(callbacks, model, record)
        if stopped is not None:
            record["stopped"] = stopped
            return history
    if history:
        history[-1]["stopped"] = f"{epochs} epochs"
    return history


def _first_reason(callbacks: Iterable[Callback], model: MLP, record: dict) -> str | None:
    """Every callback hears the record (in order); the first reason to stop, if any."""
    reasons = [callback.on_epoch_end(model, record) for callback in callbacks]
    return next((reason for reason in reasons if reason is not None), None)
