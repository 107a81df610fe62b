"""Training: fit a config in a new run directory, or resume a run, in one loop.

    from digits_torch import fit, make_config, resume
    result = fit(make_config("coursera", device="cpu"))
    result.metrics["train_accuracy"], result.run_dir
    resume(result.run_dir, epochs=80)                   # train the same run longer

The loop (:func:`_train`) reads top to bottom: set up, start or resume, the epochs, the report.
The whole dataset is moved to the device once; what an epoch does is chosen once, before the loop
(:func:`digits_torch.train.epochs.make_epoch_function`); each epoch is read from the device once,
logged, counted by the stopping rule (:mod:`digits_torch.optim.stopping`) and checkpointed.

Checkpoints go on a time budget (``checkpoint_every`` seconds of training): the latest state and
the best model (kept in memory between writes) are written at the first epoch end past the
budget, at the end, and when Ctrl-C or SIGTERM stops the run, which the loop acts on at the end
of the epoch it interrupts (a second one stops it at once). A kill loses at most the epochs
since the last checkpoint; a resume trains them again, to exactly the same weights. The NaN
guard stops a run whose loss or weights stop being finite before anything of it is saved.

One process writes into a run directory at a time (:class:`~digits_torch.store.runs.RunLock`, held
from before a resume reads its checkpoint to the end of the run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..config.config import TrainConfig, fields_with, preset_differences
from ..config.plan import make_plan
from ..core.model import MLP
from ..errors import UserError, no_such_path, print_stderr, progress_bar
from ..runtime.distributed import SOLO, Ranks, from_lead, job_ranks, joined
from ..runtime.interrupts import StopRequests, cleanup_first
from ..runtime.threads import cpu_threads
from ..store.checkpoints import LATEST, RESUMABLE, best_weights, load_run_file
from ..store.run_contents import FIGURES
from ..store.runs import (
    METRICS,
    RESUME_MAY_CHANGE,
    RunInUse,
    RunLock,
    check_history,
    new_run_dir,
    read_config,
    run_label,
)
from .leftovers import leftover_problem, remove_leftovers
from .run_files import RunFiles, final_metrics, run_metrics
from .run_loop import OneNetwork, train_epochs
from .run_setup import Run, set_up
from .teachers import teacher_config, teacher_plan, teacher_run, trained_for_another_split

__all__ = ["FitResult", "fit", "resume", "with_teacher"]

# Config fields a run directory's name leaves out: how a run is watched, and where and how it
# trains (names tell apart what runs trained).
_NOT_TRAINING = fields_with("named", has=False)


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
    batch (:mod:`digits_torch.fast.data_parallel`); rank 0 writes the run. ``ranks``: the job to
    train across (default: torchrun's, from the environment;
    :data:`~digits_torch.runtime.distributed.SOLO` trains in this process alone, as a sweep's ranks
    do).
    """
    ranks = job_ranks() if ranks is None else ranks
    with joined(ranks, config.rank_timeout):
        return _train(with_teacher(config, ranks, fitting=True), ranks=ranks)


def with_teacher(config: TrainConfig, ranks: Ranks = SOLO, fitting: bool = False) -> TrainConfig:
    """``config`` with its teacher named: a ``teacher_preset`` without a ``teacher`` is trained
    first (a run of that preset on the same digits and split: the same data, seed and val
    fraction, so it never sees the validation digits), found finished in the logdir, or, where
    one was stopped, resumed. Its progress bar is the preset's; its path is in the closing table.
    A ``teacher`` the preset trained for another split gives way to this split's (unless
    ``teacher_any_split``): ``--config RUN/config.json --seed 3`` trains seed 3's own.
    ``fitting``: the teacher comes before :func:`fit` trains ``config``: the plan is said (unless
    quiet), and a stopped teacher names this command, which trains both, to run again.
    """
    if config.teacher_preset is None:
        return config
    if config.teacher is not None and (
        config.teacher_any_split or not from_lead(ranks, lambda: trained_for_another_split(config))
    ):
        return config
    teacher = teacher_config(config)
    found = from_lead(ranks, lambda: teacher_run(teacher))
    # the plan, said once the teacher's data and split are known to be good (after its set-up)
    said = (
        teacher_plan(config, teacher, found)
        if fitting and ranks.lead and not config.quiet
        else None
    )
    trained, again = None, command_line() if fitting else None
    if found is None:
        trained = _train_teacher(teacher, ranks, again, said)
    elif not (found / METRICS).exists():  # stopped (Ctrl-C, a kill): go on from its checkpoint
        try:
            trained = _resume(found, ranks, {"quiet": config.quiet}, again, said)
        except RunInUse as err:  # another run trains it first, for the same digits and split
            raise UserError(
                f"in use ({err.holder}): another run is training the teacher this run needs "
                f"(--teacher-preset {config.teacher_preset}, on the same digits and split); "
                "wait for it to finish (this run then uses it), or give this run a teacher of "
                "its own: another --logdir, or --teacher RUN",
                found,
            ) from None
    elif said is not None:
        print_stderr(said)
    if trained is not None:
        found = trained.run_dir
        if not config.quiet and ranks.lead:  # its bar is gone: a line that stays
            print_stderr(finished_line(trained))
    return dataclasses.replace(config, teacher=str(found))


