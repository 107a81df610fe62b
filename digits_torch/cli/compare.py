"""``python -m digits_torch compare``: the article's MLPClassifier beside our two versions of it.

    python -m digits_torch compare [--data FILE.mat] [--activations relu,logistic] [--device D]
                                   [--epochs N] [--heldout F] [--threads N] [--logdir DIR]
                                   [--json OUT]

For each activation it trains three systems on the same data:

* ``sklearn``: scikit-learn's ``MLPClassifier(hidden_layer_sizes=(25,), solver="sgd",
  random_state=0, max_iter=1000, alpha=1e-4, tol=1e-9)`` on the file's X in float64 and the
  file's own labels, as the article's script does;
* ``sklearn-exact``: ``--preset sklearn``, the same algorithm step for step in PyTorch, float64;
* ``seed``: ``--preset seed``, the same hyperparameters with torch's own initialisation,
  shuffling and SGD, in float32: the fast path.

Each is fit twice: on all the data (training accuracy, epochs, seconds), and on a stratified
share of it (``--heldout``, default 20 % held out) to score the rows it never saw. The table goes
to stdout; ``<logdir>/<timestamp>-compare/`` holds results.json and one TensorBoard run per system
and activation (``sklearn/<activation>`` from ``loss_curve_``; our runs are full run directories),
so the loss curves overlay; the held-out fits sit under ``heldout/``. The logdir is
``comparisons/`` (:data:`LOGDIR`), not ``runs/``: a comparison's twelve runs are its own, and
``tensorboard --logdir runs`` lists the user's runs alone.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
from tqdm.auto import tqdm

from ..config.bounds import MAX_THREADS
from ..config.config import make_config
from ..core.data import default_data_path, load_digits, stratified_split
from ..core.model import MLP
from ..errors import ArgumentParser, UserError, exit_on_error, print_stdout, program_name, writing
from ..reference import sklearn_exact
from ..runtime.devices import resolve_device
from ..store.events import EventFile
from ..store.files import output_path, write_json
from ..store.runs import new_run_dir
from ..train.training import fit

__all__ = ["ARTICLE", "LOGDIR", "SYSTEMS", "compare", "format_table"]

# The article's script: MLPClassifier(**ARTICLE, activation=...).fit(X, y).
ARTICLE = {
    "hidden_layer_sizes": (25,),
    "solver": "sgd",
    "random_state": 0,
    "max_iter": 1000,
    "alpha": 1e-4,
    "tol": 1e-9,
}
SYSTEMS = ("sklearn", "sklearn-exact", "seed")
LOGDIR = "comparisons"  # beside runs/, not in it
PRESET = {"sklearn-exact": "sklearn", "seed": "seed"}  # our systems -> their presets
SKLEARN_ACTIVATIONS = {"relu": "relu", "logistic": "logistic", "sigmoid": "logistic"}
HELDOUT_SEED = 0


def compare(
    data: str | Path | None = None,
    activations: tuple[str, ...] = ("relu", "logistic"),
    device: str = "auto",
    epochs: int = ARTICLE["max_iter"],
    heldout: float = 0.2,
    logdir: str | Path = LOGDIR,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[list[dict], Path]:
    """Train every system with every activation; see the module docstring.

    Args:
        data: ex4-style .mat (``None``: the shipped digits).
        activations: scikit-learn's names, ``relu`` and/or ``logistic``.
        device: for our two systems (scikit-learn runs on the CPU).
        epochs: the most epochs (scikit-learn's ``max_iter``); fewer for a quick look.
        heldout: share of each digit held out for the held-out accuracy.
        logdir: where the comparison's directory is created.
        threads: CPU threads for both torch and scikit-learn's BLAS (``None``: each library's
            own default); one thread each keeps the libraries fair on a shared machine.
        progress: a progress bar on stderr, one step per system and activation (shown only
            when stderr is a terminal).

    Returns:
        (one record per system and activation, the comparison's directory, whose results.json
        holds ``{"settings": these arguments, "records": the records}``). A record holds
        ``system``, ``activation``, ``train_accuracy``, ``heldout_accuracy``, ``epochs``,
        ``seconds`` (wall time of the fit on all the data), ``ms_per_epoch``, ``speedup``
        (scikit-learn's ms per epoch over this system's), ``train_loss`` (the last epoch's
        loss), ``device``; sklearn-exact's also ``max_weight_difference`` and
        ``max_loss_difference`` from scikit-learn's fit.
    """
    MLPClassifier = _import_sklearn()
    _check_settings(activations, heldout, epochs, threads)
    settings = {
        "data": None if data is None else str(data),
        "activations": list(activations),
        "device": device,
        "epochs": epochs,
        "heldout": heldout,
        "threads": threads,
    }
    resolve_device(device)  # a missing device fails now, not after scikit-learn's fits
    # The article feeds scikit-learn the file as it is: float64 pixels and the file's own labels.
    X, labels = load_digits(data, dtype=np.float64, stored_labels=True)
    fit_rows, heldout_rows = stratified_split(labels % 10, heldout, HELDOUT_SEED)
    _check_split(labels % 10, fit_rows, heldout_rows, heldout, data)
    out = new_run_dir(logdir, "compare")
    (out / "heldout").mkdir()
    # Our systems read files: the held-out fits train on this one (the file's values and labels).
    heldout_file = out / "heldout" / "train.mat"
    with writing(heldout_file):
        train = {"X": X[fit_rows], "y": labels[fit_rows]}
        scipy.io.savemat(heldout_file, train, do_compression=True)
    split = _Split(data, X, labels, fit_rows, heldout_rows, heldout_file)

    article = {**ARTICLE, "max_iter": epochs}
    records = []
    bar = tqdm(
        total=len(activations) * len(SYSTEMS),
        desc="compare",
        unit="fit",
        disable=None if progress else True,  # None: off where stderr is not a terminal
        leave=False,
    )
    with _threads(threads), bar:
        for name in activations:
            params = {**article, "activation": SKLEARN_ACTIVATIONS[name]}
            records += _one_activation(MLPClassifier, params, device, split, out, bar)
    write_json(out / "results.json", {"settings": settings, "records": records})
    return records, out


def _check_settings(
    activations: tuple[str, ...], heldout: float, epochs: int, threads: int | None
) -> None:
    """A :class:`UserError` for the first setting :func:`compare` cannot take."""
    unknown = [a for a in activations if a not in SKLEARN_ACTIVATIONS]
    if unknown or not activations:
        raise UserError(f"activations must be among relu, logistic; got {', '.join(unknown)}")
    if not 0 < heldout < 1:
        raise UserError(f"--heldout must be in (0, 1), got {heldout}")
    if epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise UserError(f"--threads must be >= 1 and <= {MAX_THREADS}, got {threads}")


def _one_activation(MLPClassifier, params: dict, device: str, split, out: Path, bar) -> list:
    """Every system with one activation's ``params``: scikit-learn first, then ours, each
    record with its ms per epoch and its speed-up over scikit-learn's."""
    name = params["activation"]
    bar.set_postfix_str(f"{name}: sklearn")
    reference, clf = _run_sklearn(MLPClassifier, params, split, out)
    bar.update(1)
    group = [reference]
    for system in SYSTEMS[1:]:
        bar.set_postfix_str(f"{name}: {system}")
        group.append(_run_ours(system, params, device, split, out, clf))
        bar.update(1)
    for record in group:  # each against this activation's scikit-learn run
        record["ms_per_epoch"] = 1000 * record["seconds"] / record["epochs"]
        record["speedup"] = reference["ms_per_epoch"] / record["ms_per_epoch"]
    return group


