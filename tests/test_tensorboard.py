"""A finished run read back through a real TensorBoard server's HTTP API, on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from digits_torch import fit, make_config
from digits_torch.runs import read_history


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


def test_scalars_read_back_over_http(finished_run):
    logdir, run_dir = finished_run
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
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, runs = time.monotonic() + 90, []
        while time.monotonic() < deadline and run_dir.name not in runs:
            try:
                runs = _get(f"{base}/data/runs")
            except OSError:
                pass
            time.sleep(0.5)
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

        request = urllib.request.Request(
            f"{base}/data/plugin/hparams/experiment",
            data=json.dumps({"experimentName": ""}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            experiment = json.loads(response.read())
        hparams = {h["name"] for h in experiment["hparamInfos"]}
        assert {"lr", "batch_size", "activation", "preset"} <= hparams
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert {"hparams/train_accuracy", "hparams/val_accuracy"} <= metrics
    finally:
        server.terminate()
        server.wait(timeout=30)
