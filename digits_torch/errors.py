"""User errors: one exception type, and the one place that turns it into ``error: ...``, exit 2.

Library functions raise :class:`UserError` for anything a user can fix (a bad file, a bad flag, a
device that is not there). Command-line entry points wrap their ``main`` in :func:`exit_on_error`,
so the user sees a single line on stderr and no traceback. Programming errors are not caught.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

__all__ = [
    "EXIT_USAGE",
    "ArgumentParser",
    "UserError",
    "error_line",
    "exit_on_error",
    "program_name",
    "reading",
    "writing",
]

T = TypeVar("T")

EXIT_USAGE = 2  # what argparse uses for bad arguments; we use it for every user error


class UserError(ValueError):
    """A problem the user can fix. ``str(err)`` is the whole message, without ``error:``."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


def exit_on_error(main: Callable[..., T]) -> Callable[..., T | None]:
    """Decorate a CLI ``main``: a :class:`UserError` becomes ``error: <message>``, exit 2.

    ``main(argv)`` returns what the command made (for tests and scripts); ``main()``, as an
    installed command's script calls it (``sys.exit(main())``), returns None: exit status 0.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            result = main(*args, **kwargs)
            return result if args or kwargs else None
        except UserError as err:
            print(error_line(err), file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None

    return wrapper


def error_line(err: UserError) -> str:
    """``error: <message>`` on one line, whatever the message holds (a file name may hold a
    newline): what a CLI prints for a user error."""
    return "error: " + " ".join(str(err).splitlines())


def writing(path: str | Path) -> contextlib.AbstractContextManager[None]:
    """Turn an ``OSError`` raised while writing ``path`` into ``UserError(cannot write ...)``.

    A full disk, a quota, a file-size limit or a read-only file system is something the user
    fixes, so it gets one line naming the file, not a traceback.
    """
    return _os_errors("write", path)


def reading(path: str | Path) -> contextlib.AbstractContextManager[None]:
    """Turn an ``OSError`` raised while reading ``path`` into ``UserError(cannot read ...)``."""
    return _os_errors("read", path)


@contextlib.contextmanager
def _os_errors(verb: str, path: str | Path) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        raise UserError(f"cannot {verb} ({err.strerror or err})", path) from None


def program_name(command: str, module: str) -> str:
    """How a command was started, for its ``--help``: its installed name (``digits-train``)
    when ``sys.argv[0]`` is that script, else the ``python -m`` form of ``module``."""
    return command if Path(sys.argv[0]).stem == command else f"python -m {module}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``error: ...``, like every other user error here.

    A mistyped option gets a suggestion (``did you mean --epochs?``), which argparse itself
    offers only from Python 3.14.
    """

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}{self._suggestion(message)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    def _suggestion(self, message: str) -> str:
        match = re.match(r"unrecognized arguments: (\S+)", message)
        if match is None or not match.group(1).startswith("--"):
            return ""
        typed = match.group(1).split("=", 1)[0]
        options = [o for action in self._actions for o in action.option_strings]
        close = difflib.get_close_matches(typed, options, n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else ""
