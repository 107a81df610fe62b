"""The hand-written backward pass against autograd, and the two training paths compared."""

from __future__ import annotations

import pytest
import torch

from digits_torch import MLP, fit, make_config
from digits_torch.core.losses import data_loss, smoothed_targets
from digits_torch.fast.backprop import loss_and_gradients


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


@pytest.mark.parametrize("loss", ["softmax", "coursera"])
def test_gradients_overwrite_stale_ones_in_place(digits, loss):
    """From the second batch on the gradients are written into the tensors already in p.grad:
    whatever those held must not leak into the new gradients."""
    X, y = digits
    x, t = torch.from_numpy(X[::25]).double(), torch.from_numpy(y[::25])
    model = MLP(400, (25, 12), 10, "tanh", "glorot", torch.Generator().manual_seed(2)).double()
    loss_and_gradients(model, x, t, loss, 0.3)
    before = [p.grad for p in model.parameters()]
    for grad in before:
        grad.fill_(float("nan"))
    loss_and_gradients(model, x[:150], t[:150], loss, 0.3)  # another batch, another size
    explicit = [p.grad.clone() for p in model.parameters()]
    assert all(p.grad is g for p, g in zip(model.parameters(), before))  # the same tensors

    model.zero_grad()
    penalty = 0.3 / (2 * 150) * model.squared_weights()
    (data_loss(model(x[:150]), t[:150], loss) + penalty).backward()
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


@pytest.mark.parametrize("loss", ["softmax", "coursera"])
def test_shares_of_a_batch_sum_to_the_whole_batch(digits, loss):
    """What data parallelism relies on: with ``total`` and a share of L2 each, the shares'
    objectives and gradients add up to the batch's, an empty share included."""
    X, y = (torch.from_numpy(a[:7]).double() for a in digits)
    y = y.long()
    model = MLP(hidden_sizes=(6,), generator=torch.Generator().manual_seed(0)).double()
    whole, correct = loss_and_gradients(model, X, y, loss, 0.3, 0.1)
    expected = [p.grad.clone() for p in model.parameters()]
    shares = [(0, 3), (3, 3), (3, 7)]  # the middle one empty
    summed, hits = 0.0, 0
    grads = [torch.zeros_like(p) for p in model.parameters()]
    for lo, hi in shares:
        objective, count = loss_and_gradients(
            model, X[lo:hi], y[lo:hi], loss, 0.3 / len(shares), 0.1, total=7
        )
        summed, hits = summed + objective, hits + count
        for g, p in zip(grads, model.parameters()):
            g += p.grad
    assert torch.allclose(summed, whole, rtol=1e-13) and hits == correct
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-15)
    empty = torch.zeros(0, 10, dtype=torch.float64)
    assert data_loss(empty, y[:0], loss, 0.1, reduction="sum").item() == 0.0
