"""One batch's objective and gradients as scikit-learn's ``BaseMultilayerPerceptron._backprop``
computes them, for any output layer it trains: softmax (three or more classes) or one logistic
unit per output column (two classes, multilabel).

It is a :data:`digits_torch.core.loop.Gradients` callable: the core loop's epoch calls it with a
batch of images (b, n) and its targets, here scikit-learn's (b, k) indicator matrix in the
model's dtype (not class indices: a multilabel row has several ones). Written without autograd,
operation by operation as scikit-learn's numpy code, so the float64 weights follow
scikit-learn's to rounding, and faster than autograd: for a network this small the bookkeeping
of a graph costs more than the arithmetic.

Shapes: layer l's torch weight is (n_l, n_{l-1}), the transpose of scikit-learn's ``coefs_[l]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core.model import MLP
from ..fast.backprop import BACKWARD

__all__ = ["SklearnBackprop", "forward", "model_layers", "output_probabilities"]


def _logistic_derivative(a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    delta *= a
    delta *= 1 - a
    return delta


def _tanh_derivative(a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    delta *= 1 - a**2
    return delta


# scikit-learn's DERIVATIVES: delta times the activation's derivative, from the layer's output a,
# keyed by MLP's names; relu's one kernel (scikit-learn: delta[Z == 0] = 0, the same numbers)
DERIVATIVES = {
    "relu": lambda a, delta: BACKWARD["relu"](delta, a),
    "sigmoid": _logistic_derivative,
    "tanh": _tanh_derivative,
    "identity": lambda a, delta: delta,
}
FORWARD = {
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "identity": lambda z: z,
}


def output_probabilities(z: torch.Tensor, softmax: bool) -> torch.Tensor:
    """scikit-learn's output activation of (b, k) logits, in place: softmax (the row maximum
    subtracted, exponentiated, normalised) or the logistic function of each unit."""
    if not softmax:
        return torch.sigmoid_(z)
    z -= z.max(dim=1, keepdim=True).values
    z.exp_()
    z /= z.sum(dim=1, keepdim=True)
    return z


def forward(
    layers: Sequence[tuple[torch.Tensor, torch.Tensor]],
    activation: str,
    x: torch.Tensor,
    softmax: bool,
) -> list[torch.Tensor]:
    """Every layer's output for images x (b, n): [x, hidden..., probabilities (b, k)].

    ``layers`` are (weight, bias) pairs, the weight in torch's (out, in) layout (a transposed
    view of scikit-learn's ``coefs_`` will do); ``activation`` one of MLP's names."""
    activations = [x]
    for i, (weight, bias) in enumerate(layers):
        z = activations[-1] @ weight.t()  # scikit-learn: X @ coefs_, then += intercept
        z += bias
        if i < len(layers) - 1:
            FORWARD[activation](z)
        activations.append(z)
    output_probabilities(activations[-1], softmax)
    return activations


def model_layers(model: MLP) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (weight, bias) pairs of ``model``, for :func:`forward`."""
    return [(layer.weight, layer.bias) for layer in model.layers]


_NOT_COUNTED = torch.zeros((), dtype=torch.long)


@dataclass(frozen=True)
class SklearnBackprop:
    """scikit-learn's objective of a batch and its gradients, into every parameter's ``.grad``.

    The objective is the mean log-loss (softmax's categorical, or the logistic units' binary
    one summed over the units), probabilities clipped to [eps, 1 - eps], plus
    alpha / (2 b) * sum of squared weights; each weight's gradient is
    (a.T @ delta + alpha * W) / b and each bias's the mean of delta, delta = probabilities -
    targets at the output.

    Args:
        alpha: the L2 penalty (scikit-learn's ``alpha``).
        softmax: a softmax output layer (else logistic units).
        count: count the batch's right answers (False: a constant 0 in their place, four
            operations a batch saved where no one reads the epoch's accuracy).
        weighted: the targets' last column is each example's weight (scikit-learn's
            ``sample_weight``): the means are weighted, and b is the sum of the weights.
    """

    alpha: float
    softmax: bool
    count: bool = True
    weighted: bool = False

    @torch.no_grad()
    def __call__(self, model: MLP, x: torch.Tensor, targets: torch.Tensor):
        """x (b, n), targets (b, k) in x's dtype (k + 1 columns if weighted) -> (objective,
        number right), 0-dim tensors."""
        weights = None
        if self.weighted:
            targets, weights = targets[:, :-1], targets[:, -1:]
        b = x.shape[0] if weights is None else weights.sum()
        layers = list(model.layers)
        activations = forward(model_layers(model), model.activation, x, self.softmax)
        prob = activations[-1]
        loss = self._log_loss(targets, prob, weights)
        squares = sum(torch.dot(layer.weight.view(-1), layer.weight.view(-1)) for layer in layers)
        loss = loss + (0.5 * self.alpha) * squares / b

        delta = prob - targets
        if weights is not None:
            delta *= weights
        for i in range(len(layers) - 1, -1, -1):
            weight, bias = layers[i].weight, layers[i].bias
            grad = delta.t() @ activations[i]  # (n_i, n_{i-1}): scikit-learn's (a.T @ delta).T
            grad += self.alpha * weight
            grad /= b
            weight.grad = grad
            bias.grad = delta.sum(dim=0) / b
            if i > 0:
                delta = delta @ weight
                delta = DERIVATIVES[model.activation](activations[i], delta)
        return loss, self._right(prob, targets) if self.count else _NOT_COUNTED

    def _log_loss(self, targets: torch.Tensor, prob: torch.Tensor, weights) -> torch.Tensor:
        eps = torch.finfo(prob.dtype).eps
        clipped = prob.clamp(eps, 1 - eps)
        per_unit = torch.xlogy(targets, clipped)
        if not self.softmax:  # scikit-learn's binary_log_loss
            per_unit += torch.xlogy(1 - targets, 1 - clipped)
        if weights is None:
            return -per_unit.mean(dim=0).sum()
        # numpy's average with weights: (a * w).sum(axis 0) / w.sum(axis 0)
        return -((per_unit * weights).sum(dim=0) / weights.expand_as(per_unit).sum(dim=0)).sum()

    def _right(self, prob: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.softmax:
            return (prob.argmax(dim=1) == targets.argmax(dim=1)).sum()
        return ((prob > 0.5) == (targets > 0.5)).all(dim=1).sum()
