"""Every command that takes a model takes every file that holds one, through one loader
(:func:`digits_torch.inference.loading.load_trained`): a run directory, a run's name under runs/,
its best.pt or checkpoint.pt, a safetensors export, ex4's Theta1/Theta2 .mat. And each refuses what
holds none in the same one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

import digits_torch
from digits_torch import load_digits
from digits_torch.cli import plots as plots
from digits_torch.core.data import to_image
from digits_torch.core.model import MLP
from digits_torch.inference import evaluate, export, predict
from digits_torch.inference.loading import MODEL_FILES, Trained, load_trained
from digits_torch.plots import hidden_units, render
from digits_torch.reference.coursera import cost, load_weights, save_weights
from digits_torch.store.checkpoints import load_checkpoint, model_from_state


@pytest.fixture(scope="module")
def folder(tmp_path_factory, trained_run) -> Path:
    """runs/<the finished run>, its safetensors export, a Theta .mat, a digit's PNG, and files
    that hold no model."""
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(trained_run, root / "runs" / trained_run.name)
    export.export_model(trained_run, "safetensors", root / "model.safetensors")
    sigmoid = MLP(activation="sigmoid", generator=torch.Generator().manual_seed(4))
    save_weights(sigmoid, root / "theta.mat")
    X, _ = load_digits()
    ink = to_image(X[3500])  # a 7: (20, 20), ink 1
    paper = np.kron(1 - ink, np.ones((4, 4)))  # dark on light, 80 x 80
    PIL.Image.fromarray(np.round(np.clip(paper, 0, 1) * 255).astype(np.uint8)).save(
        root / "digit.png"
    )
    (root / "README.md").write_text("# digits-torch\n\nNot a model.\n")
    (root / "garbage").write_bytes(np.random.default_rng(0).bytes(3000))
    return root


def _checkpoint(path: str | Path) -> MLP:
    """The model a checkpoint (or a run's best.pt, or a safetensors file) holds, read below the
    loaders tested here."""
    return model_from_state(load_checkpoint(path))


# name -> (the argument, relative to the folder; how the reference model is read from it)
MODELS = {
    "run directory": ("runs/{run}", _checkpoint),
    "run name": ("{run}", lambda p: _checkpoint(Path("runs") / p)),
    "best.pt": ("runs/{run}/best.pt", _checkpoint),
    "checkpoint.pt": ("runs/{run}/checkpoint.pt", _checkpoint),
    "safetensors": ("model.safetensors", _checkpoint),
    "ex4 .mat": ("theta.mat", load_weights),
}


def _model_arg(name: str, trained_run: Path) -> tuple[str, MLP]:
    arg, read = MODELS[name]
    arg = arg.format(run=trained_run.name)
    return arg, read(arg)


def _same_weights(a: MLP, b: MLP) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", MODELS)
def test_load_trained_reads_every_kind_of_model(name, folder, trained_run, monkeypatch):
    monkeypatch.chdir(folder)
    arg, reference = _model_arg(name, trained_run)
    trained = load_trained(arg)
    assert _same_weights(trained.model, reference)
    assert trained.loss == ("coursera" if name == "ex4 .mat" else "softmax")
    is_run = name in ("run directory", "run name")
    assert trained.run_dir == (Path("runs") / trained_run.name if is_run else None)


@pytest.mark.parametrize("name", MODELS)
def test_the_public_load_model_takes_every_kind_of_model(name, folder, trained_run, monkeypatch):
    monkeypatch.chdir(folder)
    arg, reference = _model_arg(name, trained_run)
    model = digits_torch.load_model(arg)
    assert _same_weights(model, reference) and not model.training


@pytest.mark.parametrize("name", MODELS)
def test_evaluate_takes_every_kind_of_model(name, folder, trained_run, small_digits, monkeypatch):
    monkeypatch.chdir(folder)
    arg, reference = _model_arg(name, trained_run)
    result = evaluate.main([arg, "--data", str(small_digits), "--device", "cpu"])
    X, y = load_digits(small_digits)
    expected = (reference.predict(torch.from_numpy(X)).numpy() == y).mean()
    assert result["n"] == 40 and result["accuracy"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_predict_takes_every_kind_of_model(name, folder, trained_run, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    arg, reference = _model_arg(name, trained_run)
    (prediction,) = predict.main([arg, "digit.png"])
    loss = "coursera" if name == "ex4 .mat" else "softmax"
    pixels = torch.from_numpy(prediction.pixels)[None]
    expected = Trained(reference, loss).probabilities(pixels)[0].double().numpy()
    np.testing.assert_array_equal(prediction.probabilities, expected)
    assert capsys.readouterr().out.startswith(f"digit.png: {prediction.digit}  (")


@pytest.mark.parametrize("name", MODELS)
def test_export_takes_every_kind_of_model(name, folder, trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(folder)
    arg, reference = _model_arg(name, trained_run)
    out = export.main([arg, str(tmp_path / "out.safetensors")])
    assert _same_weights(_checkpoint(out), reference)


# Drawing costs about 2 s a model: a run (by name) and a model file, which is all plots tells
# apart; every other kind reaches it through the same load_trained, tested above with each.
@pytest.mark.parametrize("name", ["run name", "ex4 .mat"])
def test_plots_takes_a_run_and_a_model_file(
    name, folder, trained_run, small_digits, tmp_path, monkeypatch
):
    monkeypatch.chdir(folder)
    arg, reference = _model_arg(name, trained_run)
    paths = plots.main([arg, "--data", str(small_digits), "--out", str(tmp_path)])
    is_run = name in ("run directory", "run name")
    assert len(paths) == (5 if is_run else 3)  # a run's learning curves and 100 digits too
    drawn = np.asarray(PIL.Image.open(tmp_path / "hidden_units.png"))
    np.testing.assert_array_equal(drawn, render(hidden_units(reference)))


def test_evaluate_reads_ex4s_own_weights(ex4_weights, digits, capsys):
    """ex4's weights classify 97.52 % of the shipped digits (README), scored with ex4's cost."""
    result = evaluate.main([str(ex4_weights), "--device", "cpu"])
    X, y = digits
    model = load_weights(ex4_weights)
    assert result["n"] == 5000
    assert result["accuracy"] == (model.predict(torch.from_numpy(X)).numpy() == y).mean()
    assert round(result["accuracy"] * 5000) == 4876  # 97.52 %
    assert result["loss"] == pytest.approx(cost(model, X, y, lam=0.0), rel=1e-5)
    assert capsys.readouterr().out.startswith("accuracy 0.9752 (4876/5000)  loss ")


# ------------------------------------------------------------------------ what holds no model

NOT_A_MODEL = f"not a model file (expected {MODEL_FILES})"
BAD = {
    "README.md": NOT_A_MODEL,
    "digit.png": NOT_A_MODEL,
    "garbage": NOT_A_MODEL,
    "absent.pt": "no such file or directory",
    "absent": "no such file or directory",
}
COMMANDS = {  # argv after the model; {out} is a path nothing may be written to
    "evaluate": (evaluate.main, ["--device", "cpu", "--json", "{out}"]),
    "plots": (plots.main, ["--out", "{out}"]),
    "predict": (predict.main, ["digit.png", "--json", "{out}"]),
    "export": (export.main, ["{out}.safetensors"]),
}


def _run(command: str, model: str, tmp_path: Path, run_entry):
    main, rest = COMMANDS[command]
    out = tmp_path / "out"
    ran = run_entry(lambda: main([model, *(a.format(out=out) for a in rest)]))
    assert not list(tmp_path.iterdir()), "an error left a file behind"
    return ran


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("model", BAD)
def test_what_holds_no_model_is_one_line(command, model, folder, tmp_path, monkeypatch, run_entry):
    monkeypatch.chdir(folder)
    ran = _run(command, model, tmp_path, run_entry)
    assert ran.code == 2
    assert ran.stderr == f"error: {model}: {BAD[model]}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_directory_of_runs_names_its_latest_run(
    command, folder, trained_run, tmp_path, monkeypatch, run_entry
):
    logdir = tmp_path / "logs" / "runs"
    older, newer = logdir / "20260101-000000-seed", logdir / "20250101-000000-seed"
    for run in (older, newer):
        shutil.copytree(trained_run, run)
    os.utime(older / "config.json", ns=(10**18, 10**18))  # 2001: latest by time, not by name
    out = tmp_path / "out"
    monkeypatch.chdir(folder)
    main, rest = COMMANDS[command]
    ran = run_entry(lambda: main([str(logdir), *(a.format(out=out) for a in rest)]))
    assert ran.code == 2
    assert ran.stderr == f"error: {logdir}: a directory of runs, not a run (latest: {newer})\n"
    assert not list(tmp_path.glob("out*"))