@dataclass(frozen=True)
class _Split:
    """The data every system sees: all of it, and the fit / held-out rows of the second fit."""

    data: str | Path | None  # the file our systems read (None: the shipped digits)
    X: np.ndarray  # (m, n) float64, the file's values
    labels: np.ndarray  # (m,) the file's own labels (Coursera's 1..10, or 0..9)
    fit_rows: np.ndarray
    heldout_rows: np.ndarray
    heldout_file: Path  # X[fit_rows] and labels[fit_rows], for our systems' held-out fits

    @property
    def digits(self) -> np.ndarray:
        return self.labels % 10  # Coursera's label 10 is the digit 0


def _check_split(digits, fit_rows, heldout_rows, heldout: float, data) -> None:
    """Every digit in both parts, or a UserError now, before anything is trained or written.

    sklearn-exact needs all ten digits (MLPClassifier sizes its output layer by the classes it
    sees), and the held-out accuracy needs rows to score.
    """
    path = default_data_path() if data is None else data
    missing = sorted(set(range(10)) - set(digits.tolist()))
    if missing:
        raise UserError(f"the comparison needs every digit 0..9; there is no {missing}", path)
    for rows, part in ((fit_rows, "fitting"), (heldout_rows, "held out")):
        absent = sorted(set(range(10)) - set(digits[rows].tolist()))
        if absent:
            raise UserError(
                f"too few examples of digit(s) {absent} for --heldout {heldout}: none is "
                f"{part}; every digit needs examples on both sides",
                path,
            )


