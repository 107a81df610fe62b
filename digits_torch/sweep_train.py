"""Training a sweep's networks and writing their run directories: stacks, then solo runs.

Each stacked network's directory is written as ``fit`` writes a run's (:class:`_Files`), but in
batches: every ``save_every`` seconds, when the stack is interrupted, and at the end. So that a
sweep resumed after a kill trains every network exactly as an uninterrupted one (the same stack,
the same arithmetic), a save is a commit of the whole stack at one epoch:

1. each network appends its new epochs to history.jsonl and writes its checkpoint (and best.pt)
   beside the real ones, as ``.sweep-checkpoint.pt`` (``.sweep-best.pt``);
2. the rank's commit file records the epoch of every network saved (the commit):
   ``progress.json`` for a one-process sweep and torchrun's rank 0, ``progress-rank<N>.json``
   for rank N, so that ranks training at once never overwrite each other's commits;
3. each side file is renamed over the real one.

Before a resumed sweep trains, :func:`recover` renames the side files of a committed save and
deletes those of a save that was not committed, reading every rank's commit file (the world
size may have changed since), so every network is back at its last commit. History lines past a
checkpoint are dropped on resume, and a resumed network is checked as a resumed ``train.py`` run
is (:func:`~digits_torch.training.check_same_run`). Networks that end between saves keep their
state in memory and are saved (and reported) with the next commit. (Resumed with another number
of ranks, a network joins another stack: its float64 figures then agree with an uninterrupted
sweep's to about 1e-16, not bit for bit.)

A stack holds its networks' locks (:class:`~digits_torch.runs.RunLock`) while it trains, so a
``train.py --resume`` of one of them waits its turn; a stack that fails (a full disk) cleans up
as ``fit`` does: its last save finished if committed, else undone, and a network that never
saved removed. A network's directory that a kill left before its first checkpoint is removed
when the sweep resumes, and the network starts again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import plots
from .checkpoints import (
    BEST,
    LATEST,
    best_weights,
    check_fits,
    load_run_file,
    model_checkpoint,
    restore,
    save_checkpoint,
    training_checkpoint,
)
from .config import TrainConfig, resolve_device
from .data import default_data_path, load_digits
from .distributed import SOLO, Ranks
from .errors import StderrOrNothing, UserError, reading, redraw_interval
from .files import fsync_dir, link_atomically, write_json
from .run_files import final_figures, hparams_of, report_metrics
from .runs import METRICS, RunLock, RunLog, read_history, read_metrics, read_split
from .stacked import Member, Stack, stack_key, stackable
from .training import check_same_run, fit, resume

__all__ = ["Network", "Stop", "commit_file", "plan_networks", "recover", "run_sweep"]

PROGRESS = "progress.json"  # the commit file of a one-process sweep (and of torchrun's rank 0)
SIDE = {LATEST: ".sweep-checkpoint.pt", BEST: ".sweep-best.pt"}


@dataclass
class Network:
    """One network of a sweep: its directory's name, its swept values and its config."""

    name: str
    values: dict
    config: TrainConfig
    dir: Path | None = None
    metrics: dict | None = None


def plan_networks(networks: list[Network]) -> tuple[list[list[Network]], list[Network]]:
    """(stacks of networks trained together, networks trained one after another by ``fit``)."""
    stacks: dict[tuple, list[Network]] = {}
    solo = []
    for network in networks:
        if stackable(network.config):
            stacks.setdefault(stack_key(network.config), []).append(network)
        else:
            solo.append(network)
    return list(stacks.values()), solo


# ----------------------------------------------------------------------------- the files


