"""``python -m digits_torch.evaluate RUN_DIR_OR_CHECKPOINT [--data FILE.mat] [--json OUT]``

Accuracy and loss of a trained model on any ex4-style file (default: the shipped digits). A run
directory means its ``best.pt``, the model the run reported. The loss is the one the run trained
with (softmax cross-entropy or ex4's cost), without the L2 term.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .checkpoints import load_checkpoint, model_from_state
from .config import resolve_device
from .data import NUM_CLASSES, default_data_path, load_digits
from .errors import ArgumentParser, UserError, exit_on_error, show
from .files import output_path, write_json
from .losses import score

__all__ = ["evaluate"]


def evaluate(
    path: str | Path, data: str | Path | None = None, device: str = "auto"
) -> dict[str, float | int]:
    """Score the model at ``path`` (run directory or checkpoint) on ``data``.

    Returns:
        ``{"accuracy": fraction correct, "loss": mean data loss, "n": examples}``.
    """
    dev = resolve_device(device)
    state = load_checkpoint(path, map_location=dev)  # read once: model and its config
    model = model_from_state(state, map_location=dev)
    if model.num_classes != NUM_CLASSES:
        raise UserError(f"the model has {model.num_classes} outputs, not one per digit", path)
    float64 = next(model.parameters()).dtype == torch.float64  # a float64 run sees float64 data
    X, y = load_digits(data, dtype=np.float64 if float64 else np.float32)
    if X.shape[1] != model.input_size:
        raise UserError(
            f"images have {X.shape[1]} pixels but the model at {path} takes {model.input_size}",
            default_data_path() if data is None else data,
        )
    config = state.get("config")
    loss_kind = config.get("loss", "softmax") if isinstance(config, dict) else "softmax"
    loss, accuracy = score(
        model, torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev), loss_kind
    )
    return {"accuracy": accuracy, "loss": loss, "n": len(y)}


@exit_on_error
def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(prog="python -m digits_torch.evaluate", description=__doc__)
    parser.add_argument("path", help="a run directory (uses its best.pt) or a checkpoint file")
    parser.add_argument("--data", help="ex4-style .mat to score on (default: the shipped digits)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    json_out = output_path(args.json) if args.json else None  # refused before the work
    result = evaluate(args.path, args.data, args.device)
    show(
        f"accuracy {result['accuracy']:.4f} ({round(result['accuracy'] * result['n'])}/"
        f"{result['n']})  loss {result['loss']:.4f}"
    )
    if json_out is not None:
        write_json(json_out, result)
    return result


if __name__ == "__main__":
    main()
