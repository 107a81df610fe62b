"""The learning-rate schedules (digits_torch.optim.schedule): each entry of SCHEDULES makes its
scheduler, cosine follows its half cosine, invscaling and adaptive are scikit-learn's to the last
bit (its own SGDOptimizer computes the expected lrs), and a scheduler resumed from its state
dict continues its curve."""

from __future__ import annotations

import io
import math
import re
import sys
import warnings
from fractions import Fraction

import pytest
import torch
from sklearn.neural_network._stochastic_optimizers import SGDOptimizer
from torch.optim.lr_scheduler import CosineAnnealingLR

from digits_torch.optim.schedule import (
    SCHEDULES,
    InvScalingLR,
    advance,
    inv_scaled,
    lower_on_plateau,
    make_scheduler,
)


def _sgd(lr=0.3, groups=1):
    return torch.optim.SGD([{"params": [torch.zeros(1)]} for _ in range(groups)], lr=lr)


def _lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


def test_each_schedule_makes_its_scheduler_or_none():
    kinds = {"constant": None, "cosine": CosineAnnealingLR, "invscaling": InvScalingLR,
             "adaptive": None}  # fmt: skip
    assert list(SCHEDULES) == list(kinds)
    for name, kind in kinds.items():
        optimizer = _sgd()
        made = make_scheduler(name, optimizer, epochs=10, samples_per_epoch=100)
        assert made is None if kind is None else type(made) is kind and made.optimizer is optimizer


def test_an_unknown_schedule_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=re.escape(f"one of {tuple(SCHEDULES)}, got 'linear'")):
        make_scheduler("linear", _sgd(), epochs=10)


def test_cosine_falls_from_the_lr_to_0_along_half_a_cosine():
    """lr_e = lr / 2 (1 + cos(pi e / epochs)), the docstring's formula, at each epoch's start
    (torch computes it step by step: equal to rounding)."""
    lr, epochs = 0.3, 10
    optimizer = _sgd(lr)
    scheduler = make_scheduler("cosine", optimizer, epochs)
    for epoch in range(epochs + 1):
        expected = lr / 2 * (1 + math.cos(math.pi * epoch / epochs))
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-16)
        advance(scheduler)


@pytest.mark.parametrize(
    ("lr", "samples", "power_t"),
    [(0.1, 4500, 0.5), (0.3, 1, 0.25), (1.7, 3333, 1 / 3), (0.01, 50, 2.0)],
)
def test_invscaling_lrs_are_scikit_learns_to_the_last_bit(lr, samples, power_t):
    """scikit-learn's SGDOptimizer.iteration_ends after each epoch, with the examples seen so
    far (MLPClassifier's t_), against the scheduler stepped once an epoch."""
    optimizer = _sgd(lr)
    scheduler = make_scheduler("invscaling", optimizer, 30, samples, power_t)
    theirs = SGDOptimizer([], learning_rate_init=lr, lr_schedule="invscaling", power_t=power_t)
    for epoch in range(31):
        assert optimizer.param_groups[0]["lr"] == theirs.learning_rate, epoch
        advance(scheduler)
        theirs.iteration_ends((epoch + 1) * samples)
    assert theirs.learning_rate < lr  # it did fall


def test_inv_scaled_past_the_largest_float_is_the_true_value():
    """10 ** 310 overflows a float; 1 / 10 ** 310 is a subnormal, not 0, and not an error."""
    with pytest.raises(OverflowError):
        pow(9 + 1, 310.0)  # (seen + 1) ** power_t
    exact = float(Fraction(1, 10**310))
    assert 0 < exact < sys.float_info.min  # subnormal
    assert inv_scaled(1.0, 9, 310.0) == pytest.approx(exact, rel=1e-12, abs=0)
    assert inv_scaled(0.1, 32, 300.0) == 0.0  # 0.1 / 33 ** 300: below the least subnormal
    assert inv_scaled(1.0, 9, 300.0) == 1.0 / 10**300.0  # no overflow: the plain formula


@pytest.mark.parametrize("lr", [0.1, 5e-6, 1e-6 * (1 + 2**-40), 1e-6])
def test_lower_on_plateau_is_scikit_learns_adaptive_step(lr):
    """Each call: scikit-learn's trigger_stopping on an adaptive SGDOptimizer (stops exactly
    when lower_on_plateau says training cannot go on), and the same lr in every group."""
    optimizer = _sgd(lr, groups=2)
    theirs = SGDOptimizer([], learning_rate_init=lr, lr_schedule="adaptive")
    seen = [lr]
    while goes_on := lower_on_plateau(optimizer):
        assert not theirs.trigger_stopping("", verbose=False)
        assert _lrs(optimizer) == [theirs.learning_rate] * 2 == [seen[-1] / 5] * 2
        seen.append(theirs.learning_rate)
    assert theirs.trigger_stopping("", verbose=False) and not goes_on
    assert _lrs(optimizer) == [seen[-1]] * 2  # the floor: the lr stays
    assert seen[-1] <= 1e-6 and all(lr > 1e-6 for lr in seen[:-1])


def test_advance_steps_the_scheduler_without_torchs_warning():
    """Stepping a scheduler whose optimizer never stepped warns in torch; advance does not, and
    moves the lr as the plain step does."""
    plain, quiet = (make_scheduler("invscaling", _sgd(), 10, 100) for _ in range(2))
    with pytest.warns(UserWarning, match=r"lr_scheduler\.step\(\)` before `optimizer\.step"):
        plain.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        advance(quiet)
    assert _lrs(quiet.optimizer) == _lrs(plain.optimizer) != [0.3]


@pytest.mark.parametrize("name", ["cosine", "invscaling"])
def test_a_scheduler_resumed_from_its_state_dict_continues_the_curve(name):
    """Through torch.save and a weights-only load, restored as a checkpoint's resume restores
    it (the optimizer first) into a freshly made scheduler."""

    def made():
        optimizer = _sgd()
        return optimizer, make_scheduler(name, optimizer, 12, 100, 0.5)

    def epochs(optimizer, scheduler, n):
        lrs = []
        for _ in range(n):
            lrs.append(optimizer.param_groups[0]["lr"])
            advance(scheduler)
        return lrs

    whole = epochs(*made(), 12)
    optimizer, scheduler = made()
    first = epochs(optimizer, scheduler, 5)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    optimizer, scheduler = made()
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    assert first + epochs(optimizer, scheduler, 7) == whole
    assert len(set(whole)) == 12  # a curve: each epoch's lr its own
