"""Finished runs and a sweep read back through a real TensorBoard server's HTTP API, on
loopback: their scalars, and what the Scalars and HParams tabs show first.

What a tab shows first is the frontend's rule on the server's data, restated here (TensorBoard
2.x, read from its bundled frontend): the Scalars tab groups tags by their prefix before "/",
groups in name order, and opens the first two; the HParams table shows the first five
hyperparameters of the server's order (those marked ``differs`` first, then by name), the first
five metrics, and each row's name in a column about a dozen characters wide.
"""

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
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from digits_torch import fit, make_config
from digits_torch.store.run_log import DISTILLED_TRAIN_LOSS, trial_name
from digits_torch.store.runs import read_history
from digits_torch.sweep import sweep

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["metrics/val_accuracy", "metrics/val_loss", "metrics/train_accuracy",
           "metrics/train_loss"]  # fmt: skip
SHOWN_TRIAL = 12  # characters of a row's name the HParams table shows at its default width


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """Two presets' runs in one logdir: seed with a validation split, coursera without."""
    logdir = tmp_path_factory.mktemp("runs")
    runs = [
        fit(make_config(preset, epochs=3, logdir=str(logdir), quiet=True, figures=False, **extra))
        for preset, extra in [("seed", {"val_fraction": 0.2}), ("coursera", {})]
    ]
    return logdir, [run.run_dir for run in runs]


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


def _post(url: str, request: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(request).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _experiment(base: str) -> dict:
    return _post(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})


def _session_groups(base: str) -> list[dict]:
    """The HParams table's rows, as the frontend asks for them."""
    statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
    request = {"experimentName": "", "allowedStatuses": statuses, "colParams": [],
               "startIndex": 0, "sliceSize": 100}  # fmt: skip
    return _post(f"{base}/data/plugin/hparams/session_groups", request)["sessionGroups"]


def _open_groups(tags: list[str]) -> list[str]:
    """The Scalars tab's tag groups it opens at first: the first two prefixes in name order."""
    return list(dict.fromkeys(tag.split("/")[0] for tag in sorted(tags)))[:2]


def _shown_hparams(experiment: dict) -> list[str]:
    """The five hyperparameter columns the HParams table shows at first."""
    infos = experiment["hparamInfos"]
    return [h["name"] for h in sorted(infos, key=lambda h: not h.get("differs", False))][:5]


def test_scalars_read_back_over_http(finished_runs):
    logdir, run_dirs = finished_runs
    with _tensorboard(logdir) as base:
        for run_dir in run_dirs:
            _wait_for_run(base, run_dir.name)
        assert sorted(_get(f"{base}/data/runs")) == sorted(d.name for d in run_dirs)

        run_dir = run_dirs[0]
        history = read_history(run_dir)
        for tag, key in [("loss/train", "train_loss"), ("accuracy/val", "val_accuracy")]:
            query = urllib.parse.urlencode({"run": run_dir.name, "tag": tag})
            points = _get(f"{base}/data/plugin/scalars/scalars?{query}")
            assert [step for _, step, _ in points] == [1, 2, 3]
            assert [value for _, _, value in points] == pytest.approx(
                [r[key] for r in history], rel=1e-6
            )
        tags = _get(f"{base}/data/plugin/scalars/tags")
        assert {"accuracy/train", "loss/val", "lr", "metrics/train_accuracy"} <= set(
            tags[run_dir.name]
        )
        assert "accuracy/val" not in tags[run_dirs[1].name]  # coursera holds out no digits
        text_tags = _get(f"{base}/data/plugin/text/tags")[run_dir.name]
        assert "config/text_summary" in text_tags
        # The Custom Scalars tab: train and validation on one chart each.
        layout = _get(f"{base}/data/plugin/custom_scalars/layout")
        charts = {c["title"]: c["multiline"]["tag"] for c in layout["category"][0]["chart"]}
        # (a distilled run's training loss is its own tag, on the same chart)
        losses = r"^loss/(train|train_distillation|val)$"
        assert charts == {"accuracy": [r"^accuracy/(train|val)$"], "loss": [losses]}

        for run_tags in tags.values():  # what the Scalars tab opens on
            assert _open_groups(list(run_tags)) == ["accuracy", "loss"]
        experiment = _experiment(base)
        assert {"lr", "batch_size", "activation", "preset"} <= {
            h["name"] for h in experiment["hparamInfos"]
        }
        assert sorted(_shown_hparams(experiment)) == ["hidden", "l2", "lr", "optimizer", "preset"]
        # Whichever run's experiment the server took, the validation columns are there.
        assert [m["name"]["tag"] for m in experiment["metricInfos"]] == METRICS
        assert [m["displayName"] for m in experiment["metricInfos"]] == [
            tag.removeprefix("metrics/") for tag in METRICS
        ]
        rows = {g["name"]: g for g in _session_groups(base)}
        assert sorted(rows) == sorted(trial_name(d) for d in run_dirs)
        assert len({name[:SHOWN_TRIAL] for name in rows}) == len(rows)
        seed = rows[trial_name(run_dir)]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        values = {m["name"]["tag"]: m["value"] for m in seed["metricValues"]}
        assert values == pytest.approx({tag: metrics[tag[8:]] for tag in METRICS}, rel=1e-6)
        config = json.loads((run_dir / "config.json").read_text())
        assert seed["hparams"]["preset"] == "seed"
        assert seed["hparams"]["nesterov"] is config["nesterov"]  # a bool, not 1 or 0


