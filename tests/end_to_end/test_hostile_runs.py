"""Hostile run directories and output paths: planted links, device nodes, a second writer,
chimera checkpoints, bad weights, and hand-edited records (issue 18).

Every refusal is one line ``error: <file>: <problem>``, exit 2, and changes nothing; what a
case must not touch (a file a link points to, a device node) is checked to be untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from digits_torch import resume
from digits_torch.cli import compare
from digits_torch.cli import plots as plots_main
from digits_torch.cli import train as cli
from digits_torch.inference import evaluate
from digits_torch.store.checkpoints import BEST, LATEST, load_checkpoint, save_checkpoint
from digits_torch.store.runs import read_history

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(trained_run, tmp_path) -> Path:
    """A copy of the finished 3-epoch run, to change."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def one_error_line(ran, *needles: str) -> str:
    lines = ran.stderr.splitlines()
    assert ran.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), ran.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def special_file(path: Path, kind: str) -> Path:
    """A real device node (/dev/null's numbers) or FIFO at ``path``; skips where not allowed."""
    try:
        if kind == "device":
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        else:
            os.mkfifo(path)
    except (PermissionError, AttributeError) as err:
        pytest.skip(f"cannot make a {kind} here: {err}")
    return path


# ------------------------------------------------------------------------- temp files and links


def test_a_planted_temp_link_is_never_followed(run, tmp_path):
    """A stale temp name planted as a symlink: the resume writes around it, the target stays."""
    outside = tmp_path / "precious.txt"
    outside.write_text("mine\n")
    for name in (LATEST, BEST, "history.jsonl", "metrics.json"):
        (run / f".{name}.tmp").symlink_to(outside)
    resume(run, epochs=5, quiet=True)
    assert outside.read_text() == "mine\n"
    for name in (LATEST, BEST):
        assert not (run / name).is_symlink() and load_checkpoint(run / name)["epoch"] >= 3
    assert not list(run.glob(".*.tmp")), "stale temp files are cleaned up by the next writer"


def test_a_link_planted_as_a_runs_own_file_is_replaced_not_followed(run, tmp_path):
    outside = tmp_path / "precious.json"
    outside.write_text("{}\n")
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to(outside)
    resume(run, epochs=4, quiet=True)
    assert outside.read_text() == "{}\n"
    assert not (run / "metrics.json").is_symlink()
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_evaluate_json_refuses_what_is_not_a_file(kind, trained_run, tmp_path, run_entry):
    target = tmp_path / "out"
    if kind == "directory":
        target.mkdir()
    else:
        special_file(target, kind)
    before = target.lstat()
    ran = run_entry(lambda: evaluate.main([str(trained_run), "--json", str(target)]))
    one_error_line(ran, f"error: {target}: ", "not a regular file")
    after = target.lstat()
    assert (after.st_mode, after.st_ino, after.st_rdev) == (
        before.st_mode,
        before.st_ino,
        before.st_rdev,
    )


def test_a_json_link_the_user_gave_is_followed_to_its_file(trained_run, tmp_path, run_entry):
    """Documented in docs/errors.md: a link to a regular file (or to a new one) is written
    through; the link itself stays."""
    real = tmp_path / "real.json"
    real.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    ran = run_entry(lambda: evaluate.main([str(trained_run), "--json", str(link)]))
    assert ran.code == 0, ran.stderr
    assert link.is_symlink() and json.loads(real.read_text())["n"] == 40  # the run's own 40 digits


def test_a_json_link_to_a_device_is_refused(trained_run, tmp_path, run_entry):
    node = special_file(tmp_path / "node", "fifo")
    link = tmp_path / "link.json"
    link.symlink_to(node)
    ran = run_entry(lambda: evaluate.main([str(trained_run), "--json", str(link)]))
    one_error_line(ran, "not a regular file")
    assert stat.S_ISFIFO(node.lstat().st_mode) and link.is_symlink()


