"""Seconds to draw pictures: a run's, the teacher's 400 hidden units, and one sweep's whole process.

    python benchmarks/bench_figures.py [--repeats 5] [--out DIR] [--json OUT]
    python benchmarks/bench_figures.py --sweep-repeats 3 [--sweep-epochs 60,10] [--json OUT]

In one process, on the shipped 5,000 digits:

* ``run_s``: :func:`digits_torch.plots.write_run_figures` for a short real run of the article's
  recipe (``seed`` preset, a 20 % validation split, a few epochs): every PNG a run writes into
  its ``figures/``, rendered and saved, median of ``--repeats`` after an untimed picture (that
  pays matplotlib's import, once a process);
* ``teacher_s``: the teacher's picture: the hidden units of a 400-400-10 network, with its dead
  units found on the training digits, rendered (not saved), median of ``--repeats``;
* ``--out DIR`` also leaves those PNGs in DIR, to look at.

Each figure is wall seconds, with the CPU seconds beside (``*_cpu``): on a machine shared with
other work the CPU seconds move less.

With ``--sweep-repeats N`` it then times whole processes, start to exit, of the article's
recipe as a sweep of 64 networks (``--preset seed --grid lr=<4 values> --grid l2=<16 values>``,
``--quiet``): with the pictures (the sweep's default), with every network's (``--figures``) and
with none (``--no-figures``), at each of ``--sweep-epochs`` (default 60 and 10), taking turns,
medians of N; and scikit-learn's ``MLPClassifier`` epoch of the same recipe (one fit of 60
epochs after each repeat's sweeps, by its own clock; the median of N). The per-network-epoch
figure is the whole process's seconds at 60 epochs minus those at 10, over 50 epochs and 64
networks: what one more epoch of one network costs a sweep, start-up and pictures cancelled out.
Its ratio to scikit-learn's epoch is given from the medians, and as the median of each repeat's
own ratio (``*_turns``): the two speeds measured in the same minute. ``product_gflops``, before
and after the sweeps: the speed of the stack's wide product on one thread and on all, which says
whether the cores were the benchmark's own (a sweep uses both; scikit-learn one).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from digits_torch import MLP, fit, load_digits, make_config, plots
from digits_torch.errors import ArgumentParser, exit_on_error
from digits_torch.store.run_contents import FIGURES
from digits_torch.store.runs import read_split

LRS = "0.0005,0.001,0.002,0.004"
L2S = ",".join(f"{v:g}" for v in np.geomspace(1e-6, 1e-1, 16))
KINDS = {"default": [], "every": ["--figures"], "none": ["--no-figures"]}


def run_pictures(logdir: str, out: Path | None, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of write_run_figures for a short real run (its PNGs copied
    to ``out``)."""
    config = make_config(
        "seed", epochs=5, val_fraction=0.2, figures=False, quiet=True, device="cpu", logdir=logdir
    )
    result = fit(config)
    X, y = load_digits()
    train, val = read_split(result.run_dir)
    plots.render(plots.digits_grid(X[:9]))  # untimed: matplotlib's imports and font cache
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        plots.write_run_figures(
            result.model, (X[train], y[train]), (X[val], y[val]), result.run_dir
        )
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    if out is not None:
        for png in (result.run_dir / FIGURES).glob("*.png"):
            (out / png.name).write_bytes(png.read_bytes())
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def teacher_picture(out: Path | None, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds to draw and render the hidden units of a 400-400-10 relu
    network (with its dead units found on the 5,000 digits)."""
    X, _ = load_digits()
    model = MLP(400, (400,), activation="relu", generator=torch.Generator().manual_seed(0))
    times, image = [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        image = plots.render(plots.hidden_units(model, X))
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    if out is not None:
        plots.save_png(image, out / "teacher_hidden_units.png")
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def sweep_process(
    epochs: int, pictures: list[str], logdir: str, grid: tuple[str, str]
) -> tuple[float, float]:
    """Wall and CPU seconds of one whole sweep process over ``grid`` (lr values, l2 values)."""
    command = [sys.executable, "-m", "digits_torch", "sweep", "--preset", "seed"]
    command += ["--grid", f"lr={grid[0]}", "--grid", f"l2={grid[1]}", "--epochs", str(epochs)]
    command += ["--quiet", "--device", "cpu", "--logdir", logdir, *pictures]
    before = _children_cpu()
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start, _children_cpu() - before


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def sklearn_epoch_ms(repeats: int, epochs: int = 60) -> float:
    """Median ms per epoch of the article's MLPClassifier, by its own clock."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    X, y = load_digits()
    X = X.astype(np.float64)
    times = []
    for _ in range(repeats):
        model = MLPClassifier((25,), solver="sgd", random_state=0, max_iter=epochs, alpha=1e-4)
        model.set_params(tol=1e-9, n_iter_no_change=10**9)
        # one thread: scikit-learn's fastest here (2026-12-07: 14.1 ms an epoch, 16 to 18 on two)
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X, y)
        times.append(1000 * (time.perf_counter() - start) / model.n_iter_)
    return statistics.median(times)


