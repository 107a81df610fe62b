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
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import (
    LATEST,
    RESUMABLE,
    best_weights,
    check_fits,
    clone_weights,
    load_run_file,
    restore,
)
from .config import TrainConfig, fields_with, preset_differences
from .distributed import Ranks, any_rank, from_lead, job_ranks, joined
from .errors import (
    Interrupted,
    StderrOrNothing,
    UserError,
    no_such_path,
    redraw_interval,
    tell,
)
from .model import MLP
from .run_files import RunFiles, run_final_figures, run_metrics, val_figures
from .run_setup import Setup, set_up
from .runs import RunLock, check_history, new_run_dir, read_config, run_label
from .schedule import advance, lower_on_plateau
from .threads import cpu_threads

__all__ = ["FitResult", "fit", "resume"]

# Config fields a run directory's name leaves out: how a run is watched, and where and how it
# trains (names tell apart what runs trained).
_NOT_TRAINING = fields_with("named", has=False)
# What a resume may change: how a run is trained and watched, not what it trains.
RESUME_MAY_CHANGE = fields_with("resumable")


@dataclass
class FitResult:
    """What :func:`fit` returns. ``model`` is the best model (the last one without validation)."""

    model: MLP
    run_dir: Path
    config: TrainConfig
    metrics: dict
    history: list[dict] = field(default_factory=list)


def fit(config: TrainConfig, ranks: Ranks | None = None) -> FitResult:
    """Train a new model as ``config`` says, in a new run directory under ``config.logdir``.

    Under torchrun the job's ranks train the one model together, each on its share of every
    batch (:mod:`digits_torch.data_parallel`); rank 0 writes the run. ``ranks``: the job to
    train across (default: torchrun's, from the environment; :data:`~digits_torch.distributed.SOLO`
    trains in this process alone, as a sweep's ranks do).
    """
    ranks = job_ranks() if ranks is None else ranks
    with joined(ranks, config.rank_timeout):
        return _train(config, ranks=ranks)


def resume(run_dir: str | Path, ranks: Ranks | None = None, **overrides) -> FitResult:
    """Continue the run in ``run_dir`` from its latest checkpoint, in the same directory.

    ``overrides`` may change how, not what, is trained: ``device``, ``quiet``,
    ``checkpoint_every``, ``rank_timeout`` and ``epochs`` (to train longer). On CPU a resumed
    run ends with exactly the weights of an uninterrupted one. ``ranks`` as for :func:`fit`: a
    run may be resumed under torchrun or alone, however it was started.

    Raises:
        UserError: another process writes into the run; its checkpoint, config.json and
            history.jsonl are not of one run; or anything :func:`fit` refuses.
    """
    ranks = job_ranks() if ranks is None else ranks
    run_dir = Path(run_dir)
    locks: list[RunLock] = []

    def read_run() -> tuple[TrainConfig, dict]:
        """On rank 0 (the one that writes the run): lock it, then read and check it."""
        if not run_dir.exists():
            raise no_such_path(run_dir)
        if not run_dir.is_dir():
            raise UserError("not a directory", run_dir)
        if not (run_dir / LATEST).exists():
            raise UserError(f"not a run directory to resume (no {LATEST})", run_dir)
        locks.append(RunLock(run_dir))  # before reading: what is read must not change under us
        return _resumable(run_dir, overrides)

    timeout = overrides.get("rank_timeout", TrainConfig.rank_timeout)  # the run's is on rank 0
    with joined(ranks, timeout):
        try:
            config, saved = from_lead(ranks, read_run)
            return _train(config, run_dir, saved, locks[0] if locks else None, ranks=ranks)
        finally:
            for lock in locks:
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
    check_same_run(run_dir, saved)
    return config, saved


def check_same_run(run_dir: Path, saved: dict) -> None:
    """The checkpoint ``saved`` (read from ``run_dir``'s checkpoint.pt) must be the run's own:
    config.json's config (bar what a resume may change) and a history that holds its epochs
    exactly. A checkpoint copied in from another run would otherwise resume into a chimera.
    A resumed sweep checks each of its stacked networks with it too.

    Raises:
        UserError: naming the checkpoint, config.json or history.jsonl.
    """
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


# ----------------------------------------------------------------------------- the loop


def _train(
    config: TrainConfig,
    run_dir: Path | None = None,
    checkpoint: dict | None = None,
    lock: RunLock | None = None,
    *,
    ranks: Ranks,
):
    with cpu_threads(config.threads):  # the run's thread count, set here only
        return _run(config, run_dir, checkpoint, lock, ranks)


