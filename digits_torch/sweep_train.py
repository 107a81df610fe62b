"""Training a sweep's networks and writing their run directories: stacks, then solo runs.

Each stacked network's directory is written as ``fit`` writes a run's (:class:`_Files`), but in
batches: every ``save_every`` seconds, when the stack is interrupted, and at the end. So that a
sweep resumed after a kill trains every network exactly as an uninterrupted one (the same stack,
the same arithmetic), a save is a commit of the whole stack at one epoch:

1. each network appends its new epochs to history.jsonl and writes its checkpoint (and best.pt)
   beside the real ones, as ``.sweep-checkpoint.pt`` (``.sweep-best.pt``);
2. ``progress.json`` records the epoch of every network saved (the commit);
3. each side file is renamed over the real one.

A resumed sweep renames the side files of a committed save and deletes those of a save that was
not committed; either way every network of the stack is back at one common save. History lines
past a checkpoint are dropped on resume, as for a resumed ``train.py`` run. Networks that end
between saves keep their state in memory and are saved (and reported) with the next commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
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
from .files import fsync_dir, link_atomically, write_json
from .run_files import final_figures, hparams_of, report_metrics
from .runs import METRICS, RunLog, read_history, read_split
from .stacked import Member, Stack, stack_key, stackable
from .training import fit, resume

__all__ = ["Network", "plan_networks", "run_sweep"]

PROGRESS = "progress.json"
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

    def __init__(self, network: Network, member: Member, seconds: float) -> None:
        self.network, self.member, self.dir = network, member, network.dir
        self.saved_config = member.config.to_dict()
        self.records: list[dict] = []
        self.images: list[tuple] = []
        self.start_seconds = self.seconds = seconds  # training seconds: resumed at, and now
        self.improved = False
        self.has_val = len(member.val_rows) > 0

    def open(self, resumed: bool) -> None:
        """The run's log; a new run records its split and saves epoch 0 as latest and best."""
        resume_epoch = self.member.epoch if resumed else None
        self.log = RunLog(self.dir, self.saved_config, resume_epoch=resume_epoch)
        if not resumed:
            self.log.write_split(self.member.train_rows, self.member.val_rows)
            figures = ["train_loss", "train_accuracy"]
            figures += ["val_loss", "val_accuracy"] if self.has_val else []
            self.log.start_hparams(hparams_of(self.saved_config), figures)
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
        )
        self.log.write_metrics(metrics)
        if config.figures:
            shown = val if val is not None else train
            for name, figure in plots.run_figures(m.model, *shown, self.dir).items():
                image = plots.render(figure)
                plots.save_png(image, self.dir / plots.FIGURES / f"{name}.png")
        self.log.log_hparams(final, step=m.epoch)
        self.log.close()
        return metrics


def _install(directory: Path, has_val: bool) -> None:
    """Step 3 of a save: the side files become the real ones (best.pt first)."""
    for name in (BEST, LATEST):
        side = directory / SIDE[name]
        if side.exists():
            os.replace(side, directory / name)
    fsync_dir(directory)
    if not has_val:  # the best is the latest: one file, two names
        link_atomically(directory / LATEST, directory / BEST)


def _recover(sweep_dir: Path, networks: list[Network]) -> dict:
    """Finish a committed save, undo one that was not; returns the last commit's record."""
    path = sweep_dir / PROGRESS
    progress = json.loads(path.read_text()) if path.exists() else {"epochs": {}, "diverged": []}
    for network in networks:
        side = network.dir / SIDE[LATEST]
        if not side.exists():
            continue
        committed = progress["epochs"].get(network.name)
        if committed is not None and load_run_file(side)["epoch"] == committed:
            split = read_split(network.dir)
            _install(network.dir, split is not None and len(split[1]) > 0)
        else:
            for name in SIDE.values():
                (network.dir / name).unlink(missing_ok=True)
    return progress


# ----------------------------------------------------------------------------- signals


class _Stop:
    """SIGINT and SIGTERM ask a stack to stop at the end of its epoch, with its files saved."""

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
    """One stack of a sweep from start (or its last save) to its networks' reports."""

    def __init__(self, sweep_dir: Path, networks: list[Network], device: torch.device) -> None:
        self.sweep_dir = sweep_dir
        c = networks[0].config
        path = c.data or default_data_path()
        X_np, labels = load_digits(path, dtype=c.dtype, stored_labels=True)
        self.X = torch.from_numpy(X_np).to(device)
        self.y = torch.from_numpy(labels % 10).to(device)
        todo = []
        for network in networks:
            if (network.dir / METRICS).exists():
                network.metrics = json.loads((network.dir / METRICS).read_text())
            else:
                todo.append(network)
        progress = _recover(sweep_dir, todo)
        self.files: dict[int, _Files] = {}
        self.members: list[Member] = []
        for order, network in enumerate(todo):
            network.dir.mkdir(exist_ok=True)
            member, seconds, resumed = _member(network, order, X_np, labels, device)
            if network.name in progress["diverged"]:
                member.status = "diverged"
            elif member.stopping.should_stop:
                member.status = "converged"
            elif member.epoch >= member.config.epochs:
                member.status = "max_epochs"
            self.members.append(member)
            self.files[id(member)] = _Files(network, member, seconds)
            self.files[id(member)].open(resumed)
        self.unsaved: list[Member] = []  # ended since the last save
        self.stack = Stack([m for m in self.members if m.status == "training"], self.X, self.y)

    def train(self, save_every: float, stop: _Stop, quiet: bool) -> None:
        started = last_save = time.perf_counter()
        epochs = max((m.config.epochs - m.epoch for m in self.stack.members), default=0)
        bar = tqdm(total=epochs, disable=quiet, leave=False, unit="epoch")
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
        write_json(self.sweep_dir / PROGRESS, {"epochs": epochs, "diverged": diverged})
        for member in prepared:
            _install(self.files[id(member)].dir, self.files[id(member)].has_val)
        for member in self.unsaved:
            files = self.files[id(member)]
            files.network.metrics = files.report(self.X, self.y)
        self.unsaved = []


# ----------------------------------------------------------------------------- the sweep


def _run_solo(network: Network, sweep_dir: Path, stop: _Stop) -> None:
    """A network that does not stack: ``fit`` (or ``resume``) in the sweep directory."""
    found = sorted(sweep_dir.glob(f"*-{network.config.preset}-{network.name}"))
    with stop.raising():
        if found and (found[-1] / METRICS).exists():
            network.dir = found[-1]
        elif found:
            network.dir = resume(found[-1], quiet=network.config.quiet).run_dir
        else:
            network.dir = fit(network.config).run_dir
    network.metrics = json.loads((network.dir / METRICS).read_text())


def run_sweep(sweep_dir: Path, networks: list[Network], save_every: float, quiet: bool) -> None:
    """Train (or go on training) every network: the stacks, then the solo networks.

    Raises:
        KeyboardInterrupt: on Ctrl-C or SIGTERM, once every network's files are saved.
    """
    stacks, solo = plan_networks(networks)
    device = resolve_device(networks[0].config.device)
    stop = _Stop()
    for network in networks:
        if network.dir is None and stackable(network.config):
            network.dir = sweep_dir / network.name
    for stack in stacks:
        _StackRun(sweep_dir, stack, device).train(save_every, stop, quiet)
    for network in solo:
        _run_solo(network, sweep_dir, stop)
