"""The stopping rule (digits_torch.optim.stopping) is scikit-learn's: the same losses and validation
scores count and stop as in MLPClassifier's own method and fits; and its bookkeeping of the best
epoch, its restart and its state dict are what a run and its resume need."""

from __future__ import annotations

import io
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from digits_torch.optim.schedule import lower_on_plateau
from digits_torch.optim.stopping import EarlyStopping


def _record(epoch, train_loss=1.0, val_loss=None, val_accuracy=None):
    """An epoch's record as the training loop writes it (None: no validation digits)."""
    return {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
            "val_accuracy": val_accuracy}  # fmt: skip


def _sklearn_counts(values, monitor, tol):
    """scikit-learn's ``_update_no_improvement_count`` on an MLPClassifier holding what its fit
    sets up: (epochs without progress, best score with larger better) after each value."""
    early_stopping = monitor == "val_accuracy"
    clf = MLPClassifier(tol=tol)
    clf._no_improvement_count, clf.loss_curve_, clf.validation_scores_ = 0, [], []
    clf.best_loss_, clf.best_validation_score_ = np.inf, -np.inf
    clf.coefs_, clf.intercepts_ = [], []
    counts = []
    for value in values:
        clf.loss_curve_.append(value)
        clf._score = lambda X, y, sample_weight, score=value: score  # the validation score
        clf._update_no_improvement_count(early_stopping, None, None, None)
        best = clf.best_validation_score_ if early_stopping else -clf.best_loss_
        counts.append((clf._no_improvement_count, best))
    return counts


def _our_counts(values, monitor, tol, patience=10):
    stopping = EarlyStopping(monitor, tol, patience)
    counts = []
    for epoch, value in enumerate(values, 1):
        stopping.update(_record(epoch, **{monitor: value}))
        counts.append((stopping.no_improvement_count_, stopping.best_score_))
    return counts


@pytest.mark.parametrize("monitor", ["train_loss", "val_accuracy"])
def test_the_counts_are_scikit_learns_methods_epoch_by_epoch(monitor):
    """A noisy curve on a grid of 1/64 with a tol of 2/64: improvements by less than, exactly
    and more than tol, ties and setbacks, all exact in binary."""
    rng = np.random.default_rng(0)
    trend = np.arange(120) // 4 if monitor == "val_accuracy" else np.arange(120, 0, -1) // 4
    values = [float(v) for v in (trend + rng.integers(0, 8, 120)) / 64]
    assert _our_counts(values, monitor, 2 / 64) == _sklearn_counts(values, monitor, 2 / 64)


@pytest.mark.parametrize("monitor", ["train_loss", "val_accuracy"])
def test_an_improvement_of_exactly_tol_is_progress_as_in_scikit_learn(monitor):
    """scikit-learn counts an epoch without progress when ``loss > best_loss - tol`` (a score:
    ``score < best + tol``), so an improvement of exactly tol resets the count; a hair less
    does not. 1.0, 0.75 and 0.25 are exact in binary."""
    sign = 1 if monitor == "val_accuracy" else -1
    first, tol = 0.5 if sign > 0 else 1.0, 0.25
    exactly = first + sign * tol
    short = math.nextafter(exactly, first)  # one ulp short of tol
    for second, count in [(exactly, 0), (short, 1)]:
        values = [first, second]
        ours = _our_counts(values, monitor, tol)
        assert [n for n, _ in ours] == [0, count]
        assert ours == _sklearn_counts(values, monitor, tol)


def _fit(digits, **params):
    """A scikit-learn fit on a tenth of the shipped digits that stops by its rule, not by
    max_iter (whose ConvergenceWarning fails the test). One BLAS thread: on products this small
    threads that wait for a shared core made the fit ten times slower."""
    X, y = digits[0][::10], digits[1][::10]
    clf = MLPClassifier((25,), solver="sgd", random_state=0, max_iter=1000, **params)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("error", ConvergenceWarning)
        return clf.fit(X, y)


@pytest.mark.parametrize("monitor", ["train_loss", "val_accuracy"])
def test_a_scikit_learn_fit_stops_at_the_epoch_the_rule_stops(digits, monitor):
    early = monitor == "val_accuracy"
    clf = _fit(digits, learning_rate_init=0.3 if early else 0.1, tol=1e-4 if early else 1e-3,
               early_stopping=early)  # fmt: skip
    stopping = EarlyStopping(monitor, clf.tol, clf.n_iter_no_change)
    said = []
    for epoch, loss in enumerate(clf.loss_curve_, 1):
        score = clf.validation_scores_[epoch - 1] if early else None
        record = _record(epoch, train_loss=loss, val_loss=loss if early else None,
                         val_accuracy=score)  # fmt: skip
        said.append(stopping.on_epoch_end(None, record))
    assert said == [None] * (clf.n_iter_ - 1) + ["converged"]
    if early:  # the best model: the first epoch of the best validation score
        assert stopping.best_val_accuracy_ == clf.best_validation_score_
        assert stopping.best_epoch_ == np.argmax(clf.validation_scores_) + 1
        assert stopping.best_epoch_ < clf.n_iter_
    else:  # no validation digits: the latest model
        assert stopping.best_score_ == -clf.best_loss_
        assert stopping.best_epoch_ == clf.n_iter_


