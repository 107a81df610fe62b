"""Run directories a kill left before their first checkpoint: nothing in them can be resumed or
loaded, so, as a run that stops any other way before it saved leaves nothing behind, the next
run started in the same logdir removes them (:func:`remove_leftovers`), and ``--resume`` of one
says what it is (:func:`leftover_problem`).

A directory is a leftover only if all of this holds, so that nothing else is ever removed: it
holds a run's lock file, which no process holds (a live run holds its lock from before it writes
anything), and its config.json; it has no checkpoint; and every file in it is one a run writes
before its first checkpoint (its config, split, history, teacher copy, TensorBoard events, temp
files).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from ..errors import UserError
from ..store.checkpoints import BEST, LATEST
from ..store.files import TEMP_SUFFIX
from ..store.runs import CONFIG, HISTORY, LOCK, SPLIT, RunLock
from .run_setup import TEACHER

try:
    import fcntl
except ImportError:  # no flock (Windows): a live run cannot be told from a leftover
    fcntl = None

__all__ = ["leftover_problem", "remove_leftovers"]

# what a run writes before its first checkpoint
_EARLY_FILES = {CONFIG, SPLIT, HISTORY, TEACHER, LOCK}


def leftover_problem(run_dir: Path) -> str | None:
    """What to tell a user who resumes ``run_dir``, if it is a leftover (else None)."""
    if not _looks_left(run_dir):
        return None
    return (
        f"stopped before its first checkpoint: nothing in it to resume (no {LATEST}); start the "
        "run again (the next run in its logdir removes this directory)"
    )


def remove_leftovers(logdir: Path, keep: Path) -> None:
    """Remove the leftovers among ``logdir``'s directories, bar ``keep`` (the new run's)."""
    if fcntl is None:
        return
    with contextlib.suppress(OSError):
        for child in logdir.iterdir():
            if child != keep and _looks_left(child):
                _remove_unlocked(child)


def _remove_unlocked(run_dir: Path) -> None:
    """Remove ``run_dir`` holding its lock; a live run's (its lock is held) is left alone."""
    try:
        lock = RunLock(run_dir)
    except UserError:  # in use: a run starting up, or one that resumes it
        return
    with lock:
        if _looks_left(run_dir):  # checked again, holding the lock
            shutil.rmtree(run_dir, ignore_errors=True)


def _looks_left(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a plain directory holding a run's lock and config, no checkpoint,
    and only files a run writes before its first checkpoint."""
    try:
        if run_dir.is_symlink() or not run_dir.is_dir():
            return False
        # config.json too: a run writes it holding the lock, so a run between creating its
        # lock file and locking it (its directory holds nothing else yet) is never taken
        if not ((run_dir / LOCK).is_file() and (run_dir / CONFIG).is_file()):
            return False
        names = [p.name for p in run_dir.iterdir()]
    except OSError:
        return False
    if LATEST in names or BEST in names:
        return False
    return all(_early(run_dir / name) for name in names)


def _early(path: Path) -> bool:
    name = path.name
    known = name in _EARLY_FILES or name.startswith("events.out.tfevents.")
    temp = name.startswith(".") and name.endswith(TEMP_SUFFIX)
    return (known or temp) and path.is_file() and not path.is_symlink()
