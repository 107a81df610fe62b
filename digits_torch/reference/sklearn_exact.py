"""scikit-learn's ``MLPClassifier(solver="sgd")``, step for step, in PyTorch.

``python train.py --preset sklearn`` trains exactly what

    MLPClassifier(hidden_layer_sizes=(25,), solver="sgd", random_state=0, max_iter=1000,
                  alpha=1e-4, tol=1e-9)

trains: in float64 the weights after every epoch, ``loss_curve_`` and ``n_iter_`` agree with
scikit-learn's to rounding (tests/reference/test_sklearn_exact.py checks 1e-8). What that takes,
piece by piece, each written from scikit-learn's ``sklearn/neural_network`` source:

* :class:`RandomStream`: every random number comes from one ``numpy.random.RandomState(seed)``,
  drawn in MLPClassifier's order: the initial weights (Glorot uniform, per layer the (fan_in,
  fan_out) weight matrix, then the bias), then the early-stopping split (``train_test_split``,
  which MLPClassifier does not stratify for ten classes), then one shuffle per epoch, each
  applied to the previous epoch's order.
* :func:`output_digits`: scikit-learn numbers its output units by the sorted labels it is given,
  and an ex4 file's labels are 1..10, so the digit 0 is its last unit; the initial output
  weights are placed so that our unit d is still the digit d.
* :func:`log_loss`: the batch's mean softmax log-loss with probabilities clipped to
  [eps, 1 - eps]; the clipping changes the reported value only, the gradient is y_prob - y.
* :func:`train_epoch`: batches of the shuffled rows; each batch's objective adds
  alpha / (2 * batch size) * (sum of squared weights, biases excluded); the epoch's loss
  (an entry of ``loss_curve_``) is the batch objectives averaged with batch-size weights.
* :class:`SklearnSGD`: Nesterov momentum as scikit-learn writes it. The velocity is the last step,
  in parameter units (v = momentum * v - lr * grad), where torch.optim.SGD keeps a sum of
  gradients that the *current* lr multiplies: the two agree while lr is constant and part when a
  schedule changes it.

The ``learning_rate`` schedules ``invscaling`` and ``adaptive`` live with the other schedules in
:mod:`digits_torch.optim.schedule`, so every preset can use them.

:data:`SKLEARN_FIELDS` and :func:`config_fields` translate MLPClassifier's parameters into
TrainConfig fields. The stopping rule (``tol``, ``n_iter_no_change``, ``early_stopping`` on
validation accuracy) lives in :mod:`digits_torch.optim.stopping` and restoring the best weights in
:mod:`digits_torch.train.training`, shared with the other presets.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..config.config import sklearn_fields
from ..core.data import load_digits
from ..core.loop import Objective
from ..core.loop import train_epoch as core_epoch
from ..core.losses import smoothed_targets
from ..core.model import MLP
from ..errors import UserError
from ..optim.without_dynamo import WithoutDynamo

__all__ = [
    "SKLEARN_FIELDS",
    "RandomStream",
    "SklearnAdam",
    "SklearnObjective",
    "SklearnSGD",
    "config_fields",
    "log_loss",
    "output_digits",
    "unit_digits",
    "train_epoch",
]

# MLPClassifier's parameters (solver="sgd") -> the TrainConfig fields that mean the same
# (declared with each field). early_stopping True is stop_on "val_accuracy", False "train_loss".
SKLEARN_FIELDS = sklearn_fields()


def config_fields(params: dict) -> dict:
    """TrainConfig overrides meaning what ``MLPClassifier(**params)`` means (solver "sgd").

    ``make_config("sklearn", **config_fields(params))`` then trains what scikit-learn trains.
    Parameters left out keep our defaults, which are MLPClassifier's.
    """
    params = dict(params)
    if params.pop("solver", "sgd") != "sgd":
        raise ValueError("only MLPClassifier's sgd solver has a TrainConfig equivalent")
    unknown = set(params) - set(SKLEARN_FIELDS)
    if unknown:
        raise ValueError(f"no TrainConfig field for MLPClassifier's {', '.join(sorted(unknown))}")
    if "early_stopping" in params:
        params["early_stopping"] = "val_accuracy" if params["early_stopping"] else "train_loss"
    if params.get("early_stopping", "train_loss") == "train_loss":
        params.pop("validation_fraction", None)  # MLPClassifier holds nothing out then
    if params.get("batch_size") == "auto":
        params["batch_size"] = 200  # "auto" is min(200, m); our batch size is capped at m too
    return {SKLEARN_FIELDS[name]: value for name, value in params.items()}


# ----------------------------------------------------------------------- random numbers


class RandomStream:
    """The one ``numpy.random.RandomState(seed)`` MLPClassifier draws everything from.

    Call its methods in scikit-learn's order: :meth:`init_`, then :meth:`split` (only with early
    stopping), then :meth:`order` once per epoch.
    """

    def __init__(self, seed: int | np.random.RandomState) -> None:
        # a RandomState is drawn from as it is (scikit-learn's random_state may be one)
        is_state = isinstance(seed, np.random.RandomState)
        self.random_state = seed if is_state else np.random.RandomState(seed)
        self._order: np.ndarray | None = None  # this epoch's order of the training rows

    @torch.no_grad()
    def init_(self, model: MLP, unit_digits: np.ndarray | None = None) -> None:
        """Redraw ``model``'s weights as MLPClassifier does (Glorot uniform), in place.

        Per layer, the (fan_in, fan_out) weight matrix is drawn first, then the bias, both
        uniform in [-b, b] with b = sqrt(factor / (fan_in + fan_out)), factor 2 for the logistic
        activation and 6 otherwise. torch stores the weight as (fan_out, fan_in): the transpose.

        Args:
            model: the network; its output unit d is the digit d.
            unit_digits: the digit of each of scikit-learn's output units, in its order (see
                :func:`output_digits`); ``None``: 0..9.
        """
        factor = 2.0 if model.activation == "sigmoid" else 6.0
        last = len(model.layers) - 1
        for i, layer in enumerate(model.layers):
            fan_out, fan_in = layer.weight.shape
            bound = math.sqrt(factor / (fan_in + fan_out))  # correctly rounded, as np.sqrt
            weight = self.random_state.uniform(-bound, bound, (fan_in, fan_out)).T
            bias = self.random_state.uniform(-bound, bound, fan_out)
            rows = slice(None)
            if i == last and unit_digits is not None:
                rows = torch.from_numpy(np.asarray(unit_digits, dtype=np.int64))
            # rounded to the model's dtype (index_put, for unit_digits' rows, will not round)
            layer.weight[rows] = torch.from_numpy(weight).to(layer.weight.dtype)
            layer.bias[rows] = torch.from_numpy(bias).to(layer.bias.dtype)

    def split(self, m: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """MLPClassifier's early-stopping split of m rows: ``train_test_split(test_size=fraction)``.

        For more than two classes MLPClassifier does not stratify (it stratifies only a single
        output column), so this is one random permutation: its first ceil(fraction * m) rows are
        the validation set, the rest the training set, both in the permutation's order (which
        matters: each epoch's shuffle permutes the training order).

        Returns:
            ``(train, validation)`` row indices, int64.
        """
        n_val = math.ceil(fraction * m)
        if n_val < 2 or n_val >= m:
            raise UserError(
                f"early stopping: a validation fraction of {fraction} holds out {n_val} of {m} "
                "rows; scikit-learn needs at least 2, and rows left to train on"
            )
        permutation = self.random_state.permutation(m)
        return permutation[n_val:].astype(np.int64), permutation[:n_val].astype(np.int64)

    def order(self, m: int) -> torch.Tensor:
        """The next epoch's order of the m training rows, shape (m,) int64, on the CPU.

        scikit-learn shuffles an index array instead of the data and keeps the result, so each
        epoch's order is a fresh permutation of the previous epoch's order, not of 0..m-1.
        """
        if self._order is None or len(self._order) != m:
            self._order = np.arange(m, dtype=np.int64)
        permutation = np.arange(m)
        self.random_state.shuffle(permutation)
        self._order = self._order[permutation]
        return torch.from_numpy(self._order)

    def get_state(self) -> dict:
        """The stream's state as plain data (tensors and numbers) that a ``weights_only``
        checkpoint holds; named like ``torch.Generator``'s, so a run saves either alike."""
        _, keys, pos, has_gauss, cached_gaussian = self.random_state.get_state()
        return {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
            "order": None if self._order is None else torch.from_numpy(self._order.copy()),
        }

    def set_state(self, state: dict) -> None:
        """Continue from a state :meth:`get_state` returned."""
        keys = state["keys"].numpy().astype(np.uint32)
        self.random_state.set_state(
            ("MT19937", keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
        )
        self._order = None if state["order"] is None else state["order"].numpy().copy()


def output_digits(path: str | Path | None = None) -> np.ndarray:
    """The digit of each of MLPClassifier's output units when it is fit on the file's own labels.

    scikit-learn numbers its output units by the sorted labels it is given. A script that
    passes an ex4-style file's y passes Coursera's 1..10, so its units are the digits 1, ..., 9,
    0; with labels 0..9 they are 0..9. Our units are always the digits 0..9, so the initial
    output weights are placed by this order (reads the file's labels; ``None``: the shipped file).
    """
    return unit_digits(load_digits(path, stored_labels=True)[1])


def unit_digits(labels: np.ndarray) -> np.ndarray:
    """:func:`output_digits` for labels already read: (units,) digits, in scikit-learn's order."""
    return np.unique(labels) % 10  # Coursera's label 10 is the digit 0


# ------------------------------------------------------------------------- the loss


class _SoftmaxLogLoss(torch.autograd.Function):
    """Mean softmax log-loss with scikit-learn's clipping; backward is (y_prob - y) / batch."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # scikit-learn's softmax: subtract the row maximum, exponentiate, normalise.
        shifted = logits - logits.max(dim=1, keepdim=True).values
        prob = shifted.exp()
        prob /= prob.sum(dim=1, keepdim=True)
        ctx.save_for_backward(prob, y)
        eps = torch.finfo(prob.dtype).eps
        return -prob.gather(1, y[:, None]).clamp(eps, 1 - eps).log().mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        prob, y = ctx.saved_tensors
        delta = prob - smoothed_targets(y, prob.shape[1], 0.0, prob.dtype)  # y_prob - y
        return delta * (grad / len(y)), None


def log_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """scikit-learn's log-loss of a batch: logits (b, k), digits y (b,) -> 0-dim mean.

    Probabilities are clipped to [eps, 1 - eps] (eps of the dtype) before the log, which caps each
    example's loss at about 36 in float64; the gradient with respect to the logits is
    (softmax - one_hot) / b, unclipped, as scikit-learn's backpropagation uses it.
    """
    return _SoftmaxLogLoss.apply(logits, y)


class SklearnObjective(Objective):
    """A batch's objective as scikit-learn computes it: :func:`log_loss` plus
    alpha / (2 * batch size) * sum of squared weights (``l2`` is alpha)."""

    def data_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return log_loss(logits, y)


def train_epoch(
    model: MLP,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    alpha: float,
    stream: RandomStream,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of MLPClassifier's sgd solver over (X (m, n), y (m,)): the core loop's epoch
    (:func:`digits_torch.core.loop.train_epoch`) in the stream's order, with scikit-learn's
    objective.

    Returns:
        Two 0-dim tensors on X's device: this epoch's ``loss_curve_`` entry (each batch's
        objective, log-loss + alpha / (2 * batch size) * sum of squared weights, weighted by its
        size, over m), and the accuracy over the epoch's batches, each counted as it was trained
        on (the model changes during the epoch).
    """
    m = X.shape[0]
    order = stream.order(m).to(X.device)
    return core_epoch(model, optimizer, X, y, order, min(batch_size, m), SklearnObjective(l2=alpha))


# ------------------------------------------------------------------- optimizer and schedules


class SklearnSGD(WithoutDynamo, torch.optim.Optimizer):
    """SGD with (Nesterov) momentum exactly as scikit-learn's ``SGDOptimizer`` updates.

    Per parameter p with gradient g and velocity v (zero at first), each step does::

        v = momentum * v - lr * g                       # the velocity is a step, in p's units
        p += momentum * v - lr * g   if nesterov  else  v

    Args:
        params: the parameters (or parameter groups).
        lr: learning rate; a schedule changes ``param_groups[i]["lr"]`` between steps.
        momentum: in [0, 1).
        nesterov: Nesterov's momentum (scikit-learn's ``nesterovs_momentum``).
    """

    def __init__(self, params, lr: float = 0.001, momentum: float = 0.9, nesterov: bool = True):
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov})

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            velocities = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                velocities.append(state["velocity"])
            # Separate products (no fused multiply-add), rounded as numpy rounds them; each
            # _foreach_ call is one call for every parameter (the same kernels as one by one),
            # the velocities updated in place (the same numbers as new tensors).
            steps = torch._foreach_mul([p.grad for p in params], lr)
            torch._foreach_mul_(velocities, momentum)
            torch._foreach_sub_(velocities, steps)
            if group["nesterov"]:
                updates = torch._foreach_mul(velocities, momentum)
                torch._foreach_sub_(updates, steps)
            else:
                updates = velocities
            torch._foreach_add_(params, updates)
        return loss


