"""The estimator's three solvers, as scikit-learn's ``MLPClassifier`` runs them.

* sgd and adam (:func:`fit_stochastic`): epochs of the core loop's minibatch epoch
  (:func:`digits_torch.core.loop.train_epoch`), with scikit-learn's bookkeeping around each:
  ``loss_curve_``, ``t_``, the verbose lines, the stopping rule on the training loss or the
  validation accuracy (:class:`digits_torch.optim.stopping.EarlyStopping`), the ``invscaling`` and
  ``adaptive`` learning rates, the best weights kept and restored with early stopping, and the
  ``ConvergenceWarning`` at ``max_iter``.
* lbfgs (:func:`fit_lbfgs`): scipy's own L-BFGS-B on the package's float64 objective and
  gradient (:class:`~digits_torch.estimator.arithmetic.SklearnBackprop`), with scikit-learn's
  ``max_iter``, ``max_fun`` and ``tol``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch
from sklearn.exceptions import ConvergenceWarning

from ..core.loop import Callback, Gradients, train_epoch
from ..core.model import MLP
from ..optim.optimizers import optimizer_step
from ..optim.schedule import inv_scaled, lower_on_plateau
from ..optim.stopping import EarlyStopping

__all__ = ["Epochs", "fit_lbfgs", "fit_stochastic"]

_SCIPY = tuple(int(part) for part in scipy.__version__.split(".")[:2])


@dataclass
class Epochs:
    """What the stochastic solvers train on and how, resolved by the estimator.

    Attributes:
        X: (m, n) training images on the device; targets: what ``gradients`` takes for them
            ((m, k) indicator rows, or (m,) class indices).
        order: the next epoch's order of the m rows, (m,) int64 on the CPU.
        batch_size: rows a step (scikit-learn's ``min(200, m)`` for "auto", clipped to m).
        validation: held-out images (v, n) and a function of them to their accuracy, or None.
        callbacks: told each epoch's record (``epoch``, ``train_loss``, ``train_accuracy``,
            ``val_accuracy``, ``lr``), as the core loop's callbacks are.
    """

    X: torch.Tensor
    targets: torch.Tensor
    gradients: Gradients
    order: Callable[[int], torch.Tensor]
    batch_size: int
    validation: tuple[torch.Tensor, Callable[[torch.Tensor], float]] | None = None
    callbacks: Sequence[Callback] = ()


def fit_stochastic(
    est, model: MLP, optimizer: torch.optim.Optimizer, epochs: Epochs, incremental: bool
) -> None:
    """Train for at most ``est.max_iter`` epochs (one if ``incremental``), updating ``est``'s
    ``n_iter_``, ``t_``, ``loss_``, ``loss_curve_``, ``validation_scores_`` and stopping state as
    scikit-learn does; with early stopping, ``model`` ends with the best weights."""
    stopping: EarlyStopping = est._stopping
    m = len(epochs.targets)
    best = [p.detach().clone() for p in model.parameters()]
    if est._best_params is not None:
        best = [torch.as_tensor(a).to(p) for a, p in zip(est._best_params, best)]
    est.n_iter_ = 0
    try:
        for _ in range(est.max_iter):
            order = epochs.order(m).to(epochs.X.device)
            lr = optimizer.param_groups[0]["lr"]
            # a fused torch SGD steps by optimizer_step's shortcut once its momentum buffers
            # exist (the same update without Optimizer.step's bookkeeping); others by step()
            loss, accuracy = train_epoch(
                model,
                optimizer,
                epochs.X,
                epochs.targets,
                order,
                epochs.batch_size,
                epochs.gradients,
                step=optimizer_step(optimizer),
            )
            est.n_iter_ += 1
            est.loss_ = loss.item()
            est.t_ += m
            est.loss_curve_.append(est.loss_)
            if est.verbose:
                print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
            record = {"epoch": len(est.loss_curve_), "train_loss": est.loss_, "lr": lr}
            record |= {"train_accuracy": accuracy.item(), "val_accuracy": None}
            if _count(est, record, epochs, stopping):
                best = [p.detach().clone() for p in model.parameters()]
            for callback in epochs.callbacks:
                callback.on_epoch_end(model, record)
            if est.solver == "sgd" and est.learning_rate == "invscaling":
                _set_lr(optimizer, inv_scaled(float(est.learning_rate_init), est.t_, est.power_t))
            if stopping.should_stop and _stops(est, optimizer):
                break
            if incremental:
                break
            if est.n_iter_ == est.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and "
                    "the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.", stacklevel=4)
    est._best_params = [p.detach().cpu().numpy().copy() for p in best]
    if epochs.validation is not None:  # restore the best weights
        with torch.no_grad():
            for p, b in zip(model.parameters(), best):
                p.copy_(b)


def _count(est, record: dict, epochs: Epochs, stopping: EarlyStopping) -> bool:
    """scikit-learn's ``_update_no_improvement_count`` on the epoch's ``record`` (its validation
    accuracy filled in here); returns whether the weights are the best so far by validation
    accuracy (never without validation)."""
    if epochs.validation is not None:
        X_val, accuracy = epochs.validation
        record["val_accuracy"] = score = accuracy(X_val)
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
    improved = stopping.update(record)
    return improved and epochs.validation is not None


def _stops(est, optimizer: torch.optim.Optimizer) -> bool:
    """scikit-learn's ``trigger_stopping`` after ``n_iter_no_change`` epochs without progress:
    stop, or with the adaptive schedule lr / 5 and go on (until lr <= 1e-6)."""
    watched = "Validation score" if est.early_stopping else "Training loss"
    msg = (
        f"{watched} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} "
        "consecutive epochs."
    )
    if est.solver != "sgd" or est.learning_rate != "adaptive":
        if est.verbose:
            print(msg + " Stopping.")
        return True
    if not lower_on_plateau(optimizer):
        if est.verbose:
            print(msg + " Learning rate too small. Stopping.")
        return True
    if est.verbose:
        print(f"{msg} Setting learning rate to {optimizer.param_groups[0]['lr']:f}")
    est._stopping.restart()
    return False


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def fit_lbfgs(est, model: MLP, X: torch.Tensor, targets: torch.Tensor, gradients: Gradients):
    """Minimise the whole data's objective with scipy's L-BFGS-B, as scikit-learn does: the
    parameters packed as one float64 vector, coefs_ (in, out) of each layer raveled, then the
    intercepts. Sets ``n_iter_`` and ``loss_`` (and warns as scikit-learn when not converged)."""
    params = list(model.parameters())  # weight, bias, weight, bias, ...
    weights, biases = params[0::2], params[1::2]

    def pack(tensors_w, tensors_b) -> np.ndarray:
        parts = [w.detach().t().cpu().double().numpy().ravel() for w in tensors_w]
        parts += [b.detach().cpu().double().numpy() for b in tensors_b]
        return np.hstack(parts)

    def unpack(packed: np.ndarray) -> None:
        start = 0
        with torch.no_grad():
            for w in weights:
                n_out, n_in = w.shape
                block = packed[start : start + n_in * n_out].reshape(n_in, n_out)
                w.copy_(torch.from_numpy(block.T.copy()))
                start += n_in * n_out
            for b in biases:
                b.copy_(torch.from_numpy(packed[start : start + len(b)]))
                start += len(b)

    def loss_and_grad(packed: np.ndarray) -> tuple[float, np.ndarray]:
        unpack(packed)
        loss, _ = gradients(model, X, targets)
        return loss.item(), pack([w.grad for w in weights], [b.grad for b in biases])

    iprint = 1 if est.verbose is True or est.verbose >= 1 else -1
    result = scipy.optimize.minimize(
        loss_and_grad,
        pack(weights, biases),
        method="L-BFGS-B",
        jac=True,
        options={
            "maxfun": est.max_fun,
            "maxiter": est.max_iter,
            "gtol": est.tol,
            **({"iprint": iprint} if _SCIPY < (1, 15) else {}),  # deprecated from 1.15
        },
    )
    est.n_iter_ = _lbfgs_iterations(result, est.max_iter)
    est.loss_ = result.fun
    unpack(result.x)


def _lbfgs_iterations(result: scipy.optimize.OptimizeResult, max_iter: int) -> int:
    """L-BFGS-B's iterations (at most ``max_iter``), with scikit-learn's ConvergenceWarning, word
    for word, where it did not converge."""
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        message = (
            f"lbfgs failed to converge after {n_iter} iteration(s) (status={result.status}):\n"
            f"{result.message}\n"
        )
        if n_iter == max_iter:
            message += (
                "\nIncrease the number of iterations to improve the convergence "
                f"(max_iter={max_iter})."
            )
        message += (
            "\nYou might also want to scale the data as shown in:\n"
            "    https://scikit-learn.org/stable/modules/preprocessing.html"
        )
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return n_iter