def _run(config: TrainConfig, run_dir: Path | None, checkpoint: dict | None, lock, ranks: Ranks):
    # Set up: data, model, optimizer and epoch, before the run directory is touched, so that a
    # run that cannot start (or a refused resume) leaves nothing behind and changes nothing.
    # Under torchrun every rank sets up the same run; rank 0 alone writes it.
    run = set_up(config, ranks)
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
        best = _best_so_far(run_dir, run, ranks)  # read (and checked) in any case
        if run.val is None:  # the best is the latest, even if a kill beat best.pt's update
            best = clone_weights(run.model)
    else:
        label = config.name or run_label(preset_differences(config, ignore=_NOT_TRAINING))
        run_dir = from_lead(ranks, lambda: new_run_dir(config.logdir, config.preset, label))
        best = None
    # Rank 0 alone writes: the other ranks of a torchrun job have no run files.
    files = None
    if ranks.lead:
        files = RunFiles(run_dir, config, run, resumed=checkpoint is not None, world=ranks.world)
    # Every rank keeps the best model in memory, to end with the model rank 0 reports.
    best = clone_weights(run.model) if best is None else best
    bar = None
    try:
        if lock is None and ranks.lead:  # a new run: its directory is ours from the start
            lock = RunLock(run_dir)
        # Start or resume: a new run saves epoch 0 at once, so even a run stopped in its first
        # epoch can be resumed and has a model to load.
        if files is not None:
            files.open(start, seconds_before, best)
        started, epoch, stopped, last = time.perf_counter(), start, "max_epochs", config.epochs
        if run.stopping.should_stop:  # a resumed run that had already converged
            stopped, last = "converged", start
        if checkpoint is not None and start >= last:  # before the bar: a line of its own
            tell(_nothing_to_train(config, start, stopped))
        bar = _progress_bar(config, start, ranks)
        # The epochs. Ctrl-C and SIGTERM are acted on between them, after a checkpoint (under
        # torchrun by every rank at the same epoch end, whichever ranks were signalled).
        with _StopRequests(ranks) as requests:
            for epoch in range(start + 1, last + 1):
                loss, accuracy = run.epoch()
                record = {"epoch": epoch, **val_figures(run, config)}
                # the epoch's one read from the device (float64 holds either dtype exactly)
                finite = torch.stack([p.isfinite().all() for p in run.model.parameters()]).all()
                read = torch.stack([loss.double(), accuracy.double(), finite.double()]).tolist()
                record["train_loss"], record["train_accuracy"], weights_finite = read
                record["lr"] = run.optimizer.param_groups[0]["lr"]  # this epoch's lr
                if run.scheduler is not None:
                    advance(run.scheduler)
                record["seconds"] = seconds_before + time.perf_counter() - started
                if not (math.isfinite(record["train_loss"]) and weights_finite):
                    if files is not None:  # keeps what was finite, and says so
                        files.stop_on_nan(epoch, record["train_loss"])
                    problem = f"the loss or the weights stopped being finite at epoch {epoch}"
                    raise UserError(problem, run_dir)  # the other ranks stop with rank 0
                if files is not None:
                    files.log_epoch(record)
                # Stopping and the best model, then the checkpoint that counts this epoch.
                improved = run.stopping.update(record)
                stop = run.stopping.should_stop
                if stop and config.schedule == "adaptive" and lower_on_plateau(run.optimizer):
                    stop = False  # scikit-learn: lr / 5, and go on
                    run.stopping.restart()
                if improved:
                    best = clone_weights(run.model)
                save = requests.agreed()  # on every rank: the ranks agree on it
                if files is not None:
                    files.end_epoch(epoch, record["seconds"], best if improved else None, save)
                requests.act()
                bar.set_postfix(_postfix(record), refresh=False)
                bar.update(1)
                if stop:
                    stopped = "converged"
                    break
        if files is not None:
            files.save(epoch)  # the last epoch, whatever the budget
        bar.close()
        # The report, on the best model: the one best.pt holds and load_model returns. (Still in
        # the try: a Ctrl-C here, too, says where the checkpoint is and how to resume.)
        run.model.load_state_dict(best)
        if files is not None:
            metrics, history = files.report(epoch, stopped)
        else:  # the metrics rank 0 writes (without the history's figures), written nowhere
            final = run_final_figures(run, config)
            metrics, history = run_metrics(final, run, config, [], epoch, stopped, ranks.world), []
    except BaseException as err:
        if bar is not None:
            bar.close()  # first, so that whatever is printed next starts on a clean line
        if files is not None:
            files.abandon(interrupted=isinstance(err, KeyboardInterrupt))
        raise
    finally:
        if lock is not None:
            lock.release()
    return FitResult(run.model.eval(), run_dir, config, metrics, history)


def _best_so_far(run_dir: Path, run: Setup, ranks: Ranks) -> dict:
    """best.pt's weights, read by rank 0 and sent to every rank by way of the CPU (a GPU's
    tensors would arrive on rank 0's GPU), on each rank's own device."""
    sent = from_lead(
        ranks, lambda: {k: v.cpu() for k, v in best_weights(run_dir, run.model).items()}
    )
    return {k: v.to(run.device) for k, v in sent.items()}


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
    """Ctrl-C and SIGTERM during the epochs: the first is noted and acted on at the end of the
    epoch (:meth:`agreed`, then :meth:`act` after the checkpoint); a second stops the run at
    once. Under torchrun a signal to any rank stops every rank at the same epoch end. Off the
    main thread, where Python allows no signal handlers, signals act as they would."""

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks
        self.signum: int | None = None
        self.stopping = False
        self._previous: dict[int, object] = {}

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

    def agreed(self) -> bool:
        """Whether the run stops after this epoch: a signal here (or on any rank of the job)."""
        self.stopping = any_rank(self.ranks, self.signum is not None)
        return self.stopping

    def act(self) -> None:
        if self.stopping:
            raise Interrupted(signal.SIGTERM if self.signum is None else self.signum)


def _progress_bar(config: TrainConfig, start: int, ranks: Ranks) -> tqdm:
    return tqdm(
        total=config.epochs,
        initial=start,
        desc=config.preset,
        unit=config.step_name,  # L-BFGS and fmincg count iterations
        file=StderrOrNothing(),  # a closed or broken stderr does not stop the run
        disable=config.quiet or sys.stderr is None or not ranks.lead,
        leave=False,
        mininterval=redraw_interval(),
    )


def _postfix(record: dict) -> dict:
    """The progress bar's figures for one epoch."""
    postfix = {"loss": f"{record['train_loss']:.4f}", "acc": f"{record['train_accuracy']:.4f}"}
    if record["val_accuracy"] is not None:
        postfix["val_acc"] = f"{record['val_accuracy']:.4f}"
    return postfix
