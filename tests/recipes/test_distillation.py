"""Distillation's loss and gradient, and reviving dead units: each against a reference."""

from __future__ import annotations

import pytest
import torch

from digits_torch.core.model import MLP, glorot_bound
from digits_torch.fast.backprop import autograd_gradients, loss_and_gradients
from digits_torch.recipes.dead_units import (
    REVIVED_BIAS,
    never_active,
    revival_due,
    revival_generator,
    revive,
)
from digits_torch.recipes.distillation import Soft, distillation_loss, objective, soft_targets


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    model = MLP(400, (25,), 10, "relu", "glorot", g).double()
    x = torch.randn(40, 400, generator=g, dtype=torch.float64)  # no unit dead by chance
    y = torch.randint(0, 10, (40,), generator=g)
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


def test_revival_is_due_every_five_epochs_in_the_first_half():
    assert [e for e in range(1, 301) if revival_due(e, 300)] == list(range(5, 151, 5))
    assert [e for e in range(1, 10) if revival_due(e, 9)] == []


def _momentum(model, x, y):
    """An SGD optimizer with momentum buffers after one step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_and_gradients(model, x, y, "softmax", 0.0)
    optimizer.step()
    return optimizer


def test_dead_units_get_new_incoming_weights_and_no_say_in_the_outputs(batch):
    model, x, y, _ = batch
    first, second = model.layers[0], model.layers[1]
    with torch.no_grad():
        first.bias[[3, 7]] = -1e3  # dead on every input
    optimizer = _momentum(model, x, y)
    assert never_active(model, x).nonzero().flatten().tolist() == [3, 7]
    logits = model(x)
    untouched = [p.detach().clone() for p in model.parameters()]
    assert revive(model, optimizer, x, revival_generator(0, 5)) == 2
    assert not never_active(model, x).any()
    torch.testing.assert_close(model(x), logits, rtol=0, atol=1e-12)  # zero outgoing weights
    bound = glorot_bound(400, 25, "relu")
    assert first.weight[[3, 7]].abs().max() <= bound and first.weight[[3, 7]].std() > bound / 3
    assert (first.bias[[3, 7]] == REVIVED_BIAS).all() and (second.weight[:, [3, 7]] == 0).all()
    for param in (first.weight, first.bias):
        assert (optimizer.state[param]["momentum_buffer"][[3, 7]] == 0).all()
    assert (optimizer.state[second.weight]["momentum_buffer"][:, [3, 7]] == 0).all()
    live = [i for i in range(25) if i not in (3, 7)]
    assert torch.equal(first.weight[live], untouched[0][live])  # the others are left alone
    assert torch.equal(second.weight[:, live], untouched[2][:, live])
    assert revive(model, optimizer, x, revival_generator(0, 10)) == 0


def test_revival_draws_the_same_weights_from_the_same_seed_and_epoch(batch):
    model, x, y, _ = batch
    drawn = []
    for _ in range(2):
        copy = MLP(400, (25,), 10, "relu").double()
        copy.load_state_dict(model.state_dict())
        with torch.no_grad():
            copy.layers[0].bias[0] = -1e3
        revive(copy, _momentum(copy, x, y), x, revival_generator(4, 15))
        drawn.append(copy.layers[0].weight[0].clone())
    assert torch.equal(drawn[0], drawn[1])
    assert not torch.equal(
        revival_generator(4, 15).get_state(), revival_generator(4, 20).get_state()
    )
