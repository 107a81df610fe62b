"""Data-parallel training under torchrun: real two-rank jobs on the CPU (gloo, loopback).

Each job is ``torchrun --standalone --nproc_per_node=2 train.py ...`` in a fresh directory (or
``tests/torchrun_fits.py``, several runs in one job), on the shipped digits in float64, so the
two ranks' summed gradients must give the one-process run's weights to within float reduction
order (1e-9; measured about 1e-16).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import gloo_threads_at_exit, with_exit_watch

from digits_torch import UserError, fit, make_config, resume
from digits_torch.runtime.devices import resolve_device
from digits_torch.runtime.distributed import SOLO, Ranks, job_ranks
from digits_torch.store.checkpoints import LATEST, load_run_file
from digits_torch.store.runs import read_history
from digits_torch.train.run_setup import set_up

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")
FLOAT64 = ["--preset", "seed", "--device", "cpu", "--dtype", "float64", "--no-figures", "--quiet"]

pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason=f"no torchrun at {TORCHRUN}")


def _env() -> dict:
    # one thread a rank (torchrun's own default), this checkout's package
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _launch(
    args: list[str], cwd: Path, ranks: int = 2, script: Path = ROOT / "train.py"
) -> subprocess.Popen:
    command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={ranks}", str(script)]
    return subprocess.Popen(  # each rank says at exit which of gloo's threads still run
        [*command, *args],
        cwd=cwd,
        env=with_exit_watch(_env()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _torchrun(
    args: list[str], cwd: Path, ranks: int = 2, script: Path = ROOT / "train.py"
) -> subprocess.CompletedProcess:
    job = _launch(args, cwd, ranks, script)
    out, err = job.communicate(timeout=120)
    return subprocess.CompletedProcess(job.args, job.returncode, out.decode(), err.decode())


def _only_run(cwd: Path) -> Path:
    (run,) = (cwd / "runs").iterdir()
    return run


def _solo(tmp_path: Path, **flags):
    """The one-process run of the jobs' flags."""
    config = make_config(
        "seed",
        device="cpu",
        dtype="float64",
        figures=False,
        quiet=True,
        logdir=str(tmp_path / "solo"),
        **flags,
    )
    return fit(config, SOLO)