def _run_sklearn(MLPClassifier, params: dict, split: _Split, out: Path) -> tuple[dict, object]:
    """The article's MLPClassifier: fit on all rows (timed), then on the fit rows only."""
    X, labels = split.X, split.labels
    clf, seconds = _fit_sklearn(MLPClassifier(**params), X, labels)
    held = _fit_sklearn(MLPClassifier(**params), X[split.fit_rows], labels[split.fit_rows])[0]
    _log_sklearn(out / "sklearn" / params["activation"], clf)
    _log_sklearn(out / "heldout" / "sklearn" / params["activation"], held)
    record = {
        "system": "sklearn",
        "activation": params["activation"],
        "train_accuracy": float(clf.score(X, labels)),
        "heldout_accuracy": float(held.score(X[split.heldout_rows], labels[split.heldout_rows])),
        "epochs": int(clf.n_iter_),
        "seconds": seconds,
        "train_loss": float(clf.loss_curve_[-1]),
        "device": "cpu",
    }
    return record, clf


def _run_ours(system: str, params: dict, device: str, split: _Split, out: Path, clf) -> dict:
    """One of our presets with the article's hyperparameters, fit as _run_sklearn fits."""
    common = {  # the article's hyperparameters, field by field: only the preset's mechanics differ
        **sklearn_exact.config_fields(params),
        "device": device,
        "name": params["activation"],
        "quiet": True,
        "figures": False,  # a comparison is its table and curves; a fit's seconds draw nothing
    }

    def fit_on(data: str | Path | None, logdir: Path):
        return fit(make_config(PRESET[system], data=data, logdir=str(logdir), **common))

    start = time.perf_counter()
    result = fit_on(split.data, out / system)
    seconds = time.perf_counter() - start
    held = fit_on(str(split.heldout_file), out / "heldout" / system)
    rows = split.heldout_rows
    record = {
        "system": system,
        "activation": params["activation"],
        "train_accuracy": _accuracy(result.model, split.X, split.digits),
        "heldout_accuracy": _accuracy(held.model, split.X[rows], split.digits[rows]),
        "epochs": result.metrics["epochs"],
        "seconds": seconds,
        "train_loss": result.history[-1]["train_loss"],
        "device": str(next(result.model.parameters()).device),
        "run_dir": str(result.run_dir),
    }
    if system == "sklearn-exact":  # how far from scikit-learn's own fit it ended
        record.update(_differences(result.model, result.history, clf, split.labels))
    return record


def format_table(records: list[dict]) -> str:
    """The comparison as a plain-text table, one row per system and activation."""
    header = (
        f"{'activation':<10} {'system':<13} {'train acc':>9} {'held-out acc':>12} "
        f"{'epochs':>6} {'fit s':>7} {'ms/epoch':>8} {'speed-up':>8}"
    )
    rows = [header, "-" * len(header)]
    for r in records:
        rows.append(
            f"{r['activation']:<10} {r['system']:<13} {r['train_accuracy']:>9.4f} "
            f"{r['heldout_accuracy']:>12.4f} {r['epochs']:>6} {r['seconds']:>7.1f} "
            f"{r['ms_per_epoch']:>8.2f} {r['speedup']:>7.2f}x"
        )
    for r in records:
        if "max_weight_difference" in r:
            rows.append(
                f"sklearn-exact vs sklearn, {r['activation']}: largest weight difference "
                f"{r['max_weight_difference']:.1e}, largest loss-curve difference "
                f"{r['max_loss_difference']:.1e}"
            )
    return "\n".join(rows)


# ----------------------------------------------------------------------------- helpers


