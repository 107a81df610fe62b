"""The epoch loop (digits_torch.train.run_loop) driven by fakes of its protocols: each epoch's
steps in the promised order (bookkeeping, clock, divergence, log, best weights, pictures after
the sync, the stop agreed before the saves, then acted on); seconds carried over from before the
loop; a diverged network not logged and handed on; no saves where nothing is written. Then
OneNetwork on a real run of 40 shipped digits: its record, its finite flag, its revival before the
validation metrics, and its best weights a copy. A stack's and a solo run's whole training in
this loop are tests/sweep/test_sweep.py's."""

from __future__ import annotations

import dataclasses
import math
import signal
from types import SimpleNamespace

import pytest
import torch

from digits_torch import make_config
from digits_torch.core.losses import score
from digits_torch.errors import Interrupted
from digits_torch.recipes.dead_units import revival_due, revival_generator
from digits_torch.runtime.interrupts import StopRequests
from digits_torch.train import run_loop
from digits_torch.train.run_loop import OneNetwork, train_epochs, val_metrics
from digits_torch.train.run_setup import set_up


class _Run:
    """A network as the loop sees it: its bookkeeping scripted (the epochs it improves in, its
    last epoch, the epoch its loss stops being finite), its files those of :class:`_Files`."""

    def __init__(self, name, calls, last=2, improves=(), pictures=(), diverges=None, seconds=0.0):
        self.name, self.calls, self.last = name, calls, last
        self.improves, self.diverges = set(improves), diverges
        self.epoch, self.seconds, self.status = 0, seconds, "training"
        self.files = None if pictures is None else _Files(self, set(pictures))

    def end_epoch(self, record, finite):
        self.calls.append(("end_epoch", self.name, record["epoch"]))
        if not finite:
            self.status = "diverged"
            return False
        self.epoch = record["epoch"]
        if self.epoch >= self.last:
            self.status = "max_epochs"
        return self.epoch in self.improves


class _Files:
    def __init__(self, run, pictures):
        self.run, self.pictures = run, pictures

    def log_epoch(self, record):
        self.run.calls.append(("log_epoch", self.run.name, record["epoch"]))

    def pictured(self, epoch):
        return epoch in self.pictures

    def log_picture(self):
        self.run.calls.append(("log_picture", self.run.name))


class _Trainer:
    """An EpochTrainer whose epochs return each network's scripted record; ``signal_at``: the
    epoch during which Ctrl-C comes."""

    def __init__(self, runs, calls, requests=None, signal_at=None):
        self.trainees, self.calls = list(runs), calls
        self.requests, self.signal_at, self.epochs = requests, signal_at, 0

    def train_epoch(self):
        self.epochs += 1
        self.calls.append(("train_epoch",))
        if self.epochs == self.signal_at:
            self.requests.signum = signal.SIGINT
        results = []
        for run in self.trainees:
            epoch = run.epoch + 1
            record = {"epoch": epoch, "train_loss": 1.0 / epoch, "train_accuracy": epoch / 10,
                      "val_loss": None, "val_accuracy": 0.05 * epoch}  # fmt: skip
            results.append((run, record, epoch != run.diverges))
        return results

    def keep_best(self, run):
        self.calls.append(("keep_best", run.name))

    def end_epoch(self):
        self.calls.append(("trainer.end_epoch",))
        self.trainees = [r for r in self.trainees if r.status == "training"]

    def sync(self):
        self.calls.append(("sync",))


class _Saves:
    def __init__(self, calls):
        self.calls = calls

    def after_epoch(self, stop):
        self.calls.append(("after_epoch", stop))

    def final(self):
        self.calls.append(("final",))


