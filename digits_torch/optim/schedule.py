"""Learning-rate schedules, stepped once per epoch.

* ``constant``: the lr stays as given (scikit-learn's ``learning_rate="constant"``);
* ``cosine``: the lr falls from its starting value to 0 over the run's epochs along half a cosine,
  ``lr_e = lr / 2 * (1 + cos(pi * e / epochs))``: long at large steps, then a gentle landing;
* ``invscaling``: scikit-learn's: after e epochs of n examples, ``lr_e = lr / (e * n + 1) **
  power_t``;
* ``adaptive``: scikit-learn's: the lr stays, but where the stopping rule would stop training it
  is divided by 5 instead (and the count of epochs without progress restarts), until it is at
  most 1e-6: :func:`lower_on_plateau`, called by the training loop.

A scheduler is a torch ``LRScheduler``; its state dict goes into the checkpoint, so a resumed run
continues the same curve.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler

__all__ = [
    "SCHEDULES",
    "InvScalingLR",
    "advance",
    "inv_scaled",
    "lower_on_plateau",
    "make_scheduler",
]

ADAPTIVE_DIVISOR = 5.0  # adaptive: lr /= 5 where training would stop ...
ADAPTIVE_MIN_LR = 1e-6  # ... unless lr is already this small: then it stops


def advance(scheduler: LRScheduler) -> None:
    """``scheduler.step()``, at the end of an epoch, without torch's warning that
    ``optimizer.step()`` was never called: here the weights may be updated without it (the
    fused SGD step of :func:`digits_torch.optim.optimizers.optimizer_step`, a sweep's stack), so
    torch's check misfires; the lrs themselves are right."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step"
        )
        scheduler.step()


def make_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    samples_per_epoch: int = 1,
    power_t: float = 0.5,
) -> LRScheduler | None:
    """The scheduler called ``name`` (a key of :data:`SCHEDULES`) over ``epochs`` epochs of
    ``samples_per_epoch`` examples; ``None`` for ``constant`` and ``adaptive`` (which acts
    through :func:`lower_on_plateau`)."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name](optimizer, epochs, samples_per_epoch, power_t)


class InvScalingLR(LRScheduler):
    """scikit-learn's ``invscaling``: after e epochs of n examples, lr_0 / (e n + 1) ** power_t.

    Written as scikit-learn writes it (``lr_0 / (t + 1) ** power_t``, t examples seen), so the
    float64 learning rates are scikit-learn's to the last bit.
    """

    def __init__(self, optimizer, samples_per_epoch: int, power_t: float, last_epoch: int = -1):
        self.samples_per_epoch, self.power_t = samples_per_epoch, power_t
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        seen = self.last_epoch * self.samples_per_epoch
        return [inv_scaled(float(lr), seen, self.power_t) for lr in self.base_lrs]


def inv_scaled(lr: float, seen: int, power_t: float) -> float:
    """``lr / (seen + 1) ** power_t``, as scikit-learn computes it; where the power passes the
    largest float (``--power-t 100`` after an epoch), ``lr`` times ``exp(-power_t ln(seen + 1))``,
    which underflows to the lr's true value (0, or a subnormal) instead of raising."""
    try:
        return lr / (seen + 1) ** power_t
    except OverflowError:
        return lr * math.exp(-power_t * math.log(seen + 1))


def lower_on_plateau(optimizer: torch.optim.Optimizer) -> bool:
    """``adaptive`` where training would stop: lr / 5 and go on, unless lr <= 1e-6.

    Returns whether training goes on (False: lr is already at its floor; stop).
    """
    lr = optimizer.param_groups[0]["lr"]
    if lr <= ADAPTIVE_MIN_LR:
        return False
    for group in optimizer.param_groups:
        group["lr"] = lr / ADAPTIVE_DIVISOR
    return True


# --schedule's choices, one entry each: (optimizer, epochs, samples per epoch, power_t) -> the
# scheduler stepped at each epoch's end, or None (a constant lr; adaptive's acts on a plateau,
# run_setup.py). A new schedule is a new entry; config validation reads the keys.
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, int, int, float], LRScheduler | None]] = {
    "constant": lambda optimizer, epochs, samples, power_t: None,
    "cosine": lambda optimizer, epochs, samples, power_t: CosineAnnealingLR(optimizer, epochs),
    "invscaling": lambda optimizer, epochs, samples, power_t: InvScalingLR(
        optimizer, samples, power_t
    ),
    "adaptive": lambda optimizer, epochs, samples, power_t: None,
}
