"""``python -m digits_torch plots PATH [--data FILE.mat] [--out DIR] [--digits]``

Draws the pictures of :mod:`digits_torch.plots` for a finished run, a checkpoint, or ex4's
Theta1/Theta2 weights, and with ``--digits`` a grid of 100 digits of the data.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..core.data import load_digits
from ..errors import ArgumentParser, UserError, exit_on_error, print_stdout, program_name
from ..inference.loading import MODEL_FILES, load_trained
from ..plots import digits_grid, render, run_figures, save_png
from ..store.files import output_path
from ..store.run_contents import FIGURES
from ..store.runs import CONFIG, RunLock, read_config, read_split


@exit_on_error
def main(argv: list[str] | None = None) -> list[Path]:
    parser = ArgumentParser(
        prog=program_name("digits-plots"),
        description="Draw the pictures of a finished run, a checkpoint, or ex4's Theta1/Theta2 "
        ".mat (hidden units, mistakes, confusion; learning curves for a run), and with --digits "
        "a grid of 100 digits of the data.",
    )
    parser.add_argument("path", nargs="?", metavar="MODEL", help=f"{MODEL_FILES}, or a run's name")
    parser.add_argument(
        "--data",
        metavar="FILE.mat",
        help="ex4-style .mat to draw mistakes, confusion and digits on (default: the run's own "
        "data and validation split; otherwise the shipped digits)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the PNGs (default: the run's figures/, else the current folder)",
    )
    parser.add_argument("--digits", action="store_true", help="also draw 100 digits of the data")
    args = parser.parse_args(argv)
    if args.path is None and not args.digits:
        parser.error("give a run directory, a checkpoint or weights file, or --digits")

    figures: dict[str, Figure] = {}
    out = Path(args.out) if args.out else Path(".")
    if args.path is not None:
        path = Path(args.path)
        trained = load_trained(path)
        model, run_dir = trained.model, trained.run_dir
        X, y, digits, train_X, data = _data_for(run_dir, args.data)
        if X.shape[1] != model.input_size:
            data = args.data or ("the run's data" if run_dir else "the shipped digits")
            problem = f"takes {model.input_size} pixels, but {data} have {X.shape[1]}"
            raise UserError(problem, path)
        # a run's own figures/ holds its 100 random digits: drawn again with the rest
        data = data if run_dir is not None else None
        figures.update(run_figures(model, X, y, run_dir, digits, train_X, data=data))
        if run_dir is not None and not args.out:
            out = run_dir / FIGURES
    if args.digits and "digits" not in figures:
        figures["digits"] = digits_grid(*load_digits(args.data))
    # Into a run's own figures/: as its one writer, so never into a run still training.
    into_run = args.path is not None and run_dir is not None and not args.out
    with _lock(run_dir) if into_run else contextlib.nullcontext():
        own = run_dir if into_run else None  # no other run's or sweep's files
        targets = {name: output_path(out / f"{name}.png", own) for name in figures}  # all, first
        paths = [save_png(render(figure), targets[name]) for name, figure in figures.items()]
    for written in paths:
        print_stdout(str(written))
    return paths


def _lock(run_dir: Path) -> RunLock:
    try:
        return RunLock(run_dir)
    except UserError as err:
        raise UserError(f"{err.problem}; or draw elsewhere with --out DIR", err.path) from None


def _data_for(
    run_dir: Path | None, data: str | None
) -> tuple[np.ndarray, np.ndarray, str, np.ndarray | None, tuple]:
    """--data if given; for a run, the digits its own figures show (its validation split if
    any). Returns (X, y), their name for the titles, the run's training digits (else None,
    and no unit is called dead), and all the digits of the file (X, y) in its order."""
    if data is not None or run_dir is None or not (run_dir / CONFIG).exists():
        X, y = load_digits(data)
        named = "digits" if data is None else f"digits of {Path(data).name}"
        return X, y, named, None, (X, y)
    run_data = read_config(run_dir).get("data")  # checked: a config this package can use
    X, y = load_digits(run_data)
    split = read_split(run_dir)
    if split is None or len(split[1]) == 0:
        return X, y, "training digits", X, (X, y)
    train, val = split
    if max(train.max(initial=0), val.max()) >= len(y):
        raise UserError(f"its split names rows past the {len(y)} of {run_data}", run_dir)
    return X[val], y[val], "validation digits", X[train], (X, y)
