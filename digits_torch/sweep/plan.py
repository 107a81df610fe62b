"""Which of a sweep's networks train together, and what a stack of them needs.

* :func:`stackable`: minibatch SGD outside sklearn-exact mode (the rest train one by one);
* :func:`stack_key`: networks with one key share shapes, data and loss: one stack
  (:class:`~digits_torch.stacked.Stack`);
* :func:`batch_group`: networks of a stack with one group see the same batches (the same seed,
  distortions and teacher), so their first layer is one wide matrix product;
* :func:`memory_needed`: the bytes a stack needs, which the sweep checks before it starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .backprop import effective_backprop
from .bounds import DTYPES
from .config import TrainConfig, fields_with

__all__ = ["AUGMENTS", "STACKED", "batch_group", "memory_needed", "stack_key", "stackable"]

STACKED = fields_with("stacked")
AUGMENTS = fields_with("augments")  # with the seed's draws, what decides a network's batches
# (its digits' distortion, and the teacher and temperature that label them)


def stackable(config: TrainConfig) -> bool:
    """Whether the stack trains ``config``: minibatch SGD outside sklearn-exact mode, with an
    activation and a loss the hand-written backward pass knows (the stack's arithmetic is it)."""
    explicit = effective_backprop("explicit", config.activation, config.loss) == "explicit"
    return config.optimizer == "sgd" and not config.sklearn_exact and explicit


def batch_group(config: TrainConfig) -> tuple:
    """Networks of one stack with equal values here share batches (a batch group): the seed,
    and the fields whose role is "augments" (the distortions, the teacher that labels them)."""
    return (config.seed, *(getattr(config, name) for name in AUGMENTS))


def stack_key(config: TrainConfig) -> tuple:
    """Networks with equal keys train in one stack: the same shapes, data and loss (the fields
    whose role is "stacked")."""
    return tuple(getattr(config, name) for name in STACKED)


def memory_needed(configs: Sequence[TrainConfig], rows: int, pixels: int) -> int:
    """Bytes a stack of ``configs`` needs, on data of ``rows`` images of ``pixels`` pixels.

    Counted: weights, momentum, gradients, the pre-epoch snapshot, the best weights and each
    member's own model and optimizer; one batch's activations and inputs; the data, each batch
    group's augmented copy and the validation pass. It grows linearly with the networks.
    """
    c = configs[0]
    item = torch.finfo(DTYPES[c.dtype]).bits // 8
    sizes = [pixels, *c.hidden, 10]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    K = len(configs)
    groups = {batch_group(x): x for x in configs}
    G, augmented = len(groups), sum(1 for x in groups.values() if x.augmented)
    val = int(round(rows * c.val_fraction))
    m = rows - val
    b, width = min(c.batch_size, m), sum(sizes[1:])
    copies = 7 + (val > 0)  # weights, momentum, gradients, snapshot (2), member model + buffer
    batch = K * b * width * 4 + G * b * pixels + (K * b * pixels if 1 < G < K else 0)
    data = rows * pixels + ((rows + augmented * m) * pixels + 2 * m * pixels if augmented else 0)
    validation = G * val * pixels + K * val * width * 3
    return item * (K * params * copies + batch + data + validation)
