"""Bounds: every TrainConfig field is checked, with a one-line error, before anything is written."""

from __future__ import annotations

import dataclasses
import re
import shutil

import numpy as np
import pytest
import scipy.io
import torch

from digits_torch import TrainConfig, UserError, make_config
from digits_torch.cli import train as cli

# (flags, the problem the error line must state). --data and --logdir are set by the test.
BAD_FLAGS = [
    (["--epochs", "-1"], r"epochs must be >= 1"),
    (["--epochs", "0"], r"epochs must be >= 1"),
    (["--epochs", "ten"], r"argument --epochs: invalid int value: 'ten'"),
    (["--batch-size", "0"], r"batch size must be >= 1"),
    (["--batch-size", "-5"], r"batch size must be >= 1"),
    (["--l2", "-0.1"], r"l2 must be >= 0"),
    (["--l2", "nan"], r"l2 must be >= 0"),
    (["--val-fraction", "1"], r"val fraction must be in \[0, 1\)"),
    (["--val-fraction", "-0.1"], r"val fraction must be in \[0, 1\)"),
    (["--device", "tpu"], r"unknown device 'tpu' \(use auto, cpu, cuda or cuda:N\)"),
    (["--device", "cuda:x"], r"unknown device 'cuda:x'"),
    (["--preset", "nope"], r"unknown preset 'nope' \(choose from seed, coursera, "),
    (["--lr", "0"], r"lr must be positive"),
    (["--lr", "inf"], r"lr must be positive"),
    (["--momentum", "1"], r"momentum must be in \[0, 1\)"),
    (["--tol", "-0.5"], r"tol must be >= 0"),
    (["--patience", "-1"], r"patience must be >= 0"),
    (["--hidden", "25", "0"], r"hidden sizes must be >= 1"),
    (["--hidden"], r"argument --hidden: expected at least one argument"),
    (["--activation", "softplus"], r"activation must be one of sigmoid, relu, tanh, identity"),
    # a bad choice is echoed, with the nearest name (scikit-learn's logistic among them)
    (["--activation", "softplus"], r"\(logistic: sigmoid\), not 'softplus'$"),
    (["--activation", "logistc"], r", not 'logistc'; did you mean logistic\?$"),
    (["--optimizer", "adm"], r"optimizer must be one of .*, not 'adm'; did you mean adam\?$"),
    (
        ["--preset", "sklean"],
        r"unknown preset 'sklean' \(choose from .*\); did you mean sklearn\?$",
    ),
    (["--teacher-preset", "techer"], r"not 'techer'; did you mean teacher\?$"),
    (["--init", "zeros"], r"init must be one of coursera, glorot"),
    (["--loss", "mse"], r"loss must be one of softmax, coursera"),
    (["--optimizer", "rmsprop"], r"optimizer must be one of sgd, adam, lbfgs, fmincg"),
    (["--seed", "-1"], r"seed must be in \[0, 2\*\*64\)"),
    (["--name", "../../elsewhere"], r"name may hold letters, digits and \. _ - \+ = only"),
    (["--name", "n" * 201], r"only, at most 200 bytes \(it becomes part of a directory name"),
    (["--name", "é" * 101], r"only, at most 200 bytes"),
    (["--nesterov=yes"], r"argument --nesterov/--no-nesterov: ignored explicit argument"),
    (["--figures=no"], r"argument --figures/--no-figures: ignored explicit argument 'no'"),
    (["--quiet=no"], r"argument --quiet/--no-quiet: ignored explicit argument 'no'"),
    (["--schedule", "step"], r"schedule must be one of constant, cosine"),
    (["--label-smoothing", "1"], r"label smoothing must be in \[0, 1\)"),
    (["--aug-shift", "-1"], r"aug values must be >= 0"),
    (["--aug-rotate", "-5"], r"aug values must be >= 0"),
    (["--aug-scale", "1"], r"aug scale must be < 1"),
    (["--stop-on", "val_accuracy", "--val-fraction", "0"], r"needs a validation split"),
    (["--backprop", "numeric"], r"backprop must be one of explicit, autograd"),
    (["--image-every", "-1"], r"image every must be >= 0"),
    (["--bogus"], r"unrecognized arguments: --bogus"),
    (["--power-t", "-1"], r"power t must be >= 0"),
    (["--dtype", "float16"], r"dtype must be one of float32, float64"),
    (["--sklearn-exact", "--optimizer", "adam"], r"sklearn-exact mode trains with --optimizer sgd"),
    (["--cuda-graph", "--backprop", "autograd"], r"cuda graph needs --optimizer sgd --backprop"),
    (["--threads", "-1"], r"threads must be >= 0"),
    (["--threads", "two"], r"argument --threads: invalid int value: 'two'"),
    (["--threads", "2147483648"], r"threads must be >= 0 and <= 1024"),  # torch would overflow
    (["--cuda-graph=yes"], r"argument --cuda-graph/--no-cuda-graph: ignored explicit argument"),
    (["--checkpoint-every", "-1"], r"checkpoint every must be >= 0"),
    (["--checkpoint-every", "nan"], r"checkpoint every must be >= 0"),
    (["--checkpoint-every", "inf"], r"checkpoint every must be finite"),
    (["--rank-timeout", "0.5"], r"rank timeout must be >= 1 second"),
    (["--rank-timeout", "inf"], r"rank timeout must be >= 1 second and <= 604800"),
    (["--rank-timeout", "1e300"], r"rank timeout must be >= 1 second and <= 604800 \(a week\)"),
    # finite but absurd augmentation: every digit shifted out, or turned past a full turn
    (["--aug-shift", "1e300"], r"aug shift must be <= 20 pixels"),
    (["--aug-shift", "20.5"], r"aug shift must be <= 20 pixels"),
    (["--aug-rotate", "1e300"], r"aug rotate must be <= 180 degrees"),
    # non-finite values of every float field (nan fails every bound; inf the finite check)
    (["--aug-rotate", "nan"], r"aug values must be >= 0"),
    (["--aug-shift", "inf"], r"aug shift must be <= 20 pixels"),
    (["--aug-scale", "nan"], r"aug values must be >= 0"),
    (["--tol", "inf"], r"tol must be finite"),
    (["--power-t", "inf"], r"power t must be finite"),
    (["--l2", "inf"], r"l2 must be finite"),
    (["--lr", "nan"], r"lr must be positive"),
    (["--momentum", "nan"], r"momentum must be in \[0, 1\)"),
    (["--label-smoothing", "nan"], r"label smoothing must be in \[0, 1\)"),
    (["--val-fraction", "nan"], r"val fraction must be in \[0, 1\)"),
    # elastic distortions, distillation and dead-unit revival
    (["--aug-elastic", "-1", "2"], r"aug elastic is ALPHA SIGMA in pixels: alpha in \[0, 100\]"),
    (["--aug-elastic", "10", "0"], r"sigma in \(0, 20\] \(0 0: none\)"),
    (["--aug-elastic", "1e300", "3"], r"aug elastic is ALPHA SIGMA in pixels"),
    (["--aug-elastic", "nan", "3"], r"aug elastic is ALPHA SIGMA in pixels"),
    (["--aug-elastic", "10"], r"argument --aug-elastic: expected 2 arguments"),
    (["--preset", "sklearn", "--aug-elastic", "10", "3"], r"without label smoothing or augm"),
    (["--teacher", ""], r"teacher must name a run or a model file"),
    (["--teacher", "t.pt", "--loss", "coursera"], r"distilling from a teacher trains with --loss"),
    (["--teacher-preset", "distilled"], r"teacher preset must be a preset that trains without"),
    (["--teacher-preset", "nope"], r"teacher preset must be a preset .*\(seed, coursera, tuned"),
    (["--teacher-any-split=no"], r"argument --teacher-any-split/--no-teacher-any-split: ignored"),
    (["--distill-temperature", "0"], r"distill temperature must be >= 0\.01 and <= 100"),
    (["--distill-temperature", "1e-40"], r"distill temperature must be >= 0\.01 and <= 100"),
    (["--distill-temperature", "inf"], r"distill temperature must be >= 0\.01 and <= 100"),
    (["--distill-weight", "1.5"], r"distill weight must be in \[0, 1\]"),
    (["--distill-weight", "nan"], r"distill weight must be in \[0, 1\]"),
    (["--revive-dead-units", "--activation", "tanh"], r"--revive-dead-units revives relu units"),
    (["--revive-dead-units", "--optimizer", "lbfgs"], r"trained by --optimizer sgd or adam"),
    (["--preset", "sklearn", "--revive-dead-units"], r"sklearn-exact mode trains without a teach"),
    # the seed range of the mode in use
    (["--seed", str(2**64)], r"seed must be in \[0, 2\*\*64\)"),
    (["--preset", "sklearn", "--seed", str(2**32)], r"sklearn-exact mode seeds numpy's"),
    # sizes bounded by a memory estimate, which the error states
    (["--hidden", "1000000000"], r"hidden sizes 1000000000 need about 7\.2 TB of memory"),
    (["--hidden", "100000", "100000"], r"need about 160\.8 GB of memory to train \(estimate\)"),
    (["--hidden", *["5"] * 101], r"at most 100 hidden layers, got 101"),
]


