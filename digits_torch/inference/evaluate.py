"""``digits-evaluate MODEL [--split val|train|all] [--data FILE.mat] [--json OUT]``

Accuracy and loss of a trained model: a run (its directory, or its name under runs/), a
checkpoint, a safetensors export, or ex4's Theta1/Theta2 .mat. A run means its ``best.pt``, the
model the run reported, scored by default on the run's own validation digits (the rows its
split.json holds out), so that the accuracy is not one over digits the model trained on;
``--split train`` scores its training digits and ``--split all`` the whole file. A model file, a
run without split.json (made before runs recorded one), or ``--data`` scores every digit of the
file. The loss is the one the model trained with (softmax cross-entropy, or ex4's cost for ex4's
weights), without the L2 term.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.data import NUM_CLASSES, default_data_path, load_digits
from ..core.losses import score
from ..errors import (
    ArgumentParser,
    UserError,
    exit_on_error,
    plain_text,
    print_stdout,
    program_name,
)
from ..runtime.devices import resolve_device
from ..store.files import output_path, write_json
from ..store.runs import SPLIT, read_split
from .loading import MODEL_FILES, load_trained

__all__ = ["SPLITS", "evaluate"]

SPLITS = ("val", "train", "all")


def evaluate(
    path: str | Path,
    data: str | Path | None = None,
    device: str = "auto",
    split: str | None = None,
) -> dict:
    """Score the model at ``path`` (anything :func:`~digits_torch.inference.loading.load_trained`
    reads) on ``data`` or a split.

    Args:
        split: for a run without ``data``: ``val``, ``train`` or ``all`` of the run's data
            file; ``None``: ``val`` where the run held digits out, else ``all``.

    Returns:
        ``{"accuracy": fraction correct, "loss": mean data loss, "n": examples,
        "split": the split used, "digits": what was scored, in words}``.
    """
    dev = resolve_device(device)
    trained = load_trained(path, map_location=dev)
    model, config, run_dir = trained.model, trained.config, trained.run_dir
    if model.num_classes != NUM_CLASSES:
        raise UserError(f"the model has {model.num_classes} outputs, not one per digit", path)
    # The digits go in in the weights' dtype: float64 for a float64 run, float16 or bfloat16
    # for a model saved in half precision (predict, plots and export take those too).
    dtype = next(model.parameters()).dtype
    file, rows, used, digits = _digits(run_dir, data, config, split)
    X, y = load_digits(file, dtype=np.float64 if dtype == torch.float64 else np.float32)
    if X.shape[1] != model.input_size:
        raise UserError(
            f"images have {X.shape[1]} pixels but the model at {path} takes {model.input_size}",
            default_data_path() if file is None else file,
        )
    if rows is not None:
        if len(rows) and rows.max() >= len(y):
            raise UserError(f"its split names rows past the {len(y)} of the data", run_dir)
        X, y = X[rows], y[rows]
    images = torch.from_numpy(X).to(dev, dtype)
    loss, accuracy = score(model, images, torch.from_numpy(y).to(dev), trained.loss)
    return {"accuracy": accuracy, "loss": loss, "n": len(y), "split": used, "digits": digits}


def _digits(run_dir: Path | None, data, config: dict, split: str | None):
    """(data file, rows of it or None for all, split used, what they are in words)."""
    if split is not None and split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if data is not None or run_dir is None:
        if split not in (None, "all"):
            what = "--data" if data is not None else "a model file"
            raise UserError(f"--split {split} needs a run directory's own data, not {what}")
        return data, None, "all", f"every digit of {data or 'the shipped digits'}"
    file = config.get("data")
    name = file or "the shipped digits"
    recorded = read_split(run_dir)
    if recorded is None:
        if split not in (None, "all"):
            raise UserError(f"no {SPLIT}: the run recorded no split to score", run_dir)
        note = "" if split == "all" else f" (the run has no {SPLIT}, made before runs kept one)"
        return file, None, "all", f"every digit of {name}{note}"
    train_rows, val_rows = recorded
    split = split or ("val" if len(val_rows) else "all")
    if split == "val" and not len(val_rows):
        raise UserError("the run held out no validation digits (--val-fraction 0)", run_dir)
    if split == "all":
        return file, None, "all", f"every digit of {name}"
    rows = val_rows if split == "val" else train_rows
    kind = "validation" if split == "val" else "training"
    return file, rows, split, f"the run's {len(rows):,} {kind} digits of {name}"


@exit_on_error
def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(prog=program_name("digits-evaluate"))
    parser.description = plain_text(__doc__.split("\n\n", 1)[1])  # the first line is usage
    parser.add_argument("path", metavar="MODEL", help=f"{MODEL_FILES}, or a run's name under runs/")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        help="for a run directory: its validation digits (the default where it has some), its "
        "training digits, or all of its data file",
    )
    parser.add_argument("--data", help="ex4-style .mat to score every digit of")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    json_out = output_path(args.json) if args.json else None  # refused before the work
    result = evaluate(args.path, args.data, args.device, args.split)
    print_stdout(
        f"accuracy {result['accuracy']:.4f} ({round(result['accuracy'] * result['n'])}/"
        f"{result['n']})  loss {result['loss']:.4f}  on {result['digits']}"
    )
    if json_out is not None:
        write_json(json_out, result)
    return result
