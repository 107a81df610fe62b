"""Training: one frozen config, one loop, on CPU or CUDA, logging to a run directory.

    from digits_torch import TrainConfig, fit, make_config
    result = fit(make_config("coursera", device="cpu"))
    result.metrics["train_accuracy"], result.run_dir

The whole dataset is moved to the device once; an epoch is one shuffle (a permutation drawn on
the CPU generator, so every device sees the same order) and then index slices of the shuffled
tensors. Nothing in the batch loop waits for the device: the epoch's loss is summed on the device
and read once per epoch.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import sklearn_exact
from .checkpoints import BEST, LATEST, load_checkpoint, save_checkpoint
from .data import load_digits, stratified_split
from .errors import UserError
from .model import ACTIVATIONS, INITS, MLP
from .runs import RunLog, new_run_dir, read_history

__all__ = [
    "PRESETS",
    "FitResult",
    "TrainConfig",
    "fit",
    "make_config",
    "resolve_device",
    "resume",
]

OPTIMIZERS = ("sgd", "adam", "lbfgs")
LOSSES = ("softmax", "coursera")
MONITORS = ("train_loss", "val_accuracy")  # what the stopping rule watches
DTYPES = {"float32": torch.float32, "float64": torch.float64}
ACTIVATION_ALIASES = {"logistic": "sigmoid"}  # scikit-learn's name for the sigmoid


def _field(default, help: str):
    """A config field with its one-line meaning, which ``--help`` shows."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; each run saves it as config.json.

    The field defaults are the ``seed`` preset: the article's scikit-learn script.
    """

    preset: str = _field("seed", "named defaults to start from (listed below; flags override)")
    data: str | None = _field(
        None, "ex4-style .mat to train on (default: the shipped 5,000 digits)"
    )
    device: str = _field("auto", "auto, cpu, cuda or cuda:N (auto = CUDA when available)")
    hidden: tuple[int, ...] = _field((25,), "hidden layer sizes")
    activation: str = _field(
        "relu",
        "hidden activation: sigmoid (or scikit-learn's name, logistic), relu, tanh, identity",
    )
    init: str = _field(
        "glorot", "initial weights: glorot (scikit-learn's) or coursera (uniform +-0.12)"
    )
    loss: str = _field(
        "softmax", "softmax cross-entropy, or coursera (ex4's sum of sigmoid log-losses)"
    )
    optimizer: str = _field("sgd", "sgd, adam, or lbfgs (full batch; one iteration per epoch)")
    epochs: int = _field(1000, "most epochs to train (L-BFGS: iterations)")
    batch_size: int = _field(200, "examples per step (capped at the training set's size)")
    lr: float = _field(0.001, "learning rate (L-BFGS: initial step length)")
    momentum: float = _field(0.9, "SGD momentum")
    nesterov: bool = _field(True, "SGD with Nesterov momentum")
    l2: float = _field(
        1e-4, "lambda: adds lambda / (2 * batch size) * sum of squared non-bias weights"
    )
    tol: float = _field(
        1e-9, "the training loss must improve by more than this to count as progress"
    )
    patience: int = _field(10, "stop after more than this many epochs without progress (0: never)")
    val_fraction: float = _field(
        0.0, "share of each digit held out for validation (0: train on all)"
    )
    stop_on: str = _field(
        "train_loss", "what early stopping watches: train_loss or val_accuracy (--val-fraction)"
    )
    schedule: str = _field(
        "constant",
        "lr schedule: constant; invscaling (lr / (samples seen + 1) ** power_t after each "
        "epoch); adaptive (lr / 5 where training would stop, until lr <= 1e-6)",
    )
    power_t: float = _field(0.5, "invscaling's exponent")
    dtype: str = _field("float32", "float32 or float64, for the weights and the data")
    sklearn_exact: bool = _field(
        False,
        "repeat scikit-learn's MLPClassifier(solver='sgd') step for step: init, validation "
        "split and shuffles from numpy's RandomState(seed), its SGD, its clipped log-loss",
    )
    seed: int = _field(0, "seeds initialisation, shuffling and the validation split")
    logdir: str = _field("runs", "where run directories are created (TensorBoard's --logdir)")
    name: str = _field("", "appended to the run directory's name")
    quiet: bool = _field(False, "print only the final line")

    def __post_init__(self) -> None:
        # Validation lives here, in one place, so the CLI and the Python API agree.
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        activation = ACTIVATION_ALIASES.get(self.activation, self.activation)
        object.__setattr__(self, "activation", activation)
        checks = [
            (self.preset in PRESETS, f"unknown preset (choose from {', '.join(PRESETS)})"),
            (self.activation in ACTIVATIONS, f"activation must be one of {', '.join(ACTIVATIONS)}"),
            (self.init in INITS, f"init must be one of {', '.join(INITS)}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (len(self.hidden) > 0 and min(self.hidden) >= 1, "hidden sizes must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch size must be >= 1"),
            (self.lr > 0 and math.isfinite(self.lr), "lr must be positive"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.l2 >= 0 and math.isfinite(self.l2), "l2 must be >= 0"),
            (self.tol >= 0, "tol must be >= 0"),
            (self.patience >= 0, "patience must be >= 0"),
            (0 <= self.val_fraction < 1, "val fraction must be in [0, 1)"),
            (self.stop_on in MONITORS, f"stop on must be one of {', '.join(MONITORS)}"),
            (
                self.val_fraction > 0 or not self.stop_on.startswith("val"),
                f"stop on {self.stop_on} needs a validation split (--val-fraction > 0)",
            ),
            (
                self.schedule in sklearn_exact.SCHEDULES,
                f"schedule must be one of {', '.join(sklearn_exact.SCHEDULES)}",
            ),
            (self.power_t >= 0 and math.isfinite(self.power_t), "power t must be >= 0"),
            (self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}"),
            *self._sklearn_exact_checks(),
        ]
        for ok, problem in checks:
            if not ok:
                raise UserError(problem)

    def _sklearn_exact_checks(self) -> list[tuple[bool, str]]:
        if not self.sklearn_exact:
            return []
        return [
            (
                (self.optimizer, self.loss, self.init) == ("sgd", "softmax", "glorot"),
                "sklearn-exact mode trains with --optimizer sgd --loss softmax --init glorot",
            ),
            (
                self.stop_on == "val_accuracy" or self.val_fraction == 0,
                "sklearn-exact mode holds out a validation set only to stop on val_accuracy "
                "(MLPClassifier's early_stopping)",
            ),
        ]

    def to_dict(self) -> dict:
        """JSON-ready: tuples become lists."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if k == "hidden" else v for k, v in values.items() if k in known})


