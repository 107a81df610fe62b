"""Knowledge distillation (Hinton, Vinyals and Dean 2015): a student learns a teacher's soft
targets as well as the true digits.

    soft = soft_targets(teacher_logits, temperature)          # (m, classes), once an epoch
    loss, delta = objective(z, Soft(soft[batch], T, w), targets)

The loss of an example with logits z (classes,), the teacher's soft targets s = softmax(z_t / T)
and the (perhaps smoothed) one-hot targets t:

    w T^2 KL(s || softmax(z / T)) + (1 - w) CE(t, softmax(z))

The T^2 keeps the soft term's gradient on the scale of the hard one's as T changes: its gradient
is w T (softmax(z / T) - s) + (1 - w) (softmax(z) - t), which :func:`objective` returns as
``delta``, the error backpropagation starts from (:mod:`digits_torch.fast.backprop`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Soft", "distillation_loss", "objective", "soft_targets"]


class Soft(NamedTuple):
    """A batch's soft targets, (b, classes) rows (or any shape with the classes on ``dim``),
    the temperature T they were made at, and the soft term's weight w in [0, 1]. T and w are
    floats, or tensors that broadcast against the targets (one per stacked network)."""

    targets: torch.Tensor
    temperature: float | torch.Tensor
    weight: float | torch.Tensor


def soft_targets(logits: torch.Tensor, temperature: float, dim: int = 1) -> torch.Tensor:
    """The teacher's softened probabilities: softmax(logits / T) along ``dim``."""
    return torch.softmax(logits / temperature, dim=dim)


def objective(
    z: torch.Tensor, soft: Soft, targets: torch.Tensor, dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example's distillation loss and its gradient in the logits.

    Args:
        z: the student's logits, the classes along ``dim`` ((b, classes) for ``dim=1``).
        soft: the teacher's soft targets, laid out as z.
        targets: the hard targets (one-hot, perhaps smoothed), laid out as z.

    Returns:
        ``(loss, delta)``: the loss summed over the classes (z's shape without ``dim``), and
        d loss / d z (z's shape).
    """
    T, w = soft.temperature, soft.weight
    log_q = torch.log_softmax(z / T, dim=dim)  # the student at temperature T
    log_p = torch.log_softmax(z, dim=dim)
    kl = (torch.xlogy(soft.targets, soft.targets) - soft.targets * log_q).sum(dim)
    ce = -(targets * log_p).sum(dim)
    w_, T_ = _per_example(w, dim), _per_example(T, dim)  # laid out as the loss
    loss = w_ * T_ * T_ * kl + (1 - w_) * ce
    delta = (w * T) * (log_q.exp_() - soft.targets) + (1 - w) * (log_p.exp_() - targets)
    return loss, delta


def _per_example(value: float | torch.Tensor, dim: int) -> float | torch.Tensor:
    """A float, or a tensor laid out as the logits with ``dim`` (of size 1) dropped."""
    return value.squeeze(dim) if isinstance(value, torch.Tensor) else value


def distillation_loss(z: torch.Tensor, soft: Soft, targets: torch.Tensor) -> torch.Tensor:
    """The mean over a batch of (b, classes) logits of :func:`objective`'s loss, by autograd's
    ops alone: what ``--backprop autograd`` differentiates, and the reference for the delta."""
    T, w = soft.temperature, soft.weight
    log_q = torch.log_softmax(z / T, dim=1)
    kl = torch.nn.functional.kl_div(log_q, soft.targets, reduction="batchmean")
    ce = -(targets * torch.log_softmax(z, dim=1)).sum(1).mean()
    return w * T * T * kl + (1 - w) * ce
