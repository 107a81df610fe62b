"""The losses (digits_torch.core.losses) mean what they say: smoothed targets are
F.cross_entropy's label-smoothing targets, each data loss is its formula written out by hand on
the shipped digits, its sum is b times its mean, each table entry's backward start is b times
autograd's gradient and its probabilities keep the logits' order, and ``score`` is the mean loss
and the accuracy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from digits_torch import MLP
from digits_torch.core.losses import LOSSES, data_loss, score, smoothed_targets


@pytest.fixture(scope="module")
def batch(digits) -> tuple[torch.Tensor, torch.Tensor]:
    """Every 25th shipped digit (200, all ten labels): float64 logits of a seeded sigmoid
    network, and the labels."""
    X, y = digits
    model = MLP(generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        logits = model(torch.from_numpy(X[::25]).double()) * 4  # spread: not all near 0.5
    return logits, torch.from_numpy(y[::25]).long()


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.37])
def test_smoothed_targets_are_cross_entropys_label_smoothing_targets(batch, smoothing):
    z, y = batch
    targets = smoothed_targets(y, 10, smoothing, torch.float64)
    by_targets = -(torch.log_softmax(z, dim=1) * targets).sum(1)
    theirs = F.cross_entropy(z, y, label_smoothing=smoothing, reduction="none")
    torch.testing.assert_close(by_targets, theirs, rtol=0, atol=1e-12)
    assert smoothed_targets(y, 10, smoothing, torch.float32).dtype == torch.float32


def test_a_stacks_targets_without_smoothing_are_each_networks_one_hot_labels(batch):
    _, y = batch
    labels = torch.stack([y, y.flip(0), y.roll(7)])  # (K, b): three networks' own labels
    targets = smoothed_targets(labels, 10, None, torch.float64)
    assert torch.equal(targets, F.one_hot(labels, 10).double().permute(0, 2, 1))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_each_data_loss_is_its_formula_by_hand(batch, smoothing):
    z, y = batch
    t = F.one_hot(y, 10).double() * (1 - smoothing) + smoothing / 10
    log_p = torch.log_softmax(z, dim=1)
    softmax = -(t * log_p).sum() / len(y)
    h = torch.sigmoid(z)  # ex4's nnCostFunction: each output unit's log-loss, summed
    coursera = -(t * torch.log(h) + (1 - t) * torch.log(1 - h)).sum() / len(y)
    assert data_loss(z, y, "softmax", smoothing).item() == pytest.approx(softmax.item(), rel=1e-12)
    assert data_loss(z, y, "coursera", smoothing).item() == pytest.approx(
        coursera.item(), rel=1e-12
    )


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_sum_is_the_batch_size_times_the_mean_and_no_examples_sum_to_0(batch, loss, smoothing):
    z, y = batch
    mean = data_loss(z, y, loss, smoothing)
    summed = data_loss(z, y, loss, smoothing, reduction="sum")
    assert summed.item() == pytest.approx(len(y) * mean.item(), rel=1e-12)
    empty = data_loss(z[:0], y[:0], loss, smoothing, reduction="sum")
    assert empty.item() == 0.0 and empty.dtype == z.dtype
    assert data_loss(z[:0], y[:0], loss, smoothing).isnan()  # no mean of nothing, as torch's


@pytest.mark.parametrize("loss", LOSSES)
def test_each_output_error_is_the_mean_loss_and_b_times_its_gradient(batch, loss):
    z, y = batch
    b, smoothing = len(y), 0.1
    logits = z.clone().requires_grad_()
    data_loss(logits, y, loss, smoothing).backward()
    targets = smoothed_targets(y, 10, smoothing, torch.float64)
    fit, delta = LOSSES[loss].output_error(z.clone(), targets, b)
    assert fit.item() == pytest.approx(data_loss(z, y, loss, smoothing).item(), rel=1e-12)
    torch.testing.assert_close(delta, b * logits.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_probabilities_are_distributions_in_the_logits_order(batch, loss):
    z, _ = batch
    p = LOSSES[loss].probabilities(z)
    torch.testing.assert_close(p.sum(1), torch.ones(len(z), dtype=z.dtype), rtol=0, atol=1e-12)
    assert (p > 0).all()
    assert torch.equal(p.argsort(dim=1), z.argsort(dim=1))  # every rank kept, not just the top


@pytest.mark.parametrize("loss", LOSSES)
def test_score_is_the_mean_data_loss_and_the_accuracy(digits, loss):
    X, y = (torch.from_numpy(a[::10]) for a in digits)
    y = y.long()
    model = MLP(activation="relu", init="glorot", generator=torch.Generator().manual_seed(3))
    mean_loss, accuracy = score(model, X, y, loss)
    logits = model(X).detach()
    assert isinstance(mean_loss, float) and isinstance(accuracy, float)
    assert mean_loss == pytest.approx(data_loss(logits, y, loss).item(), rel=1e-6)
    assert accuracy == (logits.argmax(1) == y).double().mean().item()
