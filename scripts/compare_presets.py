"""Validation accuracy of the presets, measured alike: the table in the README.

    python scripts/compare_presets.py                         # tuned, seed, coursera; seeds 0-4
    python scripts/compare_presets.py --presets tuned --seeds 0 1 --json out.json

Every preset is trained once per seed with the same ``--val-fraction`` (default: the default
preset's), so for a given seed all presets hold out the same stratified validation digits and
start from the same generator. The accuracy reported is that of the run's best.pt, the epoch with
the best validation accuracy, as ``python train.py`` reports it; being chosen on the validation
set, it is slightly optimistic, and equally so for every preset. ``--last`` adds the last epoch's.

Seeds 0-4 are not the ones the tuned preset was chosen with (see the README).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch

from digits_torch import fit, make_config
from digits_torch.config.config import DEFAULT_PRESET, PRESETS


def measure(preset: str, seed: int, val_fraction: float, device: str) -> dict:
    """One run of ``preset``; its figures from metrics.json and the history's last epoch."""
    with tempfile.TemporaryDirectory() as logdir:
        config = make_config(
            preset,
            seed=seed,
            val_fraction=val_fraction,
            device=device,
            logdir=logdir,
            quiet=True,
            figures=False,  # the run directory is thrown away: draw nothing
        )
        result = fit(config)
    return {
        **result.metrics,
        "seed": seed,
        "last_val_accuracy": result.history[-1]["val_accuracy"],
    }


def mean_sd(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """'mean +- sample standard deviation' of ``values`` times ``scale``; one value alone is
    shown as it is, '(one seed)': one seed has no spread to show."""
    mean = f"{statistics.mean(values) * scale:.{digits}f}"
    if len(values) == 1:
        return f"{mean} (one seed)"
    return f"{mean} +- {statistics.stdev(values) * scale:.{digits}f}"


def table(runs: dict[str, list[dict]], last: bool) -> str:
    head = ["preset", "val accuracy %", "train accuracy %", "epochs", "seconds per run"]
    if last:
        head.insert(2, "last epoch's val %")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for preset, rows in runs.items():
        cells = [
            f"`{preset}`",
            mean_sd([r["val_accuracy"] for r in rows], 100),
            mean_sd([r["train_accuracy"] for r in rows], 100),
            mean_sd([r["epochs"] for r in rows], digits=0),
            mean_sd([r["seconds"] for r in rows], digits=1),
        ]
        if last:
            cells.insert(2, mean_sd([r["last_val_accuracy"] for r in rows], 100))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=[DEFAULT_PRESET, "seed", "coursera"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--val-fraction", type=float, default=make_config().val_fraction)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--last", action="store_true", help="also the last epoch's val accuracy")
    parser.add_argument("--json", help="also write every run's figures here")
    args = parser.parse_args()
    unknown = set(args.presets) - set(PRESETS)
    if unknown:
        parser.error(f"unknown preset(s): {', '.join(sorted(unknown))}")

    runs: dict[str, list[dict]] = {}
    for preset in args.presets:
        for seed in args.seeds:
            row = measure(preset, seed, args.val_fraction, args.device)
            runs.setdefault(preset, []).append(row)
            print(
                f"{preset} seed {seed}: val {row['val_accuracy']:.4f}, train "
                f"{row['train_accuracy']:.4f}, {row['epochs']} epochs, {row['seconds']:.1f} s",
                flush=True,
            )
    print(
        f"\nval fraction {args.val_fraction}, seeds {' '.join(map(str, args.seeds))}, "
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n"
    )
    print(table(runs, args.last))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