# Each preset is a set of defaults; explicit arguments override them (make_config, the CLI).
PRESETS: dict[str, dict] = {
    # The article's MLPClassifier(hidden_layer_sizes=(25,), solver="sgd", random_state=0,
    # max_iter=1000, alpha=1e-4, tol=1e-9): the field defaults above.
    "seed": {},
    # Coursera ML ex4: sigmoid units, ex4's cost with lambda 1, uniform +-0.12 init, 50
    # iterations of a full-batch quasi-Newton method (ex4 uses fmincg, we use L-BFGS).
    "coursera": {
        "activation": "sigmoid",
        "init": "coursera",
        "loss": "coursera",
        "optimizer": "lbfgs",
        "epochs": 50,
        "lr": 1.0,
        "l2": 1.0,
        "patience": 0,
    },
    # The same MLPClassifier reproduced step for step, in float64 as scikit-learn computes: in
    # float64 its training accuracy, loss curve and epochs are scikit-learn's.
    "sklearn": {"sklearn_exact": True, "dtype": "float64"},
}
DEFAULT_PRESET = "seed"


def make_config(preset: str = DEFAULT_PRESET, **overrides) -> TrainConfig:
    """A TrainConfig from a preset's defaults, with ``overrides`` taking precedence."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    return TrainConfig(**{**PRESETS[preset], **overrides, "preset": preset})


def resolve_device(spec: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a device that exists here (or a UserError)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(f"device {spec}: CUDA is not available on this machine")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise UserError(f"device {spec}: this machine has {count} CUDA device(s)")
        return device
    raise UserError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)")


@dataclass
class FitResult:
    """What :func:`fit` returns. ``model`` is the best model (the last one without validation)."""

    model: MLP
    run_dir: Path
    config: TrainConfig
    metrics: dict
    history: list[dict] = field(default_factory=list)


def fit(config: TrainConfig) -> FitResult:
    """Train a new model as ``config`` says, in a new run directory under ``config.logdir``."""
    return _train(config, run_dir=None)


def resume(run_dir: str | Path, **overrides) -> FitResult:
    """Continue the run in ``run_dir`` from its latest checkpoint, in the same directory.

    ``overrides`` may change how, not what, is trained: ``device``, ``quiet``, and ``epochs``
    (to train longer). On CPU a resumed run ends with exactly the weights of an uninterrupted one.
    """
    run_dir = Path(run_dir)
    if not (run_dir / LATEST).exists():
        raise UserError(f"not a run directory to resume (no {LATEST})", run_dir)
    allowed = {"device", "quiet", "epochs"}
    if set(overrides) - allowed:
        changed = ", ".join(sorted(set(overrides) - allowed))
        raise UserError(f"a resumed run keeps its config; cannot change {changed}", run_dir)
    saved = load_checkpoint(run_dir / LATEST)
    config = dataclasses.replace(TrainConfig.from_dict(saved["config"]), **overrides)
    return _train(config, run_dir=run_dir, checkpoint=saved)


# ----------------------------------------------------------------------------- the loop


def _train(config: TrainConfig, run_dir: Path | None, checkpoint: dict | None = None) -> FitResult:
    device = resolve_device(config.device)
    X, y = load_digits(config.data, dtype=config.dtype)

    # Initialisation and shuffling draw from one CPU generator: the same numbers on every device.
    generator = torch.Generator().manual_seed(config.seed)
    model = MLP(X.shape[1], config.hidden, 10, config.activation, config.init, generator)
    model.to(device, DTYPES[config.dtype])
    if config.sklearn_exact:  # numpy's generator instead, drawn in scikit-learn's order
        stream, train_idx, val_idx = _sklearn_start(config, model, y)
    else:
        stream = None
        train_idx, val_idx = stratified_split(y, config.val_fraction, config.seed)
    if config.stop_on == "val_accuracy" and len(val_idx) < 2:
        problem = f"stop on val_accuracy: --val-fraction {config.val_fraction} holds out too few"
        raise UserError(problem, config.data)
    # The whole dataset lives on the device; batches are slices of it.  (m, n) and (m,)
    X_train = torch.from_numpy(X[train_idx]).to(device)
    y_train = torch.from_numpy(y[train_idx]).to(device)
    X_val = torch.from_numpy(X[val_idx]).to(device) if len(val_idx) else None
    y_val = torch.from_numpy(y[val_idx]).to(device) if len(val_idx) else None
    rng = generator if stream is None else stream  # what a checkpoint saves to resume shuffling
    optimizer = _make_optimizer(config, model)
    progress = {
        "best_loss": math.inf,
        "no_progress": 0,
        "best_val_accuracy": -math.inf,
        "best_epoch": 0,
    }
    start_epoch, seconds_before = 0, 0.0
    if checkpoint is not None:
        _check_fits(checkpoint, model, run_dir)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        rng.set_state(checkpoint["rng"])
        progress = dict(checkpoint["progress"])
        start_epoch, seconds_before = checkpoint["epoch"], checkpoint["seconds"]
    else:
        run_dir = new_run_dir(config.logdir, config.preset, config.name)

    log = RunLog(run_dir, config.to_dict(), resume_epoch=start_epoch if checkpoint else None)
    best_state = _best_state(run_dir, model, checkpoint)

    def save(epoch: int, seconds: float) -> None:
        save_checkpoint(
            {
                "format": 1,
                "epoch": epoch,
                "architecture": model.architecture(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng.get_state(),
                "config": config.to_dict(),
                "progress": dict(progress),
                "seconds": seconds,
            },
            run_dir / LATEST,
        )

    if checkpoint is None:
        save(0, 0.0)  # so that even a run stopped in its first epoch can be resumed
    bar = _progress_bar(config, start_epoch)
    started = time.perf_counter()
    epoch, stop_reason = start_epoch, "max_epochs"
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            if stream is not None:
                train_loss, _ = sklearn_exact.train_epoch(
                    model, optimizer, X_train, y_train, config.batch_size, config.l2, stream
                )
            else:
                train_loss = _train_epoch(model, optimizer, X_train, y_train, config, generator)
            record = {
                "epoch": epoch,
                **_evaluate_all(model, config, X_train, y_train, X_val, y_val),
            }
            record["train_loss"] = train_loss.item()  # the epoch's one wait for the device
            record["lr"] = optimizer.param_groups[0]["lr"]
            record["seconds"] = seconds_before + time.perf_counter() - started
            if not math.isfinite(record["train_loss"]):
                raise UserError(
                    f"training loss became {record['train_loss']} at epoch {epoch}; the last "
                    f"good checkpoint (epoch {epoch - 1}) is kept; try a smaller --lr",
                    run_dir,
                )
            log.log_epoch(record)
            improved, stalled = _update_progress(progress, record, config)
            stop = _schedule_lr(optimizer, progress, config, stalled, epoch * len(train_idx))
            if improved:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                save_checkpoint(_model_only(model, best_state, epoch, config), run_dir / BEST)
            save(epoch, record["seconds"])
            bar.update(1)
            bar.set_postfix(
                loss=f"{record['train_loss']:.4f}", acc=f"{record['train_accuracy']:.4f}"
            )
            if stop:
                stop_reason = "converged"
                break
    except KeyboardInterrupt:
        bar.close()
        log.close()
        print(
            f"\ninterrupted; the checkpoint of epoch {_saved_epoch(run_dir)} is in {run_dir}\n"
            f"resume with: python train.py --resume {run_dir}",
            file=sys.stderr,
        )
        raise
    bar.close()

    # Report on the best model: the one best.pt holds and load_model returns.
    model.load_state_dict(best_state)
    final = _evaluate_all(model, config, X_train, y_train, X_val, y_val)
    history = read_history(run_dir)
    metrics = {
        **final,
        "train_loss": history[-1]["train_loss"] if history else None,
        "epochs": epoch,
        "best_epoch": progress["best_epoch"],
        "stopped": stop_reason,
        "seconds": history[-1]["seconds"] if history else 0.0,
        "device": str(device),
        "preset": config.preset,
    }
    log.write_metrics(metrics)
    hyper = {k: v for k, v in config.to_dict().items() if k not in ("logdir", "quiet", "name")}
    log.log_hparams(hyper, final, step=epoch)
    log.close()
    return FitResult(model.eval(), run_dir, config, metrics, history)


def _train_epoch(model, optimizer, X, y, config: TrainConfig, generator) -> torch.Tensor:
    """One pass over (X, y); returns the mean training objective as a 0-dim device tensor."""
    model.train()
    m = X.shape[0]
    if config.optimizer == "lbfgs":  # full batch, one quasi-Newton iteration

        def closure():
            optimizer.zero_grad(set_to_none=True)
            loss = _objective(model, X, y, config)
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            return _objective(model, X, y, config)

    # A CPU permutation (same on every device), then contiguous slices of the shuffled tensors.
    order = torch.randperm(m, generator=generator).to(X.device)
    X, y = X[order], y[order]
    batch = min(config.batch_size, m)
    total = torch.zeros((), device=X.device, dtype=X.dtype)
    for start in range(0, m, batch):
        xb, yb = X[start : start + batch], y[start : start + batch]  # (b, n), (b,)
        loss = _objective(model, xb, yb, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * xb.shape[0]
    return total / m  # scikit-learn's loss_curve_: batch losses weighted by batch size


def _objective(model: MLP, x: torch.Tensor, y: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Data loss (mean over the batch) plus l2 / (2 * batch size) * sum of squared weights."""
    return (
        data_loss(model(x), y, config.loss) + config.l2 / (2 * x.shape[0]) * model.squared_weights()
    )


