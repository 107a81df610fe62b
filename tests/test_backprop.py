"""The hand-written backward pass against autograd, and the two training paths compared."""

from __future__ import annotations

import pytest
import torch

from digits_torch import MLP, fit, make_config
from digits_torch.backprop import loss_and_gradients
from digits_torch.losses import data_loss, smoothed_targets


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh", "identity"])
@pytest.mark.parametrize("loss", ["softmax", "coursera"])
@pytest.mark.parametrize("l2, smoothing", [(0.0, 0.0), (0.3, 0.0), (0.3, 0.1)])
def test_gradients_match_autograd(digits, activation, loss, l2, smoothing):
    X, y = digits
    x, t = torch.from_numpy(X[::25]).double(), torch.from_numpy(y[::25])  # 200 digits
    gen = torch.Generator().manual_seed(1)
    model = MLP(400, (25, 12), 10, activation, "glorot", gen).double()
    objective, correct = loss_and_gradients(model, x, t, loss, l2, smoothing)
    explicit = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    logits = model(x)
    penalty = l2 / (2 * len(t)) * model.squared_weights()
    reference = data_loss(logits, t, loss, smoothing) + penalty
    reference.backward()
    assert objective.item() == pytest.approx(reference.item(), abs=1e-12)
    assert correct.item() == (logits.argmax(1) == t).sum().item()
    for got, p in zip(explicit, model.parameters()):
        torch.testing.assert_close(got, p.grad, atol=1e-12, rtol=1e-10)


def test_smoothed_targets_are_distributions_peaked_at_the_label():
    y = torch.tensor([0, 3, 9])
    targets = smoothed_targets(y, 10, 0.2, torch.float64)
    torch.testing.assert_close(targets.sum(1), torch.ones(3, dtype=torch.float64))
    assert targets[torch.arange(3), y].tolist() == pytest.approx([0.82] * 3)
    assert targets[0, 1:].tolist() == pytest.approx([0.02] * 9)
    assert torch.equal(smoothed_targets(y, 10, 0.0, torch.float64)[1], torch.eye(10)[3].double())


@pytest.mark.parametrize("preset", ["seed", "coursera", "tuned"])
def test_explicit_and_autograd_training_agree(tmp_path, preset):
    runs = {
        backprop: fit(
            make_config(
                preset,
                epochs=3,
                backprop=backprop,
                logdir=str(tmp_path / backprop),
                quiet=True,
                figures=False,
            )
        )
        for backprop in ("explicit", "autograd")
    }
    fast, plain = runs["explicit"], runs["autograd"]
    for a, b in zip(fast.model.parameters(), plain.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)  # float32 rounding only
    for a, b in zip(fast.history, plain.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_accuracy"] == pytest.approx(b["train_accuracy"], abs=1e-3)
