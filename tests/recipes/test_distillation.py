"""Distillation's loss and its gradient, each against a reference."""

from __future__ import annotations

import pytest
import torch
from conftest import relu_batch

from digits_torch.fast.backprop import autograd_gradients, loss_and_gradients
from digits_torch.recipes.distillation import Soft, distillation_loss, objective, soft_targets


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    model, x, y = relu_batch(g)
    teacher = torch.randn(40, 10, generator=g, dtype=torch.float64) * 4
    return model, x, y, teacher


def test_the_delta_is_the_gradient_of_the_loss():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(30, 10, generator=g, dtype=torch.float64, requires_grad=True)
    soft = Soft(soft_targets(torch.randn(30, 10, generator=g, dtype=torch.float64), 3.0), 3.0, 0.7)
    targets = torch.eye(10, dtype=torch.float64)[torch.randint(0, 10, (30,), generator=g)]
    loss, delta = objective(z.detach(), soft, targets)
    (grad,) = torch.autograd.grad(distillation_loss(z, soft, targets), z)
    torch.testing.assert_close(delta / 30, grad, rtol=0, atol=1e-14)  # the mean's 1/b
    torch.testing.assert_close(loss.mean(), distillation_loss(z, soft, targets).detach())
    assert (loss > 0).all()


def test_hand_written_backprop_distils_as_autograd_does(batch):
    model, x, y, teacher = batch
    soft = Soft(soft_targets(teacher, 2.0), 2.0, 0.6)
    objective_1, correct_1 = loss_and_gradients(model, x, y, "softmax", 0.01, 0.1, soft=soft)
    grads_1 = [p.grad.clone() for p in model.parameters()]
    objective_2, correct_2 = autograd_gradients(model, x, y, "softmax", 0.01, 0.1, soft=soft)
    torch.testing.assert_close(objective_1, objective_2, rtol=0, atol=1e-12)
    assert correct_1 == correct_2
    for a, p in zip(grads_1, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-12)


def test_a_zero_weight_is_plain_cross_entropy_and_a_full_one_ignores_the_labels(batch):
    model, x, y, teacher = batch
    plain, _ = loss_and_gradients(model, x, y, "softmax", 0.0)
    grads = [p.grad.clone() for p in model.parameters()]
    none, _ = loss_and_gradients(
        model, x, y, "softmax", 0.0, soft=Soft(soft_targets(teacher, 3.0), 3.0, 0.0)
    )
    torch.testing.assert_close(plain, none, rtol=0, atol=1e-12)
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-12)
    soft = Soft(soft_targets(teacher, 3.0), 3.0, 1.0)
    first, _ = loss_and_gradients(model, x, y, "softmax", 0.0, soft=soft)
    second, _ = loss_and_gradients(model, x, (y + 1) % 10, "softmax", 0.0, soft=soft)
    assert first == second
