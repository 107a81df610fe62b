"""Sweeps over ranks: ``torchrun --nproc_per_node=2 -m digits_torch sweep`` writes the sweep one
process writes, is stopped and resumed with another world size, and says whose an error is.

Real processes: torchrun starts two CPU ranks (gloo on loopback), one thread each, importing
the package this test imports. A rank's stacks hold other networks than one process's stack,
so float64 losses agree to 1e-9 relative, not bit for bit (measured: 2.2e-16 uninterrupted,
5.0e-16 and 2.7e-16 stopped and resumed with another world size; Adam's solo runs exactly);
accuracies, epochs, best epochs and stopping agree exactly.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import gloo_threads_at_exit, with_exit_watch, write_subset

import digits_torch
from digits_torch import UserError
from digits_torch.store.runs import METRICS
from digits_torch.sweep import sweep
from digits_torch.sweep.train import PROGRESS, commit_file

TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = pytest.mark.skipif(
    not TORCHRUN.exists(), reason=f"no torchrun beside {sys.executable} to start ranks with"
)
# PYTHONPATH as the tests have it (and each rank says at exit which gloo threads still run)
ENV = with_exit_watch({**os.environ, "OMP_NUM_THREADS": "1"})
GRID = ["--grid", "optimizer=sgd,adam", "--grid", "l2=0,0.1"]  # a stack per rank, and Adam
KILLED_EPOCHS = 30  # long enough that a sweep is stopped mid-way, on 300 digits


@pytest.fixture(scope="module")
def children_import_this_package(tmp_path_factory) -> None:
    """The ranks must test this checkout: they import what a fresh process in a temp
    directory imports, with the tests' environment."""
    ran = subprocess.run(
        [sys.executable, "-c", "import digits_torch; print(digits_torch.__file__)"],
        cwd=tmp_path_factory.mktemp("cwd"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    theirs = ran.stdout.strip()
    assert theirs == digits_torch.__file__, f"processes import {theirs!r}: set PYTHONPATH"


@pytest.fixture(scope="module")
def digits300(tmp_path_factory, digits) -> Path:
    """300 shipped digits (30 of each): epochs short enough to stop a sweep many times over."""
    return write_subset(tmp_path_factory.mktemp("data"), digits, 30)


def _args(logdir: Path, *extra: str) -> list[str]:
    # tuned: the ranks' shares, not distillation (whose teachers a sweep trains one by one)
    return ["--preset", "tuned", "--device", "cpu", "--logdir", str(logdir), "--quiet", *extra]


def _killed_args(data: Path, logdir: Path) -> list[str]:
    extra = [*GRID, "--data", str(data), "--epochs", str(KILLED_EPOCHS), "--dtype", "float64"]
    return _args(logdir, *extra, "--no-figures", "--save-every", "0")


def _command(nproc: int) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "digits_torch", "sweep"]
    return [
        str(TORCHRUN),
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "digits_torch",
        "sweep",
    ]


def _torchrun(args: list[str], cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_command(nproc), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=180
    )


def _started(args: list[str], cwd: Path, nproc: int) -> subprocess.Popen:
    """A sweep running in the background, its stderr into a file (a pipe could fill)."""
    with (cwd / "stderr.txt").open("w") as stderr:  # the child keeps its own copy
        return subprocess.Popen(
            [*_command(nproc), *args], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=stderr
        )


def _wait_for_commits(process: subprocess.Popen, logdir: Path, ranks: int, epochs: int) -> Path:
    """The sweep directory, once every rank's commit file records ``epochs`` or more of each
    of its networks (a hang guard only, however slow the machine)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sweep ended before it was stopped"
        for sweep_dir in logdir.glob("*-sweep"):
            if all(_committed(sweep_dir / commit_file(r)) >= epochs for r in range(ranks)):
                return sweep_dir
        time.sleep(0.02)
    raise AssertionError("the sweep did not get going")


def _committed(path: Path) -> int:
    try:
        return min(json.loads(path.read_text())["epochs"].values())
    except (OSError, ValueError):  # not written yet
        return 0


# ----------------------------------------------------------------------------- comparing


def _run_name(directory: str) -> str:
    """A network directory's name without a solo run's timestamp (the second it started)."""
    return re.sub(r"^\d{8}-\d{6}-", "", directory)


def _same_metrics(mine: dict, theirs: dict, what: str) -> float:
    """Assert two networks' metrics agree; returns the largest relative loss difference."""
    assert mine.keys() == theirs.keys(), what
    worst = 0.0
    for key, value in theirs.items():
        if key == "seconds":
            continue
        if key.endswith(("loss", "objective")) and value is not None:
            difference = abs(float(mine[key]) - float(value)) / abs(float(value))
            assert difference <= 1e-9, (what, key, mine[key], value)
            worst = max(worst, difference)
        else:
            assert mine[key] == value, (what, key)
    return worst


def _same_sweep(mine: Path, theirs: Path) -> float:
    """Assert two sweeps wrote the same networks and metrics; returns the largest relative
    difference of a loss."""
    a, b = (json.loads((d / "sweep.json").read_text()) for d in (mine, theirs))
    assert a["grid"] == b["grid"]
    assert [n["name"] for n in a["networks"]] == [n["name"] for n in b["networks"]]
    worst = 0.0
    for x, y in zip(a["networks"], b["networks"]):
        assert _run_name(x["dir"]) == _run_name(y["dir"]), x["name"]
        assert x["values"] == y["values"], x["name"]
        assert {**x["config"], "logdir": ""} == {**y["config"], "logdir": ""}, x["name"]
        worst = max(worst, _same_metrics(x["metrics"], y["metrics"], x["name"]))
        assert json.loads((mine / x["dir"] / METRICS).read_text()) == x["metrics"]
    rows = [_rows(mine), _rows(theirs)]
    assert len(rows[0]) == len(rows[1]) == len(a["networks"])
    for x, y in zip(*rows):
        x["dir"], y["dir"] = _run_name(x["dir"]), _run_name(y["dir"])
        worst = max(worst, _same_metrics(x, y, x["name"]))
    assert not list(mine.glob("*/.sweep-*")), "side files left behind"
    return worst


def _rows(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / "results.csv").open() as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- the sweeps


@pytest.fixture(scope="module")
def killed_reference(tmp_path_factory, digits300) -> Path:
    """The uninterrupted one-process sweep the stopped ones must end as."""
    return sweep.run_command(_killed_args(digits300, tmp_path_factory.mktemp("reference")))


def test_a_two_rank_sweep_stopped_resumes_in_one_process(
    tmp_path, digits300, killed_reference, children_import_this_package
):
    process = _started(_killed_args(digits300, tmp_path / "runs"), tmp_path, nproc=2)
    sweep_dir = _wait_for_commits(process, tmp_path / "runs", ranks=2, epochs=2)
    process.send_signal(signal.SIGTERM)  # torchrun passes it on to every rank
    process.wait(timeout=120)  # torchrun's own status is 1 (its traceback), the ranks' 130
    stderr = (tmp_path / "stderr.txt").read_text()
    hint = f"resume with: torchrun --nproc-per-node 2 -m digits_torch sweep --resume {sweep_dir}"
    assert stderr.count("interrupted; resume with") == 1 and hint in stderr, stderr
    assert not (sweep_dir / "results.csv").exists()
    assert sweep.run_command(["--resume", str(sweep_dir), "--quiet"]) == sweep_dir
    assert _same_sweep(sweep_dir, killed_reference) <= 1e-9


def test_a_killed_one_process_sweep_resumes_over_two_ranks(
    tmp_path, digits300, killed_reference, children_import_this_package
):
    process = _started(_killed_args(digits300, tmp_path / "runs"), tmp_path, nproc=1)
    sweep_dir = _wait_for_commits(process, tmp_path / "runs", ranks=1, epochs=2)
    process.kill()  # anywhere: mid-epoch or mid-save
    process.wait(timeout=60)
    ran = _torchrun(["--resume", str(sweep_dir)], tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert _same_sweep(sweep_dir, killed_reference) <= 1e-9  # what one process writes
    # rank 0 alone speaks: the plan (with each rank's share) and the table, once
    assert ran.stdout.count("4 network(s) over 2 ranks") == 1, ran.stdout
    assert ran.stdout.count("rank 1 on cpu: 2 network(s):") == 1
    assert ran.stdout.count("ranked by val accuracy") == 1
    assert ran.stdout.endswith(f"sweep: {sweep_dir}\n")
    # the group ended with its gloo threads: none ran on into exit (where one aborted rank 1)
    assert gloo_threads_at_exit(ran.stderr) == {0: "[]", 1: "[]"}, ran.stderr
    assert (sweep_dir / PROGRESS).exists() and (sweep_dir / commit_file(1)).exists()  # a rank's
    for name in ("0-optimizer=sgd-l2=0.0", "1-optimizer=sgd-l2=0.1"):
        assert (sweep_dir / name / METRICS).exists()  # each rank's stack of one wrote its own


# ----------------------------------------------------------------------------- errors


def test_an_error_in_one_ranks_share_names_the_rank(
    tmp_path, digits300, children_import_this_package
):
    extra = ["--data", str(digits300), "--grid", "l2=0,0.1", "--epochs", "1", "--no-figures"]
    sweep_dir = sweep.run_command(_args(tmp_path / "runs", *extra))
    network = sweep_dir / "1-l2=0.1"  # rank 1's of two
    shutil.rmtree(network)
    network.write_text("in the way\n")
    ran = _torchrun(["--resume", str(sweep_dir), "--quiet"], tmp_path)
    assert ran.returncode != 0
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error: ")]
    mine = f"error: rank 1: {network}: cannot make the network's directory (File exists)"
    assert mine in errors, ran.stderr
    assert not [e for e in errors if e.startswith("error: rank 0: ")]  # not rank 0's own


def test_a_bad_grid_is_said_once_by_rank_0(tmp_path, children_import_this_package):
    ran = _torchrun(_args(tmp_path / "runs", "--grid", "bogus=1,2"), tmp_path)
    assert ran.returncode != 0
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: --grid bogus=1,2: unknown field 'bogus'"], ran.stderr
    assert not (tmp_path / "runs").exists()


def test_a_bad_flag_is_said_by_rank_0_alone(tmp_path, run_entry, monkeypatch):
    """In-process, as rank 1 of a job would meet it (argparse fails before any rank joins)."""
    args = _args(tmp_path / "runs", "--epochz", "3")
    assert run_entry(lambda: sweep.main(args)).stderr.startswith("error: unrecognized arguments")
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)  # as torchrun sets them for rank 1 of two
    ran = run_entry(lambda: sweep.main(args))
    assert (ran.code, ran.stderr) == (2, "")


def test_the_ranks_of_one_machine_share_its_ram_but_not_their_gpus():
    def share(device: str, needed_mib: int) -> sweep._Share:
        return sweep._Share("", 1, device, "host", needed_mib * 2**20, 1000 * 2**20)

    sweep._check_memory([share("cuda:0", 600), share("cuda:1", 600)])  # a GPU each: they fit
    with pytest.raises(UserError, match=r"about 1,200 MiB on cpu \(ranks 0, 1 on host\), but"):
        sweep._check_memory([share("cpu", 600), share("cpu", 600)])
