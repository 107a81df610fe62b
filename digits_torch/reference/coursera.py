"""Coursera ML exercise 4 interop: its weight files, its cost function, its backpropagation.

ex4 stores a network as two matrices with the bias in column 0:

* ``Theta1``: hidden x (inputs + 1), e.g. 25 x 401;
* ``Theta2``: 10 x (hidden + 1); row k (1-based) scores label k, and label 10 is the digit 0.

Our :class:`~digits_torch.core.model.MLP` scores digit d in output d, so the output rows are rotated
when crossing this boundary, and nowhere else.

ex4's cost treats the 10 outputs as independent sigmoid units:

    J = 1/m sum_i sum_k [-t_ik log h_ik - (1 - t_ik) log(1 - h_ik)] + lam/(2m) sum_{non-bias} W^2

with t the one-hot targets. We compute it from logits, so it stays finite when a unit saturates.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.data import read_mat
from ..core.model import MLP
from ..errors import UserError
from ..fast.backprop import loss_and_gradients
from ..store.files import write_atomically

__all__ = ["check_gradients", "cost", "cost_and_gradient", "load_weights", "save_weights"]

# Output row of our model for each Theta2 row, and back: Theta2 row k (0-based) is label k+1,
# i.e. the digit (k+1) % 10.
_DIGIT_FROM_THETA_ROW = [(k + 1) % 10 for k in range(10)]  # [1, 2, ..., 9, 0]
_THETA_ROW_FROM_DIGIT = [(d - 1) % 10 for d in range(10)]  # [9, 0, 1, ..., 8]


def load_weights(path: str | Path, dtype: torch.dtype = torch.float32) -> MLP:
    """Read ex4-style ``Theta1``/``Theta2`` from a .mat file into a sigmoid MLP of ``dtype``.

    Raises:
        UserError: the file is unreadable, lacks Theta1/Theta2, or their shapes disagree.
    """
    path = Path(path)
    arrays = read_mat(path)
    missing = [name for name in ("Theta1", "Theta2") if name not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "no variables"
        raise UserError(f"no variable {' or '.join(missing)} (found: {found})", path)
    theta1, theta2 = (np.asarray(arrays[name]) for name in ("Theta1", "Theta2"))
    for name, theta in (("Theta1", theta1), ("Theta2", theta2)):
        if theta.ndim != 2 or theta.dtype.kind not in "iuf" or min(theta.shape) < 2:
            raise UserError(f"{name} must be a numeric matrix with a bias column", path)
        if not np.isfinite(theta).all():
            raise UserError(f"{name} contains NaN or infinite values", path)
    hidden, inputs = theta1.shape[0], theta1.shape[1] - 1
    if theta2.shape != (10, hidden + 1):
        raise UserError(
            f"Theta2 has shape {theta2.shape}; "
            f"with Theta1 {theta1.shape} it must be (10, {hidden + 1})",
            path,
        )
    model = MLP(inputs, (hidden,), 10, activation="sigmoid").to(dtype)
    with torch.no_grad():  # each Theta: its bias column, then the weights
        for layer, theta in zip(model.layers, (theta1, theta2[_THETA_ROW_FROM_DIGIT]), strict=True):
            layer.bias.copy_(torch.from_numpy(theta[:, 0]))
            layer.weight.copy_(torch.from_numpy(theta[:, 1:]))
    return model


def save_weights(model: MLP, path: str | Path) -> None:
    """Write a one-hidden-layer, 10-class model as ex4's ``Theta1``/``Theta2`` (float64, MAT v5).

    Octave and MATLAB ``load`` it; :func:`load_weights` reads back exactly what was written.
    The file is written atomically (:func:`~digits_torch.store.files.write_atomically`).

    Raises:
        UserError: the file cannot be written.
    """
    if len(model.layers) != 2 or model.num_classes != 10:
        raise ValueError("ex4's format holds one hidden layer and 10 classes")
    first, second = (
        torch.cat([layer.bias[:, None], layer.weight], dim=1).detach().cpu().double().numpy()
        for layer in model.layers
    )
    second = second[_DIGIT_FROM_THETA_ROW]
    import scipy.io  # here, as in data.read_mat: a run reads a teacher through this module

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"Theta1": first, "Theta2": second}, format="5")
    write_atomically(path, buffer.getbuffer())


def cost(model: MLP, X, y, lam: float = 0.0) -> float:
    """ex4's regularised cost (see the module docstring) of ``model`` on (X, y).

    Args:
        X: pixels, shape (m, n), numpy or tensor.
        y: digits 0..9, shape (m,).
        lam: ex4's lambda; the penalty is lam / (2 m) times the sum of squared non-bias weights.
    """
    X, y = _as_tensors(model, X, y)
    with torch.no_grad():
        return float(_ex4_cost(model(X), y, model, lam))


def cost_and_gradient(
    model: MLP, X, y, lam: float = 0.0
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """ex4's cost and its gradient by explicit backpropagation, as nnCostFunction computes them.

    No autograd is involved: :func:`digits_torch.fast.backprop.loss_and_gradients` keeps each
    layer's activation on the way forward, then runs the error ``delta`` back through the
    layers. The gradients are also left in ``p.grad``.

    Returns:
        ``(J, grads)``: J a 0-dim tensor, grads one tensor per ``model.parameters()`` entry
        (weight, bias, weight, bias, ...), each shaped like its parameter.
    """
    X, y = _as_tensors(model, X, y)
    J, _ = loss_and_gradients(model, X, y, "coursera", lam)
    return J, [p.grad for p in model.parameters()]


def check_gradients(lam: float = 0.0, epsilon: float = 1e-4) -> float:
    """ex4's checkNNGradients: compare backpropagation to central differences on a 3-5-3 net.

    The net and its 5 examples are built deterministically from sines, as ex4's
    debugInitializeWeights does, in float64.

    Returns:
        ``norm(numeric - analytic) / norm(numeric + analytic)``; ex4 expects below 1e-9.
    """
    model = MLP(3, (5,), 3, activation="sigmoid").double()
    with torch.no_grad():
        start = 1
        for layer in model.layers:  # ex4 fills [bias | W] column-major with sin(1..numel) / 10
            rows, cols = layer.weight.shape
            theta = torch.sin(torch.arange(start, start + rows * (cols + 1), dtype=torch.float64))
            theta = theta.reshape(cols + 1, rows).T / 10
            layer.bias.copy_(theta[:, 0])
            layer.weight.copy_(theta[:, 1:])
            start += rows * (cols + 1)
    X = torch.sin(torch.arange(1, 5 * 3 + 1, dtype=torch.float64)).reshape(3, 5).T / 10
    y = torch.arange(1, 6) % 3

    _, analytic = cost_and_gradient(model, X, y, lam)
    numeric = []
    with torch.no_grad():
        for p in model.parameters():
            g = torch.zeros_like(p)
            for i in range(p.numel()):
                saved = p.view(-1)[i].item()
                p.view(-1)[i] = saved + epsilon
                plus = cost(model, X, y, lam)
                p.view(-1)[i] = saved - epsilon
                minus = cost(model, X, y, lam)
                p.view(-1)[i] = saved
                g.view(-1)[i] = (plus - minus) / (2 * epsilon)
            numeric.append(g)
    numeric_flat, analytic_flat = (
        torch.cat([g.ravel() for g in numeric]),
        torch.cat([g.ravel() for g in analytic]),
    )
    return float((numeric_flat - analytic_flat).norm() / (numeric_flat + analytic_flat).norm())


def _ex4_cost(logits: torch.Tensor, y: torch.Tensor, model: MLP, lam: float) -> torch.Tensor:
    """ex4's cost from logits: -log(sigmoid(z)) = softplus(-z) never overflows to inf."""
    m = logits.shape[0]
    targets = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    data_term = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / m
    return data_term + lam / (2 * m) * model.squared_weights()


def _as_tensors(model: MLP, X, y) -> tuple[torch.Tensor, torch.Tensor]:
    """X and y as tensors on the model's device, X in the model's dtype."""
    weight = model.layers[0].weight
    X = torch.as_tensor(X).to(device=weight.device, dtype=weight.dtype)
    y = torch.as_tensor(y).to(device=weight.device, dtype=torch.long)
    return X, y
