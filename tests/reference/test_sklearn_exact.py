"""The sklearn-exact mode against scikit-learn itself, and the pieces it is built from."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import numpy as np
import pytest
import scipy.io
import torch

from digits_torch import (
    TrainConfig,
    UserError,
    fit,
    load_digits,
    load_model,
    make_config,
    resume,
)
from digits_torch.cli.compare import main as compare_main
from digits_torch.cli.train import main as train_main
from digits_torch.core.data import stratified_split
from digits_torch.core.model import MLP
from digits_torch.inference.evaluate import evaluate
from digits_torch.reference.sklearn_exact import (
    SKLEARN_FIELDS,
    RandomStream,
    SklearnSGD,
    config_fields,
    log_loss,
    output_digits,
)
from digits_torch.store.checkpoints import load_checkpoint

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.utils import shuffle  # noqa: E402

TOLERANCE = 1e-8


@pytest.fixture(scope="session")
def small_file(tmp_path_factory):
    """50 of each digit from the shipped file, as the file stores them (float64 X, labels 1..10).

    Returns (path, X, labels): the labels are Coursera's, so scikit-learn's output units are
    the digits 1..9, 0 while ours are 0..9, and the mapping between them is under test too.
    """
    X, labels = load_digits(dtype=np.float64, stored_labels=True)
    assert set(np.unique(labels)) == set(range(1, 11))  # the shipped file uses 10 for the zeros
    _, rows = stratified_split(labels % 10, 0.1, seed=0)
    path = tmp_path_factory.mktemp("data") / "small.mat"
    scipy.io.savemat(path, {"X": X[rows], "y": labels[rows]})
    return path, X[rows], labels[rows]


def fit_sklearn(X, labels, **params) -> MLPClassifier:
    clf = MLPClassifier(hidden_layer_sizes=(25,), solver="sgd", random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, labels)


def sklearn_layout(model: MLP, path) -> list[np.ndarray]:
    """Our weights and biases in scikit-learn's layout: coefs_ (in, out), units in its order."""
    units = output_digits(path)
    arrays = []
    for i, layer in enumerate(model.layers):
        rows = units if i == len(model.layers) - 1 else slice(None)
        arrays += [layer.weight.detach().numpy()[rows].T, layer.bias.detach().numpy()[rows]]
    return arrays


# (tol, n_iter_no_change, learning_rate_init, max_iter): with "stops", every schedule's stopping
# path runs (a stall stops constant and invscaling after 3 epochs; adaptive divides lr by 5 at
# each stall until lr <= 1e-6 stops it at epoch 13 of 15). "learns" runs to max_iter at a large
# lr, so the weights move far from their start and any drift would show.
STOPS = (0.1, 1, 0.001, 15)
LEARNS = (1e-4, 10, 0.05, 10)
CASES = [
    pytest.param(
        activation,
        schedule,
        early_stopping,
        STOPS,
        id=f"{activation}-{schedule}" + ("-early_stopping" if early_stopping else "") + "-stops",
    )
    for activation in ("relu", "logistic")
    for schedule in ("constant", "invscaling", "adaptive")
    for early_stopping in (False, True)
] + [
    pytest.param(activation, "constant", False, LEARNS, id=f"{activation}-constant-learns")
    for activation in ("relu", "logistic")
]


