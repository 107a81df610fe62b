"""User errors: one exception type, and the one place that turns it into ``error: ...``, exit 2.

Library functions raise :class:`UserError` for anything a user can fix (a bad file, a bad flag, a
device that is not there). Command-line entry points wrap their ``main`` in :func:`exit_on_error`,
so the user sees a single line on stderr and no traceback. Programming errors are not caught.

What a command prints goes through :func:`print_stderr` and :func:`print_stdout`: a closed
stderr (``2>&-``), a broken pipe (``| head``) or a full output device (``>/dev/full``) never
turns finished work into a traceback. A command's exit status says what failed:
:data:`EXIT_USAGE` a user error, :data:`EXIT_OUTPUT` its report could not be written,
:data:`EXIT_BROKEN_PIPE` its reader went away, 128 + the signal for Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import functools
import os
import re
import signal
import sys
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

from tqdm.auto import tqdm

__all__ = [
    "EXIT_USAGE",
    "ArgumentParser",
    "Interrupted",
    "UserError",
    "error_cut_short",
    "error_line",
    "exit_on_error",
    "no_such_path",
    "one_line",
    "path_error",
    "plain_text",
    "print_stderr",
    "print_stdout",
    "program_name",
    "reading",
    "shown_name",
    "writing",
]

T = TypeVar("T")

EXIT_USAGE = 2  # what argparse uses for bad arguments; we use it for every user error
EXIT_OUTPUT = 74  # sysexits' EX_IOERR: the work is done and kept, its report could not be written
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE
NAME_MAX = 255  # bytes in one file or directory name, on Linux's file systems and macOS's


class UserError(ValueError):
    """A problem the user can fix. ``str(err)`` is the whole message, without ``error:``.

    Under torchrun every rank meets the same user errors, so rank 0 alone says them; an error
    that is one rank's own sets ``every_rank`` (:mod:`digits_torch.runtime.distributed`).
    """

    every_rank = False

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


def no_such_path(path: str | Path) -> UserError:
    """The one wording of a path that is not there, whatever was expected at it (a data file,
    an image, a checkpoint, a run): ``error: PATH: no such file or directory``."""
    return UserError("no such file or directory", path)


def path_error(err: OSError, path: str | Path) -> UserError:
    """The one line for a path the system refused to open or stat (``err``)."""
    if err.errno == errno.ENOENT:
        return no_such_path(path)
    if err.errno == errno.ELOOP:
        return UserError("a symlink loop (too many levels of symbolic links)", path)
    if err.errno == errno.ENAMETOOLONG:
        return UserError(f"file name too long (a name holds at most {NAME_MAX} bytes)", path)
    return UserError(f"cannot read ({err.strerror or err})", path)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, handled alike; ``signum`` says which (a CLI exits 128 + signum)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__()
        self.signum = signum


def error_cut_short(interrupt: BaseException) -> UserError | None:
    """The :class:`UserError` that was on its way out when ``interrupt`` (a Ctrl-C or SIGTERM)
    was raised, if any: the error is what ended the command, the signal only came during its
    cleanup (as torchrun's SIGTERM comes to the ranks of a job that has lost one)."""
    cause = interrupt.__context__
    while cause is not None and not isinstance(cause, UserError):
        cause = cause.__context__
    return cause


class _OutputLost(Exception):
    """stdout could not be written: ``errno`` says why."""

    def __init__(self, err: OSError) -> None:
        super().__init__(err.strerror or str(err))
        self.errno = err.errno


def exit_on_error(main: Callable[..., T]) -> Callable[..., T | None]:
    """Decorate a CLI ``main``: a :class:`UserError` becomes ``error: <message>``, exit 2; a
    report that cannot reach stdout exits :data:`EXIT_BROKEN_PIPE` or :data:`EXIT_OUTPUT`.

    ``main(argv)`` returns what the command made (for tests and scripts); ``main()``, as an
    installed command's script calls it (``sys.exit(main())``), returns None: exit status 0.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            result = _named_paths_refused(main, *args, **kwargs)
            return result if args or kwargs else None
        except UserError as err:
            if err.every_rank or _lead_process():
                print_stderr(error_line(err))
            raise SystemExit(EXIT_USAGE) from None
        except _OutputLost as err:
            _silence_stdout()  # else Python's own flush at exit would print a traceback
            if err.errno == errno.EPIPE:
                raise SystemExit(EXIT_BROKEN_PIPE) from None
            print_stderr(f"error: standard output: cannot write ({err}); what was done is kept")
            raise SystemExit(EXIT_OUTPUT) from None

    return wrapper


def _named_paths_refused(main: Callable[..., T], *args, **kwargs) -> T:
    """``main(...)``, a path the system refuses whatever the command does with it (a name over
    :data:`NAME_MAX` bytes, from any flag) turned into the one line :func:`path_error` says."""
    try:
        return main(*args, **kwargs)
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG or err.filename is None:
            raise
        raise path_error(err, os.fsdecode(err.filename)) from None


def _lead_process() -> bool:
    """Whether this process speaks for its job: torchrun's rank 0, or a process on its own
    (every rank of a job meets the same bad flags and user errors). Without WORLD_SIZE a
    process is on its own, whatever RANK a shell left set (it trains alone, as
    :func:`~digits_torch.runtime.distributed.job_ranks` says)."""
    return "WORLD_SIZE" not in os.environ or os.environ.get("RANK", "0") == "0"


def error_line(err: UserError) -> str:
    """``error: <message>`` on one line, whatever the message holds (a file name may hold a
    newline): what a CLI prints for a user error."""
    return "error: " + " ".join(str(err).splitlines())


_LINE_BREAKING = {"Cc", "Zl", "Zp"}  # control characters, and the line and paragraph separators


def one_line(err: BaseException, drop: re.Pattern | None = None, limit: int = 120) -> str:
    """What an exception says, on one line for a user error's parentheses: its message's lines
    (bar those ``drop`` matches) joined, spaces squeezed, cut to ``limit`` characters with
    ``...``; its type first where the message has no letters (``KeyError 101``)."""
    lines = [line.strip() for line in str(err).splitlines()]
    text = " ".join(" ".join(ln for ln in lines if ln and not (drop and drop.match(ln))).split())
    if not any(c.isalpha() for c in text):
        text = f"{type(err).__name__} {text}".strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_name(path: str | Path | None) -> str:
    """A file name as a line shows it: as it is, or quoted as Python writes a string (``'a\\nb'``)
    when it holds a control character, which could end the line or forge another."""
    name = str(path)
    return repr(name) if any(unicodedata.category(c) in _LINE_BREAKING for c in name) else name


def print_stderr(text: str) -> None:
    """``text`` and a newline on stderr, if stderr takes it: closed, broken or full, it is
    skipped (the exit status still says what happened)."""
    _write(sys.stderr, text + "\n")


def print_stdout(text: str) -> None:
    """``text`` and a newline on stdout, flushed: what a command reports. A closed stdout
    (``>&-``) takes nothing; a broken pipe or a full device ends the command through
    :func:`exit_on_error`. A path that is not valid text is printed as its own bytes."""
    try:
        _write(sys.stdout, text + "\n", strict=True)
    except OSError as err:
        raise _OutputLost(err) from None


class StderrOrNothing:
    """A file for progress bars: stderr, and nothing at all once stderr stops taking text."""

    def write(self, text: str) -> None:
        _write(sys.stderr, text)

    def flush(self) -> None:
        _write(sys.stderr, "")


def progress_bar(total: int, initial: int, desc: str, unit: str, shown: bool) -> tqdm:
    """A training progress bar on stderr (:class:`StderrOrNothing`: a closed or broken stderr
    does not stop training), redrawn as :func:`redraw_interval` says; ``shown``: whether it is
    drawn at all (not when quiet, nor on a torchrun job's other ranks)."""
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=StderrOrNothing(),
        disable=not shown or sys.stderr is None,
        leave=False,
        mininterval=redraw_interval(),
    )


def redraw_interval() -> float:
    """Seconds between a progress bar's redraws: four a second on a terminal, one every half
    minute elsewhere (a log file or torchrun's captured output keeps every redraw)."""
    try:
        on_terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        on_terminal = False
    return 0.25 if on_terminal else 30.0


def _write(stream, text: str, strict: bool = False) -> None:
    """Write and flush; errors of the stream are raised only if ``strict``."""
    if stream is None:
        return
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None and text:  # bytes: a lone surrogate (from a path) goes out as is
            stream.flush()
            try:
                data = text.encode(stream.encoding or "utf-8", "surrogateescape")
            except UnicodeError:  # a character the stream's encoding lacks
                data = text.encode("utf-8", "surrogateescape")
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            stream.flush()
    except (OSError, ValueError, UnicodeError) as err:  # ValueError: a closed file
        if strict and isinstance(err, OSError):
            raise


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


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


_REST_ROLE = re.compile(r":\w+:`~?([^`]+)`")  # :func:`name`, :mod:`~a.b`


def plain_text(doc: str) -> str:
    """A docstring as ``--help`` shows it: reST's ``code`` and :func:`name` as plain text."""
    return re.sub(r"``([^`]*)``", r"\1", _REST_ROLE.sub(r"\1", doc))


def program_name(command: str) -> str:
    """How a command was started, for its ``--help``: its installed name (``digits-train``)
    when ``sys.argv[0]`` is that script, else its ``python -m digits_torch NAME`` form."""
    if Path(sys.argv[0]).stem == command:
        return command
    return f"python -m digits_torch {command.removeprefix('digits-')}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``error: ...``, like every other user error here
    (under torchrun, said by rank 0 alone).

    A mistyped option gets a suggestion (``did you mean --epochs?``), which argparse itself
    offers only from Python 3.14.
    """

    def error(self, message: str) -> NoReturn:
        if _lead_process():
            print_stderr(f"error: {message}{self._suggestion(message)}")
        raise SystemExit(EXIT_USAGE)

    def _suggestion(self, message: str) -> str:
        match = re.match(r"unrecognized arguments: (\S+)", message)
        if match is None or not match.group(1).startswith("--"):
            return ""
        typed = match.group(1).split("=", 1)[0]
        options = [o for action in self._actions for o in action.option_strings]
        close = difflib.get_close_matches(typed, options, n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else ""