@pytest.mark.parametrize("flags, problem", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag(flags, problem, small_digits, tmp_path, run_entry):
    argv = ["--data", str(small_digits), "--logdir", str(tmp_path / "runs"), *flags]
    ran = run_entry(lambda: cli.main(argv))
    lines = ran.stderr.splitlines()
    assert ran.code == 2 and len(lines) == 1, ran.stderr
    assert lines[0].startswith("error: ") and re.search(problem, lines[0]), lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "flags, problem",
    [
        (["--lr", "0.1"], r"a resumed run keeps its config; cannot change lr"),
        (["--epochs", "0"], r"epochs must be >= 1"),
        (["--device", "tpu"], r"unknown device 'tpu'"),
    ],
)
def test_bad_flag_with_resume(flags, problem, trained_run, tmp_path, run_entry):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir())
    ran = run_entry(lambda: cli.main(["--resume", str(run), *flags]))
    assert ran.code == 2 and len(ran.stderr.splitlines()) == 1, ran.stderr
    assert re.search(problem, ran.stderr), ran.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir()) == before


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"epochs": 2.5}, r"epochs must be an integer, got 2\.5"),
        ({"epochs": True}, r"epochs must be an integer, got True"),
        ({"lr": "0.1"}, r"lr must be a number, got '0\.1'"),
        ({"hidden": (25.0,)}, r"hidden must be a sequence of integers"),
        ({"hidden": 25}, r"hidden must be a sequence of integers"),
        ({"quiet": "yes"}, r"quiet must be true or false"),
        ({"data": 3}, r"data must be a string or None"),
        ({"name": "a/b"}, r"name may hold"),
        ({"aug_rotate": float("nan")}, r"aug values must be >= 0"),
        ({"checkpoint_every": float("inf")}, r"checkpoint every must be finite"),
        ({"hidden": (10**9,)}, r"need about 7\.2 TB of memory"),
        ({"preset": "sklearn", "seed": 2**32}, r"sklearn-exact mode seeds numpy's RandomState"),
        ({"threads": 2**31}, r"threads must be >= 0 and <= 1024"),
        ({"aug_shift": 1e300}, r"aug shift must be <= 20 pixels"),
        ({"aug_elastic": (10.0,)}, r"aug_elastic must be 2 numbers, got \(10\.0,\)"),
        ({"aug_elastic": "10 3"}, r"aug_elastic must be 2 numbers"),
        ({"teacher": 3}, r"teacher must be a string or None"),
        ({"preset": "distilled", "loss": "coursera"}, r"distilling from a teacher trains with"),
    ],
)
def test_bad_values_from_python(overrides, problem):
    with pytest.raises(UserError, match=problem):
        make_config(**overrides)


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"threads": 1e23}', r"threads must be an integer, got 1e\+23"),
        ('{"threads": 100000000000000000000000}', r"threads must be >= 0 and <= 1024"),
        ('{"aug_shift": 1e300}', r"aug shift must be <= 20 pixels"),
    ],
)
def test_absurd_values_in_a_config_file(text, problem, small_digits, tmp_path, run_entry):
    path = tmp_path / "config.json"
    path.write_text(text)
    argv = ["--config", str(path), "--data", str(small_digits), "--logdir", str(tmp_path / "runs")]
    ran = run_entry(lambda: cli.main(argv))
    (line,) = ran.stderr.splitlines()
    assert ran.code == 2 and line.startswith("error: ") and re.search(problem, line), line
    assert not (tmp_path / "runs").exists()


