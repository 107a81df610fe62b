"""Early stopping and the best model so far, as scikit-learn's MLPClassifier keeps them.

scikit-learn's rule (``_update_no_improvement_count``): an epoch makes progress when the watched
metric beats the best so far by ``tol`` or more; training stops after more than ``patience``
epochs in a row without progress (``n_iter_no_change``). Losses count as their negatives, so for
every metric larger is better.

Separately, the best model is the one with the best validation accuracy (the latest, when there
are no validation digits): it is what ``best.pt`` holds and what a run reports.
"""

from __future__ import annotations

import math

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """The stopping rule and best-epoch bookkeeping of one run.

    Args:
        monitor: the record key watched: ``train_loss``, ``val_loss`` or ``val_accuracy``. An
            epoch without validation metrics (data too small to hold out a digit) watches
            ``train_loss`` instead.
        tol: the smallest improvement that counts as progress.
        patience: epochs without progress tolerated; 0 never stops.

    Attributes:
        best_score_: the best watched metric so far (larger is better).
        no_improvement_count_: epochs in a row without progress.
        best_val_accuracy_: the best validation accuracy so far (-1 before any).
        best_epoch_: the epoch of the best model (0 before the first).
    """

    def __init__(self, monitor: str, tol: float, patience: int) -> None:
        self.monitor, self.tol, self.patience = monitor, tol, patience
        self.best_score_ = -math.inf
        self.no_improvement_count_ = 0
        self.best_val_accuracy_ = -1.0
        self.best_epoch_ = 0

    def update(self, record: dict) -> bool:
        """Count one epoch's ``record``; returns whether its model is the best so far."""
        key = self.monitor if record[self.monitor] is not None else "train_loss"
        watched = record[key] * (1 if key == "val_accuracy" else -1)
        if watched < self.best_score_ + self.tol:
            self.no_improvement_count_ += 1
        else:
            self.no_improvement_count_ = 0
        self.best_score_ = max(self.best_score_, watched)

        val = record["val_accuracy"]
        improved = val is None or val > self.best_val_accuracy_
        if improved:
            self.best_val_accuracy_ = -1.0 if val is None else val
            self.best_epoch_ = record["epoch"]
        return improved

    @property
    def should_stop(self) -> bool:
        """More than ``patience`` epochs in a row without progress (never, for patience 0)."""
        return self.patience > 0 and self.no_improvement_count_ > self.patience

    def on_epoch_end(self, model, record: dict) -> str | None:
        """As a callback of :func:`digits_torch.core.loop.train`: count the record, and stop
        ("converged") once the rule says so."""
        self.update(record)
        return "converged" if self.should_stop else None

    def restart(self) -> None:
        """Go on as if progress had just been made (scikit-learn's adaptive lr, after lr / 5)."""
        self.no_improvement_count_ = 0

    # The checkpoint's "progress" entry: these keys since the first checkpoint format.
    def state_dict(self) -> dict:
        return {
            "best_watched": self.best_score_,
            "no_progress": self.no_improvement_count_,
            "best_val_accuracy": self.best_val_accuracy_,
            "best_epoch": self.best_epoch_,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_score_ = float(state["best_watched"])
        self.no_improvement_count_ = int(state["no_progress"])
        self.best_val_accuracy_ = float(state["best_val_accuracy"])
        self.best_epoch_ = int(state["best_epoch"])
