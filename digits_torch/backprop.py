"""Backpropagation by hand: the forward pass, the loss and every gradient, without autograd.

For a network this small, autograd's bookkeeping costs more than the arithmetic: recording the
graph, then walking it, adds tens of microseconds to each of the ~20 tiny operations of a batch.
:func:`loss_and_gradients` does the same mathematics directly, as ex4's nnCostFunction does, and
fuses what it can (the 1/m and the L2 term into the gradient matrix products, the activation's
derivative into one kernel). It fills ``p.grad`` for every parameter, so any torch optimizer can
take the step; ``tests/test_backprop.py`` checks it against autograd.

Shapes: a batch ``x`` is (b, n_in); layer l has weight W_l (n_l, n_{l-1}) and bias (n_l,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import MLP

__all__ = ["loss_and_gradients", "smoothed_targets"]

# d act(z)/dz times the incoming gradient, computed from the activation's output a = act(z).
_BACKWARD = {
    "sigmoid": torch.ops.aten.sigmoid_backward,  # g * a * (1 - a)
    "tanh": torch.ops.aten.tanh_backward,  # g * (1 - a^2)
    "relu": lambda g, a: torch.ops.aten.threshold_backward(g, a, 0),  # g where a > 0
    "identity": lambda g, a: g,
}
_FORWARD_INPLACE = {
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "identity": lambda z: z,
}


def smoothed_targets(
    y: torch.Tensor, classes: int, smoothing: float, dtype: torch.dtype
) -> torch.Tensor:
    """(b, classes) targets: one-hot, mixed with ``smoothing`` of the uniform distribution.

    The true class gets 1 - smoothing + smoothing / classes, every other smoothing / classes:
    ``F.cross_entropy(..., label_smoothing=smoothing)``'s targets.
    """
    # zeros and a scatter, not F.one_hot: one_hot also checks the labels' range (a reduction over
    # y, and on CUDA a wait for the device) every batch; the loaders have checked them once.
    targets = torch.zeros(len(y), classes, dtype=dtype, device=y.device)
    targets.scatter_(1, y.unsqueeze(1), 1.0)
    if smoothing:
        targets.mul_(1 - smoothing).add_(smoothing / classes)
    return targets


@torch.no_grad()
def loss_and_gradients(
    model: MLP,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    l2: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's objective and its gradient, written into ``p.grad`` of every parameter.

    The objective is the mean data loss plus ``l2 / (2 b) * sum of squared non-bias weights``:
    with ``loss="softmax"`` the data loss is softmax cross-entropy, with ``loss="coursera"``
    ex4's sum of per-class sigmoid cross-entropies; either against targets smoothed by
    ``label_smoothing`` (see :func:`smoothed_targets`).

    Args:
        x: (b, n_in) inputs; y: (b,) class indices.

    Returns:
        ``(objective, correct)``: 0-dim tensors on x's device, the objective and the number of
        examples whose highest logit is the true class (so callers need no second forward pass).
    """
    b = x.shape[0]
    layers = list(model.layers)  # a plain list: ModuleList indexing costs microseconds
    act = _FORWARD_INPLACE[model.activation]

    # Forward, keeping each layer's output for the backward pass.  a[0] = x (b, n_in)
    a = [x]
    for layer in layers[:-1]:
        a.append(act(torch.addmm(layer.bias, a[-1], layer.weight.t())))  # (b, n_l)
    z = torch.addmm(layers[-1].bias, a[-1], layers[-1].weight.t())  # logits (b, classes)

    # delta = b * dLoss/dz, (b, classes): softmax: p - t; ex4: sigmoid(z) - t; t the targets.
    targets = smoothed_targets(y, z.shape[1], label_smoothing, z.dtype)
    if loss == "softmax":
        log_p = torch.log_softmax(z, dim=1)
        data_loss = -torch.vdot(log_p.view(-1), targets.view(-1)) / b
        delta = log_p.exp_().sub_(targets)
    else:
        data_loss = F.binary_cross_entropy_with_logits(z, targets, reduction="sum") / b
        delta = torch.sigmoid(z).sub_(targets)
    correct = (z.argmax(dim=1) == y).sum()

    # Backward. The 1/b of the mean and the L2 gradient (l2/b) W ride along in addmm's alpha/beta.
    ones = torch.ones(b, dtype=x.dtype, device=x.device)
    squared = torch.zeros((), dtype=x.dtype, device=x.device)
    for index in range(len(layers) - 1, -1, -1):
        weight, bias = layers[index].weight, layers[index].bias
        weight.grad = torch.addmm(weight, delta.t(), a[index], beta=l2 / b, alpha=1 / b)
        bias.grad = torch.addmv(bias, delta.t(), ones, beta=0, alpha=1 / b)
        squared += torch.vdot(weight.view(-1), weight.view(-1))
        if index > 0:
            delta = _BACKWARD[model.activation](delta @ weight, a[index])
    return data_loss + l2 / (2 * b) * squared, correct