def test_numpy_integers_are_integers():
    config = make_config(epochs=np.int64(3), hidden=[np.int32(7)], lr=np.float32(0.5))
    assert config.epochs == 3 and config.hidden == (7,)


def test_every_field_has_a_bound_here():
    """A new TrainConfig field needs a case above (data and logdir: test_hostile, test_faults)."""
    covered = {flags[0].lstrip("-").split("=")[0].replace("-", "_") for flags, _ in BAD_FLAGS}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields - covered == {"data", "logdir"}


def test_a_batch_larger_than_the_dataset_is_the_whole_dataset(small_digits, tmp_path):
    common = [
        "--data",
        str(small_digits),
        "--epochs",
        "3",
        "--quiet",
        "--no-figures",
        "--device",
        "cpu",
    ]
    huge = cli.main([*common, "--batch-size", "100000", "--logdir", str(tmp_path / "a")])
    whole = cli.main([*common, "--batch-size", "40", "--logdir", str(tmp_path / "b")])
    assert huge.metrics["epochs"] == 3
    for a, b in zip(huge.model.parameters(), whole.model.parameters()):
        assert torch.equal(a, b)


def test_a_validation_share_that_leaves_nothing_to_train_on(tmp_path, run_entry, digits):
    X, y = digits
    path = tmp_path / "one.mat"
    scipy.io.savemat(path, {"X": X[:1].astype(np.float64), "y": np.array([[10]])})
    argv = ["--data", str(path), "--val-fraction", "0.9", "--logdir", str(tmp_path / "runs")]
    ran = run_entry(lambda: cli.main(argv))
    assert ran.code == 2
    assert ran.stderr == f"error: {path}: val fraction 0.9 holds out every example; lower it\n"
    assert not (tmp_path / "runs").exists()