def product_gflops(threads: int, repeats: int = 200) -> float:
    """GFLOP/s of the 64-network stack's wide product, (200, 400) @ (400, 1600), on ``threads``
    threads: the machine's state. On the 2-core VM two threads reach about 190 where both cores
    are its own, and 130 where the host takes a share of the second (one thread: 100 either way)."""
    a, w = torch.randn(200, 400), torch.randn(400, 1600)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a @ w
        start = time.perf_counter()
        for _ in range(repeats):
            a @ w
        seconds = (time.perf_counter() - start) / repeats
    finally:
        torch.set_num_threads(before)
    return 2 * 200 * 400 * 1600 / seconds / 1e9


def sweeps(repeats: int, epochs: list[int], kinds: list[str], logdir: str, grid) -> dict:
    """Whole sweep processes, taking turns: {"<epochs>_<pictures>": each repeat's seconds}; every
    network's pictures (``every``) at the longer epochs only; and after each repeat's sweeps one
    fit of scikit-learn's (``sklearn_epoch_ms``), so that each repeat's ratio compares two speeds
    measured in the same minute (this machine's speed drifts by a third between minutes)."""
    seconds: dict[str, list[float]] = {}
    for _ in range(repeats):
        for count in epochs:
            for kind in kinds:
                if kind == "every" and count != max(epochs):
                    continue
                took, cpu = sweep_process(count, KINDS[kind], logdir, grid)
                seconds.setdefault(f"{count}_{kind}", []).append(took)
                seconds.setdefault(f"{count}_{kind}_cpu", []).append(cpu)
                load = os.getloadavg()[0]
                print(
                    f"  sweep {count} epochs, pictures {kind}: {took:.1f} s ({cpu:.1f} CPU s, "
                    f"load {load:.1f})",
                    flush=True,
                )
        seconds.setdefault("sklearn_epoch_ms", []).append(sklearn_epoch_ms(1))
    return seconds


