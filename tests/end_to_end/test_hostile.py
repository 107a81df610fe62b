"""Hostile inputs: every entry point that reads a file, against every kind of bad file.

Two tables make the tests. CASES holds hostile files and the outcome each must get; ENTRY_POINTS
holds everything that reads such a file. Each case meets every entry point of its kind:

* DATA: an ex4-style .mat of digits (``X``, ``y``);
* WEIGHTS: ex4's ``Theta1``/``Theta2`` .mat;
* CHECKPOINT: a torch checkpoint.

The outcome is OK (a correct result, checked against what the case wrote) or a problem. Then the
entry point prints exactly one line ``error: <file>: <problem>`` on stderr and exits 2; it runs no
code from the file and leaves the folder as it found it (no run directory, no changed file).

CLI entry points run in-process here, as a process would run them (see ``run_entry`` in
conftest.py); ``test_as_real_processes`` checks the same contract on real processes for a few
cases. Adding an entry point is one line in ENTRY_POINTS, a case one line in CASES.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse
import torch

from digits_torch import MLP
from digits_torch.core.data import default_data_path
from digits_torch.core.data import load_digits as _load_shipped
from digits_torch.store.checkpoints import load_checkpoint, save_checkpoint
from digits_torch.store.runs import read_history, read_split

DATA, WEIGHTS, CHECKPOINT = "data", "weights", "checkpoint"
OK = "OK"
SUFFIX = {DATA: ".mat", WEIGHTS: ".mat", CHECKPOINT: ".pt"}

# ------------------------------------------------------------------------------ what cases write

_X, _Y = _load_shipped()
_KEEP = np.concatenate([np.flatnonzero(_Y == d)[:4] for d in range(10)])
X40 = _X[_KEEP].astype(np.float64)  # (40, 400): 4 shipped images of each digit
DIGITS40 = _Y[_KEEP]  # (40,) digits 0..9
Y40 = np.where(DIGITS40 == 0, 10, DIGITS40).astype(np.uint8).reshape(-1, 1)  # ex4's y
_rng = np.random.default_rng(7)
THETA1, THETA2 = _rng.normal(size=(25, 401)), _rng.normal(size=(10, 26))
X784 = _rng.random((40, 784))
X_UINT8 = np.round(X40 * 255).astype(np.uint8)
X_INT8 = np.round(X40 * 100).astype(np.int8)
_DIGIT_ROW = [(digit - 1) % 10 for digit in range(10)]  # Theta2's row k scores label k + 1
THETA_STATE = {  # the checkpoint of the network THETA1, THETA2 hold
    "architecture": MLP(400, (25,), 10, "sigmoid").architecture(),
    "model": {
        name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        for name, value in {
            "layers.0.weight": THETA1[:, 1:],
            "layers.0.bias": THETA1[:, 0],
            "layers.1.weight": THETA2[_DIGIT_ROW, 1:],
            "layers.1.bias": THETA2[_DIGIT_ROW, 0],
        }.items()
    },
}

GOOD = {DATA: {"X": X40, "y": Y40}, WEIGHTS: {"Theta1": THETA1, "Theta2": THETA2}}
# What a correct reader returns for the good arrays: DATA float32 pixels and digits 0..9.
EXPECTED = {DATA: (X40.astype(np.float32), DIGITS40), WEIGHTS: (THETA1, THETA2)}


@dataclass
class Context:
    """Where a case is built and an entry point runs.

    folder: the test's own temp folder; kind: the entry point's; run: a finished run (an entry
    point may replace it with a copy it changes); names: the files an error line may name.
    """

    folder: Path
    kind: str
    run: Path
    names: list[Path] = field(default_factory=list)


Builder = Callable[[Context], Path]  # writes the hostile file into ctx.folder


def mat(fmt: str = "5", compress: bool = False, **arrays) -> Builder:
    """A MAT file (v4: "4"; v6: "5"; v7: "5", compressed) of ``arrays`` or the good ones."""

    def build(ctx: Context) -> Path:
        path = ctx.folder / f"input{SUFFIX[ctx.kind]}"
        scipy.io.savemat(path, arrays or GOOD[ctx.kind], format=fmt, do_compression=compress)
        return path

    return build


def v73(**arrays) -> Builder:
    """MATLAB v7.3: HDF5 behind a 512-byte header, every array stored transposed."""

    def build(ctx: Context) -> Path:
        path = ctx.folder / "input.mat"
        with h5py.File(path, "w", userblock_size=512) as f:
            for name, value in (arrays or GOOD[ctx.kind]).items():
                f[name] = np.asarray(value).T
        with open(path, "r+b") as f:
            f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2026")
        return path

    return build


def raw(content: Callable[[Context], bytes], suffix: str | None = None) -> Builder:
    def build(ctx: Context) -> Path:
        path = ctx.folder / f"input{suffix or SUFFIX[ctx.kind]}"
        path.write_bytes(content(ctx))
        return path

    return build


def missing(ctx: Context) -> Path:
    return ctx.folder / f"absent{SUFFIX[ctx.kind]}"


def directory(ctx: Context) -> Path:
    path = ctx.folder / f"folder{SUFFIX[ctx.kind]}"
    path.mkdir()
    return path


def good_file(ctx: Context, kind: str | None = None) -> bytes:
    """The bytes of a well-formed file of ``kind`` (default: the entry point's kind), or "v7.3"
    for a v7.3 MAT file of the entry point's kind."""
    kind = kind or ctx.kind
    if kind == CHECKPOINT:
        return (ctx.run / "checkpoint.pt").read_bytes()
    if kind == "v7.3":  # of the entry point's kind
        return v73()(ctx).read_bytes()
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, GOOD[kind], do_compression=True)
    return buffer.getvalue()