def test_a_sweep_shows_its_swept_hparams_and_tells_its_networks_apart(tmp_path):
    args = ["--preset", "seed", "--grid", "l2=0,0.1", "--seeds", "0", "--epochs", "2",
            "--val-fraction", "0.2", "--device", "cpu", "--logdir", str(tmp_path), "--quiet",
            "--no-figures", "--image-every", "0"]  # fmt: skip
    sweep_dir = sweep.run_command(args)
    networks = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    with _tensorboard(sweep_dir) as base:
        _wait_for_run(base, networks[-1].name)
        shown = _shown_hparams(_experiment(base))
        rows = _session_groups(base)
    assert {"l2", "seed"} <= set(shown) and "preset" in shown
    names = [g["name"] for g in rows]
    assert sorted(names) == sorted(trial_name(n, n.name) for n in networks) and len(names) == 2
    assert len({name[:SHOWN_TRIAL] for name in names}) == 2
    assert all(len(g["metricValues"]) == len(METRICS) for g in rows)


def test_trial_names_put_what_differs_first(tmp_path):
    run = tmp_path / "20261201-101500-tuned-l2=0.1"
    assert trial_name(run) == "101500-tuned-l2=0.1 (20261201)"
    assert trial_name(tmp_path / "mine") == f"mine ({tmp_path.name})"
    sweep_dir = tmp_path / "20261201-101500-sweep"
    stacked = sweep_dir / "3-l2=0.1-seed=1"
    assert trial_name(stacked, "3-l2=0.1-seed=1") == "101500-3-l2=0.1-seed=1 (20261201-sweep)"
    solo = sweep_dir / "20261201-101502-coursera-0-l2=0.1"  # a network that does not stack
    assert trial_name(solo, "0-l2=0.1") == "101500-0-l2=0.1 (20261201-sweep)"
    # two sweeps' networks of one name differ in the first dozen characters the column shows
    other = tmp_path / "20261201-113000-sweep" / "3-l2=0.1-seed=1"
    assert trial_name(other, "3-l2=0.1-seed=1")[:12] != trial_name(stacked, "3-l2=0.1-seed=1")[:12]


def test_a_distilled_runs_training_loss_tag_says_it_is_distillations(
    tmp_path, small_digits, trained_run
):
    """Its objective (soft and true targets) is not the cross-entropy of loss/train."""
    base = dict(data=str(small_digits), device="cpu", quiet=True, figures=False, epochs=2,
                image_every=0)  # fmt: skip
    plain = fit(make_config("seed", logdir=str(tmp_path / "plain"), **base)).run_dir
    taught = fit(make_config("seed", logdir=str(tmp_path / "taught"), teacher=str(trained_run),
                             **base)).run_dir  # fmt: skip
    tags = {}
    for run_dir in (plain, taught):
        events = EventAccumulator(str(run_dir))
        events.Reload()
        tags[run_dir] = set(events.Tags()["scalars"])
    assert "loss/train" in tags[plain] and DISTILLED_TRAIN_LOSS not in tags[plain]
    assert DISTILLED_TRAIN_LOSS in tags[taught] and "loss/train" not in tags[taught]
    assert tags[plain] - {"loss/train"} == tags[taught] - {DISTILLED_TRAIN_LOSS}


def test_a_running_run_is_in_the_hparams_tab(tmp_path, small_digits):
    """The HParams entry is written when a run starts: read over HTTP while it trains."""
    logdir = tmp_path / "runs"
    argv = ["--preset", "seed", "--data", str(small_digits), "--epochs", "1000000",
            "--patience", "0", "--val-fraction", "0.25", "--lr", "0.003", "--quiet",
            "--no-figures", "--image-every", "0", "--device", "cpu",
            "--logdir", str(logdir)]  # fmt: skip
    training = subprocess.Popen(
        [sys.executable, "-m", "digits_torch", "train", *argv],
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
            (row,) = _session_groups(base)
            assert training.poll() is None  # still training: this is a mid-run read
        assert not (run_dir / "metrics.json").exists()
        hparams = {h["name"]: h for h in experiment["hparamInfos"]}
        assert {"lr", "batch_size", "val_fraction", "preset"} <= hparams.keys()
        assert [m["name"]["tag"] for m in experiment["metricInfos"]] == METRICS
        assert row["name"] == trial_name(run_dir) and not row["metricValues"]
    finally:
        training.send_signal(signal.SIGINT)
        training.wait(timeout=60)
