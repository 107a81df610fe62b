"""Backpropagation by hand: the forward pass, the loss and every gradient, without autograd.

For a network this small, autograd's bookkeeping costs more than the arithmetic: recording the
graph, then walking it, adds tens of microseconds to each of the ~20 tiny operations of a batch.
:func:`loss_and_gradients` does the same mathematics directly, as ex4's nnCostFunction does, and
fuses what it can (the 1/m and the L2 term into the gradient matrix products, the activation's
derivative into one kernel). It fills ``p.grad`` for every parameter, so any torch optimizer can
take the step; ``tests/fast/test_backprop.py`` checks it against :func:`autograd_gradients`.

Shapes: a batch ``x`` is (b, n_in); layer l has weight W_l (n_l, n_{l-1}) and bias (n_l,).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..core.losses import LOSSES, data_loss, smoothed_targets
from ..core.model import MLP
from ..recipes import distillation
from ..recipes.distillation import Soft

__all__ = [
    "BACKWARD",
    "FORWARD_INPLACE",
    "GRADIENTS",
    "autograd_gradients",
    "effective_backprop",
    "loss_and_gradients",
]

# d act(z)/dz times the incoming gradient g, from the activation's output a = act(z): aten's own
# backward kernels (one kernel each), and the same arithmetic in public ops, taken where a private
# kernel is missing or no longer behaves as it did (see _resolve_backward).
_PUBLIC_BACKWARD = {
    "sigmoid": lambda g, a: g * a * (1 - a),
    "tanh": lambda g, a: g * (1 - a * a),
    "relu": lambda g, a: g * (a > 0),
    "identity": lambda g, a: g,
}
_PRIVATE_BACKWARD = {
    "sigmoid": lambda g, a: torch.ops.aten.sigmoid_backward(g, a),
    "tanh": lambda g, a: torch.ops.aten.tanh_backward(g, a),
    "relu": lambda g, a: torch.ops.aten.threshold_backward(g, a, 0),
}
FORWARD_INPLACE = {
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "identity": lambda z: z,
}


def _resolve_backward() -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Each activation's backward: the private aten kernel if it gives the public ops' numbers
    on a probe, else the public ops (a torch without the kernel, or with another signature)."""
    g = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    a = torch.tensor([0.25, 0.0, 0.75], dtype=torch.float64)
    chosen = dict(_PUBLIC_BACKWARD)
    for name, private in _PRIVATE_BACKWARD.items():
        try:
            works = torch.allclose(private(g, a), _PUBLIC_BACKWARD[name](g, a))
        except (AttributeError, RuntimeError, TypeError):
            works = False
        if works:
            chosen[name] = private
    return chosen


# d act(z)/dz times g, per activation: what every backward pass here uses. An activation of
# model.ACTIVATIONS without an entry here (and in FORWARD_INPLACE) trains by autograd
# (effective_backprop); tests/fast/test_backprop.py checks the built-in ones all have one.
BACKWARD = _resolve_backward()


