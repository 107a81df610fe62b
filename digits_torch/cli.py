"""``python train.py``: the command line, generated from :class:`TrainConfig`.

Every config field is a flag (``batch_size`` -> ``--batch-size``) with the field's one-line
meaning as its help, so a flag and its field cannot drift apart. Flags the user did not give stay
out of the namespace, which is how a preset's defaults and explicit flags are told apart.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import threading
import types
import typing
from collections.abc import Iterator

from .config import DEFAULT_PRESET, PRESETS, TrainConfig, make_config
from .errors import ArgumentParser, Interrupted, exit_on_error, show
from .training import RESUME_MAY_CHANGE, FitResult, fit, resume

EXIT_INTERRUPTED = 128 + signal.SIGINT  # what a shell reports for Ctrl-C: 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # and for SIGTERM (kill, schedulers, containers): 143


def build_parser() -> argparse.ArgumentParser:
    defaults = make_config(DEFAULT_PRESET)  # what a plain `python train.py` uses
    default_values = defaults.to_dict()
    epilog = f"presets (explicit flags override them; the defaults shown are {DEFAULT_PRESET}'s):"
    for name in PRESETS:  # each as its differences from the default preset
        values = make_config(name).to_dict()
        changed = [
            f"{k}={v}" for k, v in values.items() if k != "preset" and v != default_values[k]
        ]
        epilog += f"\n  {name:9} " + (", ".join(changed) or "the default")
    parser = ArgumentParser(
        prog="train.py",
        description="Train the 400-25-10 digit classifier and log the run for TensorBoard. "
        f"Defaults shown are those of the default preset, {DEFAULT_PRESET}.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f.metadata["help"] + ("" if shown in (None, "") else f" (default: {shown})")
        kind = hints[f.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, type=int, nargs="+", metavar="N", help=help_text)
        else:
            parser.add_argument(
                flag, type=_scalar_type(kind), metavar=f.name.upper(), help=help_text
            )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its latest checkpoint, with its saved config "
        "(only "
        + ", ".join("--" + k.replace("_", "-") for k in RESUME_MAY_CHANGE)
        + " may be given with it)",
    )
    return parser


def _scalar_type(kind):
    """str for ``str | None``, else the annotation itself (int, float, str)."""
    if isinstance(kind, types.UnionType):
        return next(t for t in typing.get_args(kind) if t is not type(None))
    return kind


@exit_on_error
def main(argv: list[str] | None = None) -> FitResult:
    given = vars(build_parser().parse_args(argv))
    run_dir = given.pop("resume", None)
    try:
        with _sigterm_interrupts():
            if run_dir is not None:
                result = resume(run_dir, **given)
            else:
                result = fit(make_config(given.pop("preset", DEFAULT_PRESET), **given))
    except KeyboardInterrupt as err:
        raise SystemExit(128 + getattr(err, "signum", signal.SIGINT)) from None
    if not result.config.quiet:
        show(summary(result))
    show(f"run: {result.run_dir}")
    return result


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Interrupted`, as Ctrl-C raises KeyboardInterrupt: the run keeps
    its checkpoint and says how to resume (the epochs themselves defer both to an epoch end)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def summary(result: FitResult) -> str:
    """The closing table: one line per figure."""
    m = result.metrics
    rows = [
        ("preset", m["preset"]),
        ("device", m["device"]),
        ("epochs", f"{m['epochs']} ({m['stopped']}; best epoch {m['best_epoch']})"),
        ("train loss", _fmt(m["train_loss"])),
        ("train accuracy", _fmt(m["train_accuracy"])),
        ("val loss", _fmt(m["val_loss"])),
        ("val accuracy", _fmt(m["val_accuracy"])),
        ("seconds", f"{m['seconds']:.2f}"),
    ]
    return "\n".join(f"{name:>15}  {value}" for name, value in rows)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"
