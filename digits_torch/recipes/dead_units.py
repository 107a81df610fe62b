"""Dead hidden units, and bringing them back to life during training (``--revive-dead-units``).

A relu unit whose weighted input is <= 0 on every training digit outputs 0 and passes no
gradient, so training never moves it again: a 25-unit network that loses 5 units is a 20-unit
network. Every :data:`REVIVE_EVERY` epochs in the first half of a run, :func:`revive` gives the
first hidden layer's dead units new incoming weights (Glorot's uniform bound, as at the start),
a small positive bias and zero outgoing weights, and forgets their optimizer state. With zero
outgoing weights a revived unit changes no output at once: the network's predictions and loss
are the same before and after; the unit then learns from the gradient like any other.

The new weights are drawn on the CPU from a generator seeded by the run's seed and the epoch
(:func:`revival_generator`), not from the run's own generator: the run's stream of shuffles and
augmentations stays what it is without revival, networks that share batches in a sweep's stack
keep sharing them, and a resume needs no new state.
"""

from __future__ import annotations

import torch

from ..core.model import ACTIVATIONS, MLP, glorot_bound

__all__ = [
    "REVIVED_BIAS",
    "REVIVE_EVERY",
    "never_active",
    "revival_due",
    "revival_generator",
    "revive",
]

REVIVE_EVERY = 5  # epochs between revivals
REVIVED_BIAS = 0.01  # a revived unit's bias: active on about half of the digits at once
_MIX = 0x9E3779B97F4A7C15  # the golden-ratio constant: spreads (seed, epoch) over the seeds


@torch.no_grad()
def never_active(model: MLP, X: torch.Tensor) -> torch.Tensor:
    """(units,) bool: the first-layer units whose output is exactly 0 on every row of X (m, n),
    on X's device and the model's. For relu, those whose weighted input is never above 0 (a
    sigmoid or tanh unit practically never outputs exactly 0)."""
    first = model.layers[0]
    return (ACTIVATIONS[model.activation](first(X)) == 0).all(dim=0)


def revival_due(epoch: int, epochs: int) -> bool:
    """Whether a run of ``epochs`` epochs revives its dead units after ``epoch`` (1-based)."""
    return epoch % REVIVE_EVERY == 0 and 2 * epoch <= epochs


def revival_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator a revival after ``epoch`` draws from, in a run seeded ``seed``."""
    return torch.Generator().manual_seed((seed + _MIX * epoch) % 2**64)


@torch.no_grad()
def revive(
    model: MLP, optimizer: torch.optim.Optimizer, X: torch.Tensor, generator: torch.Generator
) -> int:
    """Revive the first hidden layer's units that are dead on X (m, n), the training digits.

    Each gets incoming weights uniform in Glorot's bound (drawn on the CPU from ``generator``,
    one row per dead unit in unit order), bias :data:`REVIVED_BIAS`, zero outgoing weights, and
    zero optimizer state (momentum) for all three. Returns how many units were revived.
    """
    first, second = model.layers[0], model.layers[1]
    dead = never_active(model, X)
    units = dead.nonzero().squeeze(1)  # (k,) on the model's device
    k = int(units.numel())
    if k == 0:
        return 0
    fan_out, fan_in = first.weight.shape
    bound = glorot_bound(fan_in, fan_out, model.activation)
    drawn = torch.empty(k, fan_in, dtype=first.weight.dtype).uniform_(
        -bound, bound, generator=generator
    )
    first.weight[units] = drawn.to(first.weight.device)
    first.bias[units] = REVIVED_BIAS
    second.weight[:, units] = 0
    for param, rows in ((first.weight, units), (first.bias, units)):
        for state in _state_like(optimizer, param):
            state[rows] = 0
    for state in _state_like(optimizer, second.weight):
        state[:, units] = 0
    return k


def _state_like(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> list[torch.Tensor]:
    """The optimizer's per-element state of ``param`` (momentum, Adam's moments)."""
    state = optimizer.state.get(param, {})
    return [v for v in state.values() if isinstance(v, torch.Tensor) and v.shape == param.shape]
