"""Private torch functions are shortcuts with public fallbacks: training runs, and gives the same
result, when a private function is missing or takes other arguments."""

from __future__ import annotations

import pytest
import torch

from digits_torch import fit, make_config
from digits_torch.core.model import MLP
from digits_torch.fast import backprop
from digits_torch.optim import optimizers
from digits_torch.train import run_setup


def _train(tmp_path, name: str, **overrides):
    config = make_config(
        "seed", epochs=3, logdir=str(tmp_path / name), quiet=True, figures=False, **overrides
    )
    return fit(config)


def _assert_same_weights(a, b, **tolerance) -> None:
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(p, q, **tolerance)


@pytest.fixture
def fresh_probe():
    """The fused-SGD probe runs again under the test's monkeypatching, and again afterwards."""
    optimizers._fused_sgd.cache_clear()
    yield
    optimizers._fused_sgd.cache_clear()


def _new_signature(params, grads, buffers, *, lr):  # a later torch, say, with other arguments
    raise AssertionError("never called with the old arguments")


@pytest.mark.parametrize("broken", ["missing", "signature"])
def test_training_without_the_fused_sgd_shortcut(tmp_path, monkeypatch, fresh_probe, broken):
    fast = _train(tmp_path, "fast")
    assert optimizers._fused_sgd() is torch._fused_sgd_  # the shortcut is taken here, normally
    optimizers._fused_sgd.cache_clear()
    if broken == "missing":
        monkeypatch.delattr(torch, "_fused_sgd_")
    else:
        monkeypatch.setattr(torch, "_fused_sgd_", _new_signature)
    assert optimizers._fused_sgd() is None
    sgd = run_setup.make_optimizer(make_config("seed"), MLP())
    assert not sgd.defaults["fused"]  # torch's own fused step needs the kernel too
    assert optimizers.optimizer_step(sgd) == sgd.step  # the public step
    plain = _train(tmp_path, "plain")
    _assert_same_weights(fast, plain, rtol=1e-5, atol=1e-6)  # float32 rounding only
    for a, b in zip(fast.history, plain.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_the_probe_refuses_a_fused_sgd_that_updates_differently(monkeypatch, fresh_probe):
    def wrong(params, grads, buffers, **kwargs):  # takes the arguments, computes something else
        for p in params:
            p.zero_()

    monkeypatch.setattr(torch, "_fused_sgd_", wrong)
    assert optimizers._fused_sgd() is None


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_training_without_aten_backward_kernels(tmp_path, monkeypatch, activation):
    fast = _train(tmp_path, "fast", activation=activation)
    assert backprop.BACKWARD[activation] is backprop._PRIVATE_BACKWARD[activation]

    def gone(*args, **kwargs):
        raise RuntimeError("aten::*_backward: no such operator")

    for name in ("sigmoid_backward", "tanh_backward", "threshold_backward"):
        monkeypatch.setattr(torch.ops.aten, name, gone)
    public = backprop._resolve_backward()
    assert public == backprop._PUBLIC_BACKWARD
    monkeypatch.setattr(backprop, "BACKWARD", public)
    plain = _train(tmp_path, "plain", activation=activation)
    _assert_same_weights(fast, plain, rtol=1e-4, atol=1e-6)  # float32 rounding only
    for a, b in zip(fast.history, plain.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "identity"])
def test_public_and_private_backward_agree(activation):
    generator = torch.Generator().manual_seed(0)
    g = torch.randn(50, 25, generator=generator, dtype=torch.float64)
    a = torch.rand(50, 25, generator=generator, dtype=torch.float64)
    a[::3] = 0  # relu's zeros
    private = backprop._PRIVATE_BACKWARD.get(activation, backprop._PUBLIC_BACKWARD[activation])
    torch.testing.assert_close(private(g, a), backprop._PUBLIC_BACKWARD[activation](g, a))