@exit_on_error
def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(prog="bench_figures.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", metavar="DIR", help="leave the pictures here")
    parser.add_argument("--sweep-repeats", type=int, default=0, help="whole sweeps (0: none)")
    parser.add_argument("--sweep-epochs", default="60,10", help="longer,shorter")
    parser.add_argument(
        "--sweep-kinds", default="default,every,none", help="pictures: default, every, none"
    )
    parser.add_argument("--lrs", default=LRS, help="the sweep's lr values")
    parser.add_argument("--l2s", default=L2S, help="the sweep's l2 values")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    out = None if args.out is None else Path(args.out)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as logdir:
        results["run_s"], results["run_cpu_s"] = run_pictures(logdir, out, args.repeats)
        results["teacher_s"], results["teacher_cpu_s"] = teacher_picture(out, args.repeats)
        results["load_average"] = os.getloadavg()[0]
        print(
            f"a run's pictures: {results['run_s']:.3f} s ({results['run_cpu_s']:.3f} CPU s), "
            f"the teacher's 400 hidden units: {results['teacher_s']:.3f} s "
            f"({results['teacher_cpu_s']:.3f} CPU s), medians of {args.repeats}; load "
            f"{results['load_average']:.1f}"
        )
        if args.sweep_repeats:
            long, short = (int(v) for v in args.sweep_epochs.split(","))
            kinds = args.sweep_kinds.split(",")
            grid = (args.lrs, args.l2s)
            results["networks"] = len(args.lrs.split(",")) * len(args.l2s.split(","))
            threads = torch.get_num_threads()
            before = {1: product_gflops(1), threads: product_gflops(threads)}
            turns = sweeps(args.sweep_repeats, [long, short], kinds, logdir, grid)
            after = {1: product_gflops(1), threads: product_gflops(threads)}
            results["product_gflops"] = {"before": before, "after": after}
            (b1, bn), (a1, an) = (before[1], before[threads]), (after[1], after[threads])
            print(
                f"  the wide product, GFLOP/s on 1 and {threads} threads: {b1:.0f} and {bn:.0f} "
                f"before the sweeps, {a1:.0f} and {an:.0f} after"
            )
            results["sweep_sklearn_ms"] = turns.pop("sklearn_epoch_ms")
            results["sklearn_epoch_ms"] = statistics.median(results["sweep_sklearn_ms"])
            results["sweep_turns"] = turns
            results["sweep_s"] = {key: statistics.median(v) for key, v in turns.items()}
            _sweep_figures(results, long, short)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def _sweep_figures(results: dict, long: int, short: int) -> None:
    """The ratios the benchmark reports, from the medians (printed and added to results)."""
    s, networks = results["sweep_s"], results["networks"]
    for kind in ("default", "every"):
        if f"{long}_{kind}" in s and f"{long}_none" in s:
            results[f"{kind}_pictures_ratio"] = s[f"{long}_{kind}"] / s[f"{long}_none"]
            print(f"sweep, pictures {kind} / none: {results[f'{kind}_pictures_ratio']:.2f}x")
    for kind in ("default", "none"):
        if f"{long}_{kind}" in s and f"{short}_{kind}" in s:
            per = 1000 * (s[f"{long}_{kind}"] - s[f"{short}_{kind}"]) / ((long - short) * networks)
            results[f"network_epoch_ms_{kind}"] = per
            results[f"speedup_vs_sklearn_{kind}"] = results["sklearn_epoch_ms"] / per
            print(
                f"per network-epoch (pictures {kind}): {per:.2f} ms; scikit-learn's epoch "
                f"{results['sklearn_epoch_ms']:.2f} ms: {results['sklearn_epoch_ms'] / per:.1f}x"
            )
            ratios = _turn_ratios(results, f"{long}_{kind}", f"{short}_{kind}", long - short)
            results[f"speedup_vs_sklearn_{kind}_turns"] = statistics.median(ratios)
            print(
                f"  each repeat against the scikit-learn fit beside it: median "
                f"{statistics.median(ratios):.1f}x ({min(ratios):.1f}x to {max(ratios):.1f}x)"
            )


def _turn_ratios(results: dict, long: str, short: str, epochs: int) -> list[float]:
    """Each repeat's scikit-learn epoch over its own per-network-epoch figure."""
    turns, networks = results["sweep_turns"], results["networks"]
    sklearn = results["sweep_sklearn_ms"]
    return [
        ms / (1000 * (a - b) / (epochs * networks))
        for a, b, ms in zip(turns[long], turns[short], sklearn, strict=True)
    ]


if __name__ == "__main__":
    main()
