"""digits_torch.core.model: shapes, activations, the two reference initialisations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from digits_torch import MLP, load_digits, make_config
from digits_torch.config.config import DEFAULT_PRESET


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh", "identity"])
def test_forward_gives_logits(activation):
    model = MLP(activation=activation)
    logits = model(torch.rand(7, 400))
    assert logits.shape == (7, 10)
    assert model.predict(torch.rand(3, 400)).shape == (3,)


def test_hidden_sizes_and_architecture():
    model = MLP(784, (100, 50), 10, activation="relu")
    shapes = [tuple(layer.weight.shape) for layer in model.layers]
    assert shapes == [(100, 784), (50, 100), (10, 50)]
    assert model.architecture() == {
        "input_size": 784,
        "hidden_sizes": [100, 50],
        "num_classes": 10,
        "activation": "relu",
    }


def test_hidden_is_trainconfigs_name_and_hidden_sizes_still_works():
    by_config = MLP(hidden=(30, 20), generator=torch.Generator().manual_seed(1))
    by_architecture = MLP(hidden_sizes=(30, 20), generator=torch.Generator().manual_seed(1))
    assert by_config.hidden_sizes == by_architecture.hidden_sizes == (30, 20)
    assert all(
        torch.equal(a, b) for a, b in zip(by_config.parameters(), by_architecture.parameters())
    )
    assert MLP(**by_config.architecture()).hidden_sizes == (30, 20)  # what checkpoints record
    assert MLP().hidden_sizes == (25,)
    with pytest.raises(TypeError, match="hidden or hidden_sizes"):
        MLP(hidden=(3,), hidden_sizes=(3,))


def test_coursera_init_is_uniform_012():
    model = MLP(init="coursera", generator=torch.Generator().manual_seed(0))
    values = torch.cat([p.detach().ravel() for p in model.parameters()])
    assert values.abs().max() <= 0.12
    assert values.abs().max() > 0.119  # fills the interval, not a narrower one
    assert abs(values.mean()) < 0.005


@pytest.mark.parametrize("activation, factor", [("relu", 6.0), ("sigmoid", 2.0), ("tanh", 6.0)])
def test_glorot_init_bounds(activation, factor):
    model = MLP(activation=activation, init="glorot", generator=torch.Generator().manual_seed(0))
    for layer in model.layers:
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(factor / (fan_in + fan_out))
        for p in (layer.weight, layer.bias):
            assert p.abs().max() <= bound
            assert p.abs().max() > 0.9 * bound


def test_generator_makes_init_reproducible():
    a = MLP(generator=torch.Generator().manual_seed(5))
    b = MLP(generator=torch.Generator().manual_seed(5))
    c = MLP(generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_squared_weights_skips_biases():
    model = MLP(3, (2,), 2)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.fill_(1.0)
            layer.bias.fill_(100.0)
    assert model.squared_weights().item() == 3 * 2 + 2 * 2


def test_rejects_unknown_activation_and_init():
    with pytest.raises(ValueError, match="activation"):
        MLP(activation="swish")
    with pytest.raises(ValueError, match="init"):
        MLP(init="he")


def test_models_take_what_load_digits_returns_numpy_or_tensor_any_float_dtype():
    """The README's `model(torch.from_numpy(X))` with a float64 model (--preset sklearn's)."""
    X, y = load_digits()  # float32 numpy
    model = MLP(activation="relu", init="glorot", generator=torch.Generator().manual_seed(0))
    model = model.double()
    exact = model(torch.from_numpy(X).double())
    assert exact.dtype == torch.float64
    assert torch.equal(model(torch.from_numpy(X)), exact)  # a float32 tensor
    assert torch.equal(model(X), exact)  # the numpy array itself
    digits = model.predict(X)
    assert isinstance(digits, np.ndarray) and digits.shape == y.shape
    assert np.array_equal(digits, exact.argmax(dim=1).numpy())
    assert torch.equal(model.float().predict(torch.from_numpy(X)), model(X).argmax(dim=1))


def test_mlps_defaults_are_ex4s_as_its_docstring_says():
    """MLP() is the coursera preset's network; training's default preset is relu + Glorot."""
    coursera, default = make_config("coursera"), make_config(DEFAULT_PRESET)
    model = MLP()
    assert (model.activation, model.hidden_sizes) == (coursera.activation, coursera.hidden)
    assert coursera.init == "coursera" and model.layers[0].weight.abs().max() <= 0.12
    assert (default.activation, default.init) == ("relu", "glorot")
    assert 'MLP(activation="relu", init="glorot")' in MLP.__doc__
