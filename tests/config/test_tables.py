"""The tables an activation, a loss, a schedule and an optimizer are entries of: their users agree
with them, and an entry added to its table alone trains (the hand-written backward pass and the
sweep's stacks leave what they do not know to autograd and to solo runs)."""

from __future__ import annotations

import dataclasses
import json
import re

import torch
from torch.optim.lr_scheduler import StepLR

from digits_torch import MLP, TrainConfig, make_config
from digits_torch.cli import train as cli
from digits_torch.config import bounds
from digits_torch.config.presets import PRESETS
from digits_torch.core.losses import LOSSES
from digits_torch.core.model import ACTIVATIONS
from digits_torch.fast.backprop import BACKWARD, FORWARD_INPLACE, effective_backprop
from digits_torch.optim import optimizers
from digits_torch.optim.schedule import SCHEDULES, make_scheduler
from digits_torch.store.runs import read_history
from digits_torch.sweep import sweep
from digits_torch.train.teachers import NO_TEACHER, ROUGH_SECONDS


def test_the_tables_and_their_users_agree():
    # the fast paths know every built-in activation and loss (else they would go unused)
    assert set(FORWARD_INPLACE) == set(BACKWARD) == set(ACTIVATIONS)
    assert all(loss.output_error is not None for loss in LOSSES.values())
    assert all(effective_backprop("explicit", "relu", loss) == "explicit" for loss in LOSSES)
    assert all(effective_backprop("explicit", a, "softmax") == "explicit" for a in ACTIVATIONS)
    assert bounds.OPTIMIZERS is optimizers.OPTIMIZERS  # names checked, names made: one table
    # --help names every choice of its field, and "did you mean" offers them
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}
    tables = {"activation": ACTIVATIONS, "loss": LOSSES, "optimizer": bounds.OPTIMIZERS,
              "schedule": SCHEDULES}  # fmt: skip
    for field, table in tables.items():
        for name in table:
            assert re.search(rf"\b{name}\b", helps[field]), (field, name)
            assert name in bounds.CHOICES[field], (field, name)
    # the plan's rough seconds are presets', and the flag it names trains without a teacher
    assert set(ROUGH_SECONDS) <= set(PRESETS)
    assert make_config(NO_TEACHER.removeprefix("--preset ")).teacher_preset is None
    for name in SCHEDULES:  # each entry makes its scheduler, or None for a constant lr
        optimizer = torch.optim.SGD(MLP().parameters(), lr=0.1)
        made = make_scheduler(name, optimizer, epochs=10, samples_per_epoch=100)
        assert made is None or made.optimizer is optimizer


def test_an_activation_a_loss_a_schedule_and_an_optimizer_added_to_their_tables_alone_train(
    monkeypatch, small_digits, tmp_path, run_entry
):
    """No KeyError in the hand-written backward pass, no half-written run: autograd trains what
    it does not know, and a sweep trains such networks on their own."""
    monkeypatch.setitem(ACTIVATIONS, "softplus", torch.nn.functional.softplus)
    monkeypatch.setitem(LOSSES, "softmax2", LOSSES["softmax"])
    halving = lambda optimizer, epochs, samples, power_t: StepLR(optimizer, 1, 0.5)  # noqa: E731
    monkeypatch.setitem(SCHEDULES, "halving", halving)
    made = []  # the optimizers the new entry made

    def plain_sgd(params, lr, momentum, nesterov):
        made.append(torch.optim.SGD(params, lr))
        return made[-1]

    monkeypatch.setitem(optimizers.OPTIMIZERS, "plain_sgd", plain_sgd)
    new = ["--activation", "softplus", "--loss", "softmax2", "--schedule", "halving",
           "--optimizer", "plain_sgd"]  # fmt: skip
    common = ["--preset", "tuned", "--data", str(small_digits), "--device", "cpu", "--epochs",
              "3", "--no-figures", "--image-every", "0", "--quiet"]  # fmt: skip
    ran = run_entry(lambda: cli.main([*common, *new, "--logdir", str(tmp_path / "runs")]))
    assert ran.code == 0, ran.stderr
    run = ran.value.run_dir
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
    assert [r["lr"] for r in read_history(run)] == [0.1, 0.05, 0.025]
    assert ran.value.model.activation == "softplus"
    assert len(made) == 1 and made[0].defaults["momentum"] == 0  # plain_sgd's, not sgd's
    # a sweep over the new activation beside relu: relu stacks, softplus trains alone
    grid = ["--grid", "activation=relu,softplus", "--loss", "softmax2", "--schedule", "halving"]
    ran = run_entry(lambda: sweep.run_command([*common, *grid, "--logdir", str(tmp_path / "sw")]))
    assert ran.code == 0, ran.stderr
    runs = [p for p in ran.value.iterdir() if (p / "config.json").exists()]
    activations = sorted(json.loads((p / "config.json").read_text())["activation"] for p in runs)
    assert activations == ["relu", "softplus"]
    assert all((p / "metrics.json").exists() for p in runs)
