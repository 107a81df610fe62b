"""The multilayer perceptron: 400 -> 25 -> 10 by default, as in Coursera ML exercise 4.

``MLP(x)`` returns logits (batch, num_classes); class k is the digit k (ex4's label 10 for the
digit 0 is translated where its files are read, in :mod:`digits_torch.reference.coursera`).
Two reference initialisations: ``"coursera"``, every weight and bias uniform in [-0.12, 0.12]
(ex4's randInitializeWeights); ``"glorot"``, scikit-learn's: uniform in [-b, b] with
b = sqrt(factor / (fan_in + fan_out)), factor 6, or 2 for a sigmoid network; biases too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "INITS", "MLP", "glorot_bound", "shape_text"]

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "identity": lambda z: z,
}
INITS = ("coursera", "glorot")
COURSERA_EPSILON = 0.12  # ex4's epsilon_init


class MLP(nn.Module):
    """A fully connected network with one activation for all hidden layers.

    Args:
        input_size: pixels per image (400 for 20 x 20).
        hidden: units per hidden layer, default ``(25,)`` (``hidden_sizes``, the name
            checkpoints record, is taken too).
        num_classes: output units (10 digits).
        activation: ``"sigmoid"``, ``"relu"``, ``"tanh"`` or ``"identity"``.
        init: ``"coursera"`` or ``"glorot"`` (see the module docstring).
        generator: seeds the initialisation; ``None`` uses torch's global generator.

    The defaults are ex4's network (sigmoid units, uniform +-0.12); the presets other than
    ``coursera`` train ``MLP(activation="relu", init="glorot")``.
    """

    def __init__(
        self,
        input_size: int = 400,
        hidden: Sequence[int] | None = None,
        num_classes: int = 10,
        activation: str = "sigmoid",
        init: str = "coursera",
        generator: torch.Generator | None = None,
        *,
        hidden_sizes: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if hidden is not None and hidden_sizes is not None:
            raise TypeError("MLP takes hidden or hidden_sizes (the same thing), not both")
        hidden = hidden_sizes if hidden is None else hidden
        hidden = (25,) if hidden is None else hidden
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        sizes = [input_size, *hidden, num_classes]
        if any(int(s) < 1 for s in sizes):
            raise ValueError(f"layer sizes must be positive, got {sizes}")
        self.input_size = int(input_size)
        self.hidden_sizes = tuple(int(s) for s in hidden)
        self.num_classes = int(num_classes)
        self.activation = activation
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.reset_parameters(init, generator)

    def forward(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """x: (batch, input_size) -> logits (batch, num_classes).

        ``x`` may be a numpy array (as :func:`~digits_torch.load_digits` returns) and of any
        dtype: it is taken as the weights' dtype, on their device (a float64 model, such as
        ``--preset sklearn``'s, reads float32 digits)."""
        x = self._as_input(x)
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)

    def reset_parameters(self, init: str = "coursera", generator: torch.Generator | None = None):
        """Redraw every weight and bias with one of the reference schemes (see module docstring)."""
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        with torch.no_grad():
            for layer in self.layers:
                fan_out, fan_in = layer.weight.shape
                if init == "coursera":
                    bound = COURSERA_EPSILON
                else:
                    bound = glorot_bound(fan_in, fan_out, self.activation)
                for p in (layer.weight, layer.bias):
                    p.uniform_(-bound, bound, generator=generator)
        return self

    def squared_weights(self) -> torch.Tensor:
        """Sum of squared non-bias weights: the L2 term is lambda / (2 m) times this."""
        return sum(layer.weight.square().sum() for layer in self.layers)

    def architecture(self) -> dict:
        """The constructor arguments that fix the parameter shapes (saved with checkpoints)."""
        return {
            "input_size": self.input_size,
            "hidden_sizes": list(self.hidden_sizes),
            "num_classes": self.num_classes,
            "activation": self.activation,
        }

    def shape_text(self) -> str:
        """Its layer sizes, ``400-25-10`` (:func:`shape_text`)."""
        return shape_text(self.hidden_sizes, self.input_size, self.num_classes)

    def _as_input(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        weight = self.layers[0].weight
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if x.dtype != weight.dtype or x.device != weight.device:  # else as it is: no copy
            x = x.to(device=weight.device, dtype=weight.dtype)
        return x

    @torch.no_grad()
    def predict(self, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Predicted digits, shape (batch,): a numpy array for a numpy ``x``, else a tensor."""
        digits = self(x).argmax(dim=1)
        return digits.cpu().numpy() if isinstance(x, np.ndarray) else digits

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


def shape_text(hidden: Sequence[int], input_size: int = 400, num_classes: int = 10) -> str:
    """A network's layer sizes as the docs write them: ``400-25-10``."""
    return "-".join(map(str, (input_size, *hidden, num_classes)))


def glorot_bound(fan_in: int, fan_out: int, activation: str) -> float:
    """scikit-learn's Glorot bound b of a layer's uniform [-b, b] initial weights:
    sqrt(6 / (fan_in + fan_out)), with 2 for 6 for sigmoid units."""
    factor = 2.0 if activation == "sigmoid" else 6.0
    return (factor / (fan_in + fan_out)) ** 0.5
