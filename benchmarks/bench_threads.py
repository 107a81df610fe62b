"""Wall time of whole ``python train.py`` runs at each thread count, on a quiet and a busy CPU.

    python benchmarks/bench_threads.py [--presets coursera tuned] [--threads 1 2] [--repeats 3]
                                       [--epochs N] [--timeout 600] [--burners N] [--json OUT]

Each run is ``python train.py --preset P --device cpu --quiet --no-figures --threads T`` in a
fresh process, timed from start to exit: what a user waits for. "quiet" runs them with nothing
else of ours running; "busy" with one CPU-burning process per core beside them (``--burners``;
started here, bounded in time, killed at the end), as on a shared CI runner or a laptop building
something.
The runs of each load take turns (preset by preset, thread count by thread count, repeated), so
each comparison is between runs taken minutes apart at most; the medians are reported.
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

from digits_torch.config.config import DEFAULT_PRESET
from digits_torch.errors import ArgumentParser, exit_on_error

ROOT = Path(__file__).resolve().parents[1]
BURN = (  # a busy loop that ends by itself after argv[1] seconds
    "import sys, time\nend = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end: pass"
)


def time_run(preset: str, threads: int, epochs: int | None, timeout: float) -> float | None:
    """Seconds from start to exit of one train.py run; None if it ran past ``timeout``."""
    with tempfile.TemporaryDirectory() as logdir:
        command = [sys.executable, "train.py", "--preset", preset, "--device", "cpu", "--quiet"]
        command += ["--no-figures", "--threads", str(threads), "--logdir", logdir]
        command += [] if epochs is None else ["--epochs", str(epochs)]
        start = time.perf_counter()
        try:
            subprocess.run(command, cwd=ROOT, check=True, timeout=timeout, capture_output=True)
        except subprocess.TimeoutExpired:
            return None
        return time.perf_counter() - start


def burners(count: int, seconds: float) -> list[subprocess.Popen]:
    """``count`` busy loops, each ending by itself after ``seconds`` at the latest."""
    return [subprocess.Popen([sys.executable, "-c", BURN, str(seconds)]) for _ in range(count)]


def measure(args, busy: bool) -> dict[str, dict[str, float | None]]:
    """{preset: {threads: median seconds (None: a run timed out)}} under one load."""
    runs = len(args.presets) * len(args.threads) * args.repeats
    load = burners(args.burners, runs * args.timeout) if busy else []
    try:
        times = {(p, t): [] for p in args.presets for t in args.threads}
        for _ in range(args.repeats):
            for preset, threads in times:
                times[preset, threads].append(time_run(preset, threads, args.epochs, args.timeout))
    finally:
        for process in load:
            process.kill()
            process.wait()
    return {
        p: {
            str(t): None if None in times[p, t] else statistics.median(times[p, t])
            for t in args.threads
        }
        for p in args.presets
    }


@exit_on_error
def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["coursera", DEFAULT_PRESET])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; medians")
    parser.add_argument("--epochs", type=int, help="override the presets' epochs (shorter runs)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take")
    parser.add_argument(
        "--burners", type=int, default=os.cpu_count() or 1, help="busy loops (default: one a core)"
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = {
        "cores": os.cpu_count(),
        "burners": args.burners,
        "repeats": args.repeats,
        "epochs": args.epochs,
    }
    for load in ("quiet", "busy"):
        results[load] = measure(args, busy=load == "busy")
    print(f"{results['cores']} cores; wall seconds of python train.py, medians of {args.repeats}")
    for preset in args.presets:
        for threads in map(str, args.threads):
            quiet, busy = results["quiet"][preset][threads], results["busy"][preset][threads]
            ratio = f"{busy / quiet:5.1f}x" if quiet and busy else "  n/a"
            print(
                f"  {preset:9} {threads:>2} threads: quiet {_seconds(quiet, args.timeout)}, "
                f"busy {_seconds(busy, args.timeout)}, busy / quiet {ratio}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _seconds(value: float | None, timeout: float) -> str:
    return f"{value:7.2f} s" if value is not None else f"> {timeout:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
