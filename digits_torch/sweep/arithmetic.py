"""A stack's arithmetic: one batch of K networks in stacked tensors, forward, backward and SGD.

:class:`StackArithmetic` is the half of :class:`~digits_torch.sweep.stack.Stack` that computes:
the stack's other half decides what it computes on (which networks, which batches) and keeps
each network's state. Read it with the one-network pass it reproduces
(:func:`digits_torch.fast.backprop.loss_and_gradients`): the losses and targets are
:mod:`digits_torch.core.losses`' in a stack's shapes, the update :func:`sgd_step`, torch.optim.SGD's
with a leading model dimension.

The largest intermediates (the batch, the wide product and its gradient, the weight gradients,
the squared weights) live in buffers kept between batches (:meth:`_scratch`): a fresh allocation
of that size costs more than the operation that fills it.
"""

from __future__ import annotations

import torch

from ..core.losses import LOSSES, smoothed_targets
from ..fast.backprop import BACKWARD, FORWARD_INPLACE
from ..recipes.distillation import Soft, objective

__all__ = ["StackArithmetic", "predicted", "sgd_step"]


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


def predicted(z: torch.Tensor) -> torch.Tensor:
    """(K, b) the class of each of (K, classes, b) logits: the first of the largest, as argmax;
    ``max`` reduces the strided classes dimension 10x faster than ``argmax`` does."""
    return z.max(dim=1).indices


