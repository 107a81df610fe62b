"""Training: one frozen config, one loop, on CPU or CUDA, logging to a run directory.

    from digits_torch import TrainConfig, fit, make_config
    result = fit(make_config("coursera", device="cpu"))
    result.metrics["train_accuracy"], result.run_dir

The whole dataset is moved to the device once; an epoch is one shuffle (a permutation drawn on
the CPU generator, so every device sees the same order), each batch gathered by its slice of
that permutation. With augmentation, the epoch first distorts the whole training set at once
(:mod:`digits_torch.augment`). Nothing in the batch loop waits for the device: the epoch's loss
and accuracy are summed on the device and read once per epoch; an lr schedule, if any, steps after
each epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import sklearn_exact
from .augment import random_affine
from .backprop import loss_and_gradients, smoothed_targets
from .checkpoints import (
    BEST,
    FORMAT,
    LATEST,
    link_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .config import DTYPES, TrainConfig, resolve_device
from .data import default_data_path, load_digits, stratified_split
from .errors import UserError
from .model import MLP
from .runs import RunLog, new_run_dir, read_history
from .schedule import lower_on_plateau, make_scheduler

__all__ = ["FitResult", "fit", "resume"]


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
    if not run_dir.is_dir():
        raise UserError(
            "no such run directory" if not run_dir.exists() else "not a directory", run_dir
        )
    if not (run_dir / LATEST).exists():
        raise UserError(f"not a run directory to resume (no {LATEST})", run_dir)
    allowed = {"device", "quiet", "epochs"}
    if set(overrides) - allowed:
        changed = ", ".join(sorted(set(overrides) - allowed))
        raise UserError(f"a resumed run keeps its config; cannot change {changed}", run_dir)
    saved = _load_file(run_dir / LATEST)
    missing = sorted(_RESUMABLE - saved.keys())
    if missing:
        problem = f"cannot resume from it: no {', '.join(missing)} (is it a best.pt?)"
        raise UserError(problem, run_dir / LATEST)
    try:
        config = TrainConfig.from_dict(saved["config"])
    except (UserError, TypeError, AttributeError) as err:  # a config this package did not write
        raise UserError(f"its config is invalid ({err})", run_dir / LATEST) from None
    config = dataclasses.replace(config, **overrides)  # errors here are the flags'
    if config.schedule == "cosine" and config.epochs != saved["config"]["epochs"]:
        raise UserError(
            f"the {config.schedule} lr schedule spans the run's epochs; keep them", run_dir
        )
    return _train(config, run_dir=run_dir, checkpoint=saved)


# What a checkpoint needs beyond the model to continue a run (best.pt lacks all but config).
_RESUMABLE = {"epoch", "optimizer", "rng", "config", "progress", "seconds"}


# ----------------------------------------------------------------------------- the loop


def _train(config: TrainConfig, run_dir: Path | None, checkpoint: dict | None = None) -> FitResult:
    from . import plots  # here, not at the top, so that `python -m digits_torch.plots` runs cleanly

    device = resolve_device(config.device)
    data_path = default_data_path() if config.data is None else Path(config.data)
    X, labels = load_digits(data_path, dtype=config.dtype, stored_labels=True)
    y = labels % 10  # digits: Coursera's label 10 is the digit 0

    # Initialisation and shuffling draw from one CPU generator: the same numbers on every device.
    generator = torch.Generator().manual_seed(config.seed)
    model = MLP(X.shape[1], config.hidden, 10, config.activation, config.init, generator)
    model.to(device, DTYPES[config.dtype])
    stream, train_idx, val_idx = split_rows(config, labels, model)
    if len(train_idx) == 0:
        problem = f"val fraction {config.val_fraction} holds out every example; lower it"
        raise UserError(problem, data_path)
    # The whole dataset lives on the device; batches are slices of it.  (m, n) and (m,)
    X_train = torch.from_numpy(X[train_idx]).to(device)
    y_train = torch.from_numpy(y[train_idx]).to(device)
    X_val = torch.from_numpy(X[val_idx]).to(device) if len(val_idx) else None
    y_val = torch.from_numpy(y[val_idx]).to(device) if len(val_idx) else None
    rng = generator if stream is None else stream  # what a checkpoint saves to resume shuffling
    optimizer = make_optimizer(config, model)
    scheduler = make_scheduler(
        config.schedule, optimizer, config.epochs, len(train_idx), config.power_t
    )
    progress = {
        "best_watched": -math.inf,
        "no_progress": 0,
        "best_val_accuracy": -1.0,
        "best_epoch": 0,
    }
    start_epoch, seconds_before = 0, 0.0
    if checkpoint is not None:
        # Everything is checked before the run directory is touched: a refused resume changes
        # nothing in it.
        latest = run_dir / LATEST
        _check_fits(checkpoint, model, latest, data_path)
        start_epoch, seconds_before = _restore(
            checkpoint, latest, model, optimizer, scheduler, rng, progress
        )
        best_state = _best_state(run_dir, model)  # read (and checked) in any case
        if X_val is None:  # the best is the latest, even if a kill beat best.pt's update
            best_state = _clone(model)
    else:
        run_dir = new_run_dir(config.logdir, config.preset, config.name)
        best_state = _clone(model)

    saved_config = config.to_dict()  # once: every checkpoint carries it

    def save(epoch: int, seconds: float) -> None:
        save_checkpoint(
            {
                **_model_only(model, model.state_dict(), epoch, saved_config),
                "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "rng": rng.get_state(),
                "progress": dict(progress),
                "seconds": seconds,
            },
            run_dir / LATEST,
        )

    log = None
    try:
        log = RunLog(run_dir, saved_config, resume_epoch=start_epoch if checkpoint else None)
        if checkpoint is None:
            save(0, 0.0)  # so that even a run stopped in its first epoch can be resumed
            link_checkpoint(run_dir / LATEST, run_dir / BEST)  # and has a model to load
    except BaseException:
        if log is not None:
            with contextlib.suppress(Exception):
                log.close()
        if checkpoint is None:  # nothing resumable was written: leave no half-made run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    epoch_graph = None
    if config.cuda_graph and device.type == "cuda":
        from .cudagraph import EpochGraph  # here: cudagraph builds on this module

        epoch_graph = EpochGraph(model, optimizer, X_train, y_train, config)
    bar = _progress_bar(config, start_epoch)
    started = time.perf_counter()
    epoch, stop_reason = start_epoch, "max_epochs"
    last_epoch = config.epochs
    if _should_stop(progress, config):  # a resumed run that had already converged
        last_epoch, stop_reason = start_epoch, "converged"
    try:
        for epoch in range(start_epoch + 1, last_epoch + 1):
            if stream is not None:  # scikit-learn's own epoch (the config rules out augmenting)
                loss, accuracy = sklearn_exact.train_epoch(
                    model, optimizer, X_train, y_train, config.batch_size, config.l2, stream
                )
            else:
                # X_train itself when there is no augmentation
                X_epoch = random_affine(X_train, generator, *_augmentation(config))
                if epoch_graph is not None:
                    loss, accuracy = epoch_graph(X_epoch, generator)
                else:
                    loss, accuracy = train_epoch(
                        model, optimizer, X_epoch, y_train, config, generator
                    )
            record = {"epoch": epoch, **_evaluate_val(model, config, X_val, y_val)}
            # the epoch's one read from the device (float64 holds either dtype exactly)
            record["train_loss"], record["train_accuracy"] = torch.stack(
                [loss.double(), accuracy.double()]
            ).tolist()
            record["lr"] = optimizer.param_groups[0]["lr"]  # the lr this epoch trained with
            if scheduler is not None:
                scheduler.step()
            record["seconds"] = seconds_before + time.perf_counter() - started
            if not math.isfinite(record["train_loss"]):
                raise UserError(
                    f"training loss became {record['train_loss']} at epoch {epoch}; the last "
                    f"good checkpoint (epoch {epoch - 1}) is kept; try a smaller --lr",
                    run_dir,
                )
            log.log_epoch(record)
            if config.image_every and epoch % config.image_every == 0:
                log.log_image("hidden_units", plots.hidden_units_image(model), epoch)
            improved, stop = _update_progress(progress, record, config)
            if stop and config.schedule == "adaptive" and lower_on_plateau(optimizer):
                stop, progress["no_progress"] = False, 0  # scikit-learn: lr / 5, go on
            if improved:
                best_state = _clone(model)
                if X_val is not None:  # before the checkpoint that counts this epoch as best
                    best = _model_only(model, best_state, epoch, saved_config)
                    save_checkpoint(best, run_dir / BEST)
            save(epoch, record["seconds"])
            if improved and X_val is None:  # the best is the latest: one file, two names
                link_checkpoint(run_dir / LATEST, run_dir / BEST)
            postfix = {
                "loss": f"{record['train_loss']:.4f}",
                "acc": f"{record['train_accuracy']:.4f}",
            }
            if record["val_accuracy"] is not None:
                postfix["val_acc"] = f"{record['val_accuracy']:.4f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            if stop:
                stop_reason = "converged"
                break
        bar.close()

        # Report on the best model: the one best.pt holds and load_model returns. (Still in the
        # try: a Ctrl-C here, too, says where the checkpoint is and how to resume.)
        model.load_state_dict(best_state)
        _, train_accuracy = score(model, X_train, y_train, config.loss)
        final = {"train_accuracy": train_accuracy, **_evaluate_val(model, config, X_val, y_val)}
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
        # Pictures of the reported model, on the validation digits when some were held out.
        shown = val_idx if len(val_idx) else train_idx
        figures = plots.run_figures(model, X[shown], y[shown], run_dir) if config.figures else {}
        for name, figure in figures.items():
            image = plots.render(figure)
            plots.save_png(image, run_dir / plots.FIGURES / f"{name}.png")
            if name in ("mistakes", "confusion"):
                log.log_image(f"figures/{name}", image, epoch)
        hyper = {
            k: v
            for k, v in saved_config.items()
            if k not in ("logdir", "quiet", "name", "image_every", "figures")
        }
        log.log_hparams(hyper, final, step=epoch)
        log.close()
    except BaseException as err:
        bar.close()  # first, so that whatever is printed next starts on a clean line
        with contextlib.suppress(Exception):  # the disk may be what failed
            log.close()
        if isinstance(err, KeyboardInterrupt):
            print(
                f"\ninterrupted; the checkpoint of epoch {_saved_epoch(run_dir)} is in {run_dir}\n"
                f"resume with: python train.py --resume {run_dir}",
                file=sys.stderr,
            )
        raise
    return FitResult(model.eval(), run_dir, config, metrics, history)


def train_epoch(model, optimizer, X, y, config: TrainConfig, generator) -> tuple:
    """One pass over (X, y).

    Returns 0-dim device tensors: the mean training objective (scikit-learn's ``loss_curve_``:
    batch objectives weighted by batch size) and the accuracy over the epoch's batches, each
    counted as it was trained on (the model changes during the epoch; with augmentation, the
    distorted images).
    """
    model.train()
    m = X.shape[0]
    if config.optimizer == "lbfgs":  # full batch, one quasi-Newton iteration
        gradients = _GRADIENTS[config.backprop]

        def closure():
            return gradients(model, X, y, config.loss, config.l2, config.label_smoothing)[0]

        optimizer.step(closure)
        objective, correct = gradients(model, X, y, config.loss, config.l2, config.label_smoothing)
        return objective, correct / m

    # A CPU permutation (the same on every device), then each batch gathered by index: a
    # batch-sized gather stays in cache for the matrix products that follow.
    order = torch.randperm(m, generator=generator).to(X.device)
    return run_batches(model, optimizer_step(optimizer), X, y, order, config)


def run_batches(
    model: MLP,
    step: Callable[[], None],
    X: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    config: TrainConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batches of one epoch of minibatch training, in ``order`` (m,), each followed by ``step``.

    Nothing here waits for the device or reads a tensor on the host, so that on CUDA the whole
    epoch can be captured as one graph (:mod:`digits_torch.cudagraph`).
    """
    m = X.shape[0]
    gradients = _GRADIENTS[config.backprop]
    batch = min(config.batch_size, m)
    objectives, hits = [], []  # 0-dim tensors, summed once at the end: no per-batch additions
    for start in range(0, m, batch):
        index = order[start : start + batch]
        xb, yb = X.index_select(0, index), y.index_select(0, index)  # (b, n), (b,)
        objective, correct = gradients(
            model, xb, yb, config.loss, config.l2, config.label_smoothing
        )  # fills p.grad
        step()
        objectives.append(objective)
        hits.append(correct)
    # Batch objectives weighted by batch size: only the last batch may be smaller.
    sizes = torch.full((len(objectives),), batch, dtype=X.dtype, device=X.device)
    sizes[-1].fill_(m - batch * (len(objectives) - 1))  # a kernel, not a host-to-device copy
    return torch.stack(objectives) @ sizes / m, torch.stack(hits).sum() / m


