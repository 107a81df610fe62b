"""Dead units on the shipped digits (digits_torch.recipes.dead_units), what
tests/recipes/test_distillation.py leaves out: a unit alive on one digit is not dead, a sigmoid
network has none, Adam's moments are forgotten as SGD's momentum is, and a revival draws its rows
in unit order from its own generator alone, leaving torch's global one as it was."""

from __future__ import annotations

import torch

from digits_torch.core.model import MLP, glorot_bound
from digits_torch.recipes.dead_units import never_active, revival_generator, revive


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
