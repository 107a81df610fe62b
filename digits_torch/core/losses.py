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
    y: torch.Tensor, classes: int, smoothing: float | torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """One-hot targets, mixed with ``smoothing`` of the uniform distribution: the true class gets
    1 - smoothing + smoothing / classes, every other smoothing / classes
    (``F.cross_entropy(..., label_smoothing=smoothing)``'s targets).

    One network: (b,) labels y, a float ``smoothing`` -> (b, classes). A stack of K networks
    (:mod:`digits_torch.sweep.stack`): (K, b) labels y, ``smoothing`` (K,) per network or None
    (no network smooths) -> (K, classes, b); (1, b) labels that every network shares -> (1,
    classes, b), or (K, classes, b) where the networks smooth.
    """
    if y.dim() == 2:
        rows, b = y.shape
        targets = torch.zeros(rows, classes, b, dtype=dtype, device=y.device)
        targets.scatter_(1, y.unsqueeze(1), 1.0)
        if smoothing is not None:
            s = smoothing.view(-1, 1, 1)
            targets = targets * (1 - s) + s / classes
        return targets
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


# Each loss in four forms. Shapes: one network's logits z are (b, classes), its labels y (b,); a
# stack's z are (K, classes, b), its y (K, b), and each form gives one value per network (K,).


def _cross_entropy(logits, y, label_smoothing: float, reduction: str) -> torch.Tensor:
    if logits.dim() == 3:  # a stack's mean per network (its validation loss: no smoothing)
        return -torch.log_softmax(logits, dim=1).gather(1, y.unsqueeze(1)).squeeze(1).mean(1)
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing, reduction=reduction)


def _softmax_error(z: torch.Tensor, targets: torch.Tensor, b: int):
    log_p = torch.log_softmax(z, dim=1)
    if z.dim() == 3:
        fit = -(log_p * targets).sum((1, 2)) / b
    else:
        fit = torch.vdot(log_p.view(-1), targets.view(-1)).div_(-b)
    return fit, log_p.exp_().sub_(targets)


def _sigmoid_log_losses(logits, y, label_smoothing: float, reduction: str) -> torch.Tensor:
    targets = smoothed_targets(y, logits.shape[1], label_smoothing or None, logits.dtype)
    if logits.dim() == 3:  # a stack's mean per network
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return bce.sum((1, 2)) / logits.shape[2]
    summed = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    return summed if reduction == "sum" else summed / logits.shape[0]


def _coursera_error(z: torch.Tensor, targets: torch.Tensor, b: int):
    if z.dim() == 3:  # targets may be one (1, classes, b) for the stack: BCE needs z's shape
        bce = F.binary_cross_entropy_with_logits(z, targets.expand_as(z), reduction="none")
        fit = bce.sum((1, 2)) / b
    else:
        fit = F.binary_cross_entropy_with_logits(z, targets, reduction="sum").div_(b)
    return fit, torch.sigmoid(z).sub_(targets)


def _normalised_sigmoids(logits: torch.Tensor) -> torch.Tensor:
    units = torch.sigmoid(logits)
    return units / units.sum(dim=1, keepdim=True)


class Loss(NamedTuple):
    """What a loss means, for one network or a stack (the shapes above).

    ``data_loss``: of logits against labels (smoothed targets; the mean over examples, or with
    ``reduction="sum"`` the sum). ``probabilities``: what it makes of (b, classes) logits as
    probabilities, rows summing to 1, and ``probabilities_name`` their name. ``output_error``:
    logits z, targets t (:func:`smoothed_targets`) and the mean's divisor b -> (the mean data
    loss, delta = b * dLoss/dz), the hand-written backward pass's start
    (:mod:`digits_torch.fast.backprop`, :mod:`digits_torch.sweep.stack`); None: autograd
    computes the gradients, and a sweep trains such networks one by one.
    """

    data_loss: Callable[[torch.Tensor, torch.Tensor, float, str], torch.Tensor]
    probabilities: Callable[[torch.Tensor], torch.Tensor]
    probabilities_name: str
    output_error: Callable[[torch.Tensor, torch.Tensor, int], tuple] | None = None


# The losses a run can train with, by --loss name: a new loss is one entry here.
LOSSES: dict[str, Loss] = {
    # delta: softmax's p - t
    "softmax": Loss(_cross_entropy, lambda z: torch.softmax(z, dim=1), "softmax", _softmax_error),
    # ex4's sigmoid units need not sum to 1: divided by their sum, they keep their order.
    # delta: sigmoid(z) - t
    "coursera": Loss(
        _sigmoid_log_losses, _normalised_sigmoids, "normalised sigmoids", _coursera_error
    ),
}


def data_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    kind: str,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Loss of (b, classes) logits against (b,) labels, ``kind`` a key of :data:`LOSSES`: the
    mean over the b examples, or with ``reduction="sum"`` their sum (0 for no examples). A
    stack's (K, classes, b) logits and (K, b) labels: each network's mean, (K,)."""
    return LOSSES[kind].data_loss(logits, y, label_smoothing, reduction)


@torch.no_grad()
def score(model: MLP, X: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[float, float]:
    """(mean data loss, accuracy) of ``model`` on (m, n) images X and (m,) labels y."""
    model.eval()
    logits = model(X)
    correct = (logits.argmax(1) == y).sum()
    # one read from the device for both values (float64 holds either exactly)
    loss_value, hits = torch.stack([data_loss(logits, y, loss).double(), correct.double()]).tolist()
    return loss_value, hits / len(y)