def data_loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "softmax":
        return F.cross_entropy(logits, y)
    # ex4: each output is its own sigmoid unit; sum over units, mean over examples.
    targets = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / logits.shape[0]


@torch.no_grad()
def _evaluate(model: MLP, X: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[float, float]:
    """(data loss, accuracy) of ``model`` on (X, y), in one forward pass."""
    model.eval()
    logits = model(X)
    return data_loss(logits, y, loss).item(), (logits.argmax(1) == y).float().mean().item()


def _evaluate_all(model, config, X_train, y_train, X_val, y_val) -> dict:
    _, train_accuracy = _evaluate(model, X_train, y_train, config.loss)
    val_loss, val_accuracy = (None, None)
    if X_val is not None:
        val_loss, val_accuracy = _evaluate(model, X_val, y_val, config.loss)
    return {"train_accuracy": train_accuracy, "val_loss": val_loss, "val_accuracy": val_accuracy}


def _update_progress(progress: dict, record: dict, config: TrainConfig) -> tuple[bool, bool]:
    """scikit-learn's stopping rule on the training loss, or with early stopping on validation
    accuracy; best model by validation accuracy.

    Returns (is this epoch's model the best so far, has progress stalled for too long).
    """
    loss = record["train_loss"]
    if config.stop_on == "val_accuracy":  # scikit-learn's early_stopping
        no_progress = record["val_accuracy"] < progress["best_val_accuracy"] + config.tol
    else:
        no_progress = loss > progress["best_loss"] - config.tol
    progress["no_progress"] = progress["no_progress"] + 1 if no_progress else 0
    progress["best_loss"] = min(progress["best_loss"], loss)
    stalled = config.patience > 0 and progress["no_progress"] > config.patience

    val = record["val_accuracy"]
    improved = val is None or val > progress["best_val_accuracy"]
    if improved:
        progress["best_val_accuracy"] = -1.0 if val is None else val
        progress["best_epoch"] = record["epoch"]
    return improved, stalled


def _schedule_lr(optimizer, progress: dict, config: TrainConfig, stalled: bool, seen: int) -> bool:
    """The lr schedule's turn after an epoch (``seen``: examples trained on so far, all epochs);
    a stall either lowers lr (adaptive) or stops. Returns whether training should stop."""
    lr = optimizer.param_groups[0]["lr"]
    lr = sklearn_exact.lr_after_epoch(config.schedule, lr, config.lr, config.power_t, seen)
    stop = False
    if stalled:
        lowered = sklearn_exact.lr_on_plateau(config.schedule, lr)
        stop = lowered is None
        if not stop:
            lr, progress["no_progress"] = lowered, 0
    for group in optimizer.param_groups:
        group["lr"] = lr
    return stop


def _sklearn_start(config: TrainConfig, model: MLP, y: np.ndarray):
    """scikit-learn's first draws: the initial weights, then the early-stopping split.

    Returns (the stream the epochs shuffle from, training rows, validation rows).
    """
    if len(np.unique(y)) != 10:
        # MLPClassifier sizes its output layer by the classes present; ours always has ten.
        raise UserError("sklearn-exact mode needs every digit 0..9 in the data", config.data)
    stream = sklearn_exact.RandomStream(config.seed)
    stream.init_(model, sklearn_exact.output_digits(config.data))
    if config.val_fraction == 0:
        return stream, np.arange(len(y)), np.arange(0)
    train_idx, val_idx = stream.split(len(y), config.val_fraction)
    return stream, train_idx, val_idx


def _make_optimizer(config: TrainConfig, model: MLP) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.sklearn_exact:
        return sklearn_exact.SklearnSGD(params, config.lr, config.momentum, config.nesterov)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    # ex4's fmincg is a conjugate-gradient method with a Wolfe line search; L-BFGS with a
    # strong-Wolfe line search is its closest relative in torch.
    return torch.optim.LBFGS(params, lr=config.lr, max_iter=1, line_search_fn="strong_wolfe")


def _model_only(model: MLP, state: dict, epoch: int, config: TrainConfig) -> dict:
    return {
        "format": 1,
        "epoch": epoch,
        "architecture": model.architecture(),
        "model": state,
        "config": config.to_dict(),
    }


def _best_state(run_dir: Path, model: MLP, checkpoint: dict | None) -> dict:
    """The best weights so far: the current ones for a new run, best.pt's for a resumed one."""
    if checkpoint is not None and (run_dir / BEST).exists():
        return load_checkpoint(run_dir / BEST, map_location=next(model.parameters()).device)[
            "model"
        ]
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _check_fits(checkpoint: dict, model: MLP, run_dir: Path) -> None:
    if checkpoint["architecture"] != model.architecture():
        raise UserError(
            f"checkpoint is for {checkpoint['architecture']}, "
            f"the data needs {model.architecture()}",
            run_dir,
        )


def _saved_epoch(run_dir: Path) -> int:
    return load_checkpoint(run_dir / LATEST)["epoch"]


def _progress_bar(config: TrainConfig, start_epoch: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=config.epochs,
        initial=start_epoch,
        desc=config.preset,
        unit="epoch",
        disable=config.quiet,
        leave=False,
        mininterval=0.25,
    )