class _Requests(StopRequests):
    """The real StopRequests (not entered: no handlers), its two calls recorded."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def agreed(self):
        self.calls.append(("agreed",))
        return super().agreed()

    def act(self):
        self.calls.append(("act",))
        super().act()


class _Bar:
    def __init__(self):
        self.postfixes, self.updates = [], 0

    def set_postfix(self, postfix, refresh=True):
        self.postfixes.append(postfix)

    def update(self, n=1):
        self.updates += n


def _train(runs, saves=True, signal_at=None, on_diverged=None):
    """Train fake ``runs`` in the loop: (the calls in order, the bar)."""
    calls = runs[0].calls
    requests = _Requests(calls)
    trainer = _Trainer(runs, calls, requests, signal_at)
    bar = _Bar()
    train_epochs(trainer, _Saves(calls) if saves else None, requests, bar, on_diverged)
    return calls, bar


def test_each_epoch_takes_its_steps_in_order_and_the_saves_end_it():
    calls = []
    a = _Run("a", calls, improves={1}, pictures={2})
    b = _Run("b", calls, improves={2}, pictures={1, 2})
    _train([a, b])
    epoch_end = [("agreed",), ("after_epoch", False), ("act",)]
    assert calls == [
        ("train_epoch",),
        *[("end_epoch", "a", 1), ("log_epoch", "a", 1), ("keep_best", "a")],
        *[("end_epoch", "b", 1), ("log_epoch", "b", 1)],
        *[("trainer.end_epoch",), ("sync",), ("log_picture", "b")],
        *epoch_end,
        ("train_epoch",),
        *[("end_epoch", "a", 2), ("log_epoch", "a", 2)],
        *[("end_epoch", "b", 2), ("log_epoch", "b", 2), ("keep_best", "b")],
        *[("trainer.end_epoch",), ("sync",), ("log_picture", "a"), ("log_picture", "b")],
        *epoch_end,
        ("final",),
    ]


def test_the_best_weights_are_kept_exactly_in_the_epochs_that_improved():
    calls = []
    runs = [_Run("a", calls, last=4, improves={1, 3}), _Run("b", calls, last=4, improves={4})]
    _train(runs)
    kept = [
        (c[1], calls[i - 2][2]) for i, c in enumerate(calls) if c[0] == "keep_best"
    ]  # the epoch of the end_epoch two calls before (after its log)
    assert kept == [(r.name, e) for e in range(1, 5) for r in runs if e in r.improves]


def test_no_picture_no_sync_and_a_network_without_files_is_trained_and_not_logged():
    calls = []
    _train([_Run("a", calls, pictures=()), _Run("b", calls, pictures=None, improves={1})])
    assert ("sync",) not in calls
    assert not [c for c in calls if c[0] in ("log_epoch", "log_picture") and c[1] == "b"]
    assert [c for c in calls if c[1:] and c[1] == "b"] == [
        ("end_epoch", "b", 1), ("keep_best", "b"), ("end_epoch", "b", 2)
    ]  # fmt: skip


def test_seconds_go_on_from_each_networks_own_before_the_loop(monkeypatch):
    ticks = iter(range(100))
    step = 0.25
    monkeypatch.setattr(run_loop, "time", SimpleNamespace(perf_counter=lambda: step * next(ticks)))
    calls, logged = [], []
    a, b = _Run("a", calls, last=3, seconds=7.0), _Run("b", calls, last=3, seconds=100.0)
    a.files.log_epoch = lambda record: logged.append(("a", record["seconds"], a.seconds))
    b.files.log_epoch = lambda record: logged.append(("b", record["seconds"], b.seconds))
    _train([a, b])
    # tick 0 starts the clock; then one tick per network per epoch
    assert logged == [
        (r.name, before + step * tick, before + step * tick)
        for tick, (r, before) in enumerate([(a, 7.0), (b, 100.0)] * 3, 1)
    ]


@pytest.mark.parametrize("handled", [True, False])
def test_a_diverged_network_is_handed_on_unlogged_and_the_others_go_on(handled):
    calls, diverged = [], []
    a = _Run("a", calls, last=3, pictures={1, 2, 3})
    b = _Run("b", calls, last=3, improves={2}, pictures={1, 2, 3}, diverges=2)
    on_diverged = (lambda run, record: diverged.append((run, dict(record)))) if handled else None
    _train([a, b], on_diverged=on_diverged)
    b_calls = [c for c in calls if c[1:] and c[1] == "b"]
    assert b_calls == [("end_epoch", "b", 1), ("log_epoch", "b", 1), ("log_picture", "b"),
                       ("end_epoch", "b", 2)]  # fmt: skip
    assert (a.epoch, a.status, b.status) == (3, "max_epochs", "diverged")
    if handled:
        assert [(run, record["epoch"]) for run, record in diverged] == [(b, 2)]
        assert diverged[0][1]["seconds"] == b.seconds


@pytest.mark.parametrize("saves", [True, False])
def test_a_stop_is_agreed_before_the_saves_and_acted_on_after_them_without_final(saves):
    calls = []
    with pytest.raises(Interrupted) as raised:
        _train([_Run("a", calls, last=5)], saves=saves, signal_at=2)
    assert raised.value.signum == signal.SIGINT
    end = [("agreed",), *([("after_epoch", True)] if saves else []), ("act",)]
    assert calls[-len(end) :] == end
    assert calls.count(("train_epoch",)) == 2 and ("final",) not in calls


def test_without_saves_nothing_is_written_but_every_epoch_is_agreed_on():
    calls = []
    _train([_Run("a", calls, last=3)], saves=False)
    assert not [c for c in calls if c[0] in ("after_epoch", "final")]
    assert calls.count(("agreed",)) == calls.count(("act",)) == calls.count(("train_epoch",)) == 3


def test_the_bar_counts_epochs_and_shows_a_lone_networks_numbers():
    calls = []
    a, b = _Run("a", calls, last=1), _Run("b", calls, last=3)
    records = []
    b.files.log_epoch = records.append
    _, bar = _train([a, b])
    assert bar.updates == 3
    assert [p["loss"] for p in bar.postfixes] == [f"{r['train_loss']:.4f}" for r in records[1:]]
    assert [p["val_acc"] for p in bar.postfixes] == [
        f"{r['val_accuracy']:.4f}" for r in records[1:]
    ]


@pytest.fixture
def run(small_digits):
    """A real run on 40 shipped digits with validation digits, before its first epoch."""
    config = make_config("seed", device="cpu", data=str(small_digits), val_fraction=0.25)
    return set_up(dataclasses.replace(config, epochs=3))


def test_one_network_trains_its_run_one_epoch_and_scores_it_on_the_validation_digits(run):
    before = [p.clone() for p in run.model.parameters()]
    [(same, record, finite)] = OneNetwork(run).train_epoch()
    assert same is run and finite and record["epoch"] == run.epoch + 1 == 1
    assert any(not torch.equal(p, q) for p, q in zip(run.model.parameters(), before))
    val_loss, val_accuracy = score(run.model, *run.val, run.recipe.objective.loss)
    assert (record["val_loss"], record["val_accuracy"]) == (val_loss, val_accuracy)
    assert math.isfinite(record["train_loss"]) and 0 <= record["train_accuracy"] <= 1


@pytest.mark.parametrize("bad", ["loss", "weights"])
def test_a_nan_loss_or_a_nan_weight_is_not_finite(run, bad):
    loss = torch.tensor(math.nan if bad == "loss" else 0.5)
    run.epoch_function = lambda: (loss, torch.tensor(0.5))
    if bad == "weights":
        with torch.no_grad():
            run.model.layers[1].bias[3] = math.nan
    [(_, record, finite)] = OneNetwork(run).train_epoch()
    assert not finite and record["train_accuracy"] == 0.5


def test_dead_units_are_revived_when_due_before_the_validation_digits_are_scored(run, monkeypatch):
    """The revival's generator and digits are the run's; the record scores the revived model."""
    epochs = 10
    run = set_up(dataclasses.replace(run.config, epochs=epochs, revive_dead_units=True))
    revived = []

    def revive(model, optimizer, X, generator):
        revived.append(run.epoch + 1)
        assert model is run.model and optimizer is run.optimizer and torch.equal(X, run.train[0])
        assert torch.equal(
            generator.get_state(), revival_generator(run.recipe.seed, run.epoch + 1).get_state()
        )
        with torch.no_grad():
            model.layers[0].weight.zero_()

    monkeypatch.setattr(run_loop, "revive", revive)
    trainer = OneNetwork(run)
    for _ in range(epochs):
        [(_, record, finite)] = trainer.train_epoch()
        val = score(run.model, *run.val, run.recipe.objective.loss)
        assert (record["val_loss"], record["val_accuracy"]) == val
        run.end_epoch(record, finite)
    assert revived == [e for e in range(1, epochs + 1) if revival_due(e, epochs)] != []


def test_the_best_weights_are_a_copy_and_an_ended_run_leaves(run):
    trainer = OneNetwork(run)
    with torch.no_grad():
        run.model.layers[0].weight.add_(1.0)
    trainer.keep_best(run)
    weights = {k: v.clone() for k, v in run.model.state_dict().items()}
    assert all(torch.equal(run.best[k], v) for k, v in weights.items())
    with torch.no_grad():
        run.model.layers[0].weight.add_(1.0)
    assert all(torch.equal(run.best[k], v) for k, v in weights.items())
    trainer.end_epoch()
    assert trainer.trainees == [run]
    run.status = "converged"
    trainer.end_epoch()
    assert trainer.trainees == [] and OneNetwork(run).trainees == []


def test_val_metrics_are_none_without_validation_digits(run):
    assert val_metrics(run.model, None, "softmax") == {"val_loss": None, "val_accuracy": None}