def test_compare_json_refuses_a_device_before_the_work(tmp_path, run_entry):
    node = special_file(tmp_path / "node", "device")
    argv = ["--epochs", "2", "--device", "cpu", "--logdir", str(tmp_path / "runs")]
    ran = run_entry(lambda: compare.main([*argv, "--json", str(node)]))
    one_error_line(ran, f"error: {node}: is a device node")
    assert stat.S_ISCHR(node.lstat().st_mode) and not (tmp_path / "runs").exists()


def test_plots_out_refuses_a_device_in_place_of_a_picture(trained_run, tmp_path, run_entry):
    out = tmp_path / "pictures"
    out.mkdir()
    node = special_file(out / "hidden_units.png", "fifo")
    ran = run_entry(lambda: plots_main.main([str(trained_run), "--out", str(out)]))
    one_error_line(ran, f"error: {node}: ", "not a regular file")
    assert stat.S_ISFIFO(node.lstat().st_mode)


# ------------------------------------------------------------------------- resume checks


def test_a_checkpoint_from_another_run_is_refused(run, tmp_path, small_digits, run_entry):
    other = cli.main(
        ["--data", str(small_digits), "--preset", "seed", "--epochs", "2", "--lr", "0.01"]
        + ["--device", "cpu", "--quiet", "--no-figures", "--logdir", str(tmp_path / "other")]
    ).run_dir
    shutil.copy(other / LATEST, run / LATEST)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir())
    ran = run_entry(lambda: cli.main(["--resume", str(run), "--epochs", "6"]))
    one_error_line(ran, f"error: {run / LATEST}: ", "config.json", "lr")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir()) == before


def test_a_history_short_of_the_checkpoint_is_refused(run, run_entry):
    lines = (run / "history.jsonl").read_text().splitlines(keepends=True)
    (run / "history.jsonl").write_text("".join(lines[:1]))
    ran = run_entry(lambda: cli.main(["--resume", str(run), "--epochs", "6"]))
    one_error_line(ran, f"error: {run / 'history.jsonl'}: ", "epoch 1", "epoch 3")


@pytest.mark.parametrize(
    "content, problem",
    [("[1, 2]\n", "not a JSON object"), ('{"preset": "seed", "lr": "x"}\n', "lr must be")],
)
def test_a_hand_edited_config_json(run, run_entry, content, problem):
    (run / "config.json").write_text(content)
    for main in (lambda: plots_main.main([str(run), "--out", str(run / "p")]),
                 lambda: cli.main(["--resume", str(run), "--epochs", "6"])):  # fmt: skip
        one_error_line(run_entry(main), f"error: {run / 'config.json'}: ", problem)


def test_a_history_record_missing_fields(run, run_entry):
    path = run / "history.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({"epoch": 2, "train_loss": 1.0})
    path.write_text("\n".join(lines) + "\n")
    for main in (lambda: plots_main.main([str(run), "--out", str(run / "p")]),
                 lambda: cli.main(["--resume", str(run), "--epochs", "6"])):  # fmt: skip
        one_error_line(run_entry(main), f"error: {path}: line 2: ", "train_accuracy")


# ------------------------------------------------------------------------- the NaN guard


def test_the_nan_guard_keeps_only_finite_weights(small_digits, tmp_path, run_entry):
    argv = ["--data", str(small_digits), "--preset", "seed", "--lr", "1e30", "--epochs", "20"]
    argv += ["--batch-size", "5000", "--device", "cpu", "--quiet", "--no-figures"]
    argv += ["--logdir", str(tmp_path), "--checkpoint-every", "0"]
    ran = run_entry(lambda: cli.main(argv))
    line = one_error_line(ran, "last good checkpoint")
    (run_dir,) = tmp_path.iterdir()
    for name in (LATEST, BEST):
        state = load_checkpoint(run_dir / name)
        assert all(torch.isfinite(w).all() for w in state["model"].values()), name
        assert f"(epoch {state['epoch']})" in line or name == BEST
    scored = evaluate.evaluate(run_dir, small_digits, device="cpu")
    assert scored["loss"] == scored["loss"]  # not nan


