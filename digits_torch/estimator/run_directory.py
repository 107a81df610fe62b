"""``MLPClassifier(logdir=...)``: each fit writes a run directory with the package's writers.

``<logdir>/<date>-<time>-estimator/`` holds ``config.json`` (the estimator's parameters),
``history.jsonl`` and TensorBoard events (one record per epoch, written by a callback on the
epochs, as the core loop's callbacks are), ``metrics.json`` (the fitted figures) and, where the
data are digits (square images, ten classes 0..9 or ex4's 1..10), the run's pictures in
``figures/``: 100 digits, the hidden units, the mistakes and the confusion matrix.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..core.model import MLP
from ..plots import render, run_figures, save_png
from ..store.run_contents import FIGURES
from ..store.run_log import RunLog
from ..store.runs import RunLock, new_run_dir

__all__ = ["RunDirectory"]


class RunDirectory:
    """A new run directory for one fit (holding its lock until :meth:`close`).

    Args:
        logdir: where run directories are made.
        params: the estimator's parameters (written as config.json).
    """

    def __init__(self, logdir, params: dict) -> None:
        self.dir = new_run_dir(logdir, "estimator")
        self._lock = RunLock(self.dir)
        config = {key: _json_ready(value) for key, value in params.items()}
        self._log = RunLog(self.dir, config)

    def on_epoch_end(self, model: MLP, record: dict) -> str | None:
        """A core-loop callback: log the epoch's record; never stops training."""
        self._log.log_epoch(record)
        return None

    def close(self, estimator=None, X: np.ndarray | None = None, y=None) -> None:
        """Given the fitted ``estimator``: write its figures and, for digits, the pictures of
        the network on the training data (X, y (m,) labels); then flush and release the
        directory (without: a fit that failed, its epochs so far kept)."""
        try:
            if estimator is None:
                return
            metrics = {
                name: _json_ready(getattr(estimator, name, None))
                for name in ("n_iter_", "loss_", "best_loss_", "best_validation_score_", "t_")
            }
            self._log.write_metrics(metrics)
            digits = _digits(estimator, X, y)
            if digits is not None:
                model = digit_model(estimator)
                figures = run_figures(model, X, digits, data=(X, digits))
                for name, figure in figures.items():
                    save_png(render(figure), self.dir / FIGURES / f"{name}.png")
        finally:
            self._log.close()
            self._lock.release()


def _digits(estimator, X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The digits 0..9 of labels y where the fit was on digits (square images, ten classes 0..9
    or ex4's 1..10, its 10 the digit 0), else None."""
    classes = estimator.classes_
    side = math.isqrt(X.shape[1])
    multiclass = estimator._label_binarizer.y_type_ == "multiclass"
    if side * side != X.shape[1] or classes.dtype.kind not in "iu" or not multiclass:
        return None
    if set(classes.tolist()) not in ({*range(10)}, {*range(1, 11)}):
        return None
    return np.asarray(y) % 10


def digit_model(estimator) -> MLP:
    """The fitted network as an MLP whose output unit d is the digit d (the pictures' layout):
    scikit-learn's units follow the sorted labels, so ex4's 1..10 put the digit 0 last."""
    coefs, intercepts = estimator.coefs_, estimator.intercepts_
    activation = {"logistic": "sigmoid"}.get(estimator.activation, estimator.activation)
    hidden = [c.shape[1] for c in coefs[:-1]]
    model = MLP(coefs[0].shape[0], hidden, 10, activation, generator=torch.Generator())
    rows = torch.from_numpy(np.argsort(estimator.classes_ % 10))  # unit of each digit
    with torch.no_grad():
        model.double()
        for i, (layer, coef, intercept) in enumerate(zip(model.layers, coefs, intercepts)):
            weight = torch.from_numpy(coef.T.astype(np.float64))
            bias = torch.from_numpy(intercept.astype(np.float64))
            if i == len(coefs) - 1:
                weight, bias = weight[rows], bias[rows]
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
    return model.float()


def _json_ready(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)
