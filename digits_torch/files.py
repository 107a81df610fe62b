"""Files written so that a crash never leaves half of one: a temp file, fsync, rename.

Every file this package writes goes through here: checkpoints, a run's JSON and history, its
pictures, the JSON a command is asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from .errors import writing

__all__ = ["link_atomically", "write_atomically", "write_json"]


def write_atomically(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` through a temp file beside it: write, fsync, rename, and fsync
    the directory. A crash at any moment leaves either the old file or the new one, never a torn
    one, and a reader never sees half a file. Every file of a run goes through here: checkpoints,
    its JSON and history, its pictures.

    Raises:
        UserError: the file cannot be written (disk full, read-only, too large, ...).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with writing(path):
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def link_atomically(source: str | Path, path: str | Path) -> None:
    """Make ``path`` another name for the file at ``source``, atomically.

    For files that are never changed in place (each save writes a new file and renames it), a
    hard link is as good as a copy and costs nothing; where links are not supported, it copies.

    Raises:
        UserError: the link (or copy) cannot be written.
    """
    source, path = Path(source), Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with writing(path):
            tmp.unlink(missing_ok=True)
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_json(path: str | Path, value: dict) -> None:
    """Write ``value`` as indented JSON, atomically (see :func:`write_atomically`).

    Raises:
        UserError: the file cannot be written.
    """
    write_atomically(path, (json.dumps(value, indent=2) + "\n").encode())


def fsync_dir(directory: Path) -> None:
    """Make a rename durable: fsync the directory entry (a no-op where the OS can't)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