def test_loading_weights_that_are_not_finite_is_an_error(run, run_entry):
    state = load_checkpoint(run / BEST)
    state["model"]["layers.0.weight"][0, 0] = float("nan")
    save_checkpoint(state, run / BEST)
    ran = run_entry(lambda: evaluate.main([str(run)]))
    one_error_line(ran, f"error: {run / BEST}: ", "not finite")


# ------------------------------------------------------------------------- one writer, SIGTERM


def _train_py(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "train.py", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_second_writer_is_refused_and_sigterm_keeps_the_checkpoint(run):
    """Two real processes on one run: the second --resume is refused at once, naming the first;
    a reader still works; SIGTERM then stops the first like Ctrl-C, with exit 143."""
    first = _train_py("--resume", str(run), "--epochs", "100000", "--checkpoint-every", "0")
    try:
        deadline = time.monotonic() + 120
        while len(read_history(run)) < 6:
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "train.py", "--resume", str(run), "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2 and len(second.stderr.splitlines()) == 1, second.stderr
        assert second.stderr.startswith(f"error: {run}: ")
        assert f"pid {first.pid}" in second.stderr
        # readers keep working: all 40 digits of the run's data
        assert evaluate.evaluate(run, device="cpu", split="all")["n"] == 40
        os.kill(first.pid, signal.SIGTERM)
        _, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 143, stderr
    assert "Traceback" not in stderr and f"--resume {run}" in stderr, stderr
    saved = load_checkpoint(run / LATEST)["epoch"]
    assert [r["epoch"] for r in read_history(run)] == list(range(1, saved + 1))


# ------------------------------------------------------------------------- streams and paths


def _small_run_argv(small_digits, logdir) -> list:
    return ["train.py", "--data", small_digits, "--preset", "seed", "--epochs", "3"]  + [
        "--device", "cpu", "--no-figures", "--logdir", logdir]  # fmt: skip


def _finished(logdir: Path) -> Path:
    (run_dir,) = logdir.iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 3
    return run_dir


def test_stderr_closed_as_cron_may_run_it(small_digits, tmp_path):
    argv = " ".join(_small_run_argv(str(small_digits), str(tmp_path / "runs")))
    done = subprocess.run(
        ["sh", "-c", f"exec {sys.executable} {argv} 2>&-"], cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0 and b"run: " in done.stdout, done
    _finished(tmp_path / "runs")


def test_stdout_a_pipe_nobody_reads(small_digits, tmp_path):
    """As ``train.py | head`` once head has gone: the run is done and kept, exit 141."""
    read, write = os.pipe()
    os.close(read)
    argv = _small_run_argv(str(small_digits), str(tmp_path / "runs"))
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    assert done.returncode == 141 and b"Traceback" not in done.stderr, done.stderr
    assert b"Exception ignored" not in done.stderr, done.stderr
    _finished(tmp_path / "runs")


def test_stdout_on_a_full_device(small_digits, tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    argv = _small_run_argv(str(small_digits), str(tmp_path / "runs"))
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, *argv, "--quiet"], cwd=ROOT, stdout=full, stderr=subprocess.PIPE
        )
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 74 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: standard output: cannot write (No space left on device)")
    _finished(tmp_path / "runs")


def test_paths_that_are_not_valid_text(small_digits, tmp_path):
    """A non-UTF-8 byte in --data and --logdir: trained, and the run named in its own bytes."""
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(folder)
    data = folder + b"/digits\xff.mat"
    shutil.copy(small_digits, os.fsdecode(data))
    logdir = folder + b"/runs\xfe"
    argv = [a if isinstance(a, bytes) else a.encode() for a in _small_run_argv(data, logdir)]
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    (run_dir,) = os.listdir(logdir)
    assert b"run: " + logdir + b"/" + run_dir in done.stdout
    _finished(Path(os.fsdecode(logdir)))