class StackArithmetic:
    """One batch of every network of a stack: the forward pass, the gradients and the SGD step.

    Works on the stacked state its :class:`~digits_torch.sweep.stack.Stack` holds: ``weights``
    [(K, n_l, n_{l-1})] and ``biases`` [(K, n_l)] with their momentum buffers, (K,) ``l2``,
    ``momentum``, ``minus_lr``, ``smoothing``, ``temperature``, ``distill_weight``; the batch
    groups (``per_group`` networks each, ``group_of`` (K,) each network's); and ``X``, whose
    dtype and device every buffer takes.
    """

    _scratch_buffers: dict[tuple, torch.Tensor]

    def _scratch(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A buffer kept between batches for a batch's intermediate ``name`` of this shape: a
        fresh allocation of a stack's size costs more in page faults than the operation that
        fills it (a profile of 64 networks: a third of the epoch's time outside the products)."""
        key = (name, shape)
        buffer = self._scratch_buffers.get(key)
        if buffer is None:
            buffer = self._scratch_buffers[key] = self.X.new_empty(shape)
        return buffer

    def _grouped_input(self, xb: torch.Tensor) -> torch.Tensor:
        """(G', b, n) inputs for the first layer: one per group, or one per network."""
        if self.per_group == 1 and len(self.groups) != len(self.members):
            return xb.index_select(0, self.group_of)
        return xb

    def _forward(self, xg: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """For inputs (G', b, n): the first layer's outputs as its wide product lays them out,
        (G', b, K_g h); every hidden layer's outputs [(K, b, n_1), ...]; and the logits
        (K, classes, b).

        The logits are laid out classes-first: a softmax over 10 classes is then a reduction
        over a strided dimension, many times faster than over the innermost one.
        """
        K, per = len(self.members), self.per_group
        G, b, n = xg.shape
        W1, b1 = self.weights[0], self.biases[0]
        h = W1.shape[1]
        wide = torch.baddbmm(
            b1.view(G, 1, per * h),
            xg,
            W1.view(G, per * h, n).transpose(1, 2),
            out=self._scratch("wide", (G, b, per * h)),
        )  # (G', b, K_g h): one wide product per group
        act = FORWARD_INPLACE[self.activation]
        act(wide)
        outputs = [wide.view(G, b, per, h).transpose(1, 2).reshape(K, b, h)]
        for i in range(1, len(self.weights) - 1):
            z = torch.baddbmm(self.biases[i].unsqueeze(1), outputs[-1], self.weights[i].mT)
            outputs.append(act(z))
        logits = torch.baddbmm(self.biases[-1].unsqueeze(2), self.weights[-1], outputs[-1].mT)
        return wide, outputs, logits

    def _gradients(
        self, xb: torch.Tensor, yb: torch.Tensor, soft: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of every network: SGD steps taken; returns (K,) objectives and hits.
        ``soft``: (K, classes, b) the teachers' soft targets of the batch, or None."""
        K, b = len(self.members), xb.shape[1]
        xg = self._grouped_input(xb)
        wide, a, z = self._forward(xg)  # z: (K, classes, b)
        # (K, b) labels; one batch group's (1, b) stay one row, and its targets one (1, classes, b)
        # that every network's arithmetic broadcasts: a copy per network costs more than its use
        y = yb if len(yb) == 1 else yb.index_select(0, self.group_of)
        smoothing = self.smoothing if self.any_smoothing else None
        targets = smoothed_targets(y, z.shape[1], smoothing, self.dtype)  # (K or 1, classes, b)
        # delta = b * dLoss/dz, (K, classes, b): softmax: p - t; ex4: sigmoid(z) - t.
        if soft is not None:  # distillation's (a network without a teacher weighs it 0)
            shape = (K, 1, 1)
            terms = Soft(soft, self.temperature.view(shape), self.distill_weight.view(shape))
            per_example, delta = objective(z, terms, targets, dim=1)  # (K, b), (K, classes, b)
            fit = per_example.sum(1) / b
        else:
            fit, delta = LOSSES[self.loss].output_error(z, targets, b)
        correct = (predicted(z) == y).sum(1)

        # Backward, with the 1/b of the mean and the L2 gradient (l2/b) W folded into each
        # gradient product, as loss_and_gradients does.
        decay = (self.l2 / b).view(K, 1, 1)
        squared = torch.zeros(K, dtype=self.dtype, device=self.device)
        last = len(self.weights) - 1
        grads_w, grads_b = [None] * len(self.weights), [None] * len(self.weights)
        W = self.weights[last]
        grads_w[last] = self._decay(W, decay, last).baddbmm_(delta, a[last - 1], alpha=1 / b)
        grads_b[last] = delta.sum(2) / b
        squared += self._squares(W)
        grad = torch.bmm(delta.mT, W)  # d objective / d a[last - 1], (K, b, n)
        for i in range(last - 1, 0, -1):
            delta = BACKWARD[self.activation](grad, a[i])
            W = self.weights[i]
            grads_w[i] = self._decay(W, decay, i).baddbmm_(delta.mT, a[i - 1], alpha=1 / b)
            grads_b[i] = delta.sum(1) / b
            squared += self._squares(W)
            grad = torch.bmm(delta, W)
        # The first layer's in the layout of its wide product, (G', b, K_g h): the activation's
        # backward then reads contiguous memory (a (K, b, h) view of it is strided, 10x slower).
        W1 = self.weights[0]
        G, per, h, n = xg.shape[0], self.per_group, W1.shape[1], W1.shape[2]
        wide_grad = self._scratch("wide gradient", (G, b, per * h))
        wide_grad.view(G, b, per, h).copy_(grad.view(G, per, b, h).transpose(1, 2))
        delta = BACKWARD[self.activation](wide_grad, wide)  # (G', b, K_g h)
        scaled = self._decay(W1, decay, 0).view(G, per * h, n)
        grads_w[0] = scaled.baddbmm_(delta.mT, xg, alpha=1 / b).view(K, h, n)
        grads_b[0] = delta.sum(1).view(K, h) / b
        squared += self._squares(W1)
        self._step(grads_w, grads_b)
        return fit + self.l2 / (2 * b) * squared, correct

    def _decay(self, W: torch.Tensor, decay: torch.Tensor, layer: int) -> torch.Tensor:
        """(l2 / b) W, (K, n_l, n_{l-1}), in the layer's gradient buffer: its product is added
        in place."""
        return torch.mul(W, decay, out=self._scratch(f"gradient {layer}", W.shape))

    def _squares(self, W: torch.Tensor) -> torch.Tensor:
        """(K,) sums of the squared weights of W (K, n_l, n_{l-1})."""
        return torch.square(W, out=self._scratch("squares", W.shape)).sum((1, 2))

    def _step(self, grads_w: list[torch.Tensor], grads_b: list[torch.Tensor]) -> None:
        """One SGD update of every network (:func:`~digits_torch.sweep.arithmetic.sgd_step`)."""
        params, buffers = self.weights + self.biases, self.weight_buffers + self.bias_buffers
        sgd_step(params, grads_w + grads_b, buffers, self.momentum, self.nesterov, self.minus_lr)
