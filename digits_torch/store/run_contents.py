"""What a run directory and a sweep directory hold: the name of every file either keeps, in
one list, and the run or sweep a path is a file of (:func:`owner_of`), so that no command that
writes a file the user names writes over one (the run could no longer resume, or would read
back another model or teacher; a sweep could no longer resume or report).

    <run>/      config.json  split.json  history.jsonl  metrics.json
                checkpoint.pt  best.pt  teacher.pt  .sweep-checkpoint.pt  .sweep-best.pt
                events.out.tfevents.*  figures/*  .lock
    <sweep>/    sweep.json  progress.json  progress-rank<N>.json  results.csv  *.png  .lock
                <network>/ and teachers/<run>/: runs
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["RUN_FILES", "SWEEP_FILES", "owner_of"]

CONFIG, HISTORY, METRICS, SPLIT = "config.json", "history.jsonl", "metrics.json", "split.json"
LATEST, BEST = "checkpoint.pt", "best.pt"
TEACHER = "teacher.pt"  # a distilled run's copy of its teacher: a resume distils from the same
# A sweep's save of a network, written beside the real files until the sweep commits it.
SIDE = {LATEST: ".sweep-checkpoint.pt", BEST: ".sweep-best.pt"}
LOCK = ".lock"  # held (flock) by the one process writing into the run or sweep
FIGURES = "figures"
EVENTS = "events.out.tfevents."  # TensorBoard's event files: this, then a host, time and pid
RUN_FILES = (CONFIG, SPLIT, HISTORY, METRICS, LATEST, BEST, TEACHER, *SIDE.values(), LOCK)

SWEEP, PROGRESS, RESULTS = "sweep.json", "progress.json", "results.csv"
SWEEP_FILES = (SWEEP, PROGRESS, RESULTS, LOCK)  # and the commit files of ranks 1..N, its pictures
_RANK_COMMITS = re.compile(r"progress-rank\d+\.json")


def owner_of(path: str | Path) -> tuple[str, Path] | None:
    """``("run", RUN)`` or ``("sweep", SWEEP)`` where ``path`` (links followed) is one of the
    files that run or sweep keeps, else None. A run directory holds config.json and a
    checkpoint; a sweep directory holds sweep.json."""
    path = Path(os.path.realpath(path))
    folder, name = path.parent, path.name
    if folder.name == FIGURES and is_run(folder.parent):
        return "run", folder.parent
    if (name in RUN_FILES or name.startswith(EVENTS)) and is_run(folder):
        return "run", folder
    swept = name in SWEEP_FILES or _RANK_COMMITS.fullmatch(name) or name.endswith(".png")
    if swept and (folder / SWEEP).is_file():
        return "sweep", folder
    return None


def is_run(folder: Path) -> bool:
    """Whether ``folder`` is a run directory: config.json and a checkpoint."""
    return (folder / CONFIG).is_file() and any((folder / n).is_file() for n in (LATEST, BEST))
