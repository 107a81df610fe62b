"""torch's optimizers without the torch._dynamo import (digits_torch.optim.without_dynamo): ours
update as torch's do, bit for bit, with state dicts either loads, and a fresh interpreter that
makes, steps, zeroes and saves one has not imported torch._dynamo."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from digits_torch.optim import without_dynamo
from digits_torch.optim.optimizers import LBFGS, SGD, Adam

ROOT = Path(__file__).resolve().parents[2]


def _params() -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((5, 3), (3,))]


def _loss(params) -> torch.Tensor:
    weight, bias = params
    return ((torch.ones(4, 5) @ weight + bias).sin() ** 2).sum()


CASES = [
    (SGD, torch.optim.SGD, {"lr": 0.1}),
    (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.5, "fused": True}),
    (Adam, torch.optim.Adam, {"lr": 0.01}),
    (Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01, "fused": True}),
    (LBFGS, torch.optim.LBFGS, {"lr": 0.5, "max_iter": 2, "line_search_fn": "strong_wolfe"}),
]


@pytest.mark.parametrize("ours, theirs, options", CASES)
def test_ours_are_torchs_step_for_step_and_state_for_state(ours, theirs, options):
    """The same updates bit for bit, with a closure too, and state dicts either way."""
    mine, torchs = _params(), _params()
    optimizers = ours(mine, **options), theirs(torchs, **options)
    for step in range(3):
        for optimizer, params in zip(optimizers, (mine, torchs)):

            def closure(params=params, optimizer=optimizer):
                optimizer.zero_grad()
                loss = _loss(params)
                loss.backward()
                return loss

            if step == 2 or ours is LBFGS:
                optimizer.step(closure)
            else:
                closure()
                optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(mine, torchs))
    assert str(optimizers[0].state_dict()) == str(optimizers[1].state_dict())
    swapped = ours(_params(), **options)
    swapped.load_state_dict(optimizers[1].state_dict())  # a checkpoint written by torch's class
    optimizers[1].load_state_dict(optimizers[0].state_dict())
    assert str(swapped.state_dict()) == str(optimizers[1].state_dict())


_MAKE_STEP_SAVE = """
import sys, torch
from digits_torch.optim.fmincg import Fmincg
from digits_torch.optim.optimizers import LBFGS, SGD, Adam
from digits_torch.reference.sklearn_exact import SklearnAdam, SklearnSGD
kinds = {"SGD": SGD, "Adam": Adam, "LBFGS": LBFGS, "Fmincg": Fmincg, "SklearnSGD": SklearnSGD,
         "SklearnAdam": SklearnAdam, "torch's SGD": torch.optim.SGD}
for kind in sys.argv[1:]:  # in turn: the first to load torch._dynamo is the first said True
    params = [torch.nn.Parameter(torch.ones(3))]
    optimizer = kinds[kind](params, lr=0.1)
    def closure():
        optimizer.zero_grad()
        loss = (params[0] ** 2).sum()
        loss.backward()
        return loss
    for _ in range(2):
        optimizer.step(closure)
    optimizer.load_state_dict(optimizer.state_dict())
    print(kind, "torch._dynamo" in sys.modules, sep=":")
"""


def test_a_run_makes_steps_and_saves_each_without_importing_torch_dynamo():
    """torch.compile's machinery (1.6 s of a short run's start) stays unloaded; torch's own SGD,
    doing the same last, loads it: the check sees the import. One interpreter makes each kind in
    turn, so the first that loads it is the first said True."""
    kinds = ("SGD", "Adam", "LBFGS", "Fmincg", "SklearnSGD", "SklearnAdam", "torch's SGD")
    ran = subprocess.run(
        [sys.executable, "-c", _MAKE_STEP_SAVE, *kinds],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert ran.returncode == 0, ran.stderr
    seen = dict(line.split(":") for line in ran.stdout.splitlines())
    assert seen == {kind: str(kind == "torch's SGD") for kind in kinds}


def test_a_method_nothing_wraps_is_taken_as_it_is():
    def plain():
        return 1

    @functools.wraps(plain)
    def wrapper():
        return plain()

    assert without_dynamo._undecorated(plain) is plain
    assert without_dynamo._undecorated(wrapper) is plain