def _largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _wait_for_epochs(run_parent: Path, epochs: int, job: subprocess.Popen) -> Path:
    """The job's run directory once its history holds ``epochs`` epochs."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert job.poll() is None, job.communicate()[1].decode()
        runs = list(run_parent.glob("*/history.jsonl")) if run_parent.exists() else []
        if runs and len(read_history(runs[0].parent)) >= epochs:
            return runs[0].parent
        time.sleep(0.02)
    raise AssertionError(f"no {epochs} epochs within 90 s")


# (backprop, taught): the hand-written gradients without and with a teacher (whose soft targets
# each rank takes its share of), and autograd's with one
TWO_RANK_CASES = [("explicit", False), ("explicit", True), ("autograd", True)]


def test_two_ranks_train_the_one_process_network(tmp_path, shipped_teacher):
    # one job trains the three runs (tests/torchrun_fits.py), each then compared with its solo run
    cases = []
    for backprop, taught in TWO_RANK_CASES:  # batches of 333: shares of 167 and 166 digits
        fields = {"epochs": 6, "val_fraction": 0.1, "batch_size": 333, "backprop": backprop}
        cases.append({**fields, "teacher": str(shipped_teacher)} if taught else fields)
    logdirs = [str(tmp_path / f"job{i}") for i in range(len(cases))]
    as_job = {"device": "cpu", "dtype": "float64", "figures": False, "quiet": True}  # FLOAT64's
    job_cases = [{**fields, **as_job, "logdir": d} for fields, d in zip(cases, logdirs)]
    (tmp_path / "cases.json").write_text(json.dumps(job_cases))
    job = _torchrun(["cases.json"], tmp_path, script=ROOT / "tests" / "torchrun_fits.py")
    assert job.returncode == 0, job.stderr
    for fields, logdir in zip(cases, logdirs):
        (run,) = Path(logdir).iterdir()  # rank 0 alone made and wrote it
        solo = _solo(tmp_path, **fields)
        parallel = load_run_file(run / LATEST)
        assert parallel["epoch"] == 6
        assert _largest_difference(solo.model.state_dict(), parallel["model"]) < 1e-9, fields
        # the same run, as files: its config, its split, one history line an epoch
        saved = json.loads((run / "config.json").read_text())
        assert saved == {**solo.config.to_dict(), "logdir": logdir}, fields
        assert [r["epoch"] for r in read_history(run)] == list(range(1, 7))
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["val_accuracy"] == pytest.approx(solo.metrics["val_accuracy"], abs=1e-12)
        assert metrics["train_examples"] == solo.metrics["train_examples"] == 4500
        assert (metrics["ranks"], solo.metrics["ranks"]) == (2, 1)


def test_an_interrupted_job_resumes_under_torchrun_then_alone(tmp_path):
    # small batches: slow enough epochs to stop the job a few epochs in
    flags = ["--batch-size", "50", "--checkpoint-every", "0", *FLOAT64]
    job = _launch(["--epochs", "200", *flags], tmp_path)
    run = _wait_for_epochs(tmp_path / "runs", 2, job)
    job.send_signal(signal.SIGTERM)  # torchrun passes it on to every rank
    _, err = job.communicate(timeout=60)
    assert job.returncode != 0
    saved = load_run_file(run / LATEST)["epoch"]
    assert saved == len(read_history(run))  # both ranks stopped after the same epoch, saved
    hint = f"resume with: torchrun --nproc-per-node 2 train.py --resume runs/{run.name}"
    assert err.decode().count(hint) == 1, err.decode()  # rank 0 says it

    middle, end = saved + 2, saved + 4
    resumed = _torchrun(["--resume", str(run), "--epochs", str(middle), "--no-quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert load_run_file(run / LATEST)["epoch"] == middle
    assert "device  cpu, 2 ranks (torchrun)" in resumed.stdout  # the closing table says so
    assert resumed.stdout.count("run: ") == 1, resumed.stdout  # rank 0 spoke for the job
    # the group over, each rank's gloo threads are too: none left to outlive it into exit
    assert gloo_threads_at_exit(resumed.stderr) == {0: "[]", 1: "[]"}, resumed.stderr
    alone = resume(run, ranks=SOLO, epochs=end)  # and on from there in one process
    assert alone.metrics["ranks"] == 1
    solo = _solo(tmp_path, epochs=end, batch_size=50, checkpoint_every=0.0)
    assert _largest_difference(solo.model.state_dict(), alone.model.state_dict()) < 1e-9
    assert [r["epoch"] for r in read_history(run)] == list(range(1, end + 1))


def _rank_pids(job: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of each process torchrun started for ``job``."""
    ranks = {}
    for pid in subprocess.check_output(["pgrep", "-P", str(job.pid)]).split():
        environ = Path(f"/proc/{int(pid)}/environ").read_bytes().split(b"\0")
        rank = next(v for v in environ if v.startswith(b"RANK="))
        ranks[int(rank.removeprefix(b"RANK="))] = int(pid)
    return ranks


def test_a_killed_rank_ends_the_job_with_an_error_and_the_run_resumes(tmp_path):
    flags = ["--batch-size", "50", "--checkpoint-every", "0", *FLOAT64]
    job = _launch(["--epochs", "1000", *flags], tmp_path)
    run = _wait_for_epochs(tmp_path / "runs", 1, job)
    started = time.monotonic()
    os.kill(_rank_pids(job)[1], signal.SIGKILL)
    _, err = job.communicate(timeout=90)
    waited = time.monotonic() - started
    print(err.decode())  # whole, under "Captured stdout" if an assertion fails (theirs is cut)
    assert job.returncode != 0
    errors = [line for line in err.decode().splitlines() if line.startswith("error: ")]
    assert errors and errors[0].startswith("error: rank 0 of 2: lost the job's other ranks"), err
    assert waited < 60  # torchrun's shutdown, not a collective's timeout (120 s)

    saved = load_run_file(run / LATEST)["epoch"]  # whole, and resumable: alone, this time
    alone = resume(run, ranks=SOLO, epochs=saved + 2)
    solo = _solo(tmp_path, epochs=saved + 2, batch_size=50, checkpoint_every=0.0)
    assert _largest_difference(solo.model.state_dict(), alone.model.state_dict()) < 1e-9


def test_a_rank_that_stops_answering_is_given_up_on_after_the_timeout(tmp_path):
    flags = ["--batch-size", "50", "--rank-timeout", "2", *FLOAT64]
    job = _launch(["--epochs", "1000", *flags], tmp_path)
    _wait_for_epochs(tmp_path / "runs", 1, job)
    pids = _rank_pids(job)
    os.kill(pids[1], signal.SIGSTOP)  # alive, so torchrun sees nothing wrong: a hung machine
    try:
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pids[0]}").exists() and _state(pids[0]) != "Z":
            assert time.monotonic() < deadline, "rank 0 still waits"
            time.sleep(0.05)
    finally:
        os.kill(pids[1], signal.SIGKILL)
    _, err = job.communicate(timeout=90)
    print(err.decode())  # whole, under "Captured stdout" if an assertion fails (theirs is cut)
    errors = [line for line in err.decode().splitlines() if line.startswith("error: ")]
    assert errors and errors[0].startswith("error: rank 0 of 2: lost the job's other ranks"), err
    assert "--rank-timeout" in errors[0]


