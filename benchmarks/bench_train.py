"""Milliseconds per epoch of the article's configuration, ours against the alternatives.

    python benchmarks/bench_train.py [--device cpu|cuda] [--epochs 50] [--repeats 3] [--json OUT]

In one process, taking turns, each repeated (medians reported), on the shipped 5,000 digits
with the article's hyperparameters (relu, 25 hidden units, batch 200, SGD lr 0.001, Nesterov
momentum 0.9, l2 1e-4):

* ours:    ``digits_torch.fit`` with the ``seed`` preset, everything included (logging,
           checkpoints, TensorBoard); the epoch time is fit's own training-loop clock.
* loop:    the epoch function ``fit`` calls (``train_epoch``) alone, without that bookkeeping.
* sklearn: ``MLPClassifier(solver="sgd", ...)`` with ``max_iter`` = the same epochs.
* naive:   the textbook PyTorch loop: DataLoader over a TensorDataset, nn.Sequential, autograd,
           torch.optim.SGD.
* floor:   only the matrix products those epochs need (forward and backward), nothing else.

On CUDA also ``ours_graph`` and ``loop_graph``: the same with ``--cuda-graph`` (each epoch one
replayed CUDA graph), and the article's whole 1000-epoch run by fit's clock, eager and as a graph.

Then how ours grows with rows (the data repeated, by default to 50k and 500k rows: ``--copies``)
and hidden width (``--widths``).

Then time to an accuracy, each a whole process timed from start to exit (median of the repeats,
taking turns): ``python train.py --device D --quiet --no-figures`` (the default recipe, the
``tuned`` preset) and its validation accuracy (metrics.json), against the best scikit-learn
``MLPClassifier`` that ``benchmarks/sklearn_search.py`` found, on the same 80/20 split
(``data.stratified_split(y, 0.2, 0)``). Every contender runs at ``--threads`` threads (torch's,
and scikit-learn's BLAS and OpenMP pools); ``import_torch_s`` is a bare ``python -c "import
torch"``, which the scikit-learn process pays too (it loads the digits with this package).
"""

from __future__ import annotations

import dataclasses
import functools
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
from torch import nn

from digits_torch import MLP, TrainConfig, load_digits, make_config
from digits_torch.config.config import DEFAULT_PRESET
from digits_torch.config.plan import make_plan
from digits_torch.errors import ArgumentParser, exit_on_error
from digits_torch.fast.cudagraph import EpochGraph
from digits_torch.runtime.devices import resolve_device
from digits_torch.train.epochs import run_batches, train_epoch
from digits_torch.train.run_setup import make_optimizer
from digits_torch.train.training import fit

BATCH, HIDDEN, LR, MOMENTUM, L2 = 200, 25, 0.001, 0.9, 1e-4
ROOT = Path(__file__).resolve().parents[1]


def time_ours(epochs: int, device: str, cuda_graph: bool = False) -> float:
    seconds, epochs_run = fit_seconds(epochs, device, cuda_graph)
    return 1000 * seconds / epochs_run


def fit_seconds(epochs: int, device: str, cuda_graph: bool = False) -> tuple[float, int]:
    """fit's training clock for the seed preset, and the epochs it ran."""
    with tempfile.TemporaryDirectory() as logdir:
        config = make_config(
            "seed",
            epochs=epochs,
            device=device,
            logdir=logdir,
            quiet=True,
            figures=False,  # drawn after the training clock stops: seconds, not milliseconds
            cuda_graph=cuda_graph,
            threads=torch.get_num_threads(),
        )
        result = fit(config)
    return result.metrics["seconds"], result.metrics["epochs"]


def time_sklearn(epochs: int, X: np.ndarray, y: np.ndarray) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    model = MLPClassifier(
        hidden_layer_sizes=(HIDDEN,),
        solver="sgd",
        random_state=0,
        max_iter=epochs,
        alpha=L2,
        tol=1e-9,
    )
    X = X.astype(np.float64)  # what the article's script feeds it, converted before the clock
    with warnings.catch_warnings(), threadpool_limits(torch.get_num_threads()):
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    return 1000 * seconds / model.n_iter_


