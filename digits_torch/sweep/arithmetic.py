"""Arithmetic on stacked tensors that reproduces one network's, for :mod:`digits_torch.sweep.stack`:
each loss's output error and validation loss with the logits laid out (K, classes, b), the
targets laid out so, and torch.optim.SGD's update with a leading model dimension. Each table
has the keys of :data:`digits_torch.core.losses.LOSSES`, as ``backprop.OUTPUT_ERRORS`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["STACK_ERRORS", "STACK_VAL_LOSSES", "sgd_step", "stacked_targets"]


def stacked_targets(
    y: torch.Tensor, classes: int, smoothing: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """(K, classes, b) one-hot targets of (K, b) labels, smoothed per network by ``smoothing``
    (K,) (None: no network smooths)."""
    K, b = y.shape
    targets = torch.zeros(K, classes, b, dtype=dtype, device=y.device)
    targets.scatter_(1, y.unsqueeze(1), 1.0)
    if smoothing is not None:
        s = smoothing.view(K, 1, 1)
        targets = targets * (1 - s) + s / classes
    return targets


def sgd_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: list[torch.Tensor],
    momentum: torch.Tensor,
    nesterov: bool | torch.Tensor,
    minus_lr: torch.Tensor,
) -> None:
    """torch.optim.SGD's update, per network: buf = momentum buf + g; p += -lr (Nesterov:
    g + momentum buf, else buf).

    Args:
        params, grads, buffers: stacked tensors (K, ...) each, in step; a grad may be written.
        momentum, minus_lr: (K,) per network. nesterov: one bool, or (K,) bools.
    """
    K = len(momentum)
    for param, grad, buffer in zip(params, grads, buffers):
        shape = (K,) + (1,) * (param.dim() - 1)
        factor = momentum.view(shape)
        buffer.mul_(factor).add_(grad)
        if nesterov is True:
            step = grad.addcmul_(factor, buffer)
        elif nesterov is False:
            step = buffer
        else:
            step = torch.where(nesterov.view(shape), grad + factor * buffer, buffer)
        param.addcmul_(minus_lr.view(shape), step)


def _softmax_errors(z: torch.Tensor, targets: torch.Tensor, b: int):
    log_p = torch.log_softmax(z, dim=1)
    return -(log_p * targets).sum((1, 2)) / b, log_p.exp_().sub_(targets)


def _coursera_errors(z: torch.Tensor, targets: torch.Tensor, b: int):
    bce = F.binary_cross_entropy_with_logits(z, targets, reduction="none")
    return bce.sum((1, 2)) / b, torch.sigmoid(z).sub_(targets)


def _softmax_val_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(z, dim=1).gather(1, y.unsqueeze(1)).squeeze(1).mean(1)


def _coursera_val_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    targets = torch.zeros_like(z).scatter_(1, y.unsqueeze(1), 1.0)
    bce = F.binary_cross_entropy_with_logits(z, targets, reduction="none")
    return bce.sum((1, 2)) / z.shape[2]


# backprop.OUTPUT_ERRORS for a stack: (K, classes, b) logits and targets -> ((K,) mean data
# losses, delta); and each loss's (K,) mean over (K, classes, v) validation logits of (K, v) digits.
STACK_ERRORS = {"softmax": _softmax_errors, "coursera": _coursera_errors}
STACK_VAL_LOSSES = {"softmax": _softmax_val_loss, "coursera": _coursera_val_loss}
