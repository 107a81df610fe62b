"""Milliseconds per network-epoch: K networks in one stack, against K solo runs and K sklearn fits.

    python benchmarks/bench_sweep.py [--device cpu|cuda] [--ks 1,4,16,64,256] [--epochs 5]
                                     [--solo 2] [--json OUT]

In one process, on the shipped 5,000 digits, for each K and each recipe:

* recipes: ``article`` (the ``seed`` preset: relu, 25 hidden units, batch 200, SGD lr 0.001,
  Nesterov momentum 0.9, l2 1e-4) and ``default`` (the ``tuned`` preset: batch 50, augmentation,
  a cosine schedule, a 20 % validation split); each as K networks that *share* a seed (lr and
  l2 vary, so every network sees the same batches: one wide product) and K that *differ* in seed
  (each its own batches: batched products);
* ``sweep``: :class:`digits_torch.sweep.stack.Stack` alone, the engine of ``python -m
  digits_torch.sweep.sweep`` (no files): ``--epochs`` timed epochs after one untimed;
* ``solo``: ``fit`` on the same configs one after another, by fit's own training clock
  (files included); solo and sklearn costs do not depend on K, so they are measured on
  ``--solo`` networks and reported per network-epoch;
* ``sklearn``: ``MLPClassifier(solver="sgd")`` with the article's settings (article recipe only);
* ``floor``: only the matrix products of the K-network epoch (the same shapes, random numbers);
* ``memory``: the stack's estimate (:func:`digits_torch.sweep.plan.memory_needed`), and on CUDA the
  peak the allocator saw; on CPU the process's peak RSS so far.

On CUDA it adds K = 1024 of the article's recipe over 1,000 epochs (the issue's 10 s target)
when ``--cuda-1024`` is given.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

from digits_torch import fit, load_digits, make_config
from digits_torch.errors import ArgumentParser, exit_on_error
from digits_torch.runtime.devices import resolve_device
from digits_torch.sweep.plan import memory_needed
from digits_torch.sweep.stack import Stack
from digits_torch.train.run_setup import read_digits, set_up

RECIPES = {"article": "seed", "default": "tuned"}


def configs(recipe: str, k: int, shared: bool, device: str, epochs: int, logdir: str) -> list:
    """K configs of a recipe: lr and l2 spread around the preset's; one seed or K seeds."""
    base = make_config(RECIPES[recipe])
    return [
        make_config(
            RECIPES[recipe],
            seed=0 if shared else i,
            lr=base.lr * (1 + (i % 8) / 8),
            l2=base.l2 * (1 + (i // 8) / 8),
            epochs=epochs,
            patience=0,  # every network runs every epoch
            device=device,
            logdir=logdir,
            quiet=True,
            figures=False,
            image_every=0,
        )
        for i in range(k)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_sweep(cfgs: list, device: torch.device, epochs: int):
    """(ms per network-epoch of the stack, the allocator's peak bytes on CUDA or None)."""
    digits = read_digits(cfgs[0], device)
    members = [set_up(c, digits=digits, stacked=True) for c in cfgs]
    for i, member in enumerate(members):
        member.order = i
    stack = Stack(members, *digits.on_device)
    _epoch(stack)  # warm-up (and the first-step buffers)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        _epoch(stack)
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return 1000 * seconds / (epochs * len(cfgs)), peak


def _epoch(stack: Stack) -> None:
    """One epoch of the stack and each network's bookkeeping (no files: the loop's rest)."""
    for run, record, finite in stack.train_epoch():
        run.end_epoch(record, finite)
    stack.end_epoch()


def time_solo(cfgs: list) -> float:
    """ms per network-epoch of ``fit`` on each config in turn, by fit's training clock."""
    seconds = epochs = 0.0
    for config in cfgs:
        result = fit(config)
        seconds += result.metrics["seconds"]
        epochs += result.metrics["epochs"]
    return 1000 * seconds / epochs


def time_sklearn(cfgs: list, X: np.ndarray, y: np.ndarray) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X = X.astype(np.float64)
    seconds = epochs = 0.0
    for c in cfgs:
        model = MLPClassifier(
            hidden_layer_sizes=c.hidden,
            solver="sgd",
            random_state=c.seed,
            max_iter=c.epochs,
            alpha=c.l2,
            learning_rate_init=c.lr,
            tol=c.tol,
            n_iter_no_change=10**9,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X, y)
            seconds += time.perf_counter() - start
        epochs += model.n_iter_
    return 1000 * seconds / epochs


@torch.no_grad()
def time_floor(k: int, shared: bool, config, rows: int, device: torch.device, epochs: int):
    """ms per network-epoch of only the products of the K-network epoch (random numbers)."""
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    h, n, b = config.hidden[0], 400, config.batch_size
    m = rows - int(round(rows * config.val_fraction))
    g = 1 if shared else k
    per = k // g
    X = torch.randn(g, b, n, device=device, dtype=dtype)
    W1 = torch.randn(g, per * h, n, device=device, dtype=dtype)
    W2 = torch.randn(k, 10, h, device=device, dtype=dtype)
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in range(0, m, b):
            a = torch.bmm(X, W1.mT)  # (g, b, per h): the wide product(s)
            a = a.view(g, b, per, h).transpose(1, 2).reshape(k, b, h)
            z = torch.bmm(W2, a.mT)  # (k, 10, b)
            torch.bmm(z, a)  # dW2
            d = torch.bmm(z.mT, W2)  # dh (k, b, h)
            d = d.view(g, per, b, h).transpose(1, 2).reshape(g, b, per * h)
            torch.bmm(d.mT, X)  # dW1
    _sync(device)
    return 1000 * (time.perf_counter() - start) / (epochs * k)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@exit_on_error
def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(prog="bench_sweep.py", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ks", default="1,4,16,64,256", help="numbers of networks")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs of each stack")
    parser.add_argument("--solo", type=int, default=2, help="networks timed for solo, sklearn")
    parser.add_argument("--recipes", default="article,default")
    parser.add_argument("--cuda-1024", action="store_true", help="CUDA: 1,024 x 1,000 epochs")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    X, labels = load_digits(stored_labels=True)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "epochs": args.epochs,
        "rows": [],
    }
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    head = f"{'recipe':8} {'batches':8} {'K':>5} {'sweep':>8} {'solo':>8} {'sklearn':>8} "
    print(head + f"{'floor':>8} {'memory MiB':>10}   (ms per network-epoch)")
    with tempfile.TemporaryDirectory() as logdir:
        solo_cache: dict = {}
        for recipe in args.recipes.split(","):
            for shared in (True, False):
                for k in [int(v) for v in args.ks.split(",")]:
                    cfgs = configs(recipe, k, shared, str(device), args.epochs + 1, logdir)
                    sweep_ms, peak = time_sweep(cfgs, device, args.epochs)
                    key = (recipe, shared)
                    if key not in solo_cache:
                        few = configs(recipe, args.solo, shared, str(device), args.epochs, logdir)
                        sk = time_sklearn(few, X, labels % 10) if recipe == "article" else None
                        solo_cache[key] = (time_solo(few), sk)
                    solo_ms, sklearn_ms = solo_cache[key]
                    floor = time_floor(k, shared, cfgs[0], len(X), device, args.epochs)
                    estimate = memory_needed(cfgs, *X.shape) / 2**20
                    row = {
                        "recipe": recipe,
                        "batches": "shared" if shared else "own",
                        "k": k,
                        "sweep_ms": sweep_ms,
                        "solo_ms": solo_ms,
                        "sklearn_ms": sklearn_ms,
                        "floor_ms": floor,
                        "memory_estimate_mib": estimate,
                        "cuda_peak_mib": None if peak is None else peak / 2**20,
                        "peak_rss_mib": peak_rss_mib(),
                    }
                    results["rows"].append(row)
                    sk = "-" if sklearn_ms is None else f"{sklearn_ms:8.2f}"
                    print(
                        f"{recipe:8} {row['batches']:8} {k:5d} {sweep_ms:8.2f} {solo_ms:8.2f} "
                        f"{sk:>8} {floor:8.2f} {estimate:10.1f}",
                        flush=True,
                    )
        if args.cuda_1024 and device.type == "cuda":
            cfgs = configs("article", 1024, True, str(device), 1000, logdir)
            ms, peak = time_sweep(cfgs, device, 999)
            results["cuda_1024_seconds"] = ms * 1024  # ms per network-epoch x 1024 x 1000 / 1000
            print(f"1024 article networks x 1000 epochs: {results['cuda_1024_seconds']:.1f} s")
    results["peak_rss_mib"] = peak_rss_mib()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