def finished_line(result: FitResult) -> str:
    """One line for a network trained before the one a command reports: its preset, its
    epochs and seconds, its best.pt's accuracies, where it is."""
    m = result.metrics
    val = "" if m["val_accuracy"] is None else f", validation {m['val_accuracy']:.4f}"
    return (
        f"{result.config.preset}: done, {m['epochs']} {result.config.step_name}s in "
        f"{m['seconds']:.1f} s; accuracy training {m['train_accuracy']:.4f}{val}; "
        f"{result.run_dir}"
    )


def command_line() -> str:
    """This process's command, as the user would type it again (``python train.py --flags``,
    ``digits-train ...``, ``python -m digits_torch train ...``)."""
    first = Path(sys.argv[0])
    if first.name == "train.py":
        start = ["python", sys.argv[0]]
    elif first.name == "__main__.py" and first.parent.name == "digits_torch":
        start = ["python", "-m", "digits_torch"]  # its argv goes on with the command's name
    elif first.suffix == ".py":
        start = ["python", sys.argv[0]]
    else:
        start = [first.name]
    return shlex.join([*start, *sys.argv[1:]])


def _train_teacher(
    config: TrainConfig, ranks: Ranks, again: str | None, announce: str | None
) -> FitResult:
    """A new teacher run; if it fails, a teachers/ directory it made (and left empty) goes too.
    ``again``, ``announce``: as for :func:`_train`."""
    teachers = Path(config.logdir)
    made = not teachers.exists()
    try:
        return _train(config, ranks=ranks, again=again, announce=announce)
    except BaseException:
        if made and ranks.lead and teachers.is_dir() and not any(teachers.iterdir()):
            teachers.rmdir()
        raise


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
    timeout = overrides.get("rank_timeout", TrainConfig.rank_timeout)  # the run's is on rank 0
    with joined(ranks, timeout):
        return _resume(Path(run_dir), ranks, overrides)


