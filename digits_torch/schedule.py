"""Learning-rate schedules, stepped once per epoch.

* ``constant``: the lr stays as given (scikit-learn's ``learning_rate="constant"``);
* ``cosine``: the lr falls from its starting value to 0 over the run's epochs along half a cosine,
  ``lr_e = lr / 2 * (1 + cos(pi * e / epochs))``: long at large steps, then a gentle landing.

A scheduler is a torch ``LRScheduler``; its state dict goes into the checkpoint, so a resumed run
continues the same curve.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler

__all__ = ["SCHEDULES", "make_scheduler"]

SCHEDULES = ("constant", "cosine")


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int) -> LRScheduler | None:
    """The scheduler called ``name`` over ``epochs`` epochs; ``None`` for ``constant``."""
    if name == "constant":
        return None
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