def time_naive(epochs: int, X: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """The loop most tutorials write: per-sample indexing and collation in a DataLoader."""
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, y), batch_size=BATCH, shuffle=True
    )
    model = nn.Sequential(nn.Linear(X.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10)).to(
        device
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=0.0
    )
    loss_fn = nn.CrossEntropyLoss()
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = loss_fn(model(xb), yb)
            # weights only, as ours and scikit-learn penalise them
            loss = loss + L2 / (2 * len(yb)) * sum(
                layer.weight.square().sum() for layer in model[0::2]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    _sync(device)
    return 1000 * (time.perf_counter() - start) / epochs


@torch.no_grad()
def time_floor(epochs: int, X: torch.Tensor) -> float:
    """The five matrix products of each batch: two forward, three backward (no dX for layer 1)."""
    W1 = torch.randn(HIDDEN, X.shape[1], device=X.device)
    W2 = torch.randn(10, HIDDEN, device=X.device)
    _sync(X.device)
    start = time.perf_counter()
    for _ in range(epochs):
        for s in range(0, len(X), BATCH):
            xb = X[s : s + BATCH]
            h = xb @ W1.t()  # (b, 25)
            z = h @ W2.t()  # (b, 10)
            z.t() @ h  # dW2 (10, 25)
            d = z @ W2  # dh (b, 25)
            d.t() @ xb  # dW1 (25, 400)
    _sync(X.device)
    return 1000 * (time.perf_counter() - start) / epochs


def time_loop(
    X: torch.Tensor, y: torch.Tensor, hidden: int, epochs: int, cuda_graph: bool = False
) -> float:
    """Our epoch function alone (as fit calls it) on tensors of any size; with ``cuda_graph``,
    the epoch as a replayed CUDA graph (``--cuda-graph``)."""
    config = make_config("seed", hidden=(hidden,), cuda_graph=cuda_graph)
    recipe = make_plan(config).recipe
    generator = torch.Generator().manual_seed(0)
    model = MLP(X.shape[1], config.hidden, 10, config.activation, config.init, generator)
    model.to(X.device)
    optimizer = make_optimizer(config, model)
    if cuda_graph:
        batches = functools.partial(run_batches, model, recipe=recipe)
        graph = EpochGraph(model, optimizer, X, y, batches)
        epoch, warm_ups = (lambda: graph(X, generator)), 2  # eager, then the capture
    else:
        epoch, warm_ups = (lambda: train_epoch(model, optimizer, X, y, recipe, generator)), 1
    for _ in range(warm_ups):
        epoch()
    _sync(X.device)
    start = time.perf_counter()
    for _ in range(epochs):
        loss, _ = epoch()
        loss.item()
    return 1000 * (time.perf_counter() - start) / epochs


def process_ours(
    device: str, epochs: int | None, preset: str = DEFAULT_PRESET
) -> tuple[float, float]:
    """Wall seconds of ``python train.py`` with the default recipe (its teacher trained first,
    if it has one), and its validation accuracy."""
    with tempfile.TemporaryDirectory() as logdir:
        command = ["train.py", "--device", device, "--quiet", "--no-figures", "--logdir", logdir]
        command += ["--preset", preset]
        command += ["--threads", str(torch.get_num_threads())]
        seconds, _ = _run_python(command + ([] if epochs is None else ["--epochs", str(epochs)]))
        (metrics,) = Path(logdir).glob("*/metrics.json")
        return seconds, json.loads(metrics.read_text())["val_accuracy"]


def process_sklearn(epochs: int | None) -> tuple[float, float]:
    """Wall seconds of a process that trains sklearn_search.BEST, and its validation accuracy."""
    command = ["benchmarks/sklearn_search.py", "--best", "--seed", "0"]
    seconds, out = _run_python(command + ([] if epochs is None else ["--max-iter", str(epochs)]))
    return seconds, json.loads(out.splitlines()[-1])["val_accuracy"]


def _run_python(args: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of ``python *args`` in the repository, at this process's threads
    (and with this checkout's package first on the path)."""
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    env["MKL_NUM_THREADS"] = threads
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    ran = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, ran.stdout


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_of(repeats: int, fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(repeats))


@exit_on_error
def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--epochs", type=int, default=50, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; medians")
    parser.add_argument("--json", help="write the results here")
    default_threads = next(
        f.default for f in dataclasses.fields(TrainConfig) if f.name == "threads"
    )
    parser.add_argument(
        "--threads", type=int, default=default_threads, help="CPU threads for every contender"
    )
    parser.add_argument(
        "--recipe-epochs", type=int, help="shorten the whole-process runs to this many epochs"
    )
    parser.add_argument(
        "--recipe-preset",
        default=DEFAULT_PRESET,
        help=f"the preset of the whole-process run of ours (default: {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--copies",
        type=int,
        nargs="+",
        default=[1, 10, 100],
        help="times the data is repeated for the rows figures (default: 1 10 100)",
    )
    parser.add_argument(
        "--widths",
        type=int,
        nargs="+",
        default=[25, 100, 400],
        help="hidden units for the width figures (default: 25 100 400)",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    X_np, y_np = load_digits()
    X, y = torch.from_numpy(X_np).to(device), torch.from_numpy(y_np).to(device)
    results = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "epochs": args.epochs,
        "repeats": args.repeats,
    }
    # Round robin, not one block each: this machine's speed drifts over minutes, and every
    # ratio below should compare timings taken side by side.
    contenders = {
        "ours_ms": (time_ours, args.epochs, str(device)),
        "loop_ms": (time_loop, X, y, HIDDEN, args.epochs),
        "sklearn_ms": (time_sklearn, args.epochs, X_np, y_np),
        "naive_ms": (time_naive, args.epochs, X.cpu(), y.cpu(), device),
        "floor_ms": (time_floor, args.epochs, X),
    }
    if device.type == "cuda":
        contenders["ours_graph_ms"] = (time_ours, args.epochs, str(device), True)
        contenders["loop_graph_ms"] = (time_loop, X, y, HIDDEN, args.epochs, True)
    times = {key: [] for key in contenders}
    for _ in range(args.repeats):
        for key, (fn, *fn_args) in contenders.items():
            times[key].append(fn(*fn_args))
    results.update({key: statistics.median(t) for key, t in times.items()})
    results["speedup_vs_sklearn"] = results["sklearn_ms"] / results["ours_ms"]
    results["ratio_to_floor"] = results["ours_ms"] / results["floor_ms"]
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        results["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        # The article's whole run, 1000 epochs, by fit's training clock: eager, and as a graph.
        for key, graph in (("run_1000_s", False), ("run_1000_graph_s", True)):
            results[key], results[f"{key[:-2]}_epochs"] = fit_seconds(1000, str(device), graph)

    scale_epochs = max(1, args.epochs // 10)
    results["rows_ms"] = {
        str(len(X) * k): median_of(
            args.repeats, time_loop, X.repeat(k, 1), y.repeat(k), HIDDEN, max(1, scale_epochs // k)
        )
        for k in args.copies
    }
    results["hidden_ms"] = {
        str(h): median_of(args.repeats, time_loop, X, y, h, scale_epochs) for h in args.widths
    }

    # Time to an accuracy: whole processes, taking turns.
    runs = {"recipe": [], "sklearn_best": []}
    for _ in range(args.repeats):
        runs["recipe"].append(process_ours(str(device), args.recipe_epochs, args.recipe_preset))
        runs["sklearn_best"].append(process_sklearn(args.recipe_epochs))
    for key, timed in runs.items():
        results[f"{key}_process_s"] = statistics.median(seconds for seconds, _ in timed)
        results[f"{key}_val_accuracy"] = timed[0][1]  # the same every repeat (seeded)
    results["import_torch_s"] = median_of(
        args.repeats, lambda: _run_python(["-c", "import torch"])[0]
    )

    print(
        f"device {results['device']} ({results['device_name']}), torch {results['torch']}, "
        f"{results['threads']} threads; medians of {args.repeats} x {args.epochs} epochs"
    )
    for key in contenders:
        print(f"  {key[:-3]:8} {results[key]:8.2f} ms/epoch")
    print(
        f"  sklearn / ours = {results['speedup_vs_sklearn']:.2f}x, "
        f"ours / floor = {results['ratio_to_floor']:.2f}x, "
        f"peak RSS {results['peak_rss_mib']:.0f} MiB"
    )
    for key in ("run_1000_s", "run_1000_graph_s"):
        if key in results:
            print(
                f"  the 1000-epoch seed run{' as a graph' if 'graph' in key else ''}: "
                f"{results[key]:.2f} s of training ({results[f'{key[:-2]}_epochs']} epochs)"
            )
    print("  rows:   " + ", ".join(f"{k}: {v:.1f} ms" for k, v in results["rows_ms"].items()))
    print("  hidden: " + ", ".join(f"{k}: {v:.2f} ms" for k, v in results["hidden_ms"].items()))
    print(f"  whole processes ({DEFAULT_PRESET} recipe vs sklearn_search.BEST), medians:")
    for key, label in (("recipe", "python train.py"), ("sklearn_best", "scikit-learn best")):
        print(
            f"    {label:18} {results[f'{key}_process_s']:7.2f} s, "
            f"val accuracy {results[f'{key}_val_accuracy']:.4f}"
        )
    print(f"    python -c 'import torch' {results['import_torch_s']:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