def _resume(
    run_dir: Path,
    ranks: Ranks,
    overrides: dict,
    again: str | None = None,
    announce: str | None = None,
) -> FitResult:
    """:func:`resume`, the process group up; ``again``, ``announce`` as for :func:`_train`."""

    def read_run() -> tuple[TrainConfig, dict]:
        """On rank 0 (the one that writes the run): lock it, then read and check it."""
        if not run_dir.exists():
            raise no_such_path(run_dir)
        if not run_dir.is_dir():
            raise UserError("not a directory", run_dir)
        if not (run_dir / LATEST).exists():
            left = leftover_problem(run_dir)
            raise UserError(left or f"not a run directory to resume (no {LATEST})", run_dir)
        locks.enter_context(RunLock(run_dir))  # before reading: it must not change under us
        return _resumable(run_dir, overrides)

    with contextlib.ExitStack() as locks:  # the run's lock, held to the end of the run
        config, saved = from_lead(ranks, read_run)
        return _train(config, run_dir, saved, ranks=ranks, again=again, announce=announce)


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
    schedule = make_plan(config).recipe.schedule
    if schedule.spans_epochs and config.epochs != saved["config"]["epochs"]:
        problem = f"the {schedule.name} lr schedule spans the run's epochs; keep them"
        raise UserError(problem, run_dir)
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
    *,
    ranks: Ranks,
    again: str | None = None,
    announce: str | None = None,
):
    """Train (or go on training) one network; ``again``: the command that resumes what it was
    trained for, which an interrupted run names (else: its own --resume); ``announce``: lines
    said once it has started (a command's plan), so that a refused run says only its error."""
    # the run's thread count, set here only; the run's lock, released once it has ended
    with cpu_threads(config.threads), contextlib.ExitStack() as locks:
        # Set up: data, model, optimizer and epoch, before the run directory is touched, so that
        # a run that cannot start (or a refused resume) leaves nothing behind and changes
        # nothing. Under torchrun every rank sets up the same run; rank 0 alone writes it.
        resumed_from = run_dir if checkpoint is not None else None
        run = set_up(make_plan(config), ranks, resumed_from=resumed_from)
        if checkpoint is not None:
            _restore(run, checkpoint, run_dir, ranks)
        else:
            # a teacher trained first is named by its preset (teacher_preset), not by its path
            ignore = _NOT_TRAINING + (("teacher",) if config.teacher_preset else ())
            label = config.name or run_label(preset_differences(config, ignore=ignore))
            run_dir = from_lead(ranks, lambda: new_run_dir(config.logdir, config.preset, label))
        # Rank 0 alone writes: the other ranks of a torchrun job have no run files.
        if ranks.lead:
            run.files = RunFiles(run_dir, run, resumed=checkpoint is not None, world=ranks.world)
            run.files.again = again
        files, bar = run.files, None
        try:
            if checkpoint is None and ranks.lead:  # a new run: its directory is ours at once
                locks.enter_context(RunLock(run_dir))
                remove_leftovers(run_dir.parent, keep=run_dir)  # runs killed before saving
            # Start or resume: a new run saves epoch 0 at once, so even a run stopped in its
            # first epoch can be resumed and has a model to load.
            if files is not None:
                files.open()
            if announce is not None:  # the run has started: what could refuse it has not
                print_stderr(announce)
            if checkpoint is not None and run.status != "training":  # a line before the bar
                print_stderr(_nothing_to_train(config, run.epoch, run.status))
            shown = not config.quiet and ranks.lead
            bar = progress_bar(config.epochs, run.epoch, config.preset, config.step_name, shown)
            # The epochs. Ctrl-C and SIGTERM are acted on between them, after a checkpoint
            # (under torchrun by every rank at the same epoch end, whichever were signalled).
            with StopRequests(ranks) as requests:
                train_epochs(
                    OneNetwork(run),
                    files,
                    requests,
                    bar,
                    on_diverged=lambda t, record: _diverged(t, record, run_dir),
                )
            bar.close()
            # The report, on the best model: the one best.pt holds and load_model returns.
            # (Still in the try: a Ctrl-C here, too, says where the checkpoint is and how to
            # resume.)
            run.model.load_state_dict(run.best)
            if files is not None:
                if shown and config.figures:  # some seconds: say what they are spent on
                    print_stderr(f"{config.preset}: drawing its pictures into {run_dir / FIGURES}")
                metrics, history = files.report()
            else:  # the metrics rank 0 writes (without the history's records), kept nowhere
                metrics, history = run_metrics(final_metrics(run), run, [], ranks.world), []
        except BaseException as err:
            with cleanup_first():
                if bar is not None:
                    bar.close()  # first, so that whatever is printed next starts on a clean line
                if files is not None:
                    files.abandon(interrupted=isinstance(err, KeyboardInterrupt))
            raise
        return FitResult(run.model.eval(), run_dir, config, metrics, history)


def _restore(run: Run, checkpoint: dict, run_dir: Path, ranks: Ranks) -> None:
    """The run's network as its checkpoint left it, with the best model so far."""
    run.restore(checkpoint, run_dir / LATEST)
    best = _best_so_far(run_dir, run, ranks)  # read (and checked) in any case
    if run.has_val:  # else the best is the latest, even if a kill beat best.pt's update
        run.best = best


def _diverged(run: Run, record: dict, run_dir: Path) -> None:
    """The NaN guard of a run: it stops, keeping what was finite, and says so."""
    epoch = record["epoch"]
    if run.files is not None:  # keeps what was finite, and says so
        run.files.stop_on_nan(epoch, record["train_loss"])
    problem = f"the loss or the weights stopped being finite at epoch {epoch}"
    raise UserError(problem, run_dir)  # the other ranks stop with rank 0


def _best_so_far(run_dir: Path, run: Run, ranks: Ranks) -> dict:
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
    schedule = make_plan(config).recipe.schedule
    if schedule.spans_epochs:
        return f"epoch {epoch} of {epoch} done; its {schedule.name} lr schedule ends there"
    return f"epoch {epoch} of {config.epochs} done; pass --epochs N to train longer"
