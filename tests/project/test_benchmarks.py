"""The benchmark runs end to end and writes what issue 6 asks for (its figures are not tested)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from digits_torch import make_config

ROOT = Path(__file__).resolve().parents[2]
# this checkout's package, not whichever one the interpreter has installed
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _bench(script: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, f"benchmarks/{script}", *args]
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True)


def test_bench_train_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    ran = _bench(
        "bench_train.py",
        "--epochs",
        "1",
        "--repeats",
        "1",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--recipe-epochs",
        "1",
        "--recipe-preset",
        "tuned",  # the default's teacher would train 100 epochs first
        "--copies",
        "1",
        "2",
        "--widths",
        "25",
        "50",
    )
    assert ran.returncode == 0, ran.stderr
    results = json.loads(out.read_text())
    times = ("ours_ms", "loop_ms", "sklearn_ms", "naive_ms", "floor_ms")
    for key in times:
        assert math.isfinite(results[key]) and results[key] > 0, key
        assert f"{key[:-3]} " in ran.stdout
    assert results["device"] == "cpu"
    assert results["speedup_vs_sklearn"] == pytest.approx(
        results["sklearn_ms"] / results["ours_ms"]
    )
    assert results["ratio_to_floor"] == pytest.approx(results["ours_ms"] / results["floor_ms"])
    assert list(results["rows_ms"]) == ["5000", "10000"]
    assert list(results["hidden_ms"]) == ["25", "50"]
    assert all(v > 0 for v in [*results["rows_ms"].values(), *results["hidden_ms"].values()])
    assert results["peak_rss_mib"] > 0
    for key in ("recipe", "sklearn_best"):
        assert results[f"{key}_process_s"] > results["import_torch_s"] > 0, key
        assert 0 <= results[f"{key}_val_accuracy"] <= 1, key
    assert results["threads"] == make_config().threads  # every contender at the run's default
    assert "python train.py" in ran.stdout and "scikit-learn best" in ran.stdout


def test_bench_threads_times_each_count_quiet_and_busy(tmp_path):
    out = tmp_path / "threads.json"
    ran = _bench(
        "bench_threads.py",
        "--presets",
        "seed",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--repeats",
        "1",
        "--timeout",
        "120",
        "--burners",
        "1",  # the suite's other worker keeps the second core busy
        "--json",
        str(out),
    )
    assert ran.returncode == 0, ran.stderr
    results = json.loads(out.read_text())
    assert results["burners"] == 1
    for load in ("quiet", "busy"):
        assert list(results[load]) == ["seed"] and results[load]["seed"]["1"] > 0, load
    assert "seed" in ran.stdout and "busy / quiet" in ran.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_train_without_cuda_says_so_in_one_line():
    ran = _bench("bench_train.py", "--device", "cuda")
    assert ran.returncode == 2
    assert ran.stderr == "error: device cuda: CUDA is not available on this machine\n"


def test_bench_ranks_times_torchrun_ranks(tmp_path):
    """Two ranks only: one rank is a plain ``python train.py``, as every other benchmark runs."""
    out = tmp_path / "ranks.json"
    ran = _bench(
        "bench_ranks.py", "--ranks", "2", "--epochs", "2", "--repeats", "1",
        "--cases", "shipped", "--json", str(out),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    results = json.loads(out.read_text())
    assert list(results["shipped"]) == ["2"] and "wide" not in results
    timed = results["shipped"]["2"]
    assert timed["ms_per_epoch"] > 0 and timed["wall_s"] > timed["ms_per_epoch"] / 1000
    assert ran.stdout.count("ms/epoch") == 1


def test_the_distilled_benchmark_reports_each_seed_and_the_mean(tmp_path, small_digits):
    out = tmp_path / "distilled.json"
    argv = ["--seeds", "0-1", "--epochs", "2", "--data", str(small_digits), "--json", str(out)]
    ran = _bench("distilled.py", *argv)
    assert ran.returncode == 0, ran.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [(r["preset"], r["seed"]) for r in runs] == [("distilled", 0), ("distilled", 1)]
    for r in runs:
        assert 0 <= r["val_accuracy"] <= 1 and 0 <= r["teacher_val_accuracy"] <= 1
        assert 0 <= r["dead_units"] <= 25 and r["seconds"] > 0 and r["teacher_seconds"] > 0
    mean = 100 * (runs[0]["val_accuracy"] + runs[1]["val_accuracy"]) / 2
    assert f"distilled: val {mean:.2f} +- " in ran.stdout and "its teachers: val" in ran.stdout


def test_bench_figures_times_the_pictures_and_a_sweep_with_and_without(tmp_path):
    out, pictures = tmp_path / "figures.json", tmp_path / "pictures"
    grid = ["--lrs", "0.001", "--l2s", "0.0001,0.001", "--sweep-epochs", "2,1"]
    ran = _bench(
        "bench_figures.py", "--repeats", "1", "--sweep-repeats", "1", "--out", str(pictures),
        "--sweep-kinds", "every,none", *grid, "--json", str(out),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    results = json.loads(out.read_text())
    for key in ("run_s", "run_cpu_s", "teacher_s", "teacher_cpu_s", "sklearn_epoch_ms"):
        assert math.isfinite(results[key]) and results[key] > 0, key
    assert results["networks"] == 2
    s = results["sweep_s"]  # every network's pictures at the longer epochs only
    runs = ("2_every", "2_none", "1_none")
    assert set(s) == {f"{run}{cpu}" for run in runs for cpu in ("", "_cpu")}
    assert results["every_pictures_ratio"] == pytest.approx(s["2_every"] / s["2_none"])
    per = 1000 * (s["2_none"] - s["1_none"]) / 2  # 1 epoch of difference, 2 networks
    assert results["network_epoch_ms_none"] == pytest.approx(per)
    assert results["speedup_vs_sklearn_none"] == pytest.approx(results["sklearn_epoch_ms"] / per)
    for when in ("before", "after"):  # the machine's state: JSON keys are strings
        assert all(v > 0 for v in results["product_gflops"][when].values())
        assert "1" in results["product_gflops"][when]
    turns = results["sweep_turns"]  # one repeat: its own ratio is the medians'
    assert turns["2_none"] == [s["2_none"]] and len(results["sweep_sklearn_ms"]) == 1
    assert results["speedup_vs_sklearn_none_turns"] == pytest.approx(
        results["sweep_sklearn_ms"][0] / per
    )
    drawn = {p.name for p in pictures.iterdir()}  # a run's pictures and the teacher's
    assert drawn == {
        "digits.png", "hidden_units.png", "mistakes.png", "confusion.png", "learning_curves.png",
        "teacher_hidden_units.png",
    }  # fmt: skip
    assert "a run's pictures: " in ran.stdout and "pictures every / none: " in ran.stdout


def test_core_seed_trains_the_article_recipe_through_the_plain_loop():
    ran = _bench("core_seed.py", "--epochs", "3")
    assert ran.returncode == 0, ran.stderr
    line = ran.stdout.strip()
    assert line.startswith("core loop, seed recipe: 3 epochs (3 epochs), training accuracy 0.")
    assert "(the preset's 0.9654)" in line and line.endswith(" s, 1 thread")
