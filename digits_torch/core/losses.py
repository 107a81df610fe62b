"""The losses a run can train with, and scoring a model with them.

* ``softmax``: softmax cross-entropy of the logits (scikit-learn's log-loss);
* ``coursera``: ex4's cost, each output its own sigmoid unit: the sum over the ten units of their
  log-losses, averaged over examples.

Either may take targets smoothed towards the uniform distribution (label smoothing). The L2 term
is not part of a data loss: the objective adds it (:mod:`digits_torch.fast.backprop`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .model import MLP

__all__ = ["LOSSES", "Loss", "data_loss", "score", "smoothed_targets"]


def smoothed_targets(
    y: torch.Tensor, classes: int, smoothing: float, dtype: torch.dtype
) -> torch.Tensor:
    """(b, classes) targets: one-hot, mixed with ``smoothing`` of the uniform distribution.

    The true class gets 1 - smoothing + smoothing / classes, every other smoothing / classes:
    ``F.cross_entropy(..., label_smoothing=smoothing)``'s targets.
    """
    # Rows of an identity matrix, not F.one_hot: one_hot also checks the labels' range (a
    # reduction over y, and on CUDA a wait for the device) every batch; the loaders have checked
    # them once. One gather, where zeros and a scatter were two operations.
    targets = _identity(classes, dtype, y.device).index_select(0, y)
    if smoothing:
        targets.mul_(1 - smoothing).add_(smoothing / classes)
    return targets


@functools.lru_cache(maxsize=8)
def _identity(classes: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The (classes, classes) identity, made once per dtype and device (never written to)."""
    return torch.eye(classes, dtype=dtype, device=device)


def _cross_entropy(logits, y, label_smoothing: float, reduction: str) -> torch.Tensor:
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing, reduction=reduction)


def _sigmoid_log_losses(logits, y, label_smoothing: float, reduction: str) -> torch.Tensor:
    targets = smoothed_targets(y, logits.shape[1], label_smoothing, logits.dtype)
    summed = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    return summed if reduction == "sum" else summed / logits.shape[0]


def _normalised_sigmoids(logits: torch.Tensor) -> torch.Tensor:
    units = torch.sigmoid(logits)
    return units / units.sum(dim=1, keepdim=True)


class Loss(NamedTuple):
    """What a loss means: its data loss of (b, classes) logits against (b,) labels (smoothed
    targets; the mean, or with ``reduction="sum"`` the sum), and what it makes of the logits
    as probabilities, (b, classes) rows summing to 1, and their name."""

    data_loss: Callable[[torch.Tensor, torch.Tensor, float, str], torch.Tensor]
    probabilities: Callable[[torch.Tensor], torch.Tensor]
    probabilities_name: str


# The losses a run can train with, by --loss name (the hand-written gradients of each are
# backprop's and the stack's own tables, with the same keys).
LOSSES: dict[str, Loss] = {
    "softmax": Loss(_cross_entropy, lambda z: torch.softmax(z, dim=1), "softmax"),
    # ex4's sigmoid units need not sum to 1: divided by their sum, they keep their order
    "coursera": Loss(_sigmoid_log_losses, _normalised_sigmoids, "normalised sigmoids"),
}


def data_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    kind: str,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Loss of (b, classes) logits against (b,) labels, ``kind`` a key of :data:`LOSSES`: the
    mean over the b examples, or with ``reduction="sum"`` their sum (0 for no examples)."""
    return LOSSES[kind].data_loss(logits, y, label_smoothing, reduction)


@torch.no_grad()
def score(model: MLP, X: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[float, float]:
    """(mean data loss, accuracy) of ``model`` on (m, n) images X and (m,) labels y."""
    model.eval()
    logits = model(X)
    correct = (logits.argmax(1) == y).sum()
    # one read from the device for both figures (float64 holds either exactly)
    loss_value, hits = torch.stack([data_loss(logits, y, loss).double(), correct.double()]).tolist()
    return loss_value, hits / len(y)