@pytest.mark.parametrize("activation, schedule, early_stopping, setting", CASES)
def test_matches_mlpclassifier(small_file, tmp_path, activation, schedule, early_stopping, setting):
    path, X, labels = small_file
    tol, patience, lr, epochs = setting
    params = {
        "activation": activation,  # scikit-learn's name, "logistic", is accepted as ours too
        "learning_rate": schedule,
        "learning_rate_init": lr,
        "max_iter": epochs,
        "tol": tol,
        "n_iter_no_change": patience,
        "early_stopping": early_stopping,
        "validation_fraction": 0.2,
    }
    clf = fit_sklearn(X, labels, **params)
    config = make_config(
        "sklearn",
        **config_fields(params),
        data=str(path),
        device="cpu",
        logdir=str(tmp_path),
        quiet=True,
        figures=False,
    )
    assert config.val_fraction == (0.2 if early_stopping else 0.0)
    assert config.stop_on == ("val_accuracy" if early_stopping else "train_loss")
    ours = fit(config)
    assert ours.metrics["epochs"] == clf.n_iter_
    loss_curve = [record["train_loss"] for record in ours.history]
    np.testing.assert_allclose(loss_curve, clf.loss_curve_, rtol=0, atol=TOLERANCE)
    expected = [a for pair in zip(clf.coefs_, clf.intercepts_) for a in pair]
    for got, want in zip(sklearn_layout(ours.model, path), expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
    # The schedule acted as scikit-learn's did: the same lr after the last epoch.
    final = load_checkpoint(ours.run_dir / "checkpoint.pt")["optimizer"]["param_groups"][0]
    assert final["lr"] == clf._optimizer.learning_rate
    if schedule != "constant":
        assert final["lr"] < lr
    if early_stopping:
        assert ours.history[-1]["val_accuracy"] == pytest.approx(clf.validation_scores_[-1])


# ------------------------------------------------------------------------ the pieces


def test_config_fields_name_our_fields():
    assert set(SKLEARN_FIELDS.values()) <= {f.name for f in dataclasses.fields(TrainConfig)}
    assert config_fields({"batch_size": "auto", "validation_fraction": 0.1}) == {"batch_size": 200}
    assert config_fields({"early_stopping": True, "validation_fraction": 0.1}) == {
        "stop_on": "val_accuracy",
        "val_fraction": 0.1,
    }
    with pytest.raises(ValueError, match="shuffle"):
        config_fields({"shuffle": False})


def test_init_draws_like_mlpclassifier():
    """Per layer the (fan_in, fan_out) weights, then the biases; Glorot factor 2 for logistic."""
    for activation, factor in (("relu", 6.0), ("sigmoid", 2.0)):
        model = MLP(activation=activation).double()
        RandomStream(3).init_(model)
        reference = np.random.RandomState(3)
        for layer in model.layers:
            fan_out, fan_in = layer.weight.shape
            bound = np.sqrt(factor / (fan_in + fan_out))
            weight = reference.uniform(-bound, bound, (fan_in, fan_out))
            np.testing.assert_array_equal(layer.weight.detach().numpy(), weight.T)
            bias = reference.uniform(-bound, bound, fan_out)
            np.testing.assert_array_equal(layer.bias.detach().numpy(), bias)


def test_output_units_follow_the_stored_labels(small_file, write_mat):
    path, X, labels = small_file
    np.testing.assert_array_equal(output_digits(path), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0])
    plain = write_mat("plain.mat", X=X, y=labels % 10)
    np.testing.assert_array_equal(output_digits(plain), np.arange(10))


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.33])
def test_split_is_train_test_split(fraction):
    """MLPClassifier splits ten classes without stratifying; the stream's state follows it."""
    stream = RandomStream(5)
    reference = np.random.RandomState(5)
    train, val = stream.split(500, fraction)
    want_train, want_val = train_test_split(
        np.arange(500), test_size=fraction, random_state=reference
    )
    np.testing.assert_array_equal(train, want_train)
    np.testing.assert_array_equal(val, want_val)
    assert stream.random_state.randint(1 << 30) == reference.randint(1 << 30)


def test_each_epoch_shuffles_the_previous_order():
    stream = RandomStream(7)
    reference, order = np.random.RandomState(7), np.arange(12)
    for _ in range(4):
        order = shuffle(order, random_state=reference)
        np.testing.assert_array_equal(stream.order(12).numpy(), order)


def test_stream_state_round_trips():
    stream = RandomStream(1)
    stream.order(9)
    copy = RandomStream(99)
    copy.set_state(stream.get_state())
    for _ in range(3):
        assert torch.equal(copy.order(9), stream.order(9))


def test_log_loss_clips_the_value_not_the_gradient():
    logits = torch.tensor([[0.0, 800.0, 0.0], [2.0, 1.0, 0.5]], dtype=torch.float64)
    logits.requires_grad_(True)
    y = torch.tensor([0, 0])  # the first row's true class has probability exp(-800): 0.0
    loss = log_loss(logits, y)
    eps = torch.finfo(torch.float64).eps
    p = torch.softmax(logits.detach(), dim=1)
    assert p[0, 0] == 0  # unclipped, the loss would be infinite
    expected = -(np.log(eps) + torch.log(p[1, 0]).item()) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    want = (p - torch.nn.functional.one_hot(y, 3)) / 2  # (y_prob - y) / batch, unclipped
    torch.testing.assert_close(logits.grad, want, rtol=0, atol=1e-15)


def test_momentum_is_in_parameter_units():
    """Same as torch.optim.SGD while lr is constant; when lr changes, the velocity keeps the old
    lr's steps (scikit-learn), where torch's buffer of gradients takes the new lr at once."""

    def run(optimizer_class, lrs):
        p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
        optimizer = optimizer_class([p], lr=lrs[0], momentum=0.9, nesterov=True)
        for lr in lrs:
            optimizer.param_groups[0]["lr"] = lr
            optimizer.zero_grad()
            (p**2).sum().backward()
            optimizer.step()
        return p.detach()

    constant = [0.1] * 4
    torch.testing.assert_close(run(SklearnSGD, constant), run(torch.optim.SGD, constant))
    changing = [0.1, 0.1, 0.02, 0.02]
    assert not torch.allclose(run(SklearnSGD, changing), run(torch.optim.SGD, changing))


# ---------------------------------------------------------------- config, CLI, resume, compare


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optimizer": "adam"}, "sklearn-exact mode trains with"),
        ({"val_fraction": 0.1}, "only to stop on val_accuracy"),
        ({"stop_on": "val_accuracy"}, "needs a validation split"),
        ({"dtype": "float16"}, "dtype"),
        ({"schedule": "step"}, "schedule must be one of"),
        ({"power_t": -1.0}, "power t"),
    ],
)
def test_sklearn_preset_validates(overrides, message):
    with pytest.raises(UserError, match=message):
        make_config("sklearn", **overrides)


