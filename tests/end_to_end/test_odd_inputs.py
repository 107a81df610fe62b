"""Inputs at the edges of what a command reads: weights in half precision, JSON or TOML nested
thousands deep, a path component over 255 bytes, a FIFO or a device where a file is read, many
images where one is bad. Each ends with a result or one ``error:`` line, exit 2."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from digits_torch import UserError, fit, load_digits, load_model, make_config, resume
from digits_torch.cli import plots as plots
from digits_torch.cli.train import main as cli_main
from digits_torch.core.read_files import MAX_TEXT_BYTES
from digits_torch.inference import evaluate, export, predict
from digits_torch.optim.schedule import InvScalingLR, advance
from digits_torch.store.runs import read_history
from digits_torch.sweep import sweep


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_evaluate_scores_half_precision_weights(dtype, trained_run, small_digits, tmp_path):
    state = torch.load(trained_run / "best.pt", weights_only=True)
    state["model"] = {k: v.to(dtype) for k, v in state["model"].items()}
    torch.save(state, tmp_path / "half.pt")
    result = evaluate.evaluate(tmp_path / "half.pt", small_digits, device="cpu")
    model = load_model(tmp_path / "half.pt")
    assert next(model.parameters()).dtype == dtype
    X, y = load_digits(small_digits)
    with torch.no_grad():
        predicted = model(torch.from_numpy(X).to(dtype)).argmax(1).numpy()
    assert result["n"] == len(y) == 40
    assert result["accuracy"] == np.mean(predicted == y)
    assert np.isfinite(result["loss"])


def test_invscaling_keeps_scikit_learns_lrs_to_the_last_bit():
    optimizer = torch.optim.SGD([torch.zeros(1)], lr=0.1)
    scheduler = InvScalingLR(optimizer, samples_per_epoch=4000, power_t=0.5)
    for epoch in range(1, 4):
        advance(scheduler)
        assert optimizer.param_groups[0]["lr"] == 0.1 / (epoch * 4000 + 1) ** 0.5


def test_invscaling_with_a_huge_power_t_trains_and_resumes(small_digits, tmp_path):
    # 33 ** 300 passes the largest float: lr / (seen + 1) ** power_t was an OverflowError
    config = make_config(
        "seed", data=str(small_digits), schedule="invscaling", power_t=300.0, epochs=2,
        device="cpu", quiet=True, figures=False, logdir=str(tmp_path),
    )  # fmt: skip
    run = fit(config).run_dir
    assert [r["lr"] for r in read_history(run)] == [config.lr, 0.0]
    resume(run, epochs=3)
    assert [r["lr"] for r in read_history(run)] == [config.lr, 0.0, 0.0]


# ----------------------------------------------------------- JSON and TOML nested too deeply

DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON; Python's parser recurses once per level


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / trained_run.name))


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("deep.json", DEEP, "not a valid config file (nested too deeply to read)"),
        pytest.param(
            "deep.toml",
            f"hidden = {DEEP}",
            "not a valid config file (nested too deeply to read)",
            marks=pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib: Python 3.11+"),
        ),
        ("empty.json", "", "not a valid config file (Expecting value: line 1 column 1 (char 0))"),
    ],
)
def test_a_config_file_nested_too_deeply_is_one_line(name, content, problem, tmp_path, run_entry):
    (tmp_path / name).write_text(content)
    ran = run_entry(lambda: cli_main(["--config", str(tmp_path / name), "--logdir", "runs"]))
    assert (ran.code, ran.stderr) == (2, f"error: {tmp_path / name}: {problem}\n")


RUN_FILE_CASES = {  # the run's file -> (what it is made to hold, the command's argv, the line)
    "config.json": (DEEP, ["--resume"], "not JSON (nested too deeply to read)"),
    "history.jsonl": (DEEP, ["--resume"], "line 1: not a JSON record (nested too deeply to read)"),
    "split.json": (DEEP, ["evaluate"], "unreadable (nested too deeply to read)"),
    "split.json ": (
        '{"train": [1e30], "val": [0]}',
        ["evaluate"],
        "train rows must be whole numbers >= 0, got 1e+30",
    ),
}


@pytest.mark.parametrize("case", RUN_FILE_CASES)
def test_a_run_file_nested_too_deeply_is_one_line(case, run_copy, run_entry):
    content, argv, problem = RUN_FILE_CASES[case]
    path = run_copy / case.strip()
    path.write_text(content)
    before = _files(run_copy)
    if argv == ["evaluate"]:
        ran = run_entry(lambda: evaluate.main([str(run_copy), "--device", "cpu"]))
    else:
        ran = run_entry(lambda: cli_main([*argv, str(run_copy), "--epochs", "4"]))
    assert ran.code == 2
    assert ran.stderr.startswith(f"error: {path}: {problem}") and ran.stderr.count("\n") == 1
    assert _files(run_copy) == before


def test_metrics_json_that_is_no_object_still_plots(run_copy, tmp_path, run_entry):
    (run_copy / "metrics.json").write_text("[1]")
    ran = run_entry(lambda: plots.main([str(run_copy), "--out", str(tmp_path / "pictures")]))
    assert (ran.code, ran.stderr) == (0, "")
    assert (tmp_path / "pictures" / "learning_curves.png").is_file()


def test_a_safetensors_architecture_nested_too_deeply_is_one_line(trained_run, tmp_path):
    export.export_model(trained_run, "safetensors", tmp_path / "m.safetensors")
    tensors = safetensors.torch.load_file(tmp_path / "m.safetensors")
    with safetensors.safe_open(tmp_path / "m.safetensors", framework="pt") as f:
        metadata = {**f.metadata(), "architecture": DEEP}
    safetensors.torch.save_file(tensors, tmp_path / "deep.safetensors", metadata=metadata)
    with pytest.raises(UserError, match=r"deep.safetensors: its metadata's architecture is not"):
        load_model(tmp_path / "deep.safetensors")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------ a name over 255 bytes; a FIFO or a device

LONG = "x" * 300  # one path component: the system refuses it (ENAMETOOLONG)
TOO_LONG = "file name too long (a name holds at most 255 bytes)"


def _commands(run: Path, model: str) -> dict[str, Callable[[], object]]:
    """A command per way of naming ``model`` where a model, run, data or config file goes."""
    out = str(run.parent / "out")
    return {
        "train --logdir": lambda: cli_main(["--logdir", model, "--preset", "seed"]),
        "train --resume": lambda: cli_main(["--resume", model]),
        "train --data": lambda: cli_main(["--data", model, "--logdir", out]),
        "train --config": lambda: cli_main(["--config", model, "--logdir", out]),
        "train --teacher": lambda: cli_main(["--teacher", model, "--logdir", out]),
        "evaluate": lambda: evaluate.main([model, "--device", "cpu"]),
        "plots": lambda: plots.main([model, "--out", out]),
        "export (model)": lambda: export.main([model, f"{out}.onnx"]),
        "export (out)": lambda: export.main([str(run), f"{model}.onnx"]),
        "sweep --logdir": lambda: sweep.main(["--logdir", model, "--epochs", "1"]),
        "predict (model)": lambda: predict.main([model, str(DIGIT_PNG)]),
        "predict (image)": lambda: predict.main([str(run), model]),
    }


DIGIT_PNG = Path(__file__).parents[2] / "docs" / "digits.png"


@pytest.mark.parametrize("command", list(_commands(Path("run"), "m")))
def test_a_name_over_255_bytes_is_one_line(command, run_copy, tmp_path, monkeypatch, run_entry):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    ran = run_entry(_commands(run_copy, LONG)[command])
    assert ran.code == 2
    shown = LONG + (".onnx" if command == "export (out)" else "")
    assert ran.stderr in (f"error: {shown}: {TOO_LONG}\n", f"error: {shown}/teachers: {TOO_LONG}\n")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.fixture
def blocking(tmp_path) -> Iterator[Path]:
    """A FIFO no one writes to: opening it to read blocks for ever. A test reading it fails
    after 30 seconds instead of hanging."""
    os.mkfifo(tmp_path / "fifo")

    def stuck(signum, frame):
        raise AssertionError("blocked reading a FIFO")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(30)
    yield tmp_path / "fifo"
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


SPECIAL_CASES = {  # command -> what the file is taken for, in the line
    "train --config": "a config file",
    "train --data": "a MAT file",
    "train --teacher": "a model file",
    "evaluate": "a model file",
    "plots": "a model file",
    "export (model)": "a model file",
    "predict (model)": "a model file",
    "predict (image)": "an image",
}


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
@pytest.mark.parametrize("command", SPECIAL_CASES)
def test_a_fifo_or_a_device_is_refused_unread(
    command, special, blocking, run_copy, tmp_path, monkeypatch, run_entry
):
    monkeypatch.chdir(tmp_path)
    path = str(blocking) if special == "fifo" else special
    kind = "a FIFO" if special == "fifo" else "a device node"
    ran = run_entry(_commands(run_copy, path)[command])
    assert (ran.code, ran.stderr) == (
        2,
        f"error: {path}: is {kind}, not {SPECIAL_CASES[command]}\n",
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["checkpoint.pt", "config.json", "best.pt"])
def test_a_run_file_that_is_a_fifo_is_refused_unread(name, blocking, run_copy, run_entry):
    (run_copy / name).unlink()
    os.mkfifo(run_copy / name)
    before = sorted(p.name for p in run_copy.iterdir())
    if name == "best.pt":
        ran = run_entry(lambda: evaluate.main([str(run_copy), "--device", "cpu"]))
    else:
        ran = run_entry(lambda: cli_main(["--resume", str(run_copy), "--epochs", "4"]))
    kind = {"checkpoint.pt": "a checkpoint", "config.json": "a file", "best.pt": "a checkpoint"}
    assert (ran.code, ran.stderr) == (2, f"error: {run_copy / name}: is a FIFO, not {kind[name]}\n")
    assert sorted(p.name for p in run_copy.iterdir()) == before


def test_a_config_file_over_the_size_limit_is_refused_unread(tmp_path, run_entry):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_TEXT_BYTES + 1)  # sparse: no disk is spent, no byte is read
    ran = run_entry(lambda: cli_main(["--config", str(big), "--logdir", str(tmp_path / "out")]))
    limit = f"{MAX_TEXT_BYTES + 1:,} bytes, over the limit of {MAX_TEXT_BYTES:,} for a config file"
    assert (ran.code, ran.stderr) == (2, f"error: {big}: {limit}\n")
    assert not (tmp_path / "out").exists()


def test_sklearn_exact_mode_in_float32_trains(small_digits, tmp_path):
    """Its stratified first weights were put in float64 into float32 rows: a RuntimeError."""
    config = make_config(
        "sklearn", dtype="float32", data=str(small_digits), epochs=2, device="cpu",
        quiet=True, figures=False, logdir=str(tmp_path),
    )  # fmt: skip
    run = fit(config).run_dir
    assert next(load_model(run).parameters()).dtype == torch.float32
    assert [r["epoch"] for r in read_history(run)] == [1, 2]