class _Files:
    """One stacked network's run directory, written as ``fit`` writes it, in batches."""

    def __init__(self, network: Network, member: Member, seconds: float, resumed: bool) -> None:
        self.network, self.member, self.dir = network, member, network.dir
        self.resumed = resumed  # from its checkpoint
        self.saved_config = member.config.to_dict()
        self.log: RunLog | None = None
        self.records: list[dict] = []
        self.images: list[tuple] = []
        self.start_seconds = self.seconds = seconds  # training seconds: resumed at, and now
        self.improved = False
        self.has_val = len(member.val_rows) > 0

    def open(self) -> None:
        """The run's log; a new run records its split and saves epoch 0 as latest and best."""
        resume_epoch = self.member.epoch if self.resumed else None
        self.log = RunLog(self.dir, self.saved_config, resume_epoch=resume_epoch)
        if not self.resumed:
            self.log.write_split(self.member.train_rows, self.member.val_rows)
            self.log.start_hparams(hparams_of(self.saved_config), swept=self.network.values)
            save_checkpoint(self._latest(), self.dir / LATEST)
            link_atomically(self.dir / LATEST, self.dir / BEST)

    def _latest(self) -> dict:
        """What a solo run's checkpoint.pt holds, for the member (synced) at its last epoch."""
        m = self.member
        return training_checkpoint(
            m.model,
            m.epoch,
            self.saved_config,
            self.seconds,
            optimizer=m.optimizer,
            scheduler=m.scheduler,
            rng=m.generator,
            stopping=m.stopping,
        )

    def prepare(self) -> bool:
        """Step 1 of a save: the new history lines, then the side files. False: nothing new."""
        if not self.records:
            return False
        self.log.log_epochs(self.records)
        for image, epoch in self.images:
            self.log.log_image("hidden_units", image, epoch)
        if self.improved and self.has_val:
            m = self.member
            best = model_checkpoint(m.model, m.best, m.stopping.best_epoch_, self.saved_config)
            save_checkpoint(best, self.dir / SIDE[BEST])
        save_checkpoint(self._latest(), self.dir / SIDE[LATEST])
        self.records, self.images, self.improved = [], [], False
        return True

    def report(self, X: torch.Tensor, y: torch.Tensor) -> dict:
        """metrics.json, figures and HParams for the best model, as ``fit`` reports a run."""
        m, config = self.member, self.member.config
        m.model.load_state_dict(m.best)
        train = (X[m.train_rows], y[m.train_rows])
        val = (X[m.val_rows], y[m.val_rows]) if self.has_val else None
        final = final_figures(m.model, train, val, config.loss)
        history = read_history(self.dir)
        metrics = report_metrics(
            final,
            history,
            (m.train_rows, m.val_rows),
            epochs=m.epoch,
            best_epoch=m.stopping.best_epoch_,
            stopped=m.status,
            device=str(X.device),
            preset=config.preset,
            ranks=1,  # each network of a sweep is one process's, under torchrun too
        )
        self.log.write_metrics(metrics)
        if config.figures:
            plots.write_run_figures(m.model, train, val, self.dir)
        self.log.log_hparams(final, step=m.epoch)
        self.log.close()
        return metrics

    def abandon(self, committed: Collection[int]) -> None:
        """A stack that failed (a full disk, say): as ``fit`` cleans up a run. The log is
        closed, the last save finished if it was committed (``committed``: the network's
        committed epochs) and undone if not, and a directory with no checkpoint yet, which
        nothing could resume from, is removed."""
        if self.log is not None:
            with contextlib.suppress(Exception):  # the disk may be what failed: that error stands
                self.log.close()
        _settle(self.dir, committed)
        if not (self.dir / LATEST).exists():
            shutil.rmtree(self.dir, ignore_errors=True)


def _install(directory: Path, has_val: bool) -> None:
    """Step 3 of a save: the side files become the real ones (best.pt first)."""
    for name in (BEST, LATEST):
        side = directory / SIDE[name]
        if side.exists():
            os.replace(side, directory / name)
    fsync_dir(directory)
    if not has_val:  # the best is the latest: one file, two names
        link_atomically(directory / LATEST, directory / BEST)


def commit_file(rank: int) -> str:
    """The name of the commit file rank ``rank`` writes in the sweep directory."""
    return PROGRESS if rank == 0 else f"progress-rank{rank}.json"