def test_sklearn_exact_needs_every_digit(small_file, write_mat, tmp_path):
    _, X, labels = small_file
    nines = write_mat("no_zeros.mat", X=X[labels != 10], y=labels[labels != 10])
    with pytest.raises(UserError, match="every digit"):
        fit(make_config("sklearn", data=str(nines), device="cpu", logdir=str(tmp_path)))


def test_schedules_and_float64_apply_to_every_preset(tmp_path):
    config = make_config(
        "seed",
        dtype="float64",
        schedule="invscaling",
        epochs=2,
        device="cpu",
        logdir=str(tmp_path),
        quiet=True,
        figures=False,
    )
    result = fit(config)
    assert next(result.model.parameters()).dtype == torch.float64
    m = len(load_digits()[1])
    assert result.history[1]["lr"] == pytest.approx(config.lr / (m + 1) ** config.power_t)
    assert next(load_model(result.run_dir).parameters()).dtype == torch.float64
    assert evaluate(result.run_dir, device="cpu")["accuracy"] == pytest.approx(
        result.metrics["train_accuracy"], abs=1e-6
    )


def test_cli_runs_the_sklearn_preset(small_file, tmp_path):
    path, _, _ = small_file
    result = train_main(
        ["--preset", "sklearn", "--activation", "logistic", "--data", str(path)]
        + ["--epochs", "2", "--device", "cpu", "--logdir", str(tmp_path), "--quiet", "--no-figures"]
    )
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["activation"] == "sigmoid" and config["dtype"] == "float64"
    assert config["sklearn_exact"] is True
    assert next(result.model.parameters()).dtype == torch.float64


def test_resume_continues_the_same_stream(small_file, tmp_path):
    path, _, _ = small_file
    common = {"data": str(path), "device": "cpu", "quiet": True, "figures": False, "lr": 0.05}
    whole = fit(make_config("sklearn", epochs=6, logdir=str(tmp_path / "a"), **common))
    half = fit(make_config("sklearn", epochs=3, logdir=str(tmp_path / "b"), **common))
    resumed = resume(half.run_dir, epochs=6)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]


def test_compare_reports_sklearn_and_reproduces_it(tmp_path, capsys):
    out = tmp_path / "compare.json"
    compare_main(
        ["--epochs", "2", "--device", "cpu", "--threads", "1"]
        + ["--logdir", str(tmp_path), "--json", str(out)]
    )
    results = json.loads(out.read_text())
    assert results["settings"]["epochs"] == 2 and results["settings"]["threads"] == 1
    records = results["records"]
    assert [(r["activation"], r["system"]) for r in records] == [
        (activation, system)
        for activation in ("relu", "logistic")
        for system in ("sklearn", "sklearn-exact", "seed")
    ]
    keys = {"system", "activation", "train_accuracy", "heldout_accuracy", "epochs", "seconds"}
    assert all(keys <= set(r) for r in records)
    by = {(r["system"], r["activation"]): r for r in records}
    for activation in ("relu", "logistic"):
        reference, exact = by["sklearn", activation], by["sklearn-exact", activation]
        for key in ("train_accuracy", "heldout_accuracy", "epochs"):
            assert exact[key] == reference[key]
        assert exact["train_loss"] == pytest.approx(reference["train_loss"], abs=TOLERANCE)
        assert exact["max_weight_difference"] < TOLERANCE
        assert reference["speedup"] == 1.0
    printed = capsys.readouterr().out
    assert all(system in printed for system in ("sklearn-exact", "seed"))
    # One TensorBoard run per system and activation, under one folder, so the curves overlay.
    folder = next(tmp_path.glob("*-compare"))
    for system in ("sklearn", "sklearn-exact", "seed"):
        assert len(list((folder / system).rglob("events.out.tfevents.*"))) == 2
    assert f"comparison: {folder}\n  tensorboard --logdir {folder}\n" in printed


@pytest.mark.parametrize(
    "rows, flags, problem",
    [
        (slice(None), ["--activations", "swish"], "activations must be among relu, logistic"),
        (slice(None), ["--threads", "0"], "--threads must be >= 1"),
        (slice(None), ["--threads", "2147483648"], "--threads must be >= 1 and <= 1024"),
        ("no zeros", [], r"needs every digit 0\.\.9; there is no \[0\]"),
        ("two of each", [], r"too few examples of digit\(s\) \[0, 1, .*none is held out"),
    ],
)
def test_compare_refuses_before_writing(
    small_file, write_mat, tmp_path, capsys, rows, flags, problem
):
    _, X, labels = small_file
    if rows == "no zeros":
        keep = labels != 10
    elif rows == "two of each":
        keep = np.concatenate([np.flatnonzero(labels == c)[:2] for c in range(1, 11)])
    else:
        keep = rows
    path = write_mat("few.mat", X=X[keep], y=labels[keep])
    with pytest.raises(SystemExit) as exit_info:
        compare_main(["--data", str(path), "--logdir", str(tmp_path / "runs"), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and re.search(problem, err[0]), err
    assert not (tmp_path / "runs").exists()
