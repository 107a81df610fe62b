"""A sweep's teachers, named before any network trains (:func:`name_teachers`).

A network that has started (its run directory holds a checkpoint) keeps the teacher its run
recorded: it distils from its own teacher.pt, so no teacher is trained (or named in sweep.json)
for it, even where the sweep's ``teachers/`` has gone. The others need their ``teacher_preset``'s
teacher for their split: each distinct teacher is trained (or found) once, under torchrun by one
rank (the i-th by rank i mod N), while the ranks with none to train wait for them at the
gather that hands every rank every teacher's path. Two ranks never train (or resume) one
teacher at once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..runtime.distributed import Ranks, any_rank, from_lead, gather_to_lead, own_errors
from ..runtime.interrupts import StopRequests
from ..store.checkpoints import LATEST
from ..store.run_contents import METRICS
from ..store.runs import read_config
from ..train.training import teacher_config, with_teacher
from .train import Network

__all__ = ["name_teachers"]


def name_teachers(sweep_dir: Path, networks: list[Network], ranks: Ranks) -> None:
    """Set each network's ``config.teacher`` (see the module docstring), on every rank alike.

    Args:
        networks: the whole sweep's (every rank passes the same list), their directories named
            (:func:`~digits_torch.sweep.train.recover`).

    Raises:
        KeyboardInterrupt: on every rank, when Ctrl-C or SIGTERM stopped a teacher (its
            checkpoint saved) or reached a rank waiting for one.
    """
    kept, groups = from_lead(ranks, lambda: _plan(sweep_dir, networks))
    by_name = {network.name: network for network in networks}
    mine, interrupted = {}, False
    try:
        with own_errors(ranks):
            for index, names in enumerate(groups):
                if index % ranks.world == ranks.rank:
                    config = by_name[names[0]].config
                    shown = dataclasses.replace(config, quiet=config.quiet or not ranks.lead)
                    mine[index] = with_teacher(shown).teacher
    except KeyboardInterrupt:  # the teacher's checkpoint is saved: the others hear of it below
        interrupted = True
    with StopRequests() as waiting:  # a rank with no teacher to train waits here
        gathered = gather_to_lead(ranks, mine)
        found = from_lead(ranks, lambda: _merged(gathered))
        interrupted = any_rank(ranks, interrupted or waiting.signum is not None)
    if interrupted:
        raise KeyboardInterrupt
    for name, teacher in kept.items():
        by_name[name].config = dataclasses.replace(by_name[name].config, teacher=teacher)
    for index, names in enumerate(groups):
        for name in names:
            by_name[name].config = dataclasses.replace(by_name[name].config, teacher=found[index])


def _plan(sweep_dir: Path, networks: list[Network]) -> tuple[dict[str, str | None], list[list]]:
    """On rank 0: the teacher each started network's run recorded, and the names of the other
    distilled networks in groups that share one teacher (the same preset, split and named
    teacher: :func:`~digits_torch.train.training.with_teacher` gives them the same)."""
    kept: dict[str, str | None] = {}
    groups: dict[tuple, list[str]] = {}
    for network in networks:
        config = network.config
        if config.teacher_preset is None:
            continue
        started = _started(sweep_dir, network)
        if started is not None:
            kept[network.name] = _recorded_teacher(started)
            continue
        key = (teacher_config(config), config.teacher, config.teacher_any_split)
        groups.setdefault(key, []).append(network.name)
    return kept, list(groups.values())


def _started(sweep_dir: Path, network: Network) -> Path | None:
    """The network's run directory if it holds a checkpoint (or has finished), else None: a
    stacked network's is named; a solo network's is found as it resumes."""
    if network.dir is not None:
        candidates = [network.dir]
    else:
        pattern = f"*-{network.config.preset}-{network.name}"
        candidates = sorted(d for d in sweep_dir.glob(pattern) if not d.is_symlink())
    for directory in reversed(candidates):
        if (directory / LATEST).is_file() or (directory / METRICS).is_file():
            return directory
    return None


def _recorded_teacher(run_dir: Path) -> str | None:
    """The teacher a network's run recorded in its config.json (checked as a resume reads it)."""
    return read_config(run_dir).get("teacher")


def _merged(found: list[dict] | None) -> dict[int, str]:
    """Every rank's teachers, by group."""
    return {index: path for mine in found or [] for index, path in mine.items()}
