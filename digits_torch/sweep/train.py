"""Training a sweep's networks and writing their run directories: stacks, then solo runs.

A stack trains in the loop a solo run trains in (:func:`~digits_torch.train.run_loop.train_epochs`),
with the stack as its epoch trainer; each stacked network's directory is written as ``fit`` writes a
run's (:class:`~digits_torch.train.run_files.RunFiles`), but on the sweep's clock
(:class:`_CommittedSaves`): every ``save_every`` seconds (longer where saving a big stack would
take more than a tenth of its time), when the stack is interrupted, and at the end. So that a
sweep resumed after a kill trains every network exactly as an uninterrupted one (the same
stack, the same arithmetic), a save is a commit of the whole stack at one epoch:

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
is (:func:`~digits_torch.train.training.check_same_run`). Networks that end between saves keep their
state in memory and are saved (and reported) with the next commit. (Resumed with another number
of ranks, a network joins another stack: its float64 results then agree with an uninterrupted
sweep's to about 1e-16, not bit for bit.)

A stack holds its networks' locks (:class:`~digits_torch.store.runs.RunLock`) while it trains, so a
``train.py --resume`` of one of them waits its turn; a stack that fails (a full disk) cleans up
as ``fit`` does: its last save finished if committed, else undone, and a network that never
saved removed. A network's directory that a kill left before its first checkpoint is removed
when the sweep resumes, and the network starts again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config.config import TrainConfig
from ..config.plan import Plan, make_plan
from ..core.read_files import parse_json, read_bytes
from ..errors import UserError, progress_bar
from ..runtime.devices import resolve_device
from ..runtime.distributed import SOLO, Ranks
from ..runtime.interrupts import StopRequests, cleanup_first, sigterm_interrupts
from ..runtime.threads import cpu_threads
from ..store.checkpoints import LATEST, best_weights, load_run_file
from ..store.files import write_json
from ..store.run_contents import PROGRESS, SIDE
from ..store.runs import METRICS, RunLock, read_metrics, read_split
from ..train.run_files import RunFiles, install, without_resume_hint
from ..train.run_loop import train_epochs
from ..train.run_setup import Digits, Run, read_digits, set_up
from ..train.training import check_same_run, fit, resume
from .plan import stack_key, stackable
from .stack import Stack

__all__ = ["Network", "commit_file", "plan_networks", "recover", "run_sweep"]


@dataclass
class Network:
    """One network of a sweep: its directory's name, its swept values and its config."""

    name: str
    values: dict
    config: TrainConfig
    dir: Path | None = None
    metrics: dict | None = None

    @property
    def plan(self) -> Plan:
        """Its config's plan (the config changes once its teacher is known)."""
        return make_plan(self.config)


def plan_networks(networks: list[Network]) -> tuple[list[list[Network]], list[Network]]:
    """(stacks of networks trained together, networks trained one after another by ``fit``)."""
    stacks: dict[tuple, list[Network]] = {}
    solo = []
    for network in networks:
        plan = network.plan
        if stackable(plan.recipe):
            stacks.setdefault(stack_key(plan), []).append(network)
        else:
            solo.append(network)
    return list(stacks.values()), solo


