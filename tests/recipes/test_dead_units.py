"""Dead units (digits_torch.recipes.dead_units): when a revival is due; a dead unit gets new
incoming weights and no say in the outputs, its momentum (SGD's) or moments (Adam's) forgotten,
the others left alone; the rows are drawn in unit order from the revival's own generator, the
same for the same seed and epoch, leaving torch's global one as it was; on the shipped digits, a
unit alive on one digit is not dead, and a sigmoid network has none."""

from __future__ import annotations

import pytest
import torch
from conftest import relu_batch

from digits_torch.core.model import MLP, glorot_bound
from digits_torch.fast.backprop import loss_and_gradients
from digits_torch.recipes.dead_units import (
    REVIVED_BIAS,
    never_active,
    revival_due,
    revival_generator,
    revive,
)


@pytest.fixture
def batch():
    return relu_batch(torch.Generator().manual_seed(0))


def _digits(digits) -> torch.Tensor:
    return torch.from_numpy(digits[0][::10]).double()  # 500 shipped digits


def _model(activation: str = "relu") -> MLP:
    return MLP(activation=activation, init="glorot", generator=torch.Generator().manual_seed(0))


def test_a_unit_alive_on_one_digit_is_not_dead_and_sigmoids_never_are(digits):
    x = _digits(digits)
    model = _model().double()
    first = model.layers[0]
    with torch.no_grad():
        z = first(x)
        first.weight[4], first.bias[4] = 0, 0  # weighted input exactly 0 on every digit: dead
        first.bias[9] -= z[:, 9].max() - 1e-6  # just above 0 on one digit: alive
    assert never_active(model, x).nonzero().flatten().tolist() == [4]
    assert (first(x)[:, 9] > 0).sum() == 1
    sigmoid = _model("sigmoid").double()
    sigmoid.load_state_dict(model.state_dict())
    assert not never_active(sigmoid, x).any()


def test_a_revival_forgets_adams_moments_and_draws_its_rows_in_unit_order(digits):
    x = _digits(digits)
    model = _model().double()
    first, second = model.layers[0], model.layers[1]
    dead, live = [2, 11, 20], [i for i in range(25) if i not in (2, 11, 20)]
    with torch.no_grad():
        first.bias[dead] = -1e3
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(x).square().mean().backward()
    optimizer.step()
    for state in optimizer.state.values():  # as if the units had died late, moments and all
        state["exp_avg"].fill_(0.5)
        state["exp_avg_sq"].fill_(0.25)
    step = optimizer.state[first.weight]["step"].clone()
    global_rng = torch.get_rng_state()
    assert revive(model, optimizer, x, revival_generator(7, 5)) == 3
    assert torch.equal(torch.get_rng_state(), global_rng)
    bound = glorot_bound(400, 25, "relu")
    expected = torch.empty(3, 400, dtype=torch.float64).uniform_(
        -bound, bound, generator=revival_generator(7, 5)
    )
    assert torch.equal(first.weight[dead], expected)
    for name, filled in (("exp_avg", 0.5), ("exp_avg_sq", 0.25)):
        for param in (first.weight, first.bias):
            state = optimizer.state[param][name]
            assert (state[dead] == 0).all() and (state[live] == filled).all(), name
        state = optimizer.state[second.weight][name]
        assert (state[:, dead] == 0).all() and (state[:, live] == filled).all(), name
        assert (optimizer.state[second.bias][name] == filled).all(), name
    assert torch.equal(optimizer.state[first.weight]["step"], step)  # not a per-element state


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
    model, x, y = batch
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
    model, x, y = batch
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