def _state(pid: int) -> str:
    """A process's state letter (Z: ended, not yet reaped by torchrun)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_user_error_is_said_once(tmp_path):
    job = _torchrun(["--resume", "runs/no-such-run"], tmp_path)
    assert job.returncode != 0
    errors = [line for line in job.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: runs/no-such-run: no such file or directory"], job.stderr
    # torchrun's report: the first rank to end exited 2 (it may stop the other before its own 2)
    assert "exitcode  : 2" in job.stderr


# ----------------------------------------------------------------- refused before any collective


def _torchrun_environment(monkeypatch, rank: int, world: int, local: int) -> None:
    for key, value in (("RANK", rank), ("WORLD_SIZE", world), ("LOCAL_RANK", local)):
        monkeypatch.setenv(key, str(value))


def test_each_rank_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    _torchrun_environment(monkeypatch, rank=3, world=4, local=1)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="each rank takes the GPU of its LOCAL_RANK"):
        resolve_device("cuda:0")
    _torchrun_environment(monkeypatch, rank=2, world=4, local=2)
    with pytest.raises(UserError, match="LOCAL_RANK 2, but this machine has 2 CUDA device"):
        resolve_device("cuda")


def test_an_incomplete_torchrun_environment_is_one_error(monkeypatch):
    for key in ("RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="an incomplete torchrun environment .* start with"):
        job_ranks()
    _torchrun_environment(monkeypatch, rank=2, world=2, local=0)
    with pytest.raises(UserError, match="RANK=2 of WORLD_SIZE=2"):
        job_ranks()
    _torchrun_environment(monkeypatch, rank=1, world=2, local=1)
    assert job_ranks() == Ranks(1, 2, 1) and not job_ranks().lead


BAD_ENVIRONMENTS = {
    # rank 0 alone says other user errors: a process whose RANK is not 0 must say its own
    "a LOCAL_RANK that is no number": (
        {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "x"},
        "an incomplete torchrun environment (RANK=1 WORLD_SIZE=2 LOCAL_RANK=x); start with "
        "torchrun",
    ),
    "a RANK past the world": (
        {"RANK": "5", "WORLD_SIZE": "2", "LOCAL_RANK": "0"},
        "a torchrun environment with RANK=5 of WORLD_SIZE=2; start with torchrun",
    ),
    "no MASTER_ADDR": (
        {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_PORT": "29500"},
        "a torchrun environment (RANK=0 WORLD_SIZE=2) without MASTER_ADDR; start with torchrun",
    ),
}


@pytest.mark.parametrize("case", BAD_ENVIRONMENTS)
def test_a_bad_rank_environment_is_said_by_the_process_that_sees_it(case, tmp_path):
    variables, problem = BAD_ENVIRONMENTS[case]
    env = {k: v for k, v in _env().items() if k not in (*variables, "MASTER_ADDR", "MASTER_PORT")}
    job = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *FLOAT64, "--epochs", "1"],
        cwd=tmp_path,
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (job.returncode, job.stderr, job.stdout) == (2, f"error: {problem}\n", "")
    assert not (tmp_path / "runs").exists()


def test_one_process_modes_are_refused_under_torchrun():
    two = Ranks(0, 2, 0)
    with pytest.raises(UserError, match="sklearn-exact mode repeats scikit-learn's one-process"):
        set_up(make_config("sklearn", device="cpu"), two)
    set_up(make_config("seed", device="cpu", cuda_graph=True), two)  # no effect on the CPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_are_refused_under_torchrun():
    with pytest.raises(UserError, match="--cuda-graph replays one process's epoch"):
        set_up(make_config("seed", device="cuda", cuda_graph=True), Ranks(0, 2, 0))


def test_a_batch_is_shared_out_whole_in_rank_order():
    for world in (1, 2, 3, 7):
        for b in (0, 1, 2, 5, 200, 201):
            shares = [Ranks(r, world).share(b) for r in range(world)]
            assert shares[0][0] == 0 and shares[-1][1] == b
            assert all(hi == lo for (_, hi), (lo, _) in zip(shares, shares[1:]))
            assert max(hi - lo for lo, hi in shares) - min(hi - lo for lo, hi in shares) <= 1