@torch.no_grad()
def loss_and_gradients(
    model: MLP,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    l2: float,
    label_smoothing: float = 0.0,
    total: int | None = None,
    soft: Soft | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's objective and its gradient, written into ``p.grad`` of every parameter.

    The objective is the mean data loss plus ``l2 / (2 b) * sum of squared non-bias weights``:
    with ``loss="softmax"`` the data loss is softmax cross-entropy, with ``loss="coursera"``
    ex4's sum of per-class sigmoid cross-entropies; either against targets smoothed by
    ``label_smoothing`` (see :func:`smoothed_targets`). With ``soft`` (softmax only), the
    data loss is distillation's (:mod:`digits_torch.recipes.distillation`).

    Args:
        x: (b, n_in) inputs; y: (b,) class indices.
        soft: the teacher's (b, classes) soft targets of x, its temperature and weight.
        total: where x is one rank's share of a batch of ``total`` examples (data parallelism,
            :mod:`digits_torch.fast.data_parallel`): the objective and gradients divide by
            ``total``, not b, so that the shares' sum over the ranks is the whole batch's
            (each rank then passes its part of ``l2``). A share may be empty.

    Returns:
        ``(objective, correct)``: 0-dim tensors on x's device, the objective and the number of
        examples whose highest logit is the true class (so callers need no second forward pass).
    """
    b = x.shape[0] if total is None else total  # what the mean divides by
    layers = list(model.layers)  # a plain list: ModuleList indexing costs microseconds
    act = FORWARD_INPLACE[model.activation]

    # Forward, keeping each layer's output for the backward pass.  a[0] = x (b, n_in)
    a = [x]
    for layer in layers[:-1]:
        a.append(act(F.linear(a[-1], layer.weight, layer.bias)))  # (b, n_l): addmm, one call
    z = F.linear(a[-1], layers[-1].weight, layers[-1].bias)  # logits (b, classes)

    # delta = b * dLoss/dz, (b, classes): softmax: p - t; ex4: sigmoid(z) - t; t the targets.
    targets = smoothed_targets(y, z.shape[1], label_smoothing, z.dtype)
    if soft is not None:
        per_example, delta = distillation.objective(z, soft, targets)
        data_loss = per_example.sum().div_(b)
    else:
        data_loss, delta = LOSSES[loss].output_error(z, targets, b)
    correct = z.argmax(dim=1).eq_(y).sum()  # eq_ into the argmax's int64: no bool tensor

    # Backward. The 1/b of the mean and the L2 gradient (l2/b) W ride along in addmm's alpha/beta;
    # the gradients go into the tensors of the batch before (no allocation, no .grad setter).
    ones = _ones(x.shape[0], x.dtype, x.device)
    squared = None
    for index in range(len(layers) - 1, -1, -1):
        weight, bias = layers[index].weight, layers[index].bias
        _into_grad(weight, torch.addmm, weight, delta.t(), a[index], beta=l2 / b, alpha=1 / b)
        _into_grad(bias, torch.addmv, bias, delta.t(), ones, beta=0, alpha=1 / b)
        norm = torch.vdot(weight.view(-1), weight.view(-1))
        squared = norm if squared is None else squared.add_(norm)
        if index > 0:
            delta = BACKWARD[model.activation](delta @ weight, a[index])
    return data_loss + l2 / (2 * b) * squared, correct


def _into_grad(param: torch.nn.Parameter, op: Callable, *args, **kwargs) -> None:
    """``param.grad = op(*args, **kwargs)``, written into the existing ``param.grad`` if any."""
    grad = param.grad
    if grad is None:
        param.grad = op(*args, **kwargs)
    else:
        op(*args, **kwargs, out=grad)


@functools.lru_cache(maxsize=8)
def _ones(b: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A (b,) vector of ones, made once per batch size (never written to)."""
    return torch.ones(b, dtype=dtype, device=device)


def autograd_gradients(
    model: MLP,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    l2: float,
    label_smoothing: float,
    soft: Soft | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference for :func:`loss_and_gradients`: the same contract, computed by autograd."""
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        logits = model(x)
        penalty = l2 / (2 * x.shape[0]) * model.squared_weights()
        if soft is None:
            fit = data_loss(logits, y, loss, label_smoothing)
        else:
            targets = smoothed_targets(y, logits.shape[1], label_smoothing, logits.dtype)
            fit = distillation.distillation_loss(logits, soft, targets)
        objective = fit + penalty
        objective.backward()
    return objective.detach(), (logits.argmax(dim=1) == y).sum()


# --backprop's choices: a batch's (objective, correct) with p.grad filled.
GRADIENTS = {"explicit": loss_and_gradients, "autograd": autograd_gradients}


def effective_backprop(backprop: str, activation: str, loss: str) -> str:
    """The :data:`GRADIENTS` entry a run uses: ``backprop``, except that the hand-written pass
    knows only the activations of its own tables (:data:`FORWARD_INPLACE`,
    :data:`BACKWARD`) and the losses with an ``output_error`` in ``losses.LOSSES``; for one
    added to ``model.ACTIVATIONS`` alone, or a loss without one, autograd computes the same
    gradients, more slowly."""
    known = activation in FORWARD_INPLACE and activation in BACKWARD
    return backprop if known and LOSSES[loss].output_error is not None else "autograd"