# ----------------------------------------------------------------------------- commits


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
        content = read_bytes(path)
        try:
            record = parse_json(content)
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
        if network.dir is None and stackable(network.plan.recipe):
            network.dir = sweep_dir / network.name
        if network.dir is not None:
            _own_dir(sweep_dir, network.dir)
    epochs, diverged = _commits(sweep_dir)
    for network in networks:
        if network.dir is None or not any((network.dir / n).exists() for n in SIDE.values()):
            continue
        with RunLock(network.dir):  # a train.py --resume of the network may not be running
            _settle(network.dir, epochs.get(network.name, ()))
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
        install(directory, split is not None and len(split[1]) > 0)
    else:
        for name in SIDE.values():
            (directory / name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- a stack


def _set_up(network: Network, order: int, digits: Digits) -> tuple[Run, bool]:
    """The network's run, set up as ``fit`` sets it up, fresh or (its directory has a
    checkpoint) restored from it; and whether it was restored."""
    path = network.dir / LATEST
    resumed_from = network.dir if path.exists() else None
    run = set_up(network.config, digits=digits, stacked=True, resumed_from=resumed_from)
    run.order = order
    if resumed_from is None:
        return run, False
    checkpoint = load_run_file(path)
    check_same_run(network.dir, checkpoint)  # as train.py --resume checks it: its history too
    run.restore(checkpoint, path)
    run.best = best_weights(network.dir, run.model)
    return run, True


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
        self.digits = read_digits(networks[0].config, device)
        self.threads = networks[0].plan.running.threads  # one value in a sweep
        self.trainees: list[Run] = []
        self.networks: dict[int, Network] = {}
        todo = []
        for network in networks:
            if (network.dir / METRICS).exists():
                network.metrics = read_metrics(network.dir)
            else:
                todo.append(network)
        for order, network in enumerate(todo):  # every network checked before any is written
            run, resumed = _set_up(network, order, self.digits)
            if network.name in diverged:
                run.status = "diverged"
            swept = network.values
            run.files = RunFiles(  # pictures once the sweep has trained (sweep_figures)
                network.dir, run, resumed, swept=swept, figures=False
            )
            self.trainees.append(run)
            self.networks[id(run)] = network
        self.stack = Stack(self.trainees, *self.digits.on_device)

    def train(self, save_every: float, quiet: bool) -> None:
        """Open the networks' files, train the stack, and report each network.

        Raises:
            Interrupted: on Ctrl-C or SIGTERM, once every network's files are saved.
        """
        try:
            for run in self.trainees:
                run.files.open()
            epochs = max((t.recipe.epochs - t.epoch for t in self.stack.trainees), default=0)
            desc = f"{len(self.stack.trainees)} networks"
            bar = progress_bar(epochs, 0, desc, "epoch", shown=not quiet)
            with StopRequests() as requests, cpu_threads(self.threads):
                train_epochs(self.stack, _CommittedSaves(self, save_every), requests, bar)
            bar.close()
        except BaseException:
            with cleanup_first():
                self._abandon()
            raise

    def _abandon(self) -> None:
        """Every network's files cleaned up as ``fit`` cleans up a run: the log closed, the
        last save finished if it was committed and undone if not, and a directory with no
        checkpoint yet, which nothing could resume from, removed. What fails here stays unsaid,
        so that the error that stopped the stack is the one the user sees."""
        with contextlib.suppress(UserError, OSError):
            epochs, _ = _commits(self.commits.parent)
            for run in self.trainees:
                with contextlib.suppress(UserError, OSError):
                    run.files.abandon(interrupted=False)
                    if run.files.dir.exists():
                        name = self.networks[id(run)].name
                        _settle(run.files.dir, epochs.get(name, ()))

    def save(self) -> None:
        """Commit every network of the stack not yet reported at its current epoch (see the
        module docstring); report those that have ended."""
        self.stack.sync()
        saving = [t for t in self.trainees if self.networks[id(t)].metrics is None]
        prepared = [t for t in saving if t.files.save(beside=True)]
        ended = [t for t in saving if t.status != "training"]
        if not prepared and not ended:
            return
        epochs = {self.networks[id(t)].name: t.epoch for t in saving}
        diverged = [self.networks[id(t)].name for t in saving if t.status == "diverged"]
        write_json(self.commits, {"epochs": epochs, "diverged": diverged})
        for run in prepared:
            install(run.files.dir, run.has_val)
        for run in ended:
            run.model.load_state_dict(run.best)
            self.networks[id(run)].metrics, _ = run.files.report()
            run.drop_copies()


class _CommittedSaves:
    """A stack's saves (a :class:`~digits_torch.train.run_loop.Saves`): the whole stack, committed
    as one, when training stops, at the end, and every ``save_every`` seconds, or, where a commit
    of the stack takes longer than a tenth of that, ten commits' time after the last ended: a
    stack of many networks (each save writes and syncs every network's files) then spends at
    most about a tenth of its time saving. ``save_every`` 0 asks for every epoch, and gets it."""

    SHARE = 0.1  # of the time between saves, at most, spent saving

    def __init__(self, stack_run: _StackRun, save_every: float) -> None:
        self.stack_run, self.save_every = stack_run, save_every
        self.interval = save_every
        self.last = time.perf_counter()

    def after_epoch(self, stop: bool) -> None:
        if stop or time.perf_counter() - self.last >= self.interval:
            started = time.perf_counter()
            self.stack_run.save()
            self.last = time.perf_counter()
            if self.save_every > 0:
                self.interval = max(self.save_every, (self.last - started) / self.SHARE)

    def final(self) -> None:
        self.stack_run.save()


# ----------------------------------------------------------------------------- the sweep


def _run_solo(network: Network, sweep_dir: Path, quiet: bool) -> None:
    """A network that does not stack: ``fit`` (or ``resume``) in the sweep directory, in this
    process alone (under torchrun, each rank trains its own networks)."""
    found = []
    for directory in sorted(sweep_dir.glob(f"*-{network.plan.running.preset}-{network.name}")):
        _own_dir(sweep_dir, directory)
        if not directory.is_dir():
            continue
        if (directory / LATEST).exists():
            found.append(directory)
        else:  # a kill beat its first checkpoint: nothing in it to resume
            _remove_unstarted(directory)
    # fit cleans up on SIGTERM as on Ctrl-C; the sweep, not the network, says how to resume
    with sigterm_interrupts(), without_resume_hint():
        if found and (found[-1] / METRICS).exists():
            network.dir = found[-1]
        elif found:
            network.dir = resume(found[-1], ranks=SOLO, quiet=quiet).run_dir
        else:
            # in the sweep directory, wherever sweep.json says it was
            # pictures once the sweep has trained (sweep_figures), not at the end of fit
            config = dataclasses.replace(
                network.config, quiet=quiet, logdir=str(sweep_dir), figures=False
            )
            network.dir = fit(config, ranks=SOLO).run_dir
    network.metrics = read_metrics(network.dir)


def _remove_unstarted(run_dir: Path) -> None:
    """A network's run directory without a checkpoint, removed (under its lock) as ``fit``
    removes a run that never saved; the network then starts again."""
    with RunLock(run_dir):
        try:
            shutil.rmtree(run_dir)
        except OSError as err:
            raise UserError(f"cannot remove it ({err.strerror or err})", run_dir) from None


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
    with contextlib.ExitStack() as locks:
        for network in networks:
            if network.dir.is_dir() and not (network.dir / LATEST).exists():
                _remove_unstarted(network.dir)
            _make_dir(network.dir)
            locks.enter_context(RunLock(network.dir))
        yield


def _make_dir(path: Path) -> None:
    """A stacked network's directory, made by the rank that trains it."""
    try:
        path.mkdir(exist_ok=True)
    except OSError as err:
        problem = f"cannot make the network's directory ({err.strerror or err})"
        raise UserError(problem, path) from None


def run_sweep(
    sweep_dir: Path,
    networks: list[Network],
    save_every: float,
    quiet: bool,
    *,
    ranks: Ranks = SOLO,
    diverged: Collection[str] = (),
) -> None:
    """Train (or go on training) ``networks``: the stacks, then the solo networks.

    Args:
        networks: the sweep's, or under torchrun this rank's share of them, as :func:`recover`
            left them (which must have run first, on the whole sweep), their teachers named
            (:func:`~digits_torch.sweep.teachers.name_teachers`).
        quiet: no progress bars (only rank 0 of a torchrun job shows them anyway).
        ranks: the job: which commit file this rank writes (:func:`commit_file`).
        diverged: what :func:`recover` returned.

    Raises:
        KeyboardInterrupt: on Ctrl-C or SIGTERM, once every network's files are saved.
    """
    if not networks:  # a rank of a job with more ranks than networks
        return
    stacks, solo = plan_networks(networks)
    device = resolve_device(networks[0].plan.running.device)
    quiet = quiet or not ranks.lead
    commits = sweep_dir / commit_file(ranks.rank)
    for stack in stacks:
        with _locked(stack):
            _StackRun(commits, stack, device, diverged).train(save_every, quiet)
    for network in solo:
        _run_solo(network, sweep_dir, quiet)
