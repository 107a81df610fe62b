"""Training: fit a config in a new run directory, or resume a run, in one loop.

    from digits_torch import fit, make_config, resume
    result = fit(make_config("coursera", device="cpu"))
    result.metrics["train_accuracy"], result.run_dir
    resume(result.run_dir, epochs=80)                   # train the same run longer

The loop (:func:`_train`) reads top to bottom: set up, start or resume, the epochs, the report.
The whole dataset is moved to the device once; what an epoch does is chosen once, before the loop
(:func:`digits_torch.epochs.make_epoch`); each epoch is read from the device once, logged,
counted by the stopping rule (:mod:`digits_torch.stopping`) and checkpointed.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import plots, sklearn_exact
from .checkpoints import (
    BEST,
    LATEST,
    RESUMABLE,
    best_weights,
    check_fits,
    clone_weights,
    load_run_file,
    model_checkpoint,
    restore,
    save_checkpoint,
)
from .config import DTYPES, TrainConfig, preset_differences, resolve_device
from .data import default_data_path, load_digits, stratified_split
from .epochs import Epoch, make_epoch
from .errors import UserError
from .files import link_atomically
from .losses import score
from .model import MLP
from .optimizers import make_optimizer
from .runs import RunLog, new_run_dir, read_history, run_label
from .schedule import lower_on_plateau, make_scheduler
from .stopping import EarlyStopping
from .threads import cpu_threads

__all__ = ["FitResult", "final_figures", "fit", "hparams_of", "report_metrics", "resume"]

# Config fields that describe how a run is watched, not what it trains: not hyperparameters.
_NOT_HPARAMS = ("logdir", "quiet", "name", "image_every", "figures")
# ...nor, for a run directory's name, where it trains: names tell apart what runs trained.
_NOT_TRAINING = (*_NOT_HPARAMS, "preset", "device")


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
    return _train(config)


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
    saved = load_run_file(run_dir / LATEST)
    missing = sorted(RESUMABLE - saved.keys())
    if missing:
        problem = f"cannot resume from it: no {', '.join(missing)} (is it a best.pt?)"
        raise UserError(problem, run_dir / LATEST)
    try:
        config = TrainConfig.from_dict(saved["config"])
    except (UserError, TypeError, AttributeError) as err:  # a config this package did not write
        raise UserError(f"its config is invalid ({err})", run_dir / LATEST) from None
    changed = sorted(k for k in overrides.keys() - _MAY_CHANGE if not _same(config, k, overrides))
    if changed:
        problem = f"a resumed run keeps its config; cannot change {', '.join(changed)}"
        raise UserError(problem, run_dir)
    config = dataclasses.replace(config, **overrides)  # errors here are the flags'
    if config.schedule == "cosine" and config.epochs != saved["config"]["epochs"]:
        raise UserError(
            f"the {config.schedule} lr schedule spans the run's epochs; keep them", run_dir
        )
    return _train(config, run_dir, saved)


_MAY_CHANGE = {"device", "quiet", "epochs"}  # how, not what, a resumed run trains


def _same(config: TrainConfig, key: str, overrides: dict) -> bool:
    """Whether ``overrides[key]`` is what ``config`` already holds (as the config reads it)."""
    try:
        value = getattr(dataclasses.replace(config, **{key: overrides[key]}), key)
    except (UserError, TypeError):  # not even a valid value: a change, refused as one
        return False
    return value == getattr(config, key)


# ----------------------------------------------------------------------------- set-up


@dataclass
class _Setup:
    """Everything a run trains with, built before its run directory is touched."""

    device: torch.device
    data_path: Path
    rows: tuple[np.ndarray, np.ndarray]  # training and validation rows of the data file
    train: tuple[torch.Tensor, torch.Tensor]  # (m, n) images, (m,) digits, on the device
    val: tuple[torch.Tensor, torch.Tensor] | None  # likewise, or None without a split
    model: MLP
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    stopping: EarlyStopping
    rng: torch.Generator | sklearn_exact.RandomStream  # what a checkpoint saves to resume draws
    epoch: Epoch


def _set_up(config: TrainConfig) -> _Setup:
    device = resolve_device(config.device)
    data_path = default_data_path() if config.data is None else Path(config.data)
    X, labels = load_digits(data_path, dtype=config.dtype, stored_labels=True)
    y = labels % 10  # digits: Coursera's label 10 is the digit 0

    # Initialisation, augmentation and shuffling draw from one CPU generator: the same numbers
    # on every device.
    generator = torch.Generator().manual_seed(config.seed)
    model = MLP(X.shape[1], config.hidden, 10, config.activation, config.init, generator)
    model.to(device, DTYPES[config.dtype])
    stream, train_idx, val_idx = split_rows(config, labels, model)
    if len(train_idx) == 0:
        problem = f"val fraction {config.val_fraction} holds out every example; lower it"
        raise UserError(problem, data_path)

    def on_device(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(X[rows]).to(device), torch.from_numpy(y[rows]).to(device)

    train = on_device(train_idx)
    optimizer = make_optimizer(config, model)
    return _Setup(
        device=device,
        data_path=data_path,
        rows=(train_idx, val_idx),
        train=train,
        val=on_device(val_idx) if len(val_idx) else None,
        model=model,
        optimizer=optimizer,
        scheduler=make_scheduler(
            config.schedule, optimizer, config.epochs, len(train_idx), config.power_t
        ),
        stopping=EarlyStopping(config.stop_on, config.tol, config.patience),
        rng=generator if stream is None else stream,
        epoch=make_epoch(config, model, optimizer, *train, generator, stream),
    )


def split_rows(
    config: TrainConfig, labels: np.ndarray, model: MLP
) -> tuple[sklearn_exact.RandomStream | None, np.ndarray, np.ndarray]:
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


# ----------------------------------------------------------------------------- the loop


def _train(config: TrainConfig, run_dir: Path | None = None, checkpoint: dict | None = None):
    with cpu_threads(config.threads):  # the run's thread count, set here only
        return _run(config, run_dir, checkpoint)


def _run(config: TrainConfig, run_dir: Path | None, checkpoint: dict | None):
    # Set up: data, model, optimizer and epoch, before the run directory is touched, so that a
    # run that cannot start (or a refused resume) leaves nothing behind and changes nothing.
    run = _set_up(config)
    start, seconds_before = 0, 0.0
    if checkpoint is not None:
        check_fits(checkpoint, run.model, run_dir / LATEST, run.data_path)
        start, seconds_before = restore(
            checkpoint,
            run_dir / LATEST,
            model=run.model,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            rng=run.rng,
            stopping=run.stopping,
        )
        best = best_weights(run_dir, run.model)  # read (and checked) in any case
        if run.val is None:  # the best is the latest, even if a kill beat best.pt's update
            best = clone_weights(run.model)
    else:
        label = config.name or run_label(preset_differences(config, ignore=_NOT_TRAINING))
        run_dir, best = new_run_dir(config.logdir, config.preset, label), None
    files = _RunFiles(run_dir, config, run, resumed=checkpoint is not None)
    bar = None
    try:
        # Start or resume: a new run saves epoch 0 at once, so even a run stopped in its first
        # epoch can be resumed and has a model to load.
        files.open(start, best)
        bar = _progress_bar(config, start)
        started, epoch, stopped, last = time.perf_counter(), start, "max_epochs", config.epochs
        if run.stopping.should_stop:  # a resumed run that had already converged
            stopped, last = "converged", start
        if checkpoint is not None and start >= last:
            print(_nothing_to_train(config, start, stopped), file=sys.stderr)
        # The epochs.
        for epoch in range(start + 1, last + 1):
            loss, accuracy = run.epoch()
            record = {"epoch": epoch, **_val_figures(run, config)}
            # the epoch's one read from the device (float64 holds either dtype exactly)
            record["train_loss"], record["train_accuracy"] = torch.stack(
                [loss.double(), accuracy.double()]
            ).tolist()
            record["lr"] = run.optimizer.param_groups[0]["lr"]  # the lr this epoch trained with
            if run.scheduler is not None:
                run.scheduler.step()
            record["seconds"] = seconds_before + time.perf_counter() - started
            if not math.isfinite(record["train_loss"]):
                raise UserError(
                    f"training loss became {record['train_loss']} at epoch {epoch}; the last "
                    f"good checkpoint (epoch {epoch - 1}) is kept; try a smaller --lr",
                    run_dir,
                )
            files.log_epoch(record)
            # Stopping and the best model, then the checkpoint that counts this epoch.
            improved = run.stopping.update(record)
            stop = run.stopping.should_stop
            if stop and config.schedule == "adaptive" and lower_on_plateau(run.optimizer):
                stop = False  # scikit-learn: lr / 5, and go on
                run.stopping.restart()
            files.checkpoint(epoch, record["seconds"], improved)
            bar.set_postfix(_postfix(record), refresh=False)
            bar.update(1)
            if stop:
                stopped = "converged"
                break
        bar.close()
        # The report, on the best model: the one best.pt holds and load_model returns. (Still in
        # the try: a Ctrl-C here, too, says where the checkpoint is and how to resume.)
        run.model.load_state_dict(files.best)
        metrics, history = files.report(epoch, stopped)
    except BaseException as err:
        if bar is not None:
            bar.close()  # first, so that whatever is printed next starts on a clean line
        files.abandon(interrupted=isinstance(err, KeyboardInterrupt))
        raise
    return FitResult(run.model.eval(), run_dir, config, metrics, history)


def _nothing_to_train(config: TrainConfig, epoch: int, stopped: str) -> str:
    """What resuming a finished run says before it reports again."""
    if stopped == "converged":
        return (
            f"epoch {epoch} of {config.epochs} done: the run had stopped early "
            f"({config.stop_on} made no progress for {config.patience} epochs)"
        )
    if config.schedule == "cosine":
        return f"epoch {epoch} of {epoch} done; its cosine lr schedule ends there"
    return f"epoch {epoch} of {config.epochs} done; pass --epochs N to train longer"


def _val_figures(run: _Setup, config: TrainConfig) -> dict:
    if run.val is None:
        return {"val_loss": None, "val_accuracy": None}
    val_loss, val_accuracy = score(run.model, *run.val, config.loss)
    return {"val_loss": val_loss, "val_accuracy": val_accuracy}


def _final_figures(run: _Setup, config: TrainConfig) -> dict:
    return final_figures(run.model, run.train, run.val, config.loss)


def final_figures(model: MLP, train: tuple, val: tuple | None, loss: str) -> dict:
    """The reported model's loss (without the L2 term) and accuracy on the clean training
    digits, and on the validation digits where there are some (else None): what metrics.json
    and the HParams tab report. ``train``, ``val``: ((m, n) images, (m,) digits) on the device."""
    train_loss, train_accuracy = score(model, *train, loss)
    val_loss, val_accuracy = score(model, *val, loss) if val is not None else (None, None)
    return {
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
    }


def report_metrics(final: dict, history: list[dict], rows: tuple, **run) -> dict:
    """metrics.json of a run: ``final`` (:func:`final_figures`), the last epoch's objective and
    seconds from ``history``, the sizes of the split ``rows`` (training, validation), and
    ``run``'s ``epochs``, ``best_epoch``, ``stopped``, ``device`` and ``preset``."""
    return {
        **final,
        "last_epoch_objective": history[-1]["train_loss"] if history else None,
        "train_examples": len(rows[0]),
        "val_examples": len(rows[1]),
        "epochs": run["epochs"],
        "best_epoch": run["best_epoch"],
        "stopped": run["stopped"],
        "seconds": history[-1]["seconds"] if history else 0.0,
        "device": run["device"],
        "preset": run["preset"],
    }