def test_restart_after_lowering_the_lr_is_scikit_learns_adaptive_schedule(digits):
    """Where the rule would stop, adaptive divides the lr by 5 and restarts the count (as
    digits_torch.train.run_setup does): training ends where scikit-learn's adaptive fit ends,
    at scikit-learn's last lr."""
    clf = _fit(digits, learning_rate="adaptive", learning_rate_init=0.1, tol=1e-2)
    # the param groups are all lower_on_plateau reads (a first torch optimizer costs a second)
    sgd = SimpleNamespace(param_groups=[{"lr": clf.learning_rate_init}])
    stopping = EarlyStopping("train_loss", clf.tol, clf.n_iter_no_change)
    restarts, stopped = 0, None
    for epoch, loss in enumerate(clf.loss_curve_, 1):
        stopping.update(_record(epoch, train_loss=loss))
        if stopping.should_stop:
            if not lower_on_plateau(sgd):
                stopped = epoch
                break
            stopping.restart()
            restarts += 1
    assert stopped == clf.n_iter_ and restarts >= 2
    assert sgd.param_groups[0]["lr"] == clf._optimizer.learning_rate


def test_restart_clears_the_count_and_keeps_the_best():
    stopping = EarlyStopping("train_loss", tol=0.1, patience=1)
    for epoch in (1, 2, 3):
        stopping.update(_record(epoch, train_loss=1.0))
    assert stopping.should_stop and stopping.no_improvement_count_ == 2
    stopping.restart()
    assert not stopping.should_stop and stopping.no_improvement_count_ == 0
    assert stopping.best_score_ == -1.0
    stopping.update(_record(4, train_loss=1.0))  # no better than the best before the restart
    assert stopping.no_improvement_count_ == 1


@pytest.mark.parametrize("patience", [0, 1, 3])
def test_patience_epochs_without_progress_are_tolerated_and_0_never_stops(patience):
    """A flat loss: the first epoch is progress (from nothing), every later one is not; the
    rule stops after more than ``patience`` of them, at epoch patience + 2."""
    stopping = EarlyStopping("train_loss", tol=1e-4, patience=patience)
    said = [stopping.on_epoch_end(None, _record(epoch)) for epoch in range(1, 51)]
    if patience == 0:
        assert said == [None] * 50 and stopping.no_improvement_count_ == 49
    else:
        assert said == [None] * (patience + 1) + ["converged"] * (50 - patience - 1)


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_without_validation_metrics_the_train_loss_is_watched(monitor):
    losses = [1.0, 0.5, 0.45, 0.75, 0.25]  # progress, progress, less than tol, worse, progress
    counts = [0, 0, 1, 2, 0]
    stopping = EarlyStopping(monitor, tol=0.125, patience=10)
    for epoch, (loss, count) in enumerate(zip(losses, counts), 1):
        stopping.update(_record(epoch, train_loss=loss))
        assert stopping.no_improvement_count_ == count
    assert stopping.best_score_ == -min(losses)


def test_with_validation_metrics_the_monitored_one_is_watched():
    """The train loss falls all along; the validation loss rises: the count follows the
    validation loss."""
    stopping = EarlyStopping("val_loss", tol=0.125, patience=10)
    for epoch, val_loss in enumerate([1.0, 1.5, 2.0], 1):
        stopping.update(_record(epoch, train_loss=1 / epoch, val_loss=val_loss, val_accuracy=0.5))
    assert stopping.no_improvement_count_ == 2 and stopping.best_score_ == -1.0


def test_the_best_model_is_the_first_of_the_best_validation_accuracy():
    """Whatever is watched, and whether or not it is progress by tol."""
    accuracies = [0.5, 0.75, 0.75, 0.625, math.nextafter(0.75, 1)]
    stopping = EarlyStopping("train_loss", tol=0.125, patience=10)
    improved = [stopping.update(_record(e, val_accuracy=a)) for e, a in enumerate(accuracies, 1)]
    assert improved == [True, True, False, False, True]
    assert stopping.best_epoch_ == 5 and stopping.best_val_accuracy_ == accuracies[4]


def test_without_validation_the_best_model_is_the_latest():
    stopping = EarlyStopping("val_accuracy", tol=0.125, patience=10)
    improved = [stopping.update(_record(epoch, train_loss=epoch)) for epoch in (1, 2, 3)]
    assert improved == [True, True, True]  # though the loss rose
    assert stopping.best_epoch_ == 3 and stopping.best_val_accuracy_ == -1.0


def test_a_stopping_rule_resumed_from_its_state_dict_goes_on_identically():
    """Through torch.save and a weights-only load, as a checkpoint's "progress" entry."""
    rng = np.random.default_rng(1)
    records = [_record(epoch, train_loss=float(loss), val_accuracy=float(acc))
               for epoch, (loss, acc) in enumerate(rng.random((40, 2)), 1)]  # fmt: skip
    whole, first = (EarlyStopping("val_accuracy", tol=0.05, patience=5) for _ in range(2))
    said_whole = [whole.on_epoch_end(None, record) for record in records]
    said_first = [first.on_epoch_end(None, record) for record in records[:20]]
    state = first.state_dict()
    assert state["no_progress"] > 0 and 1 < state["best_epoch"] < 20  # a state worth keeping
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    resumed = EarlyStopping("val_accuracy", tol=0.05, patience=5)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.state_dict() == state
    said_resumed = [resumed.on_epoch_end(None, record) for record in records[20:]]
    assert said_first + said_resumed == said_whole
    assert resumed.state_dict() == whole.state_dict()
