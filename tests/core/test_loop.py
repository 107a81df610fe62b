"""The plain training loop (digits_torch.core.loop): in memory, callbacks, and the fast path
held against it."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from digits_torch import MLP, fit, make_config
from digits_torch.config.plan import make_plan
from digits_torch.core.loop import Objective, train, train_epoch
from digits_torch.optim.optimizers import optimizer_step
from digits_torch.optim.stopping import EarlyStopping
from digits_torch.train.epochs import run_batches
from digits_torch.train.run_setup import make_optimizer


def _tensors(digits, dtype=torch.float32):
    X, y = digits
    return torch.from_numpy(X).to(dtype), torch.from_numpy(y)


def _model(activation="relu", dtype=torch.float32, seed=0) -> MLP:
    generator = torch.Generator().manual_seed(seed)
    return MLP(activation=activation, init="glorot", generator=generator).to(dtype)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("loss", ["softmax", "coursera"])
def test_the_fast_epoch_is_the_core_epoch_in_float64(digits, activation, loss):
    """An epoch of the default path (hand-written backprop, the fused SGD step) ends within
    1e-12 of the core loop's (autograd, torch.optim.SGD's public step) from the same weights."""
    X, y = _tensors(digits, torch.float64)
    config = make_config("seed", activation=activation, loss=loss, l2=0.3, dtype="float64")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(3))
    core, fast = _model(activation, torch.float64), _model(activation, torch.float64)
    core_sgd = torch.optim.SGD(core.parameters(), lr=config.lr, momentum=0.9, nesterov=True)
    fast_sgd = make_optimizer(config, fast)
    objective = Objective(loss=loss, l2=config.l2)
    for _ in range(2):  # the second epoch takes the fused shortcut (momentum buffers exist)
        expected = train_epoch(core, core_sgd, X, y, order, config.batch_size, objective)
        got = run_batches(fast, optimizer_step(fast_sgd), X, y, order, make_plan(config).recipe)
        assert got[0].item() == pytest.approx(expected[0].item(), abs=1e-12)
        assert got[1].item() == expected[1].item()
    for mine, theirs in zip(fast.parameters(), core.parameters()):
        torch.testing.assert_close(mine, theirs, atol=1e-12, rtol=0)


def test_the_seed_recipe_trains_in_memory_as_the_preset_does(digits, tmp_path, monkeypatch):
    """The article's recipe (the seed preset: relu, batch 200, Nesterov SGD lr 0.001, l2 1e-4,
    scikit-learn's stopping rule) through the plain loop reaches the preset's own run's training
    accuracy within half a point, here over its first 80 epochs (0.885 and 0.8854 measured), and
    writes nothing. (``python benchmarks/core_seed.py`` trains all 1,000: 0.9656 against the
    preset's 0.9654.)"""
    config = make_config("seed", epochs=80, logdir=str(tmp_path / "runs"), quiet=True)
    preset = fit(dataclasses.replace(config, figures=False)).metrics["train_accuracy"]
    (tmp_path / "plain").mkdir()
    monkeypatch.chdir(tmp_path / "plain")
    X, y = _tensors(digits)
    model = _model(seed=config.seed)
    sgd = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True)
    history = train(
        model,
        sgd,
        X,
        y,
        epochs=config.epochs,
        batch_size=config.batch_size,
        gradients=Objective(l2=config.l2),
        generator=torch.Generator().manual_seed(config.seed),
        callbacks=[EarlyStopping(config.stop_on, config.tol, config.patience)],
    )
    accuracy = (model.predict(X) == y).double().mean().item()
    assert preset > 0.85 and abs(accuracy - preset) <= 0.005
    assert [r["epoch"] for r in history] == list(range(1, 81))
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 5
    assert os.listdir(tmp_path / "plain") == []


class _StopAt:
    def __init__(self, epoch: int) -> None:
        self.epoch, self.heard = epoch, []

    def on_epoch_end(self, model, record):
        self.heard.append(record["epoch"])
        return "enough" if record["epoch"] == self.epoch else None


def test_a_callback_stops_training_and_every_callback_hears_each_record(digits):
    X, y = _tensors(digits)
    model = _model()
    first, second = _StopAt(3), _StopAt(99)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train(model, sgd, X[::10], y[::10], epochs=10, callbacks=[first, second])
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["stopped"] == "enough"
    assert first.heard == second.heard == [1, 2, 3]


def test_early_stopping_is_a_callback(digits):
    """No epoch can improve the loss by more than a tol of 10: the first epoch is progress
    (from nothing), then after patience + 1 epochs without it the rule stops the loop."""
    X, y = _tensors(digits)
    sgd_model = _model()
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.01)
    stopping = EarlyStopping("train_loss", tol=10.0, patience=2)
    history = train(sgd_model, sgd, X[::10], y[::10], epochs=20, callbacks=[stopping])
    assert len(history) == 1 + 3 and history[-1]["stopped"] == "converged"


def test_validation_figures_and_the_schedule_are_recorded(digits):
    X, y = _tensors(digits)
    model = _model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.2)
    halve = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
    val = (X[1::5], y[1::5])  # every digit in both halves: ex4's rows are sorted by digit
    history = train(model, sgd, X[::5], y[::5], epochs=3, scheduler=halve, val=val)
    assert [r["lr"] for r in history] == [0.2, 0.1, 0.05]
    assert history[-1]["stopped"] == "3 epochs"
    assert history[-1]["val_accuracy"] == (model.predict(val[0]) == val[1]).double().mean().item()
    assert all(0 < r["val_loss"] < 3 for r in history)


def test_the_epoch_loss_weights_batches_by_their_size(digits):
    """7 rows in batches of 3: the epoch's loss is (3 a + 3 b + 1 c) / 7 of its batch
    objectives, the last batch the smaller."""
    X, y = _tensors(digits, torch.float64)
    seen = []

    def gradients(model, xb, yb):
        seen.append(len(yb))
        value = torch.tensor(float(len(seen)), dtype=torch.float64)
        return value, torch.tensor(0)

    model = _model(dtype=torch.float64)
    sgd = torch.optim.SGD(model.parameters(), lr=0.0)
    loss, accuracy = train_epoch(model, sgd, X, y, torch.arange(7), 3, gradients)
    assert seen == [3, 3, 1]
    assert loss.item() == pytest.approx((3 * 1 + 3 * 2 + 1 * 3) / 7)
    assert accuracy.item() == 0
