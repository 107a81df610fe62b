"""The default recipe's held-out accuracy over seeds: `distilled` (and its teachers), and `tuned`.

    PYTHONPATH=. python benchmarks/distilled.py --seeds 0-4 --json distilled.json

For each seed, a fresh `distilled` run (its `teacher` trained first, on the same split) and,
with `--tuned`, a `tuned` run, without pictures; each reports the validation accuracy of its
best.pt (the epoch chosen on validation, as every run reports it), the validation accuracy
after its last epoch, its dead hidden units on the training digits at the end, and its
training seconds by fit's clock (the teacher's apart). Then the mean and standard deviation over
the seeds. Every run is on the CPU at the config's threads (1), in a temporary logdir; nothing
here is a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from digits_torch import fit, make_config
from digits_torch.plots import dead_units
from digits_torch.store.runs import read_history, read_metrics
from digits_torch.train.run_setup import set_up


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def measure(preset: str, seed: int, logdir: Path, **changes) -> dict:
    """One run of ``preset`` with ``seed`` (and ``changes``): its figures (see above)."""
    config = make_config(preset, seed=seed, device="cpu", quiet=True, logdir=str(logdir), **changes)
    result = fit(config)
    history = result.history
    row = {
        "preset": preset,
        "seed": seed,
        "val_accuracy": result.metrics["val_accuracy"],
        "best_epoch": result.metrics["best_epoch"],
        "last_val_accuracy": history[-1]["val_accuracy"],
        "seconds": history[-1]["seconds"],
        "dead_units": _dead(result),
    }
    if result.config.teacher is not None:
        teacher = Path(result.config.teacher)
        row["teacher_val_accuracy"] = read_metrics(teacher)["val_accuracy"]
        row["teacher_seconds"] = read_history(teacher)[-1]["seconds"]
    return row


def _dead(result) -> int:
    """Dead first-layer units of the final (best.pt) model on the run's training digits."""
    X_train = set_up(result.config).train[0]
    return int(dead_units(result.model, X_train).sum())


def summary(rows: list[dict], key: str) -> str:
    values = [100 * r[key] if "accuracy" in key else r[key] for r in rows]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {spread:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="seeds: 0-4 or 0,3,7 (default 0-4)")
    parser.add_argument("--tuned", action="store_true", help="also run the tuned preset")
    parser.add_argument("--json", metavar="FILE", help="write every figure here")
    parser.add_argument("--data", metavar="FILE", help="another ex4-style .mat (a test's)")
    parser.add_argument("--epochs", type=int, help="fewer student epochs (a test's)")
    args = parser.parse_args(argv)
    changes = {k: v for k, v in (("data", args.data), ("epochs", args.epochs)) if v is not None}
    presets = ["distilled"] + (["tuned"] if args.tuned else [])
    rows = []
    with tempfile.TemporaryDirectory() as logdir:
        for seed in _seeds(args.seeds):
            for preset in presets:
                rows.append(measure(preset, seed, Path(logdir), figures=False, **changes))
                print(json.dumps(rows[-1]), flush=True)
    for preset in presets:
        mine = [r for r in rows if r["preset"] == preset]
        print(
            f"{preset}: val {summary(mine, 'val_accuracy')} % (best.pt), "
            f"last epoch {summary(mine, 'last_val_accuracy')} %, "
            f"dead units {[r['dead_units'] for r in mine]}, seconds {summary(mine, 'seconds')}"
        )
        if "teacher_val_accuracy" in mine[0]:
            print(
                f"  its teachers: val {summary(mine, 'teacher_val_accuracy')} %, "
                f"seconds {summary(mine, 'teacher_seconds')}"
            )
    if args.json:
        machine = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        }
        Path(args.json).write_text(json.dumps({"machine": machine, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