def _evaluate(closure) -> torch.Tensor | None:
    """An optimizer step's closure, evaluated with gradients on (torch.optim's convention)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class SklearnAdam(WithoutDynamo, torch.optim.Optimizer):
    """Adam exactly as scikit-learn's ``AdamOptimizer`` updates.

    Per parameter p with gradient g, first and second moments m and v (zero at first), at step t::

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g ** 2
        lr_t = lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)       # a Python float
        p += -lr_t * m / (sqrt(v) + eps)

    torch.optim.Adam adds eps to sqrt(v / (1 - beta_2 ** t)) instead: the two part where v is
    tiny. ``param_groups[i]["step_lr"]`` is the last lr_t (scikit-learn's ``learning_rate``).
    """

    def __init__(self, params, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        defaults = {"lr": lr, "beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group in self.param_groups:
            beta_1, beta_2 = group["beta_1"], group["beta_2"]
            group["t"] = t = group.get("t", 0) + 1
            group["step_lr"] = lr = group["lr"] * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                # Separate products and sums, rounded as numpy rounds them.
                state["m"] = beta_1 * state["m"] + (1 - beta_1) * p.grad
                state["v"] = beta_2 * state["v"] + (1 - beta_2) * (p.grad**2)
                p.add_(-lr * state["m"] / (state["v"].sqrt() + group["epsilon"]))
        return loss
