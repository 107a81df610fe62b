"""Coursera interop against ex4's published figures for its pretrained weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from digits_torch import MLP, UserError
from digits_torch.reference.coursera import (
    check_gradients,
    cost,
    cost_and_gradient,
    load_weights,
    save_weights,
)


def test_pretrained_weights_classify_default_data(ex4_weights, digits):
    X, y = digits
    model = load_weights(ex4_weights)
    accuracy = (model.predict(torch.from_numpy(X)).numpy() == y).mean()
    assert accuracy >= 0.974


def test_cost_matches_ex4(ex4_weights, digits):
    X, y = digits
    model = load_weights(ex4_weights, dtype=torch.float64)
    j0 = cost(model, X, y, lam=0.0)
    assert abs(j0 - 0.287629) < 0.002  # ex4's figure is on ex4data1; ours is on the shipped digits
    assert cost(model, X, y, lam=1.0) - j0 == pytest.approx(0.096141, abs=1e-6)
    assert cost(model, X, y, lam=3.0) - j0 == pytest.approx(0.288423, abs=1e-6)


def test_label_10_is_digit_0(ex4_weights):
    """Theta2's last row (label 10) must become our output 0."""
    theta2 = scipy.io.loadmat(ex4_weights)["Theta2"]
    model = load_weights(ex4_weights, dtype=torch.float64)
    np.testing.assert_array_equal(model.layers[1].weight[0].detach().numpy(), theta2[9, 1:])
    np.testing.assert_array_equal(model.layers[1].bias[1].detach().numpy(), theta2[0, 0])


def test_save_load_round_trip_is_exact(ex4_weights, tmp_path):
    out = tmp_path / "again.mat"
    save_weights(load_weights(ex4_weights, dtype=torch.float64), out)
    original, written = scipy.io.loadmat(ex4_weights), scipy.io.loadmat(out)
    for name in ("Theta1", "Theta2"):
        np.testing.assert_array_equal(written[name], original[name])


def test_round_trip_of_our_model(tmp_path):
    model = MLP(generator=torch.Generator().manual_seed(0))
    save_weights(model, tmp_path / "w.mat")
    again = load_weights(tmp_path / "w.mat")
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_cost_is_finite_when_units_saturate():
    model = MLP(4, (3,), 10).double()
    with torch.no_grad():
        model.layers[1].bias.fill_(-800.0)  # sigmoid(-800) == 0 in float64: log(0) would be -inf
    X, y = torch.zeros(2, 4, dtype=torch.float64), torch.tensor([1, 2])
    assert np.isfinite(cost(model, X, y))
    assert cost(model, X, y) == pytest.approx(2 * 800 / 2, rel=1e-3)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_backprop_agrees_with_autograd(digits, activation, lam):
    X, y = digits
    X = torch.from_numpy(X[::10]).double()
    y = torch.from_numpy(y[::10])
    model = MLP(activation=activation, generator=torch.Generator().manual_seed(0)).double()
    J, grads = cost_and_gradient(model, X, y, lam)
    logits = model(X)
    targets = F.one_hot(y, 10).double()
    J_auto = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(y)
    J_auto = J_auto + lam / (2 * len(y)) * model.squared_weights()
    auto = torch.autograd.grad(J_auto, list(model.parameters()))
    assert float(J) == pytest.approx(J_auto.item(), abs=1e-12)
    for g, a in zip(grads, auto):
        assert g.shape == a.shape
        torch.testing.assert_close(g, a, atol=1e-9, rtol=0)


@pytest.mark.parametrize("lam", [0.0, 3.0])
def test_check_gradients_like_ex4(lam):
    assert check_gradients(lam) < 1e-9


class _ExplicitCost(torch.autograd.Function):
    """ex4's cost whose backward is our explicit backpropagation, so gradcheck can judge it."""

    @staticmethod
    def forward(ctx, X, y, lam, *params):
        model = MLP(3, (5,), 3).double()
        with torch.no_grad():
            for p, value in zip(model.parameters(), params):
                p.copy_(value)
        J, grads = cost_and_gradient(model, X, y, lam)
        ctx.save_for_backward(*grads)
        return J

    @staticmethod
    def backward(ctx, grad_output):
        return (None, None, None, *(grad_output * g for g in ctx.saved_tensors))


def test_gradcheck_on_3_5_3_net():
    gen = torch.Generator().manual_seed(0)
    params = [
        torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)
        for shape in [(5, 3), (5,), (3, 5), (3,)]
    ]
    X = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.tensor([1, 2, 0, 1, 2])
    assert torch.autograd.gradcheck(lambda *p: _ExplicitCost.apply(X, y, 1.0, *p), params)


def test_load_weights_rejects_bad_files(write_mat, tmp_path):
    with pytest.raises(UserError, match="no variable Theta2"):
        load_weights(write_mat(Theta1=np.zeros((25, 401))))
    with pytest.raises(UserError, match=r"Theta2 has shape \(10, 30\)"):
        load_weights(write_mat(Theta1=np.zeros((25, 401)), Theta2=np.zeros((10, 30))))
    with pytest.raises(UserError, match="no such file or directory"):
        load_weights(tmp_path / "nope.mat")