def half_of_a_good_file(ctx: Context) -> bytes:
    whole = good_file(ctx)
    return whole[: len(whole) // 2]


def checkpoint(edit: Callable[[dict], object] = lambda state: state, legacy: bool = False):
    """A torch file of ``edit(state)``, state being a finished run's checkpoint.pt."""

    def build(ctx: Context) -> Path:
        path = ctx.folder / "input.pt"
        state = torch.load(ctx.run / "checkpoint.pt", weights_only=True)
        torch.save(edit(state), path, _use_new_zipfile_serialization=not legacy)
        return path

    return build


class Payload:
    """Unpickling this calls open(marker, "w"): the file appears only if the code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def carrying_code(where: str) -> Builder:
    """A pickle whose unpickling would create ``folder/pwned``: a torch file, or a bare pickle."""

    def build(ctx: Context) -> Path:
        path, payload = ctx.folder / "input.pt", Payload(ctx.folder / "pwned")
        if where == "pickle":
            path.write_bytes(pickle.dumps(payload, protocol=2))
        else:
            state = torch.load(ctx.run / "checkpoint.pt", weights_only=True)
            state["model"] = payload if where == "model" else state["model"]
            torch.save(payload if where == "file" else state, path)
        return path

    return build


def model_only(state: dict) -> dict:
    """What a run writes to best.pt."""
    return {k: state[k] for k in ("format", "epoch", "architecture", "model", "config")}


def architecture(**changes) -> Callable[[dict], dict]:
    """An edit for checkpoint(): the same weights under a changed architecture."""
    return lambda state: {**state, "architecture": {**state["architecture"], **changes}}


def without_architecture(state: dict, *names: str) -> dict:
    """An edit for checkpoint(): the architecture without ``names`` (MLP has defaults for them)."""
    kept = {k: v for k, v in state["architecture"].items() if k not in names}
    return {**state, "architecture": kept}


def integer_weights(state: dict) -> dict:
    """An edit for checkpoint(): the weights rounded to int64."""
    return {**state, "model": {k: v.round().long() for k, v in state["model"].items()}}


def other_model(input_size=400, hidden=(25,), classes=10, activation="relu", weights=None):
    """A checkpoint of another model: consistent, unless ``weights`` gives other shapes."""

    def edit(state: dict) -> dict:
        model = MLP(input_size, hidden, classes, activation)
        state["architecture"] = model.architecture()
        state["model"] = (weights or model).state_dict()
        return state

    return checkpoint(edit)


# ------------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """A hostile file and its outcome: OK or a regex of the problem; a dict maps an entry point's
    name (or its kind) to its outcome, "*" to all others. ``expected`` is what OK returns."""

    name: str
    kinds: tuple[str, ...]
    build: Builder
    expect: str | dict[str, str]
    expected: object = None

    def outcome(self, entry: EntryPoint) -> str:
        if isinstance(self.expect, str):
            return self.expect
        return self.expect.get(entry.name, self.expect.get(entry.kind, self.expect.get("*")))


ALL = (DATA, WEIGHTS, CHECKPOINT)
MATS = (DATA, WEIGHTS)
NOT_MAT = r"not a readable MAT file"
NOT_CKPT = r"not a readable checkpoint"
NOT_A_RUN = r"not a run directory \(no best\.pt\)"
ANY_KIND = {DATA: NOT_MAT, WEIGHTS: NOT_MAT, CHECKPOINT: NOT_CKPT}
RESUME, RESUME_BEST, RESUME_DATA = "--resume: checkpoint.pt", "--resume: best.pt", "--resume: data"
EVAL_DATA, EVAL_CKPT, EVAL_RUN = "evaluate --data", "evaluate CHECKPOINT", "evaluate RUN_DIR"
RESUMABLE = r"cannot resume from it: no optimizer, progress, rng, seconds"
REFUSED = r"refused: loading it would call [\w.]*open; checkpoints hold only data"


def ending_with(label) -> np.ndarray:
    """ex4's labels with the last one replaced (an int64 or float64 vector)."""
    return np.array([*Y40[:-1, 0].tolist(), label])


def data_case(name, expect, expected=None, fmt="5", **arrays) -> Case:
    """A DATA case: ``arrays`` override the good X and y (a None value drops the variable)."""
    arrays = {k: v for k, v in {**GOOD[DATA], **arrays}.items() if v is not None}
    return Case(name, (DATA,), mat(fmt, **arrays), expect, expected)


# fmt: off
CASES = [
    # --- any file: "*" is every entry point not named, DATA etc. every one of that kind ----------
    Case("missing", ALL, missing, {"*": "no such file or directory",
         RESUME: r"not a run directory to resume \(no checkpoint\.pt\)",
         EVAL_RUN: NOT_A_RUN, RESUME_BEST: OK}),
    Case("empty", ALL, raw(lambda ctx: b""), r"empty file"),
    Case("directory", ALL, directory, {"*": r"is a directory",
         "load_model": NOT_A_RUN, EVAL_CKPT: NOT_A_RUN}),
    Case("truncated", ALL, raw(half_of_a_good_file), ANY_KIND),
    Case("truncated v7.3 (HDF5)", MATS, raw(lambda ctx: good_file(ctx, "v7.3")[:3000]),
         r"not a readable MATLAB v7\.3 \(HDF5\) file"),
    Case("random bytes", ALL, raw(lambda ctx: np.random.default_rng(3).bytes(5000)), ANY_KIND),
    Case("text named .mat", MATS, raw(lambda ctx: b"X = [1 2 3]\n" * 50, ".mat"), NOT_MAT),
    Case("text named .pt", (CHECKPOINT,), raw(lambda ctx: b"weights\n" * 50, ".pt"), NOT_CKPT),
    # --- MAT formats: MATLAB and Octave write all of them ---------------------------------------
    Case("MATLAB v4", MATS, mat("4"), OK),
    Case("MATLAB v6 (uncompressed)", MATS, mat("5", compress=False), OK),
    Case("MATLAB v7 (compressed)", MATS, mat("5", compress=True), OK),
    Case("MATLAB v7.3 (HDF5)", MATS, v73(), OK),
    Case("a .mat given as checkpoint", (CHECKPOINT,), raw(lambda ctx: good_file(ctx, WEIGHTS),
         ".mat"), {"*": r"a MATLAB \.mat file, not a checkpoint", EVAL_CKPT: OK, "load_model": OK},
         THETA_STATE),  # evaluate and load_model take every file that holds a model: ex4's too
    Case("a checkpoint given as .mat", MATS, raw(lambda ctx: good_file(ctx, CHECKPOINT), ".mat"),
         NOT_MAT),
    # --- variables --------------------------------------------------------------------------------
    Case("X, y under other names", (DATA,), mat(X_train=X40, y_train=Y40),
         r"no variable 'X' \(found: X_train, y_train\)"),
    data_case("only X", r"no variable 'y' \(found: X\)", y=None),
    data_case("only y", r"no variable 'X' \(found: y\)", X=None),
    Case("Theta under other names", (WEIGHTS,), mat(W1=THETA1, W2=THETA2),
         r"no variable Theta1 or Theta2 \(found: W1, W2\)"),
    Case("only Theta1", (WEIGHTS,), mat(Theta1=THETA1), r"no variable Theta2 \(found: Theta1\)"),
    Case("Theta shapes disagree", (WEIGHTS,), mat(Theta1=THETA1, Theta2=THETA2[:, :20]),
         r"Theta2 has shape \(10, 20\)"),
    Case("Theta with NaN", (WEIGHTS,), mat(Theta1=np.where(THETA1 > 1, np.nan, THETA1),
         Theta2=THETA2), r"Theta1 contains NaN"),
    Case("Theta as text", (WEIGHTS,), mat(Theta1=np.array(["abc"] * 25), Theta2=THETA2),
         r"Theta1 must be a numeric matrix"),
    # --- labels -----------------------------------------------------------------------------------
    data_case("y a row vector", OK, y=Y40.T),
    data_case("y float", OK, y=Y40.astype(np.float64)),
    data_case("y float, not whole", r"not whole numbers", y=Y40 + 0.5),
    data_case("y strings", r"y must be numeric labels, got text",
              y=np.array([str(v) for v in Y40.ravel()])),
    data_case("y a cell array of strings", r"y must be numeric labels, got a cell array",
              y=np.array([[str(v)] for v in Y40.ravel()], dtype=object)),
    data_case("y one-hot", r"y must be a vector of labels, got shape \(40, 10\)",
              y=np.eye(10)[DIGITS40]),
    data_case("labels 0..9", OK, y=DIGITS40.reshape(-1, 1)),
    data_case("labels 1..10", OK, y=Y40),
    data_case("labels mixed 0 and 10", r"labels mix conventions", y=ending_with(0)),
    data_case("label 11", r"labels must be 1\.\.10 .* found \[11\]", y=ending_with(11)),
    data_case("label -1", r"found \[-1\]", y=ending_with(-1)),
    data_case("label 1e30", r"found \[1000000000000000019884624838656\]", y=ending_with(1e30)),
    data_case("row counts disagree", r"X has 40 rows but y has 39 labels", y=Y40[:39]),
    # --- pixels -----------------------------------------------------------------------------------
    data_case("X with NaN", r"NaN or infinite", X=np.where(X40 > 0.9, np.nan, X40)),
    data_case("X with Inf", r"NaN or infinite", X=np.where(X40 > 0.9, np.inf, X40)),
    data_case("X int8", OK, (X_INT8.astype(np.float32), DIGITS40), X=X_INT8),
    data_case("X uint8 (0..255)", OK, (X_UINT8 / np.float32(255), DIGITS40), X=X_UINT8),
    Case("X float16 (v7.3)", (DATA,), v73(X=X40.astype(np.float16), y=Y40), OK,
         (X40.astype(np.float16).astype(np.float32), DIGITS40)),
    data_case("X sparse", OK, X=scipy.sparse.csc_matrix(X40)),
    data_case("X not square (399 pixels)", r"399 pixels per row, which is not a square image",
              X=X40[:, :399]),
    data_case("X 28 x 28 (784 pixels)", {"*": OK,
              EVAL_DATA: r"images have 784 pixels but the model .* takes 400",
              RESUME_DATA: r"has 784 pixels per image, but the model in .* takes 400"},
              (X784.astype(np.float32), DIGITS40), X=X784),
    data_case("X 3-D (images not unrolled)", r"X must be a matrix \(examples x pixels\)",
              X=X40.reshape(40, 20, 20)),
    data_case("X complex", r"X must be a numeric matrix, got complex128", X=X40 + 1j),
    data_case("X a struct", r"X must be a numeric matrix, got a struct", X={"pixels": X40}),
    data_case("0 rows", r"X is empty", X=np.zeros((0, 400)), y=np.zeros((0, 1))),
    data_case("1 row", OK, (X40[:1].astype(np.float32), DIGITS40[:1]), X=X40[:1], y=Y40[:1]),
    # --- checkpoints ------------------------------------------------------------------------------
    Case("a run's checkpoint.pt", (CHECKPOINT,), checkpoint(), OK),
    Case("a run's best.pt (model only)", (CHECKPOINT,), checkpoint(model_only),
         {"*": OK, RESUME: RESUMABLE}),
    Case("legacy torch format", (CHECKPOINT,), checkpoint(legacy=True), OK),
    Case("pickle carrying code (torch file)", (CHECKPOINT,), carrying_code("file"), REFUSED),
    Case("pickle carrying code (bare pickle)", (CHECKPOINT,), carrying_code("pickle"), REFUSED),
    Case("code inside a checkpoint's model", (CHECKPOINT,), carrying_code("model"), REFUSED),
    Case("not a dict (a tensor)", (CHECKPOINT,), checkpoint(lambda state: torch.zeros(3)),
         r"not a digits-torch checkpoint"),
    Case("weights of another shape", (CHECKPOINT,), other_model(weights=MLP(400, (30,), 10)),
         r"weights do not fit the file's 400-25-10 architecture: layers\.0\.bias is \(30,\)"),
    Case("an architecture too large to build", (CHECKPOINT,),
         checkpoint(architecture(input_size=10**12)),
         r"weights do not fit the file's 1000000000000-25-10"),
    Case("an unknown activation", (CHECKPOINT,), checkpoint(architecture(activation="evil")),
         r"invalid architecture"),
    Case("an architecture without its activation", (CHECKPOINT,),
         checkpoint(lambda state: without_architecture(state, "activation")),
         r"its architecture lacks activation"),
    Case("integer weights", (CHECKPOINT,), checkpoint(integer_weights),
         r"weights must be floating point \(layers\.0\.weight is int64\)"),
    Case("another model: 784 inputs", (CHECKPOINT,), other_model(input_size=784), {"*": OK,
         EVAL_CKPT: r"images have 400 pixels but the model .* takes 784",
         EVAL_RUN: r"images have 400 pixels but the model .* takes 784",
         RESUME: r"has 400 pixels per image, but the model in .* takes 784",
         RESUME_BEST: r"holds another model than the run's checkpoint"}),
    Case("another model: 5 outputs", (CHECKPOINT,), other_model(classes=5), {"*": OK,
         EVAL_CKPT: r"the model has 5 outputs", EVAL_RUN: r"the model has 5 outputs",
         RESUME: r"its model .* is not the one its config builds",
         RESUME_BEST: r"holds another model than the run's checkpoint"}),
]
# fmt: on

# ------------------------------------------------------------------------------ the entry points


Prepare = Callable[[Path, Context], Callable[[], object]]


def api(target: str, **kwargs) -> Prepare:
    """A library function ``"module:function"`` called with the file."""

    def prepare(file: Path, ctx: Context):
        module, name = target.split(":")
        function = getattr(importlib.import_module(module), name)
        return lambda: function(file, **kwargs)

    return prepare


def cli(module: str, *argv: str) -> Prepare:
    """A CLI: ``module.main(argv)``; argv may hold {file}, {run} and {scratch}."""

    def prepare(file: Path, ctx: Context):
        args = [a.format(file=file, run=ctx.run, scratch=ctx.folder) for a in argv]
        ctx.names += [Path(a) for a in args if "/" in a]
        main = importlib.import_module(module).main
        return lambda: main(args)

    return prepare


def in_run(name: str, then: Prepare) -> Prepare:
    """Put the file at ``name`` in a copy of the finished run ({run} then means the copy)."""

    def prepare(file: Path, ctx: Context):
        ctx.names.append(Path(load_checkpoint(ctx.run / "checkpoint.pt")["config"]["data"]))
        ctx.run = _copy(ctx.run, ctx.folder / "run")
        (ctx.run / name).unlink()
        if file.exists():
            shutil.move(file, ctx.run / name)
        ctx.names += [ctx.run / name]
        return then(file, ctx)

    return prepare


def with_data(then: Prepare) -> Prepare:
    """A copy of the finished run whose saved config (checkpoint and config.json alike: a resume
    refuses a checkpoint its config.json disagrees with) now trains on the file."""

    def prepare(file: Path, ctx: Context):
        ctx.run = _copy(ctx.run, ctx.folder / "run")
        state = load_checkpoint(ctx.run / "checkpoint.pt")
        state["config"]["data"] = str(file)
        save_checkpoint(state, ctx.run / "checkpoint.pt")
        config = json.loads((ctx.run / "config.json").read_text())
        (ctx.run / "config.json").write_text(json.dumps({**config, "data": str(file)}))
        # as a run made before runs kept split.json: the file is read as a resume reads it, not
        # refused for differing from the data it recorded (tests/train/test_teacher_trust.py)
        (ctx.run / "split.json").unlink()
        ctx.names += [ctx.run / "checkpoint.pt"]
        return then(file, ctx)

    return prepare


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# What an OK result must be. ``expected`` is the case's: DATA (X, digits); WEIGHTS (Theta1,
# Theta2); CHECKPOINT the file's state dict, or None where there was no file.


def loaded_digits(value, expected, ctx: Context) -> None:
    X, y = value
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(X, expected[0], rtol=1e-6, atol=0)
    np.testing.assert_array_equal(y, expected[1])


def loaded_weights(model: MLP, expected, ctx: Context) -> None:
    theta1, theta2 = (torch.from_numpy(t).float() for t in expected)
    first, second = model.layers
    assert torch.equal(first.bias, theta1[:, 0]) and torch.equal(first.weight, theta1[:, 1:])
    for digit in range(10):  # Theta2's row k scores label k + 1; label 10 is the digit 0
        row = theta2[(digit - 1) % 10]
        assert torch.equal(second.bias[digit], row[0]) and torch.equal(
            second.weight[digit], row[1:]
        )


def loaded_model(model: MLP, expected: dict, ctx: Context) -> None:
    state = model.state_dict()
    assert state.keys() == expected["model"].keys()
    assert all(torch.equal(state[k], expected["model"][k]) for k in state)


def evaluated(value: dict, expected, ctx: Context) -> None:
    """evaluate's figures equal ones computed here from the same model and digits."""
    if isinstance(expected, dict):  # a checkpoint, scored on the shipped digits
        state, X, y = expected, _X, _Y
    else:  # digits, scored by the finished run's best model
        state, (X, y) = load_checkpoint(ctx.run), expected
    model = MLP(**state["architecture"])
    model.load_state_dict(state["model"])
    predictions = model.predict(torch.from_numpy(np.asarray(X, dtype=np.float32))).numpy()
    assert value["n"] == len(y)
    assert value["accuracy"] == pytest.approx((predictions == y).mean(), abs=1e-12)


def evaluated_in_run(value: dict, expected, ctx: Context) -> None:
    """evaluate RUN_DIR scores the run's own data: its validation digits, or all without any."""
    X, y = _load_shipped(expected["config"]["data"])
    val = read_split(ctx.run)[1]
    rows = val if len(val) else np.arange(len(y))
    assert value["split"] == ("val" if len(val) else "all")
    evaluated(value, (X[rows], y[rows]), ctx)  # scored by the run's best.pt: this checkpoint


def trained(result, expected, ctx: Context) -> None:
    """A complete run: every epoch logged once, both checkpoints load, the model fits the data."""
    epochs = [record["epoch"] for record in read_history(result.run_dir)]
    assert epochs == list(range(1, result.config.epochs + 1))
    assert load_checkpoint(result.run_dir / "checkpoint.pt")["epoch"] == result.config.epochs
    best = load_checkpoint(result.run_dir / "best.pt")
    if isinstance(expected, tuple):
        assert best["architecture"]["input_size"] == expected[0].shape[1]


def anything(value, expected, ctx: Context) -> None:
    """For entry points whose result this table does not judge (only that they succeed)."""


@dataclass(frozen=True)
class EntryPoint:
    name: str
    kind: str
    prepare: Prepare
    check: Callable[[object, object, Context], None] = anything


# Add an entry point here: the kind of file it reads, how to call it, how to judge an OK result.
# fmt: off
TRAIN = ("--logdir", "{scratch}/runs", "--epochs", "2", "--quiet", "--no-figures",
         "--device", "cpu")
MORE = ("--epochs", "4", "--quiet", "--device", "cpu")  # the finished run has 3 epochs
EVALUATE, TRAIN_PY = "digits_torch.inference.evaluate", "digits_torch.cli.train"
ENTRY_POINTS = [
    EntryPoint("load_digits", DATA, api("digits_torch.core.data:load_digits"), loaded_digits),
    EntryPoint("train --data", DATA, cli(TRAIN_PY, "--data", "{file}", *TRAIN), trained),
    EntryPoint(EVAL_DATA, DATA, cli(EVALUATE, "{run}", "--data", "{file}", "--device", "cpu"),
               evaluated),
    EntryPoint(RESUME_DATA, DATA, with_data(cli(TRAIN_PY, "--resume", "{run}", *MORE)), trained),
    EntryPoint(
        "load_weights", WEIGHTS, api("digits_torch.reference.coursera:load_weights"), loaded_weights
    ),
    EntryPoint(
        "load_model", CHECKPOINT, api("digits_torch:load_model"), loaded_model
    ),
    EntryPoint(EVAL_CKPT, CHECKPOINT, cli(EVALUATE, "{file}", "--device", "cpu"), evaluated),
    EntryPoint(EVAL_RUN, CHECKPOINT, in_run("best.pt", cli(EVALUATE, "{run}", "--device", "cpu")),
               evaluated_in_run),
    EntryPoint(RESUME, CHECKPOINT, in_run("checkpoint.pt", cli(TRAIN_PY, "--resume", "{run}",
               *MORE)), trained),
    EntryPoint(RESUME_BEST, CHECKPOINT, in_run("best.pt", cli(TRAIN_PY, "--resume", "{run}",
               *MORE)), trained),
]
# fmt: on

PAIRS = [
    pytest.param(case, entry, id=f"{entry.name} | {case.name}")
    for entry in ENTRY_POINTS
    for case in CASES
    if entry.kind in case.kinds
]


@pytest.mark.parametrize("case, entry", PAIRS)
def test_hostile_input(case: Case, entry: EntryPoint, tmp_path, trained_run, run_entry):
    ctx = Context(tmp_path, entry.kind, trained_run)
    file = case.build(ctx)
    ctx.names.append(file)
    expected = case.expected or EXPECTED.get(entry.kind)
    if entry.kind == CHECKPOINT and file.is_file() and case.expected is None:
        expected = torch.load(file, weights_only=True) if case.outcome(entry) == OK else None
    call = entry.prepare(file, ctx)
    before = snapshot(tmp_path)
    ran = run_entry(call)
    assert not list(tmp_path.rglob("pwned")), "code from the file ran"
    problem = case.outcome(entry)
    if problem == OK:
        assert ran.code == 0, ran.stderr
        entry.check(ran.value, expected, ctx)
    else:
        assert_one_error_line(ran.code, ran.stderr, problem, ctx.names)
        assert snapshot(tmp_path) == before, "an error left files behind or changed them"


def assert_one_error_line(code: int, stderr: str, problem: str, names: list[Path]) -> None:
    """Exit 2 and exactly one stderr line ``error: <file>: <problem>``, <file> one of names."""
    lines = stderr.splitlines()
    assert code == 2 and len(lines) == 1, stderr
    prefixes = {f"error: {name}: " for name in [*names, default_data_path()]}
    named = [p for p in prefixes if lines[0].startswith(p)]
    assert named, f"{lines[0]!r} names none of {sorted(map(str, names))}"
    assert re.search(problem, lines[0][len(max(named, key=len)) :]), lines[0]


def snapshot(folder: Path) -> dict[str, tuple]:
    return {
        str(p.relative_to(folder)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_every_case_meets_an_entry_point():
    kinds = {entry.kind for entry in ENTRY_POINTS}
    assert all(set(case.kinds) & kinds for case in CASES)
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))


def test_the_code_payload_is_live(tmp_path):
    """Without weights_only the payload runs: so the refusals above are real."""
    path = carrying_code("pickle")(Context(tmp_path, CHECKPOINT, Path()))
    with open(path, "rb") as f:
        pickle.load(f)  # on purpose: the payload only creates a file in a temp folder
    assert (tmp_path / "pwned").exists()


# A few pairs again, as real processes started the way a user starts them: the contract above
# (one line, exit 2, nothing left behind, no code run) holds for the process, not just for main.
REAL_PROCESSES = [
    ("train --data", "text named .mat", ["train.py", "--data", "{file}", "--logdir", "{runs}"]),
    (
        "evaluate CHECKPOINT",
        "pickle carrying code (torch file)",
        ["-m", "digits_torch", "evaluate", "{file}"],
    ),
    (RESUME, "truncated", ["train.py", "--resume", "{run}"]),
]


@pytest.mark.parametrize("entry_name, case_name, command", REAL_PROCESSES)
def test_as_real_processes(entry_name, case_name, command, tmp_path, trained_run):
    entry = next(e for e in ENTRY_POINTS if e.name == entry_name)
    case = next(c for c in CASES if c.name == case_name)
    ctx = Context(tmp_path, entry.kind, trained_run)
    file = case.build(ctx)
    ctx.names.append(file)
    entry.prepare(file, ctx)  # places the file where the entry point reads it
    argv = [a.format(file=file, run=ctx.run, runs=tmp_path / "runs") for a in command]
    before = snapshot(tmp_path)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, *argv], cwd=root, capture_output=True, text=True)
    assert not list(tmp_path.rglob("pwned")), "code from the file ran"
    assert_one_error_line(done.returncode, done.stderr, case.outcome(entry), ctx.names)
    assert snapshot(tmp_path) == before