def _import_sklearn():
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        raise UserError("the comparison needs scikit-learn: pip install scikit-learn") from None
    return MLPClassifier


def _fit_sklearn(clf, X: np.ndarray, labels: np.ndarray):
    """Fit the MLPClassifier ``clf`` on (X, labels); returns (clf, seconds)."""
    from sklearn.exceptions import ConvergenceWarning

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: expected here
        clf.fit(X, labels)
    return clf, time.perf_counter() - start


def _log_sklearn(run_dir: Path, clf) -> None:
    """scikit-learn's loss curve as a TensorBoard run, under the tag our runs use (written
    through the package's error path: a full disk is one error line)."""
    with writing(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
    events = EventFile(run_dir)
    try:
        for epoch, loss in enumerate(clf.loss_curve_, start=1):
            events.add_scalar("loss/train", loss, epoch)
    finally:
        events.close()


def _accuracy(model: MLP, X: np.ndarray, digits: np.ndarray) -> float:
    """Fraction of rows whose predicted digit is right, counted exactly (the model reads X in
    its own dtype, on its device)."""
    return int((model.predict(X) == digits).sum()) / len(digits)


def _differences(model: MLP, history: list[dict], clf, labels: np.ndarray) -> dict:
    """How far our sklearn-exact fit ended from scikit-learn's: weights and loss curves."""
    units = sklearn_exact.unit_digits(labels)  # scikit-learn's output unit j is digit units[j]
    last = len(model.layers) - 1
    weight_diffs = []
    for i, (layer, coef, intercept) in enumerate(zip(model.layers, clf.coefs_, clf.intercepts_)):
        rows = units if i == last else slice(None)
        weight = layer.weight.detach().cpu().double().numpy()[rows]
        bias = layer.bias.detach().cpu().double().numpy()[rows]
        weight_diffs += [np.abs(weight - coef.T).max(), np.abs(bias - intercept).max()]
    ours = np.array([h["train_loss"] for h in history])
    theirs = np.array(clf.loss_curve_)
    n = min(len(ours), len(theirs))
    return {
        "max_weight_difference": float(max(weight_diffs)),
        "max_loss_difference": float(np.abs(ours[:n] - theirs[:n]).max()),
    }


@contextlib.contextmanager
def _threads(n: int | None):
    """Cap torch's and numpy's BLAS threads at n while the comparison runs (None: no cap)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # comes with scikit-learn

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


@exit_on_error
def main(argv: list[str] | None = None) -> list[dict]:
    parser = ArgumentParser(
        prog=program_name("digits-compare"),
        description="The article's scikit-learn MLPClassifier beside our sklearn-exact mode "
        "and our seed preset: accuracy, held-out accuracy, epochs and speed.",
    )
    parser.add_argument("--data", help="ex4-style .mat to use (default: the shipped digits)")
    parser.add_argument(
        "--activations",
        default="relu,logistic",
        help="comma-separated: relu, logistic (default: relu,logistic)",
    )
    parser.add_argument(
        "--device", default="auto", help="for our systems: auto, cpu, cuda:N (default: auto)"
    )
    parser.add_argument(
        "--epochs", type=int, default=ARTICLE["max_iter"], help="most epochs (default: 1000)"
    )
    parser.add_argument(
        "--heldout", type=float, default=0.2, help="share of each digit held out (default: 0.2)"
    )
    parser.add_argument(
        "--logdir",
        default=LOGDIR,
        help=f"where the comparison's folder goes (default: {LOGDIR}; not runs/, where "
        "train.py's runs go)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for both torch and scikit-learn's BLAS (default: each library's own)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the records to this JSON file")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (default: a bar on a terminal)"
    )
    args = parser.parse_args(argv)
    activations = tuple(a.strip() for a in args.activations.split(",") if a.strip())
    json_out = output_path(args.json) if args.json else None  # refused before the work, not after
    records, out = compare(
        args.data,
        activations,
        args.device,
        args.epochs,
        args.heldout,
        args.logdir,
        args.threads,
        progress=not args.quiet,
    )
    print_stdout(format_table(records))
    if json_out is not None:  # write_json reports a failed write as a UserError itself
        write_json(json_out, json.loads((out / "results.json").read_text()))
    print_stdout(f"comparison: {out}\n  tensorboard --logdir {out}")
    return records
