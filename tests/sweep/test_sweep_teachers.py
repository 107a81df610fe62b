"""A sweep's teachers (issue 32, items 2, 5 and 6): each seed's own (``--config RUN/config.json
--seeds``), none trained for a network that has started, no grid of two identical networks, an
empty ``--logdir`` refused, and under torchrun each teacher trained once by one rank while the
others wait for it. Sweeps train on 40 digits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_error

from digits_torch import fit, make_config
from digits_torch.cli import compare
from digits_torch.cli import train as cli
from digits_torch.sweep import sweep
from digits_torch.train.teachers import TEACHERS

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _args(data: Path, logdir: Path, *extra: str) -> list[str]:
    return [
        "--preset", "seed", "--data", str(data), "--device", "cpu", "--logdir", str(logdir),
        "--epochs", "2", "--val-fraction", "0.25", "--batch-size", "10", "--quiet",
        "--no-figures", *extra,
    ]  # fmt: skip


def _teacher_of(run_dir: Path) -> Path:
    return Path(json.loads((run_dir / "config.json").read_text())["teacher"])


def _networks(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "sweep.json").read_text())["networks"]


def test_a_sweep_of_a_distilled_runs_config_gives_each_seed_its_own_teacher(tmp_path, small_digits):
    config = make_config(
        "seed", data=str(small_digits), device="cpu", quiet=True, figures=False, epochs=2,
        val_fraction=0.25, batch_size=10, logdir=str(tmp_path / "runs"), teacher_preset="teacher",
    )  # fmt: skip
    first = fit(config)
    argv = ["--config", str(first.run_dir / "config.json"), "--seeds", "0-1"]
    sweep_dir = sweep.run_command([*argv, "--logdir", str(tmp_path / "sweeps")])
    for network in _networks(sweep_dir):
        run = sweep_dir / network["dir"]
        teacher = _teacher_of(run)
        assert (
            json.loads((teacher / "config.json").read_text())["seed"] == network["config"]["seed"]
        )
        assert str(teacher) == network["config"]["teacher"]
        student, its = (json.loads((d / "split.json").read_text()) for d in (run, teacher))
        assert not set(its["train"]) & set(student["val"])
    assert [
        t.parent for t in map(_teacher_of, (sweep_dir / n["dir"] for n in _networks(sweep_dir)))
    ] == [
        first.run_dir.parent / TEACHERS,  # seed 0's, found where the run's preset trained it
        sweep_dir / TEACHERS,  # seed 1's, trained for the sweep
    ]


def test_a_sweep_resumed_without_its_teachers_trains_none(tmp_path, small_digits):
    args = _args(small_digits, tmp_path, "--teacher-preset", "teacher", "--seeds", "0-1")
    sweep_dir = sweep.run_command(args)
    used = {n["name"]: n["config"]["teacher"] for n in _networks(sweep_dir)}
    # as a sweep killed after its networks' last commit leaves it: sweep.json as it started
    saved = json.loads((sweep_dir / "sweep.json").read_text())
    for network in saved["networks"]:
        network["config"]["teacher"], network["metrics"] = None, None
    (sweep_dir / "sweep.json").write_text(json.dumps(saved))
    (sweep_dir / saved["networks"][1]["dir"] / "metrics.json").unlink()  # not yet reported
    shutil.rmtree(sweep_dir / TEACHERS)
    assert sweep.run_command(["--resume", str(sweep_dir)]) == sweep_dir
    assert not (sweep_dir / TEACHERS).exists()
    assert {n["name"]: n["config"]["teacher"] for n in _networks(sweep_dir)} == used
    for network in _networks(sweep_dir):
        assert str(_teacher_of(sweep_dir / network["dir"])) == network["config"]["teacher"]


def test_a_named_teacher_and_a_grid_of_teacher_presets_is_one_network(
    tmp_path, small_digits, trained_run, run_entry
):
    args = _args(small_digits, tmp_path / "sweeps", "--teacher", str(trained_run))
    ran = run_entry(lambda: sweep.run_command([*args, "--grid", "teacher_preset=tuned,none"]))
    one_error(ran, "teacher_preset=tuned and teacher_preset=None train the same network")
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("command", ["train", "sweep", "compare"])
def test_an_empty_logdir_is_refused(command, tmp_path, small_digits, monkeypatch, run_entry):
    """An empty --logdir is most often an unset variable ($LOGDIR): the working directory would
    fill with runs, so it is refused (runs go to ./runs without the flag)."""
    monkeypatch.chdir(tmp_path)
    call = {
        "train": lambda: cli.main(_args(small_digits, "")),
        "sweep": lambda: sweep.run_command(_args(small_digits, "", "--seeds", "0-1")),
        "compare": lambda: compare.main(["--epochs", "2", "--device", "cpu", "--logdir", ""]),
    }[command]
    one_error(run_entry(call), "logdir must name a directory for runs", "not be empty")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not TORCHRUN.exists(), reason=f"no torchrun beside {sys.executable}")
def test_two_ranks_that_need_one_teacher_train_it_once(tmp_path, small_digits):
    """Both ranks' networks distil from seed 0's teacher: one rank trains it, the other waits
    (it was: rank 1 'in use by another process', and the job ended)."""
    args = _args(small_digits, tmp_path / "sweeps", "--teacher-preset", "teacher")
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "digits_torch", "sweep"]
    ran = subprocess.run(
        [*command, *args, "--grid", "l2=0,0.1", "--grid", "lr=0.05,0.1"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    (sweep_dir,) = (tmp_path / "sweeps").glob("*-sweep")
    (teacher,) = (sweep_dir / TEACHERS).iterdir()
    assert (teacher / "metrics.json").exists()
    assert len(_networks(sweep_dir)) == 4
    for network in _networks(sweep_dir):
        assert (
            _teacher_of(sweep_dir / network["dir"]) == teacher == Path(network["config"]["teacher"])
        )
