"""A finished run read back through a real TensorBoard server's HTTP API, on loopback."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from digits_torch import fit, make_config
from digits_torch.runs import read_history

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    config = make_config(
        "seed", epochs=3, val_fraction=0.2, logdir=str(logdir), quiet=True, figures=False
    )
    return logdir, fit(config).run_dir


@contextlib.contextmanager
def _tensorboard(logdir: Path) -> Iterator[str]:
    """A TensorBoard server on ``logdir``, on a free loopback port; yields its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_run(base: str, name: str) -> list[str]:
    """The server's runs once it lists ``name`` (or after 90 s)."""
    deadline, runs = time.monotonic() + 90, []
    while time.monotonic() < deadline and name not in runs:
        try:
            runs = _get(f"{base}/data/runs")
        except OSError:
            pass
        time.sleep(0.5)
    return runs


def _experiment(base: str) -> dict:
    request = urllib.request.Request(
        f"{base}/data/plugin/hparams/experiment",
        data=json.dumps({"experimentName": ""}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_scalars_read_back_over_http(finished_run):
    logdir, run_dir = finished_run
    with _tensorboard(logdir) as base:
        runs = _wait_for_run(base, run_dir.name)
        assert runs == [run_dir.name]  # hparams live in the same run, not a second one

        history = read_history(run_dir)
        for tag, key in [("train/loss", "train_loss"), ("val/accuracy", "val_accuracy")]:
            query = urllib.parse.urlencode({"run": run_dir.name, "tag": tag})
            points = _get(f"{base}/data/plugin/scalars/scalars?{query}")
            assert [step for _, step, _ in points] == [1, 2, 3]
            assert [value for _, _, value in points] == pytest.approx(
                [r[key] for r in history], rel=1e-6
            )
        tags = _get(f"{base}/data/plugin/scalars/tags")[run_dir.name]
        assert {"train/accuracy", "val/loss", "lr", "hparams/train_accuracy"} <= set(tags)
        text_tags = _get(f"{base}/data/plugin/text/tags")[run_dir.name]
        assert "config/text_summary" in text_tags

        experiment = _experiment(base)
        hparams = {h["name"] for h in experiment["hparamInfos"]}
        assert {"lr", "batch_size", "activation", "preset"} <= hparams
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert {"hparams/train_accuracy", "hparams/val_accuracy"} <= metrics


def test_a_running_run_is_in_the_hparams_tab(tmp_path, small_digits):
    """The HParams entry is written when a run starts: read over HTTP while it trains."""
    logdir = tmp_path / "runs"
    argv = ["--preset", "seed", "--data", str(small_digits), "--epochs", "1000000",
            "--patience", "0", "--val-fraction", "0.25", "--lr", "0.003", "--quiet",
            "--no-figures", "--image-every", "0", "--device", "cpu",
            "--logdir", str(logdir)]  # fmt: skip
    training = subprocess.Popen(
        [sys.executable, "-m", "digits_torch.cli", *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not list(logdir.glob("*/history.jsonl")):
            time.sleep(0.2)
        (run_dir,) = logdir.iterdir()
        with _tensorboard(logdir) as base:
            assert _wait_for_run(base, run_dir.name) == [run_dir.name]
            experiment = _experiment(base)
            assert training.poll() is None  # still training: this is a mid-run read
        assert not (run_dir / "metrics.json").exists()
        hparams = {h["name"]: h for h in experiment["hparamInfos"]}
        assert {"lr", "batch_size", "val_fraction", "preset"} <= hparams.keys()
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        declared = {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
        assert metrics == {f"hparams/{name}" for name in declared}
    finally:
        training.send_signal(signal.SIGINT)
        training.wait(timeout=60)
