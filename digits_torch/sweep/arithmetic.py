"""torch.optim.SGD's update with a leading model dimension, for :mod:`digits_torch.sweep.stack`
(each loss's stacked forms are entries of :data:`digits_torch.core.losses.LOSSES`)."""

from __future__ import annotations

import torch

__all__ = ["sgd_step"]


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
            # g + momentum buf in two roundings, where torch's SGD (and the branch above) rounds
            # once: a Nesterov network of a mixed stack is an ulp off its solo step (kept: a
            # sweep's results stay as they were; addcmul here would make it torch's exactly)
            step = torch.where(nesterov.view(shape), grad + factor * buffer, buffer)
        param.addcmul_(minus_lr.view(shape), step)
