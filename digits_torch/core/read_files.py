"""Reading the files a user names, safely: only regular files (a FIFO would block for ever, a
device like ``/dev/zero`` never ends), within a size limit where the whole file is read
(:func:`read_bytes`); a path the system refuses (a name over 255 bytes, a link loop) as one line
(:func:`~digits_torch.errors.path_error`); JSON and TOML nested too deeply for Python's parsers
as a ``ValueError`` like any other bad text (:func:`parse_json`, :func:`parse_toml`).

Every reader of a user's file goes through here: config files, a run's JSON files, models, data
and images.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

from ..errors import UserError, path_error

__all__ = [
    "MAX_TEXT_BYTES",
    "NOT_REGULAR",
    "check_regular",
    "parse_json",
    "parse_toml",
    "read_bytes",
]

MAX_TEXT_BYTES = 64 * 2**20  # a config file or a run's JSON: a run of a million epochs is 0.2 GB
# of history.jsonl, so history has no limit; everything else is a few kilobytes

NOT_REGULAR = {  # what a file's mode may say it is, if not a regular file
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a device node",
    stat.S_IFBLK: "a device node",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def check_regular(path: str | Path, what: str = "a file", empty: bool = True) -> os.stat_result:
    """The status of the regular file at ``path`` (a link is followed), before a reader that
    opens the file itself (torch, scipy, Pillow) is given it; ``empty``: whether it may be empty.

    Raises:
        UserError: absent, refused by the system (:func:`~digits_torch.errors.path_error`), not
            a regular file: a directory, a FIFO, a device node or a socket, named as such, or
            empty where not ``empty`` (``empty file, not <what>``).
    """
    try:
        info = os.stat(path)
    except OSError as err:
        raise path_error(err, path) from None
    _check_mode(info, path, what)
    if not empty and info.st_size == 0:
        raise UserError(f"empty file, not {what}", path)
    return info


def read_bytes(path: str | Path, limit: int | None = MAX_TEXT_BYTES, what: str = "a file") -> bytes:
    """The contents of the regular file at ``path``, of at most ``limit`` bytes (None: any).

    Opened without blocking (a FIFO put there after a check would block ``open`` itself) and
    checked on the open file, so nothing swapped in between is read.

    Raises:
        UserError: as :func:`check_regular`, or the file is over ``limit`` bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        with contextlib.suppress(OSError):  # a socket: open says only "no such device"
            _check_mode(os.stat(path), path, what)
        raise path_error(err, path) from None
    try:
        info = os.fstat(fd)
        _check_mode(info, path, what)  # before fdopen, which refuses a directory unnamed
        if limit is not None and info.st_size > limit:
            problem = f"{info.st_size:,} bytes, over the limit of {limit:,} for {what}"
            raise UserError(problem, path)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read() if limit is None else f.read(limit + 1)
    except OSError as err:
        raise path_error(err, path) from None
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:  # it grew while read
        raise UserError(f"over the limit of {limit:,} bytes for {what}", path)
    return data


def _check_mode(info: os.stat_result, path: str | Path, what: str) -> None:
    kind = NOT_REGULAR.get(stat.S_IFMT(info.st_mode))
    if kind is not None:
        raise UserError(f"is {kind}, not {what}", path)


def parse_json(text: str | bytes, **options):
    """``json.loads(text, **options)``; JSON nested deeper than Python's recursion limit is a
    ValueError (as any other bad JSON), not a RecursionError."""
    try:
        return json.loads(text, **options)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


def parse_toml(text: str) -> dict:
    """``tomllib.loads(text)`` (Python 3.11+); nesting too deep is a ValueError, as for JSON."""
    import tomllib  # Python 3.11+: the caller says what to do without it

    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