def _autograd_gradients(
    model: MLP, x: torch.Tensor, y: torch.Tensor, loss: str, l2: float, label_smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference for backprop.loss_and_gradients: same contract, computed by autograd."""
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        logits = model(x)
        penalty = l2 / (2 * x.shape[0]) * model.squared_weights()
        objective = data_loss(logits, y, loss, label_smoothing) + penalty
        objective.backward()
    return objective.detach(), (logits.argmax(dim=1) == y).sum()


_GRADIENTS = {"explicit": loss_and_gradients, "autograd": _autograd_gradients}


def data_loss(
    logits: torch.Tensor, y: torch.Tensor, kind: str, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean loss of (b, classes) logits against (b,) labels, ``kind`` softmax or coursera."""
    if kind == "softmax":
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    # ex4: each output is its own sigmoid unit; sum over units, mean over examples.
    targets = smoothed_targets(y, logits.shape[1], label_smoothing, logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / logits.shape[0]


@torch.no_grad()
def score(model: MLP, X: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[float, float]:
    """(data loss, accuracy) of ``model`` on (X, y), in one forward pass."""
    model.eval()
    logits = model(X)
    correct = (logits.argmax(1) == y).sum()
    # one read from the device for both figures (float64 holds either exactly)
    loss_value, hits = torch.stack([data_loss(logits, y, loss).double(), correct.double()]).tolist()
    return loss_value, hits / len(y)


def _evaluate_val(model, config, X_val, y_val) -> dict:
    if X_val is None:
        return {"val_loss": None, "val_accuracy": None}
    val_loss, val_accuracy = score(model, X_val, y_val, config.loss)
    return {"val_loss": val_loss, "val_accuracy": val_accuracy}


def _update_progress(progress: dict, record: dict, config: TrainConfig) -> tuple[bool, bool]:
    """scikit-learn's stopping rule on ``config.stop_on``; best model by validation accuracy.

    Returns (is this epoch's model the best so far, should training stop).
    """
    # A loss counts as its negative so that, for every figure watched, larger is better. Data
    # too small to hold out a single digit has no validation figures: watch the training loss.
    key = config.stop_on if record[config.stop_on] is not None else "train_loss"
    watched = record[key] * (1 if key == "val_accuracy" else -1)
    if watched < progress["best_watched"] + config.tol:
        progress["no_progress"] += 1
    else:
        progress["no_progress"] = 0
    progress["best_watched"] = max(progress["best_watched"], watched)
    stop = _should_stop(progress, config)

    val = record["val_accuracy"]
    improved = val is None or val > progress["best_val_accuracy"]
    if improved:
        progress["best_val_accuracy"] = -1.0 if val is None else val
        progress["best_epoch"] = record["epoch"]
    return improved, stop


def split_rows(config: TrainConfig, labels: np.ndarray, model: MLP):
    """The training and validation rows of a run with ``config`` on data labelled ``labels``
    (as the file stores them).

    Returns ``(stream, training rows, validation rows)``. ``stream`` is None, except in
    sklearn-exact mode: there scikit-learn's random stream first draws ``model``'s initial
    weights and then the split, and the epochs go on shuffling from it.
    """
    if not config.sklearn_exact:
        return None, *stratified_split(labels % 10, config.val_fraction, config.seed)
    if len(np.unique(labels)) != 10:
        # MLPClassifier sizes its output layer by the classes present; ours always has ten.
        raise UserError("sklearn-exact mode needs every digit 0..9 in the data", config.data)
    stream = sklearn_exact.RandomStream(config.seed)
    stream.init_(model, sklearn_exact.unit_digits(labels))
    if config.val_fraction == 0:
        return stream, np.arange(len(labels)), np.arange(0)
    train_idx, val_idx = stream.split(len(labels), config.val_fraction)
    return stream, train_idx, val_idx


def _should_stop(progress: dict, config: TrainConfig) -> bool:
    """scikit-learn's rule: more than ``patience`` epochs in a row without progress."""
    return config.patience > 0 and progress["no_progress"] > config.patience


def _augmentation(config: TrainConfig) -> tuple[float, float, float]:
    """random_affine's (shift, rotation, scale) bounds."""
    return config.aug_shift, config.aug_rotate, config.aug_scale


def make_optimizer(config: TrainConfig, model: MLP) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.sklearn_exact:
        return sklearn_exact.SklearnSGD(params, config.lr, config.momentum, config.nesterov)
    if config.optimizer == "sgd":
        # fused: one kernel for the whole update instead of a handful per parameter
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            fused=True,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    # ex4's fmincg is a conjugate-gradient method with a Wolfe line search; L-BFGS with a
    # strong-Wolfe line search is its closest relative in torch.
    return torch.optim.LBFGS(params, lr=config.lr, max_iter=1, line_search_fn="strong_wolfe")


def optimizer_step(
    optimizer: torch.optim.Optimizer, lr: torch.Tensor | None = None
) -> Callable[[], None]:
    """``optimizer.step``, or for a fused torch SGD past its first step the same update cheaper.

    ``SGD.step()`` spends about 25 us per call on hooks, a profiler range and regrouping the
    parameters by device and dtype, five times the update itself at this network's size (10,285
    numbers), and the update runs 25 times an epoch. The shortcut calls the very kernel
    ``SGD(fused=True).step()`` ends in, on the optimizer's own parameters, gradients and momentum
    buffers, so the step is bit-for-bit the same and the optimizer's state dict stays true
    (``tests/test_training.py`` checks both). The lr is read at each call, so schedules still act;
    or, where ``lr`` is given (a float32 tensor on the parameters' device), from that tensor when
    the step runs, which a captured CUDA graph needs.
    """
    if not isinstance(optimizer, torch.optim.SGD) or not optimizer.defaults.get("fused"):
        return optimizer.step
    (group,) = optimizer.param_groups
    params = group["params"]
    state = optimizer.state
    if group["momentum"] and any("momentum_buffer" not in state[p] for p in params):
        return optimizer.step  # the first step creates the buffers; take it the usual way
    buffers = [state[p]["momentum_buffer"] for p in params] if group["momentum"] else []

    @torch.no_grad()
    def step() -> None:
        torch._fused_sgd_(
            params,
            [p.grad for p in params],
            buffers,
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            lr=group["lr"] if lr is None else lr,
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            is_first_step=False,
        )

    return step


def _model_only(model: MLP, state: dict, epoch: int, config: dict) -> dict:
    """What best.pt holds; the latest checkpoint holds this and the training state."""
    return {
        "format": FORMAT,
        "epoch": epoch,
        "architecture": model.architecture(),
        "model": state,
        "config": config,
    }


def _best_state(run_dir: Path, model: MLP) -> dict:
    """A resumed run's best weights so far: best.pt's, or the current ones if there is none."""
    if not (run_dir / BEST).exists():  # stopped before its first epoch ended
        return _clone(model)
    best = _load_file(run_dir / BEST, map_location=next(model.parameters()).device)
    if best["architecture"] != model.architecture():
        raise UserError("holds another model than the run's checkpoint", run_dir / BEST)
    return best["model"]


def _clone(model: MLP) -> dict:
    """A copy of the model's weights that later steps won't change."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _load_file(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """load_checkpoint for a run's own files, where a directory is never a run directory."""
    if path.is_dir():
        raise UserError("is a directory, not a checkpoint", path)
    return load_checkpoint(path, map_location)


def _check_fits(checkpoint: dict, model: MLP, path: Path, data_path: Path) -> None:
    """The checkpoint's model must be the one the config builds for this data."""
    saved, needed = checkpoint["architecture"], model.architecture()
    if saved.get("input_size") != needed["input_size"]:
        problem = (
            f"has {needed['input_size']} pixels per image, but the model in {path} "
            f"takes {saved.get('input_size')}"
        )
        raise UserError(problem, data_path)
    if saved != needed:
        raise UserError(f"its model {saved} is not the one its config builds {needed}", path)


def _restore(
    checkpoint: dict, path: Path, model: MLP, optimizer, scheduler, generator, progress: dict
) -> tuple[int, float]:
    """Load the training state of ``checkpoint`` (read from ``path``) into model, optimizer,
    learning-rate scheduler (if any), generator and ``progress``.

    Returns:
        (completed epochs, training seconds so far).
    """
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        generator.set_state(checkpoint["rng"])
        progress.update({key: checkpoint["progress"][key] for key in progress})
        return int(checkpoint["epoch"]), float(checkpoint["seconds"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # a checkpoint we did not write
        reason = " ".join(str(err).split())[:120] or type(err).__name__
        raise UserError(f"cannot resume from it ({reason})", path) from None


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
