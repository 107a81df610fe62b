"""Training: fit a config in a new run directory, or resume a run, in one loop.

    from digits_torch import fit, make_config, resume
    result = fit(make_config("coursera", device="cpu"))
    result.metrics["train_accuracy"], result.run_dir
    resume(result.run_dir, epochs=80)                   # train the same run longer

The loop (:func:`_train`) reads top to bottom: set up, start or resume, the epochs, the report.
The whole dataset is moved to the device once; what an epoch does is chosen once, before the loop
(:func:`digits_torch.epochs.make_epoch`); each epoch is read from the device once, logged,
counted by the stopping rule (:mod:`digits_torch.stopping`) and checkpointed.

Checkpoints go on a time budget (``checkpoint_every`` seconds of training): the latest state and
the best model (kept in memory between writes) are written at the first epoch end past the
budget, at the end, and when Ctrl-C or SIGTERM stops the run, which the loop acts on at the end
of the epoch it interrupts (a second one stops it at once). A kill loses at most the epochs
since the last checkpoint; a resume trains them again, to exactly the same weights. The NaN
guard stops a run whose loss or weights stop being finite before anything of it is saved.

One process writes into a run directory at a time (:class:`~digits_torch.runs.RunLock`, held
from before a resume reads its checkpoint to the end of the run).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import signal
import sys
import threading
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
from .errors import Interrupted, StderrOrNothing, UserError, tell
from .files import link_atomically
from .losses import score
from .model import MLP
from .optimizers import make_optimizer
from .runs import RunLock, RunLog, check_history, new_run_dir, read_config, read_history, run_label
from .schedule import lower_on_plateau, make_scheduler
from .stopping import EarlyStopping
from .threads import cpu_threads

__all__ = ["FitResult", "final_figures", "fit", "hparams_of", "report_metrics", "resume"]

# Config fields that describe how a run is watched, not what it trains: not hyperparameters.
_NOT_HPARAMS = ("logdir", "quiet", "name", "image_every", "figures", "checkpoint_every")
# ...nor, for a run directory's name, where and how it trains: names tell apart what runs trained.
_NOT_TRAINING = (*_NOT_HPARAMS, "preset", "device", "threads")
# What a resume may change: how a run is trained and watched, not what it trains.
RESUME_MAY_CHANGE = ("device", "quiet", "epochs", "checkpoint_every")


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

    ``overrides`` may change how, not what, is trained: ``device``, ``quiet``,
    ``checkpoint_every`` and ``epochs`` (to train longer). On CPU a resumed run ends with exactly
    the weights of an uninterrupted one.

    Raises:
        UserError: another process writes into the run; its checkpoint, config.json and
            history.jsonl are not of one run; or anything :func:`fit` refuses.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(
            "no such run directory" if not run_dir.exists() else "not a directory", run_dir
        )
    if not (run_dir / LATEST).exists():
        raise UserError(f"not a run directory to resume (no {LATEST})", run_dir)
    lock = RunLock(run_dir)  # before reading: what is read must not change under us
    try:
        config, saved = _resumable(run_dir, overrides)
        return _train(config, run_dir, saved, lock)
    finally:
        lock.release()


def _resumable(run_dir: Path, overrides: dict) -> tuple[TrainConfig, dict]:
    """The config and checkpoint a resume continues from, checked to be of one run."""
    saved = load_run_file(run_dir / LATEST)
    missing = sorted(RESUMABLE - saved.keys())
    if missing:
        problem = f"cannot resume from it: no {', '.join(missing)} (is it a best.pt?)"
        raise UserError(problem, run_dir / LATEST)
    try:
        config = TrainConfig.from_dict(saved["config"])
    except (UserError, TypeError, AttributeError) as err:  # a config this package did not write
        raise UserError(f"its config is invalid ({err})", run_dir / LATEST) from None
    may_change = set(RESUME_MAY_CHANGE)
    changed = sorted(k for k in overrides.keys() - may_change if not _same(config, k, overrides))
    if changed:
        problem = f"a resumed run keeps its config; cannot change {', '.join(changed)}"
        raise UserError(problem, run_dir)
    config = dataclasses.replace(config, **overrides)  # errors here are the flags'
    if config.schedule == "cosine" and config.epochs != saved["config"]["epochs"]:
        raise UserError(
            f"the {config.schedule} lr schedule spans the run's epochs; keep them", run_dir
        )
    _check_same_run(run_dir, saved)
    return config, saved


def _check_same_run(run_dir: Path, saved: dict) -> None:
    """The checkpoint must be the run's own: config.json's config (bar what a resume may
    change) and a history that reaches its epoch. A checkpoint copied in from another run
    would otherwise resume into a chimera."""
    on_disk = TrainConfig.from_dict(read_config(run_dir)).to_dict()
    in_checkpoint = TrainConfig.from_dict(saved["config"]).to_dict()
    differ = [k for k in on_disk if k not in RESUME_MAY_CHANGE and on_disk[k] != in_checkpoint[k]]
    if differ:
        shown = "; ".join(f"{k} {in_checkpoint[k]!r} here, {on_disk[k]!r} there" for k in differ)
        raise UserError(
            f"its config is not the run's config.json ({shown}): a checkpoint from another run?",
            run_dir / LATEST,
        )
    check_history(run_dir, int(saved["epoch"]), run_dir / LATEST)


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


def _train(
    config: TrainConfig,
    run_dir: Path | None = None,
    checkpoint: dict | None = None,
    lock: RunLock | None = None,
):
    with cpu_threads(config.threads):  # the run's thread count, set here only
        return _run(config, run_dir, checkpoint, lock)


def _run(config: TrainConfig, run_dir: Path | None, checkpoint: dict | None, lock):
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
        if lock is None:  # a new run: its directory is ours from the start
            lock = RunLock(run_dir)
        # Start or resume: a new run saves epoch 0 at once, so even a run stopped in its first
        # epoch can be resumed and has a model to load.
        files.open(start, seconds_before, best)
        bar = _progress_bar(config, start)
        started, epoch, stopped, last = time.perf_counter(), start, "max_epochs", config.epochs
        if run.stopping.should_stop:  # a resumed run that had already converged
            stopped, last = "converged", start
        if checkpoint is not None and start >= last:
            tell(_nothing_to_train(config, start, stopped))
        # The epochs. Ctrl-C and SIGTERM are acted on between them, after a checkpoint.
        with _StopRequests() as requests:
            for epoch in range(start + 1, last + 1):
                loss, accuracy = run.epoch()
                record = {"epoch": epoch, **_val_figures(run, config)}
                # the epoch's one read from the device (float64 holds either dtype exactly)
                finite = torch.stack([p.isfinite().all() for p in run.model.parameters()]).all()
                read = torch.stack([loss.double(), accuracy.double(), finite.double()]).tolist()
                record["train_loss"], record["train_accuracy"], weights_finite = read
                record["lr"] = run.optimizer.param_groups[0]["lr"]  # this epoch's lr
                if run.scheduler is not None:
                    run.scheduler.step()
                record["seconds"] = seconds_before + time.perf_counter() - started
                if not (math.isfinite(record["train_loss"]) and weights_finite):
                    files.stop_on_nan(epoch, record["train_loss"])
                files.log_epoch(record)
                # Stopping and the best model, then the checkpoint that counts this epoch.
                improved = run.stopping.update(record)
                stop = run.stopping.should_stop
                if stop and config.schedule == "adaptive" and lower_on_plateau(run.optimizer):
                    stop = False  # scikit-learn: lr / 5, and go on
                    run.stopping.restart()
                files.end_epoch(epoch, record["seconds"], improved, save=requests.pending)
                requests.act()
                bar.set_postfix(_postfix(record), refresh=False)
                bar.update(1)
                if stop:
                    stopped = "converged"
                    break
        files.save(epoch)  # the last epoch, whatever the budget
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
    finally:
        if lock is not None:
            lock.release()
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


class _StopRequests:
    """Ctrl-C and SIGTERM during the epochs: the first is noted (``pending``) and acted on at
    the end of the epoch (:meth:`act`, after its checkpoint); a second stops the run at once.
    Off the main thread, where Python allows no signal handlers, signals act as they would."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def pending(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> _StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _note(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def act(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


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
        file=StderrOrNothing(),  # a closed or broken stderr does not stop the run
        disable=config.quiet or sys.stderr is None,
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

    ``best`` holds the best model's weights so far (None until the run has started), written
    to best.pt with the latest checkpoint, on the time budget.
    """

    def __init__(self, run_dir: Path, config: TrainConfig, run: _Setup, resumed: bool) -> None:
        self.dir, self.config, self.run = run_dir, config, run
        self.resumable = resumed  # a run that has saved a checkpoint is kept, whatever happens
        self.saved_config = config.to_dict()  # once: every checkpoint carries it
        self.log: RunLog | None = None
        self.best: dict | None = None
        self.best_epoch = self.best_saved_epoch = 0
        self.best_saved = True  # best.pt holds self.best
        self.saved_epoch, self.saved_seconds = 0, 0.0  # what checkpoint.pt holds
        self.last_epoch, self.last_seconds = 0, 0.0  # the last finished epoch

    def open(self, start: int, seconds: float, best: dict | None) -> None:
        """Open the log; a new run records its split and saves epoch 0 as latest and best."""
        resume_epoch = start if self.resumable else None
        self.log = RunLog(self.dir, self.saved_config, resume_epoch=resume_epoch)
        self.saved_epoch = self.last_epoch = self.best_epoch = self.best_saved_epoch = start
        self.saved_seconds = self.last_seconds = seconds
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

    def end_epoch(self, epoch: int, seconds: float, improved: bool, save: bool) -> None:
        """Keep this epoch's model if it is the best; checkpoint if ``save`` or the budget says.

        The budget is measured on the training clock (``seconds``, the history's): no epoch
        the history records after a checkpoint ends ``checkpoint_every`` seconds or more after
        it, except the one whose checkpoint a kill beat.
        """
        if improved:
            self.best, self.best_epoch, self.best_saved = (
                clone_weights(self.run.model),
                epoch,
                False,
            )
        self.last_epoch, self.last_seconds = epoch, seconds
        if save or seconds - self.saved_seconds >= self.config.checkpoint_every:
            self.save(epoch)

    def save(self, epoch: int) -> None:
        """The history, best.pt (if it changed), then the latest checkpoint of ``epoch`` (the
        last finished one: the live model is that epoch's)."""
        if epoch == self.saved_epoch and self.best_saved:
            return
        # The NaN guard, on what is saved: the loss an epoch reports was computed before its
        # last step, so weights that took one step too far are scored here.
        if not self._scores_finite(None) or not (self.best_saved or self._scores_finite(self.best)):
            self.stop_on_nan(epoch)
        self.log.flush()  # the checkpoint claims these epochs: their records come first
        same = self.best_epoch == epoch and self.run.val is None
        if not self.best_saved and not same:
            self._save_best()
        self._save_latest(epoch, self.last_seconds)
        if same:  # the best is the latest: one file, two names
            link_atomically(self.dir / LATEST, self.dir / BEST)
            self.best_saved_epoch = epoch
        self.best_saved = True
        self.saved_epoch, self.saved_seconds = epoch, self.last_seconds

    def _save_best(self) -> None:
        best = model_checkpoint(self.run.model, self.best, self.best_epoch, self.saved_config)
        save_checkpoint(best, self.dir / BEST)
        self.best_saved, self.best_saved_epoch = True, self.best_epoch

    def _scores_finite(self, weights: dict | None) -> bool:
        """Whether the model (with ``weights``, else as it is) has a finite loss on the
        training digits. A forward pass, made only when a checkpoint is about to be written."""
        model = self.run.model
        current = None if weights is None else clone_weights(model)
        if weights is not None:
            model.load_state_dict(weights)
        try:
            loss, _ = score(model, *self.run.train, self.config.loss)
        finally:
            if current is not None:
                model.load_state_dict(current)
        return math.isfinite(loss)

    def stop_on_nan(self, epoch: int, loss: float | None = None) -> None:
        """The NaN guard: the live weights are lost; keep what was finite, then say so."""
        self.log.flush()
        if not self.best_saved and self._scores_finite(self.best):
            self._save_best()  # best.pt: the best finite model so far, kept in memory
        what = (
            f"training loss became {loss}"
            if loss is not None and not math.isfinite(loss)
            else "the weights stopped giving a finite loss"
        )
        raise UserError(
            f"{what} at epoch {epoch}; the last good checkpoint (epoch {self.saved_epoch}) and "
            f"best.pt (epoch {self.best_saved_epoch}) are kept; try a smaller --lr",
            self.dir,
        )

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
        self.log.flush()
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
            tell(
                f"\ninterrupted; the checkpoint of epoch {epoch} is in {self.dir}\n"
                f"resume with: python train.py --resume {self.dir}"
            )
