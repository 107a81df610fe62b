"""digits_torch.MLPClassifier's fit against scikit-learn's own, the article's configuration.

    PYTHONPATH=. python benchmarks/bench_estimator.py [--epochs 100] [--repeats 3] [--json OUT]

In one process, taking turns (sklearn, exact, fast; then again), on the shipped 5,000 digits
as the article's script reads them (float64 X, labels 1..10), ``MLPClassifier(
hidden_layer_sizes=(25,), solver="sgd", random_state=0, alpha=1e-4, tol=1e-9)`` with
``max_iter`` = ``--epochs``, each fit timed whole (validation, set-up and copies included),
median of the repeats:

* sklearn: ``sklearn.neural_network.MLPClassifier`` with its BLAS and OpenMP pools at
  ``--threads`` threads (threadpoolctl);
* exact:   ``digits_torch.MLPClassifier`` (arithmetic "sklearn": the same weights, float64);
* fast:    ``digits_torch.MLPClassifier(arithmetic="fast")`` (float32, torch's SGD).

Both of ours fit on one torch thread, as they always do on the CPU. Prints the two ratios,
sklearn / exact and sklearn / fast (above 1: ours is faster); ``--device cuda`` fits the fast one
on the GPU too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from threadpoolctl import threadpool_limits

from digits_torch import MLPClassifier, load_digits

ARTICLE = {"hidden_layer_sizes": (25,), "solver": "sgd", "random_state": 0, "alpha": 1e-4}


def timed(estimator, X, y) -> tuple[float, float]:
    """(seconds to fit, training accuracy)."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    return time.perf_counter() - started, estimator.score(X, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="scikit-learn's BLAS threads")
    parser.add_argument("--device", default="cpu", help="the fast fit's device")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    X, y = load_digits(dtype=np.float64, stored_labels=True)
    params = {**ARTICLE, "max_iter": args.epochs, "tol": 1e-9}
    contenders = {
        "sklearn": lambda: SklearnMLPClassifier(**params),
        "exact": lambda: MLPClassifier(**params, device="cpu"),
        "fast": lambda: MLPClassifier(**params, arithmetic="fast", device=args.device),
    }
    seconds = {name: [] for name in contenders}
    accuracy = {}
    timed(contenders["exact"](), X[:400], y[:400])  # torch's first-call costs, once
    with threadpool_limits(args.threads):
        for _ in range(args.repeats):
            for name, make in contenders.items():
                took, accuracy[name] = timed(make(), X, y)
                seconds[name].append(took)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    results = {
        "epochs": args.epochs,
        "repeats": args.repeats,
        "sklearn_threads": args.threads,
        "fast_device": args.device,
        "seconds": seconds,
        "median_s": median,
        "min_s": {name: min(times) for name, times in seconds.items()},
        "ms_per_epoch": {name: 1000 * s / args.epochs for name, s in median.items()},
        "training_accuracy": accuracy,
        "sklearn_over_exact": median["sklearn"] / median["exact"],
        "sklearn_over_fast": median["sklearn"] / median["fast"],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": os.getloadavg(),
    }
    for name in contenders:
        print(
            f"{name:8s} {median[name]:7.2f} s  ({results['ms_per_epoch'][name]:6.2f} ms/epoch)"
            f"  training accuracy {accuracy[name]:.4f}"
        )
    fastest = results["min_s"]
    print(
        f"sklearn / exact = {results['sklearn_over_exact']:.2f}x (target: at least 1x; "
        f"fastest runs {fastest['sklearn'] / fastest['exact']:.2f}x)"
    )
    print(
        f"sklearn / fast  = {results['sklearn_over_fast']:.2f}x (target: at least 1.5x; "
        f"fastest runs {fastest['sklearn'] / fastest['fast']:.2f}x)"
    )
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
