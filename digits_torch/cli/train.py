"""``digits-train`` (or ``python train.py``): the command line, generated from :class:`TrainConfig`.

Every config field is a flag (``batch_size`` -> ``--batch-size``) with the field's one-line
meaning as its help, so a flag and its field cannot drift apart. Flags the user did not give stay
out of the namespace, which is how a preset's defaults and explicit flags are told apart.

A config is built in three layers, each overriding the one before: the preset's defaults, then a
``--config FILE``, then the explicit flags. The preset is the flags' ``--preset``, else the file's
``preset``, else the default one; a run's own config.json names its preset, so
``--config runs/X/config.json --seed 3`` re-runs X (preset and all) with another seed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import time
from pathlib import Path

from ..config.arguments import HELP_WIDTH, add_config_arguments, presets_help
from ..config.config import DEFAULT_PRESET, TrainConfig, make_config
from ..config.config_files import read_config_file
from ..config.plan import make_plan
from ..errors import (
    ArgumentParser,
    UserError,
    error_cut_short,
    exit_on_error,
    print_stdout,
    program_name,
    shown_name,
)
from ..runtime.distributed import job_ranks
from ..runtime.interrupts import sigterm_interrupts
from ..store.run_contents import FIGURES
from ..store.runs import METRICS, find_run
from ..train.training import RESUME_MAY_CHANGE, FitResult, fit, resume


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=_prog(),
        usage="%(prog)s [--preset PRESET] [FLAG ...]\n       %(prog)s --resume RUN [FLAG ...]",
        description=textwrap.fill(
            "Train the 400-25-10 digit classifier and log the run for TensorBoard. Defaults "
            f"shown are those of the default preset, {DEFAULT_PRESET}; the flags are grouped "
            "below by what they set.",
            HELP_WIDTH,
        ),
        epilog=presets_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    groups = add_config_arguments(parser)
    groups["run"].add_argument(
        "--resume",
        metavar="RUN",
        help="continue RUN (a run directory, or a run's name under --logdir) from its latest "
        "checkpoint, with its saved config (only "
        + ", ".join("--" + k.replace("_", "-") for k in RESUME_MAY_CHANGE)
        + " may change)",
    )
    return parser


def _prog() -> str:
    """train.py, digits-train or python -m digits_torch train: as this process was started."""
    if Path(sys.argv[0]).name == "train.py":
        return "train.py"
    return program_name("digits-train")


@exit_on_error
def main(argv: list[str] | None = None) -> FitResult:
    started = time.perf_counter()  # the closing table counts the whole command's seconds
    try:  # a Ctrl-C or SIGTERM at any point, start-up included: 130 or 143, no traceback
        given = vars(build_parser().parse_args(argv))
        config_file, run = given.pop("config", None), given.pop("resume", None)
        if run is not None:
            if config_file is not None:
                raise UserError("--config makes a new run; a resumed run keeps its saved config")
            run_dir = find_run(run, given.get("logdir", TrainConfig.logdir))
            if "logdir" in given and run_dir.parent.resolve() == Path(given["logdir"]).resolve():
                del given["logdir"]  # it only said where to look
            with sigterm_interrupts():
                result = resume(run_dir, **given)
        else:
            values = {**(read_config_file(config_file) if config_file else {}), **given}
            config = make_config(values.pop("preset", DEFAULT_PRESET), **values)
            with sigterm_interrupts():
                result = fit(config)
    except KeyboardInterrupt as err:
        cut_short = error_cut_short(err)
        if cut_short is not None:  # the error ended the run; the signal came as it cleaned up
            raise cut_short from None
        raise SystemExit(128 + getattr(err, "signum", signal.SIGINT)) from None
    if job_ranks().lead:  # under torchrun, rank 0 speaks for the job
        if not result.config.quiet:
            print_stdout(summary(result, _prog(), time.perf_counter() - started))
        print_stdout(f"run: {shown_name(result.run_dir)}")  # quoted if a newline could forge a line
    return result


def summary(
    result: FitResult, prog: str = "digits-train", command_seconds: float | None = None
) -> str:
    """The closing table: what each number is, then where they are and what to run next (only
    what does something: ``--resume`` where the run can train longer).

    The loss and accuracy of a row come from one model on one set of digits: the reported model
    (best.pt, from its best epoch) on clean digits, the loss without the L2 term. The last
    epoch's training objective is labelled with what it was computed on (augmented digits or
    not, L2 term or not), and epochs are called iterations for a full-batch optimizer.
    """
    m, run_dir, config = result.metrics, result.run_dir, result.config
    steps = config.step_name + "s"
    rows = [
        ("preset", m["preset"]),
        ("device", m["device"] + (f", {m['ranks']} ranks (torchrun)" if m["ranks"] > 1 else "")),
        (steps, f"{m['epochs']} of {config.epochs} ({m['stopped']})"),
        ("model", f"best.pt, from {config.step_name} {m['best_epoch']} (by {config.stop_on})"),
        *([("teacher", f"{config.teacher} (a copy: teacher.pt)")] if config.teacher else []),
        ("", f"{'loss':>8}  {'accuracy':>8}  (best.pt on clean digits, loss without L2)"),
        ("training", _pair(m["train_loss"], m["train_accuracy"], m.get("train_examples"))),
    ]
    if m["val_accuracy"] is not None:
        rows.append(("validation", _pair(m["val_loss"], m["val_accuracy"], m.get("val_examples"))))
    objective = m.get("last_epoch_objective")
    rows += [
        (f"last {config.step_name}", f"{_fmt(objective)}  {_objective_words(config)}"),
        ("seconds", f"{m['seconds']:.2f} training" + _whole(command_seconds)),
    ]
    width = max(12, *(len(name) for name, _ in rows))  # "last iteration" is wider than 12
    table = "\n".join(f"{name:>{width}}  {value}" for name, value in rows)
    installed = prog.startswith("digits-")
    evaluate = "digits-evaluate" if installed else "python -m digits_torch evaluate"
    train = prog if installed or prog.startswith("python") else f"python {prog}"
    # a cosine schedule ends with its epochs, and a run that stopped early would stop again
    longer = not make_plan(config).recipe.schedule.spans_epochs and m["stopped"] == "max_epochs"
    resume = f"\n  {train} --resume {run_dir} --epochs N   (to train longer)" if longer else ""
    pictures = f"figures: {run_dir / FIGURES}\n" if config.figures else ""
    return (
        f"{table}\n"
        f"metrics: {run_dir / METRICS}\n"
        f"{pictures}"
        f"  tensorboard --logdir {run_dir.parent}\n"
        f"  {evaluate} {run_dir}"
        f"{resume}"
    )


def _whole(seconds: float | None) -> str:
    return "" if seconds is None else f"; {seconds:.2f} the whole command"


def _objective_words(config: TrainConfig) -> str:
    """What the last epoch's training objective was computed on, from the run's config."""
    digits = "augmented digits" if config.augmented else "training digits"
    digits += ", distilled" if config.distilled else ""  # the teacher's soft targets too
    penalty = "with L2" if config.l2 else "no L2 term"
    note = "; training accuracy during training was on them" if config.augmented else ""
    return f"training objective ({digits}, {penalty}{note})"


def _pair(loss, accuracy, examples) -> str:
    count = "" if examples is None else f"  on {examples:,} digits"
    return f"{_fmt(loss):>8}  {_fmt(accuracy):>8}{count}"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"
