"""Files written so that a crash never leaves half of one: a temp file, fsync, rename.

Every file this package writes goes through here: checkpoints, a run's JSON and history, its
pictures, the JSON a command is asked for. Two rules keep a hostile folder from redirecting a
write:

* a temp file has a name of its own writer's (pid and a random token) and is created
  exclusively without following links (``O_EXCL | O_NOFOLLOW``), so a planted link or a stale
  temp file is never written through;
* the file written is replaced by a rename, never opened: a link in its place is replaced, not
  followed, and a directory, device node, FIFO or socket there is refused. A path the *user*
  names (``--json``, ``--out``) is first passed through :func:`output_path`, which follows a
  link to the regular file it names.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
from pathlib import Path

from ..core.read_files import NOT_REGULAR
from ..errors import UserError, writing
from .run_contents import owner_of

__all__ = [
    "link_atomically",
    "output_path",
    "remove_stale_temps",
    "write_atomically",
    "write_json",
    "write_new",
]

TEMP_SUFFIX = ".tmp"


def write_atomically(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` through a temp file beside it: write, fsync, rename, and fsync
    the directory. A crash at any moment leaves either the old file or the new one, never a torn
    one, and a reader never sees half a file.

    Raises:
        UserError: ``path`` is not a regular file (see :func:`check_replaceable`), or the file
            cannot be written (disk full, read-only, too large, ...).
    """
    path = Path(path)
    check_replaceable(path)
    tmp = _temp_name(path)
    try:
        with writing(path):
            _write_synced(tmp, data)
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_new(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` as a new file ``path``, never replacing anything there, not even a file made
    since the caller chose the name: a temp file (as :func:`write_atomically`) hard-linked into
    place, which fails if the name is taken. Where hard links are not supported, the file is
    created exclusively and written in place.

    Raises:
        UserError: something is at ``path``, or the file cannot be written.
    """
    path = Path(path)
    tmp = _temp_name(path)
    try:
        with writing(path):
            _write_synced(tmp, data)
            try:
                _link_or_create(tmp, path, data)
            except FileExistsError:  # either way: the name is taken
                raise UserError("exists already; refusing to write over it", path) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _link_or_create(tmp: Path, path: Path, data: bytes | memoryview) -> None:
    """``tmp`` hard-linked as ``path``; where hard links are not supported (some network and FAT
    file systems), ``path`` created exclusively and ``data`` written in place. FileExistsError
    where the name is taken."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        with open(path, "xb", opener=_exclusive) as f:
            f.write(data)


def link_atomically(source: str | Path, path: str | Path) -> None:
    """Make ``path`` another name for the file at ``source``, atomically.

    For files that are never changed in place (each save writes a new file and renames it), a
    hard link is as good as a copy and costs nothing; where links are not supported, it copies.

    Raises:
        UserError: the link (or copy) cannot be written.
    """
    source, path = Path(source), Path(path)
    check_replaceable(path)
    tmp = _temp_name(path)
    try:
        with writing(path):
            try:
                os.link(source, tmp)  # fails if tmp exists in any form: never follows it
            except OSError:
                with open(source, "rb") as src, open(tmp, "wb", opener=_exclusive) as dst:
                    shutil.copyfileobj(src, dst)
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


def output_path(path: str | Path, own: Path | None = None) -> Path:
    """The file to write for a path the user named: a symlink is followed to the file it names
    (which may not exist yet); anything else than a regular file there is refused, and so is a
    file a run or a sweep keeps (:func:`~digits_torch.store.run_contents.owner_of`), bar those of
    ``own`` (the run a command writes into as its one writer).

    Raises:
        UserError: the path (or the link's target) is a directory, device node, FIFO or socket,
            or a file of a run or sweep.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    check_replaceable(target, named=path)
    owner = owner_of(target)
    if owner is not None and not (own is not None and os.path.samefile(owner[1], own)):
        kind, directory = owner
        raise UserError(
            f"is a file of the {kind} {directory}, which it needs; refusing to write over it "
            "(write elsewhere)",
            path,
        )
    return target


def check_replaceable(path: Path, named: Path | None = None) -> None:
    """Refuse to write over what is not a regular file: renaming over a device node (say
    /dev/null, as root) or a FIFO would replace it for everyone, and a directory cannot be."""
    try:
        mode = path.lstat().st_mode
    except OSError:  # absent (or unreadable: the write itself will say why)
        return
    kind = NOT_REGULAR.get(stat.S_IFMT(mode))
    if kind is not None:
        where = "" if named is None or named == path else f" (a link to {path})"
        raise UserError(
            f"is {kind}{where}, not a regular file; refusing to write over it", named or path
        )


def remove_stale_temps(directory: Path) -> None:
    """Remove temp files a killed writer left in ``directory`` (only call it holding the
    directory's lock, so no live writer's temp file goes). A link is removed, not followed."""
    for tmp in directory.glob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            tmp.unlink()


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


def _write_synced(tmp: Path, data: bytes | memoryview) -> None:
    """Create ``tmp`` exclusively (see :func:`_exclusive`), write ``data`` and fsync it."""
    with open(tmp, "wb", opener=_exclusive) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _temp_name(path: Path) -> Path:
    """A temp name beside ``path`` that no other writer (or planted file) has."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _exclusive(name: str, flags: int) -> int:
    """``open``'s opener: create the file, or fail if anything, a link included, is there."""
    return os.open(name, flags | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