def _commits(sweep_dir: Path) -> tuple[dict[str, set[int]], set[str]]:
    """Every commit file's records: each network's committed epochs, and those that diverged.

    A record left by an earlier world size is never a later save's: a network's epochs only
    grow past its last commit, so an old record cannot match a newer side file.
    """
    epochs: dict[str, set[int]] = {}
    diverged: set[str] = set()
    for path in [sweep_dir / PROGRESS, *sorted(sweep_dir.glob("progress-rank*.json"))]:
        if not path.exists():
            continue
        try:
            with reading(path):
                record = json.loads(path.read_text())
            for name, epoch in record["epochs"].items():
                epochs.setdefault(name, set()).add(epoch)
            diverged.update(record["diverged"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise UserError(f"unreadable ({err})", path) from None
    return epochs, diverged


def recover(sweep_dir: Path, networks: list[Network]) -> set[str]:
    """Name the stacked networks' directories, then finish every committed save and undo every
    save that was not; returns the names of the networks that diverged.

    Run once for the whole sweep (under torchrun, by rank 0) before any rank trains, and so
    commits, again.
    """
    for network in networks:
        if network.dir is None and stackable(network.config):
            network.dir = sweep_dir / network.name
        if network.dir is not None:
            _own_dir(sweep_dir, network.dir)
    epochs, diverged = _commits(sweep_dir)
    for network in networks:
        if network.dir is None or not any((network.dir / n).exists() for n in SIDE.values()):
            continue
        lock = RunLock(network.dir)  # a train.py --resume of the network may not be running
        try:
            _settle(network.dir, epochs.get(network.name, ()))
        finally:
            lock.release()
    return diverged


def _settle(directory: Path, committed: Collection[int]) -> None:
    """Finish the network's last save if its epoch is one of ``committed``, else undo it (a
    side best.pt without a side checkpoint is of a save never committed: it is written first,
    and installed first)."""
    side = directory / SIDE[LATEST]
    if (directory / METRICS).exists():
        return
    if side.exists() and load_run_file(side)["epoch"] in committed:
        split = read_split(directory)
        _install(directory, split is not None and len(split[1]) > 0)
    else:
        for name in SIDE.values():
            (directory / name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- signals


class Stop:
    """SIGINT and SIGTERM ask a stack to stop at the end of its epoch, with its files saved
    (and, while a rank waits for the others, wait with it: ``asked`` says one came)."""

    def __init__(self) -> None:
        self.asked = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        def ask(signum, frame):
            self.asked = True

        previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """During a solo fit: SIGTERM interrupts it as Ctrl-C does (fit keeps its checkpoint)."""

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- a stack


def _member(network: Network, order: int, X, labels, device) -> tuple[Member, float, bool]:
    """The network's member, fresh or (its directory has a checkpoint) restored from it."""
    member = Member(network.config, X, labels, device, order)
    path = network.dir / LATEST
    if not path.exists():
        return member, 0.0, False
    checkpoint = load_run_file(path)
    check_fits(checkpoint, member.model, path, network.config.data or default_data_path())
    check_same_run(network.dir, checkpoint)  # as train.py --resume checks it: its history too
    epoch, seconds = restore(
        checkpoint,
        path,
        model=member.model,
        optimizer=member.optimizer,
        scheduler=member.scheduler,
        rng=member.generator,
        stopping=member.stopping,
    )
    member.epoch = epoch
    member.best = best_weights(network.dir, member.model)
    return member, seconds, True


class _StackRun:
    """One stack of a sweep from start (or its last commit) to its networks' reports.

    Args:
        commits: the commit file of this rank (:func:`commit_file`).
        networks: the stack's, their directories named (:func:`recover`).
        diverged: the names of the networks that had diverged when the sweep was stopped.
    """

    def __init__(
        self,
        commits: Path,
        networks: list[Network],
        device: torch.device,
        diverged: Collection[str] = (),
    ) -> None:
        self.commits = commits
        c = networks[0].config
        path = c.data or default_data_path()
        X_np, labels = load_digits(path, dtype=c.dtype, stored_labels=True)
        self.X = torch.from_numpy(X_np).to(device)
        self.y = torch.from_numpy(labels % 10).to(device)
        todo = []
        for network in networks:
            if (network.dir / METRICS).exists():
                network.metrics = read_metrics(network.dir)
            else:
                todo.append(network)
        self.files: dict[int, _Files] = {}
        self.members: list[Member] = []
        for order, network in enumerate(todo):  # every network checked before any is written
            member, seconds, resumed = _member(network, order, X_np, labels, device)
            if network.name in diverged:
                member.status = "diverged"
            elif member.stopping.should_stop:
                member.status = "converged"
            elif member.epoch >= member.config.epochs:
                member.status = "max_epochs"
            self.members.append(member)
            self.files[id(member)] = _Files(network, member, seconds, resumed)
        self.unsaved: list[Member] = []  # ended since the last save
        self.stack = Stack([m for m in self.members if m.status == "training"], self.X, self.y)

    def train(self, save_every: float, stop: Stop, quiet: bool) -> None:
        """Open the networks' files, train the stack, and report each network."""
        try:
            for files in self.files.values():
                files.open()
            self._train(save_every, stop, quiet)
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Every network's files cleaned up (:meth:`_Files.abandon`); what fails here stays
        unsaid, so that the error that stopped the stack is the one the user sees."""
        with contextlib.suppress(UserError, OSError):
            epochs, _ = _commits(self.commits.parent)
            for files in self.files.values():
                with contextlib.suppress(UserError, OSError):
                    files.abandon(epochs.get(files.network.name, ()))

    def _train(self, save_every: float, stop: Stop, quiet: bool) -> None:
        started = last_save = time.perf_counter()
        epochs = max((m.config.epochs - m.epoch for m in self.stack.members), default=0)
        bar = _progress_bar(epochs, quiet)
        bar.set_description(f"{len(self.stack.members)} networks")
        with stop.deferred():
            while self.stack.members and not stop.asked:
                self.unsaved += self._epoch(started)
                bar.update(1)
                if stop.asked or time.perf_counter() - last_save >= save_every:
                    self.save()
                    last_save = time.perf_counter()
        bar.close()
        self.save()
        if stop.asked:
            raise KeyboardInterrupt
        for member in self.members:
            files = self.files[id(member)]
            if files.network.metrics is None:
                files.network.metrics = files.report(self.X, self.y)

    def _epoch(self, started: float) -> list[Member]:
        """One epoch of the stack, its records kept for the files; returns who ended."""
        ended, pictured = [], []
        for member, record in self.stack.train_epoch():
            files = self.files[id(member)]
            if member.status != "training":
                ended.append(member)
            if member.status == "diverged":  # as the solo run: that epoch is not logged
                continue
            files.seconds = files.start_seconds + time.perf_counter() - started
            record["seconds"] = files.seconds
            files.improved |= record["epoch"] == member.stopping.best_epoch_
            files.records.append(record)
            every = member.config.image_every
            if every and record["epoch"] % every == 0:
                pictured.append(member)
        if pictured:
            self.stack.sync()  # the members' models hold this epoch's weights (leavers' too)
            for member in pictured:
                image = plots.hidden_units_image(member.model)
                self.files[id(member)].images.append((image, member.epoch))
        return ended

    def save(self) -> None:
        """Commit every network of the stack at its current epoch (see the module docstring)."""
        self.stack.sync()
        saving = self.stack.members + self.unsaved
        prepared = [m for m in saving if self.files[id(m)].prepare()]
        if not prepared and not self.unsaved:
            return
        epochs = {self.files[id(m)].network.name: m.epoch for m in saving}
        diverged = [self.files[id(m)].network.name for m in saving if m.status == "diverged"]
        write_json(self.commits, {"epochs": epochs, "diverged": diverged})
        for member in prepared:
            _install(self.files[id(member)].dir, self.files[id(member)].has_val)
        for member in self.unsaved:
            files = self.files[id(member)]
            files.network.metrics = files.report(self.X, self.y)
        self.unsaved = []


# ----------------------------------------------------------------------------- the sweep


def _run_solo(network: Network, sweep_dir: Path, stop: Stop, quiet: bool) -> None:
    """A network that does not stack: ``fit`` (or ``resume``) in the sweep directory, in this
    process alone (under torchrun, each rank trains its own networks)."""
    found = []
    for directory in sorted(sweep_dir.glob(f"*-{network.config.preset}-{network.name}")):
        _own_dir(sweep_dir, directory)
        if not directory.is_dir():
            continue
        if (directory / LATEST).exists():
            found.append(directory)
        else:  # a kill beat its first checkpoint: nothing in it to resume
            _remove_unstarted(directory)
    with stop.raising():
        if found and (found[-1] / METRICS).exists():
            network.dir = found[-1]
        elif found:
            network.dir = resume(found[-1], ranks=SOLO, quiet=quiet).run_dir
        else:
            # in the sweep directory, wherever sweep.json says it was
            config = dataclasses.replace(network.config, quiet=quiet, logdir=str(sweep_dir))
            network.dir = fit(config, ranks=SOLO).run_dir
    network.metrics = read_metrics(network.dir)


def _remove_unstarted(run_dir: Path) -> None:
    """A network's run directory without a checkpoint, removed (under its lock) as ``fit``
    removes a run that never saved; the network then starts again."""
    lock = RunLock(run_dir)
    try:
        shutil.rmtree(run_dir)
    except OSError as err:
        raise UserError(f"cannot remove it ({err.strerror or err})", run_dir) from None
    finally:
        lock.release()


def _own_dir(sweep_dir: Path, path: Path) -> None:
    """A network's directory must be the sweep's own: right in ``sweep_dir``, not a link out
    of it.

    Raises:
        UserError: naming ``path``.
    """
    if path.is_symlink():
        raise UserError("a link, not a network directory of the sweep", path)
    if path.parent.resolve() != sweep_dir.resolve():
        raise UserError(f"not a network directory of the sweep {sweep_dir}", path)


@contextlib.contextmanager
def _locked(networks: list[Network]) -> Iterator[None]:
    """Each network's directory, made if new (or if a kill beat its first checkpoint: nothing
    in it to resume) and held (:class:`RunLock`) while its stack trains: a ``train.py
    --resume`` of it, or a second sweep, is refused meanwhile."""
    locks: list[RunLock] = []
    try:
        for network in networks:
            if network.dir.is_dir() and not (network.dir / LATEST).exists():
                _remove_unstarted(network.dir)
            _make_dir(network.dir)
            locks.append(RunLock(network.dir))
        yield
    finally:
        for lock in locks:
            lock.release()


def _make_dir(path: Path) -> None:
    """A stacked network's directory, made by the rank that trains it."""
    try:
        path.mkdir(exist_ok=True)
    except OSError as err:
        problem = f"cannot make the network's directory ({err.strerror or err})"
        raise UserError(problem, path) from None


def _progress_bar(epochs: int, quiet: bool) -> tqdm:
    """A stack's bar, redrawn at most four times a second on a terminal, and every half
    minute elsewhere (a log file keeps every redraw as a line)."""
    return tqdm(
        total=epochs,
        disable=quiet or sys.stderr is None,
        file=StderrOrNothing(),  # a closed or broken stderr does not stop the sweep
        leave=False,
        unit="epoch",
        mininterval=redraw_interval(),
    )


def run_sweep(
    sweep_dir: Path,
    networks: list[Network],
    save_every: float,
    quiet: bool,
    *,
    ranks: Ranks = SOLO,
    diverged: Collection[str] = (),
    stop: Stop | None = None,
) -> None:
    """Train (or go on training) ``networks``: the stacks, then the solo networks.

    Args:
        networks: the sweep's, or under torchrun this rank's share of them, as :func:`recover`
            left them (which must have run first, on the whole sweep).
        quiet: no progress bars (only rank 0 of a torchrun job shows them anyway).
        ranks: the job: which commit file this rank writes (:func:`commit_file`).
        diverged: what :func:`recover` returned.
        stop: what notes Ctrl-C and SIGTERM (a new one by default).

    Raises:
        KeyboardInterrupt: on Ctrl-C or SIGTERM, once every network's files are saved.
    """
    if not networks:  # a rank of a job with more ranks than networks
        return
    stacks, solo = plan_networks(networks)
    device = resolve_device(networks[0].config.device)
    stop = Stop() if stop is None else stop
    quiet = quiet or not ranks.lead
    commits = sweep_dir / commit_file(ranks.rank)
    for stack in stacks:
        with _locked(stack):
            _StackRun(commits, stack, device, diverged).train(save_every, stop, quiet)
    for network in solo:
        _run_solo(network, sweep_dir, stop, quiet)
