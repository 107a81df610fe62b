"""What data parallelism costs and gains: ms per epoch of one process against torchrun ranks.

    python benchmarks/bench_ranks.py [--ranks 1 2] [--epochs 30] [--repeats 3]
                                     [--cases shipped wide] [--json OUT]

Each run is ``python train.py`` (one rank) or ``torchrun --standalone --nproc-per-node R
train.py`` with ``--preset seed --device cpu --threads 1 --no-figures``, in a fresh process.
Reported per case and rank count: ms per epoch on the run's own training clock (history.jsonl's
seconds, the first epoch left out as warm-up), and the whole process's wall seconds. The cases:

* ``shipped``: the 5,000 shipped digits, batch 200, 25 hidden units (the article's network);
* ``wide``: the shipped digits 10 times over (50,000 rows), batch 2,000, 400 hidden units: more
  arithmetic per batch against the same one all-reduce, which is where ranks can pay off.

The runs of a case take turns by rank count, repeated, so each comparison is of runs taken side
by side; the medians are reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io

from digits_torch.core.data import load_digits
from digits_torch.errors import ArgumentParser, UserError, exit_on_error
from digits_torch.store.runs import read_history

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
CASES = {  # name: (copies of the shipped digits, batch size, hidden units)
    "shipped": (1, 200, 25),
    "wide": (10, 2000, 400),
}


def write_copies(copies: int, directory: Path) -> Path | None:
    """An ex4-style .mat of the shipped digits ``copies`` times over (None: the shipped file)."""
    if copies == 1:
        return None
    X, y = load_digits()
    path = directory / f"digits{copies}x.mat"
    labels = np.where(y == 0, 10, y)
    scipy.io.savemat(path, {"X": np.tile(X, (copies, 1)), "y": np.tile(labels, copies)})
    return path


def time_run(ranks: int, epochs: int, data: Path | None, batch: int, hidden: int) -> dict:
    """ms per epoch (training clock, bar the first epoch) and wall seconds of one run."""
    with tempfile.TemporaryDirectory() as logdir:
        flags = ["--preset", "seed", "--device", "cpu", "--threads", "1", "--no-figures"]
        flags += ["--quiet", "--epochs", str(epochs), "--batch-size", str(batch)]
        flags += ["--hidden", str(hidden), "--logdir", logdir]
        flags += [] if data is None else ["--data", str(data)]
        launch = [sys.executable] if ranks == 1 else [str(TORCHRUN), "--standalone"]
        launch += [] if ranks == 1 else [f"--nproc-per-node={ranks}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        start = time.perf_counter()
        subprocess.run(
            [*launch, "train.py", *flags], cwd=ROOT, env=env, check=True, capture_output=True
        )
        wall = time.perf_counter() - start
        (run,) = Path(logdir).iterdir()
        seconds = [record["seconds"] for record in read_history(run)]
    return {"ms_per_epoch": 1000 * (seconds[-1] - seconds[0]) / (epochs - 1), "wall_s": wall}


@exit_on_error
def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run (at least 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; medians")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.epochs < 2 or min(args.ranks) < 1 or args.repeats < 1:
        raise UserError("give --epochs 2 or more, rank counts and --repeats of 1 or more")
    if max(args.ranks) > 1 and not TORCHRUN.exists():
        raise UserError(f"no torchrun beside this python ({TORCHRUN})")
    results = {"machine": os.uname().machine, "cpus": os.cpu_count(), "epochs": args.epochs}
    with tempfile.TemporaryDirectory() as scratch:
        for case in args.cases:
            copies, batch, hidden = CASES[case]
            data = write_copies(copies, Path(scratch))
            runs: dict[int, list[dict]] = {r: [] for r in args.ranks}
            for _ in range(args.repeats):
                for r in args.ranks:
                    runs[r].append(time_run(r, args.epochs, data, batch, hidden))
            results[case] = {
                str(r): {k: statistics.median(t[k] for t in timed) for k in timed[0]}
                for r, timed in runs.items()
            }
            for r, timed in results[case].items():
                print(
                    f"{case:8} {r} rank(s): {timed['ms_per_epoch']:8.2f} ms/epoch, "
                    f"{timed['wall_s']:6.2f} s the whole process"
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
