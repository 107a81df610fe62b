"""Faults: runs killed at random points resume without loss; a disk that fails says so.

A training process is killed (SIGINT once, then SIGKILL) at seeded random points, mid-epoch and
mid-checkpoint-write, and resumed each time with ``--resume``. After every kill both checkpoints
load, history.jsonl holds every finished epoch exactly once, and no more than the checkpoint
budget (``--checkpoint-every``, on the training clock) of work is lost; at the end the run has
exactly the weights of an uninterrupted one (on CPU, bit for bit).

These runs use 40 digits and one batch per epoch, so that an epoch takes milliseconds. Their
processes are forked from a multiprocessing fork server that imported the package once, so that
each costs a fork, not a fresh interpreter importing torch; each is still a process of its own
that the test kills. (test_hostile.py runs real ``python train.py`` processes.)
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

from digits_torch import resume
from digits_torch.cli import train as cli
from digits_torch.store.checkpoints import BEST, LATEST, load_checkpoint
from digits_torch.store.runs import read_history
from digits_torch.train.teachers import TEACHERS

EPOCHS = 20
BUDGET = 0.003  # seconds between checkpoints: a few epochs of these runs
ARGS = ("--preset", "seed", "--epochs", str(EPOCHS), "--device", "cpu", "--quiet", "--no-figures")
ARGS += ("--checkpoint-every", str(BUDGET))
KILLS = 8


def _temp_files(run_dir: Path) -> list[Path]:
    """Temp files a killed writer left (each writer's own name: .<file>.<pid>-<token>.tmp)."""
    return list(run_dir.glob(".*.tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_digits) -> Path:
    """The uninterrupted run the interrupted ones must end up equal to."""
    logdir = tmp_path_factory.mktemp("reference")
    return cli.main(["--data", str(small_digits), *ARGS, "--logdir", str(logdir)]).run_dir


def test_killed_at_random_points_then_resumed_loses_nothing(tmp_path, small_digits, reference):
    rng = random.Random(20260101)
    seconds = [r["seconds"] for r in read_history(reference)]
    epoch_time = (seconds[-1] - seconds[0]) / (len(seconds) - 1)
    logdir = tmp_path / "runs"
    process = _Training(tmp_path, "--data", str(small_digits), *ARGS, "--logdir", str(logdir))
    run_dir = _wait_until(process, lambda: next(logdir.glob("*/history.jsonl"), None)).parent

    # Ctrl-C first: the run says where its checkpoint is and how to resume, and exits 130.
    epochs_first = rng.randint(1, 3)
    _wait_until(process, lambda: len(read_history(run_dir)) >= epochs_first)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and f"--resume {run_dir}" in stderr, stderr
    _assert_nothing_lost(run_dir)

    torn = 0
    for _ in range(KILLS):
        start = load_checkpoint(run_dir / LATEST)["epoch"]
        old_history = (run_dir / "history.jsonl").stat().st_ino
        process = _Training(tmp_path, "--resume", str(run_dir), "--quiet")
        # Wait for this process's first new epoch (in the history it rewrote, a new file);
        # the epoch's checkpoint writes follow at once.
        _wait_until(
            process,
            lambda old=old_history, start=start: (
                (run_dir / "history.jsonl").stat().st_ino != old and _last_epoch(run_dir) > start
            ),
        )
        if rng.random() < 0.5:  # mid-checkpoint-write: at the 1st, 2nd or 3rd change seen
            _wait_for_checkpoint_writes(process, run_dir, rng.randint(1, 3))
        else:  # mid-epoch, at a random moment of an epoch's length
            time.sleep(rng.uniform(0, 2 * epoch_time))
        process.kill()
        process.communicate(timeout=60)
        torn += bool(_temp_files(run_dir))
        _assert_nothing_lost(run_dir)

    process = _Training(tmp_path, "--resume", str(run_dir), "--quiet")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert [r["epoch"] for r in read_history(run_dir)] == list(range(1, EPOCHS + 1))
    for name in (LATEST, BEST):
        _assert_same_training_state(
            load_checkpoint(run_dir / name), load_checkpoint(reference / name)
        )
    print(f"{KILLS} kills, {torn} of them mid-checkpoint-write (a temp file left behind)")


def test_torn_temp_files_and_an_epoch_logged_past_the_checkpoint(tmp_path, small_digits, reference):
    """The state a kill leaves: torn temp files, and the epoch after the checkpoint logged."""
    args = ["--data", str(small_digits), *ARGS, "--logdir", str(tmp_path), "--epochs", "5"]
    run_dir = cli.main(args).run_dir  # the last --epochs counts
    for name in (f".{LATEST}.123-abcd.tmp", f".{BEST}.456-ef01.tmp"):
        (run_dir / name).write_bytes((run_dir / LATEST).read_bytes()[:1000])
    with open(run_dir / "history.jsonl", "a") as f:
        f.write('{"epoch": 6, "train_loss": 1.0}\n{"epoch": 7, "train_lo')  # 6 done, 7 torn
    resume(run_dir, epochs=EPOCHS, quiet=True)
    assert [r["epoch"] for r in read_history(run_dir)] == list(range(1, EPOCHS + 1))
    assert not _temp_files(run_dir)
    _assert_same_training_state(
        load_checkpoint(run_dir / LATEST), load_checkpoint(reference / LATEST)
    )


def test_resuming_a_converged_run_trains_no_further(tmp_path, small_digits):
    args = [
        "--data",
        str(small_digits),
        "--tol",
        "10",
        "--patience",
        "1",
        "--quiet",
        "--no-figures",
    ]
    first = cli.main([*args, "--logdir", str(tmp_path)])
    assert first.metrics["stopped"] == "converged" and first.metrics["epochs"] < 1000
    again = resume(first.run_dir, quiet=True)
    assert again.metrics["epochs"] == first.metrics["epochs"]
    assert again.metrics["stopped"] == "converged"
    assert len(read_history(first.run_dir)) == first.metrics["epochs"]


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_logdir_that_cannot_hold_runs(tmp_path, small_digits, run_entry, where):
    """Tests run as root, which no permission bit stops: a file in the way stops everyone."""
    blocker = tmp_path / "runs"
    blocker.write_text("not a directory\n")
    logdir = blocker if where == "a file" else blocker / "more"
    ran = run_entry(lambda: cli.main(["--data", str(small_digits), "--logdir", str(logdir)]))
    assert ran.code == 2 and len(ran.stderr.splitlines()) == 1, ran.stderr
    # the default's first run directory is its teacher's, in the logdir's teachers/
    assert ran.stderr.startswith(f"error: {logdir / TEACHERS}: cannot create a run directory")
    assert sorted(tmp_path.iterdir()) == [blocker] and blocker.read_text() == "not a directory\n"


def test_disk_full_at_the_first_checkpoint_leaves_no_run(
    tmp_path, small_digits, run_entry, monkeypatch
):
    def full(path, mode="r", *args, **kwargs):  # the open() that files.py sees
        if "w" in mode and LATEST in Path(path).name:  # the checkpoint, not config.json
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr("digits_torch.store.files.open", full, raising=False)
    ran = run_entry(lambda: cli.main(["--data", str(small_digits), "--logdir", str(tmp_path)]))
    assert ran.code == 2 and len(ran.stderr.splitlines()) == 1, ran.stderr
    assert re.fullmatch(  # the default's first checkpoint is its teacher's
        rf"error: {re.escape(str(tmp_path))}/{TEACHERS}/[^/]+/{LATEST}: cannot write \(No space "
        r"left on device\)\n",
        ran.stderr,
    )
    assert list(tmp_path.iterdir()) == []  # the new run directory is gone again, teachers/ too


def test_disk_write_failing_mid_run_says_so_and_the_run_resumes(tmp_path, small_digits, reference):
    """A real write failure: a file-size limit lets epoch 0's checkpoint be written (SGD has no
    momentum yet) but not epoch 1's, which is larger. Python ignores SIGXFSZ, so write() fails
    with EFBIG as on a full disk."""
    pytest.importorskip("resource")  # POSIX
    limit = (reference / LATEST).stat().st_size - 1
    logdir = tmp_path / "runs"
    args = ("--data", str(small_digits), *ARGS, "--logdir", str(logdir))
    process = _Training(tmp_path, *args, file_size_limit=limit)
    _, stderr = process.communicate(timeout=120)
    (run_dir,) = logdir.iterdir()
    assert (
        process.returncode == 2
        and stderr == f"error: {run_dir / LATEST}: cannot write (File too large)\n"
    )
    assert load_checkpoint(run_dir / LATEST)["epoch"] == 0
    resume(run_dir, quiet=True)
    _assert_same_training_state(
        load_checkpoint(run_dir / LATEST), load_checkpoint(reference / LATEST)
    )


def test_disk_full_during_tensorboard_writes_is_one_line(tmp_path, small_digits, reference):
    """TensorBoard's event file grows by a picture an epoch until a file-size limit that the
    checkpoints fit under stops it: one error line naming it (not a writer thread's traceback),
    and the run keeps its last good checkpoint."""
    pytest.importorskip("resource")  # POSIX
    limit = (reference / LATEST).stat().st_size + 20_000
    logdir = tmp_path / "runs"
    args = ("--data", str(small_digits), *ARGS, "--epochs", "2000", "--image-every", "1")
    process = _Training(tmp_path, *args, "--logdir", str(logdir), file_size_limit=limit)
    _, stderr = process.communicate(timeout=120)
    (run_dir,) = logdir.iterdir()
    (events,) = run_dir.glob("events.out.tfevents.*")
    assert process.returncode == 2
    assert stderr == f"error: {events}: cannot write (File too large)\n"
    _assert_nothing_lost(run_dir)


# ------------------------------------------------------------------------------------- helpers

_FORKSERVER = multiprocessing.get_context("forkserver")
# torch.optim imports torch._dynamo on first use (2 s here): import it once, in the server too.
_FORKSERVER.set_forkserver_preload(["digits_torch.cli.train", "torch._dynamo"])


class _Training:
    """``python train.py argv`` as a forked process: ``pid``, ``returncode``, ``stderr``."""

    def __init__(self, tmp_path: Path, *argv: str, file_size_limit: int | None = None) -> None:
        self._stderr = tmp_path / f"stderr-{time.monotonic_ns()}.txt"
        self._process = _FORKSERVER.Process(
            target=_train_main, args=(list(argv), str(self._stderr), file_size_limit)
        )
        self._process.start()
        self.pid = self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, signal.SIGKILL)

    def communicate(self, timeout: float) -> tuple[None, str]:
        self._process.join(timeout)
        assert self._process.exitcode is not None, "the training process hangs"
        return None, self._stderr.read_text()

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode


def _train_main(argv: list[str], stderr_path: str, file_size_limit: int | None) -> None:
    """In the forked process: stderr to a file, an optional file-size limit, then train.py."""
    with open(stderr_path, "w") as stderr:
        os.dup2(stderr.fileno(), 2)
    sys.stderr = open(2, "w", closefd=False)  # lives as long as the process
    if file_size_limit is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    # tqdm's default lock is a multiprocessing semaphore, which the fork server's resource
    # tracker would report as leaked by every killed process; a thread lock does here.
    tqdm.set_lock(threading.RLock())
    from digits_torch.cli import train as cli

    cli.main(argv)


def _wait_until(process: _Training, condition, timeout: float = 60.0):
    """Poll ``condition`` every half millisecond while ``process`` runs; return its value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if process.poll() is not None:
            return value  # it finished first: nothing left to wait for
        assert time.monotonic() < deadline, "the training process made no progress"
        time.sleep(0.0005)
    return value


def _wait_for_checkpoint_writes(process: _Training, run_dir: Path, changes: int) -> None:
    """Wait until the run directory's files other than the logs have changed ``changes`` times
    (a file appearing, growing, being replaced or going), whatever way checkpoints are written."""
    seen = [_checkpoint_files(run_dir)]

    def changed_enough() -> bool:
        now = _checkpoint_files(run_dir)
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > changes

    _wait_until(process, changed_enough)


def _checkpoint_files(run_dir: Path) -> dict[str, tuple[int, int, int]]:
    files = {}
    for path in run_dir.iterdir():
        if path.name == "history.jsonl" or "tfevents" in path.name:
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # renamed or removed since iterdir
            continue
        files[path.name] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return files


def _last_epoch(run_dir: Path) -> int:
    history = read_history(run_dir)
    return history[-1]["epoch"] if history else 0


def _assert_nothing_lost(run_dir: Path) -> None:
    """Both checkpoints load; history holds epochs 1..n once each, n at least the checkpoint's;
    every epoch after the checkpoint but the last one ended within the budget of it (the last
    may be the one whose checkpoint the kill interrupted): no more than BUDGET of work lost."""
    latest = load_checkpoint(run_dir / LATEST)
    saved = latest["epoch"]
    if saved:
        load_checkpoint(run_dir / BEST)
    history = read_history(run_dir)
    epochs = [r["epoch"] for r in history]
    assert epochs == list(range(1, len(epochs) + 1))
    assert saved <= len(epochs), (saved, epochs)
    for record in history[saved:-1]:
        assert record["seconds"] - latest["seconds"] < BUDGET, (saved, record)


def _assert_same_training_state(got: dict, want: dict) -> None:
    """Equal weights, optimizer state, generator state and bookkeeping (not the times)."""
    assert got["epoch"] == want["epoch"]
    _assert_equal(got["model"], want["model"])
    for key in ("optimizer", "rng", "progress"):
        if key in want:
            _assert_equal(got[key], want[key])


def _assert_equal(got, want) -> None:
    if isinstance(want, torch.Tensor):
        assert torch.equal(got, want)
    elif isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            _assert_equal(got[key], want[key])
    elif isinstance(want, list | tuple):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            _assert_equal(a, b)
    else:
        assert got == want