def hparams_of(saved_config: dict) -> dict:
    """The fields of a run's config that its HParams entry lists: what it trained with."""
    return {k: v for k, v in saved_config.items() if k not in _NOT_HPARAMS}


def _progress_bar(config: TrainConfig, start: int) -> tqdm:
    return tqdm(
        total=config.epochs,
        initial=start,
        desc=config.preset,
        unit="epoch",
        disable=config.quiet,
        leave=False,
        mininterval=0.25,
    )


def _postfix(record: dict) -> dict:
    """The progress bar's figures for one epoch."""
    postfix = {"loss": f"{record['train_loss']:.4f}", "acc": f"{record['train_accuracy']:.4f}"}
    if record["val_accuracy"] is not None:
        postfix["val_acc"] = f"{record['val_accuracy']:.4f}"
    return postfix


# ----------------------------------------------------------------------------- the run's files


class _RunFiles:
    """What a run writes: its log (history, TensorBoard), its checkpoints and its report.

    ``best`` holds the best model's weights so far (None until the run has started).
    """

    def __init__(self, run_dir: Path, config: TrainConfig, run: _Setup, resumed: bool) -> None:
        self.dir, self.config, self.run = run_dir, config, run
        self.resumable = resumed  # a run that has saved a checkpoint is kept, whatever happens
        self.saved_config = config.to_dict()  # once: every checkpoint carries it
        self.log: RunLog | None = None
        self.best: dict | None = None

    def open(self, start: int, best: dict | None) -> None:
        """Open the log; a new run records its split and saves epoch 0 as latest and best."""
        resume_epoch = start if self.resumable else None
        self.log = RunLog(self.dir, self.saved_config, resume_epoch=resume_epoch)
        if not self.resumable:
            self.log.write_split(*self.run.rows)
            figures = ["train_loss", "train_accuracy"]
            figures += [] if self.run.val is None else ["val_loss", "val_accuracy"]
            self.log.start_hparams(hparams_of(self.saved_config), figures)  # final_figures' names
            self._save_latest(0, 0.0)
            link_atomically(self.dir / LATEST, self.dir / BEST)
            self.resumable = True
        self.best = clone_weights(self.run.model) if best is None else best

    def log_epoch(self, record: dict) -> None:
        self.log.log_epoch(record)
        every = self.config.image_every
        if every and record["epoch"] % every == 0:
            image = plots.hidden_units_image(self.run.model)
            self.log.log_image("hidden_units", image, record["epoch"])

    def checkpoint(self, epoch: int, seconds: float, improved: bool) -> None:
        """best.pt (if this epoch's model is the best), then the latest checkpoint."""
        if improved:
            self.best = clone_weights(self.run.model)
            if self.run.val is not None:  # before the checkpoint that counts this epoch as best
                best = model_checkpoint(self.run.model, self.best, epoch, self.saved_config)
                save_checkpoint(best, self.dir / BEST)
        self._save_latest(epoch, seconds)
        if improved and self.run.val is None:  # the best is the latest: one file, two names
            link_atomically(self.dir / LATEST, self.dir / BEST)

    def _save_latest(self, epoch: int, seconds: float) -> None:
        run = self.run
        state = model_checkpoint(run.model, run.model.state_dict(), epoch, self.saved_config)
        state.update(
            optimizer=run.optimizer.state_dict(),
            scheduler=None if run.scheduler is None else run.scheduler.state_dict(),
            rng=run.rng.get_state(),
            progress=run.stopping.state_dict(),
            seconds=seconds,
        )
        save_checkpoint(state, self.dir / LATEST)

    def report(self, epoch: int, stopped: str) -> tuple[dict, list[dict]]:
        """metrics.json, the pictures and the HParams entry, for the model now in ``run``.

        Returns the metrics and the run's history.
        """
        run, config = self.run, self.config
        final = _final_figures(run, config)
        history = read_history(self.dir)
        metrics = report_metrics(
            final,
            history,
            run.rows,
            epochs=epoch,
            best_epoch=run.stopping.best_epoch_,
            stopped=stopped,
            device=str(run.device),
            preset=config.preset,
        )
        self.log.write_metrics(metrics)
        if config.figures:
            self._figures(epoch)
        self.log.log_hparams(final, step=epoch)
        self.log.close()
        return metrics, history

    def _figures(self, epoch: int) -> None:
        """Pictures of the reported model, on the validation digits when some were held out."""
        shown = self.run.val if self.run.val is not None else self.run.train
        for name, figure in plots.run_figures(self.run.model, *shown, self.dir).items():
            image = plots.render(figure)
            plots.save_png(image, self.dir / plots.FIGURES / f"{name}.png")
            if name in ("mistakes", "confusion"):
                self.log.log_image(f"figures/{name}", image, epoch)

    def abandon(self, interrupted: bool) -> None:
        """The one cleanup path: close what is open; a run that never saved is removed."""
        if self.log is not None:
            try:
                self.log.close()
            except Exception:  # noqa: S110 - the disk may be what failed; the first error stands
                pass
        if not self.resumable:  # nothing resumable was written: leave no half-made run behind
            shutil.rmtree(self.dir, ignore_errors=True)
        elif interrupted:
            epoch = load_run_file(self.dir / LATEST)["epoch"]
            print(
                f"\ninterrupted; the checkpoint of epoch {epoch} is in {self.dir}\n"
                f"resume with: python train.py --resume {self.dir}",
                file=sys.stderr,
            )
