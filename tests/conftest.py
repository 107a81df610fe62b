"""Shared fixtures: the real default dataset, Coursera's weights when present, small runs, and
entry points run in-process as a process would run them."""

from __future__ import annotations

import os
import re
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from digits_torch import MLP, UserError, load_digits
from digits_torch.errors import EXIT_USAGE

# The suite's two workers share two cores with the subprocesses they start, each process with
# torch's OpenMP threads, and a thread that waits for a descheduled peer spins by default, burning
# what another process needs. Waiting passively changes no result, only where the CPU goes: two
# 40-epoch `--threads 2` runs side by side took 4.6 to 5.0 s of user CPU each, against 6.7 to 9.7
# spinning (2026-12-07, the 2-core VM). Set here, as the workers and every subprocess are started
# after this module is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Coursera's pretrained ex4 weights (ex4weights.mat) are not ours to ship: the tests that use
# them read the file named by $DIGITS_TORCH_COURSERA_WEIGHTS, else ../shared/coursera/ beside the
# checkout, and skip (saying where they looked) when neither is there.
WEIGHTS_VARIABLE = "DIGITS_TORCH_COURSERA_WEIGHTS"
COURSERA = Path(__file__).resolve().parents[2] / "shared" / "coursera"


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The shipped dataset: X (5000, 400) float32, y (5000,) digits."""
    return load_digits()


@pytest.fixture(scope="session")
def ex4_weights() -> Path:
    named = os.environ.get(WEIGHTS_VARIABLE)
    path = Path(named) if named else COURSERA / "ex4weights.mat"
    if not path.is_file():
        if named:
            pytest.skip(f"${WEIGHTS_VARIABLE} names {path}, which is not a file")
        pytest.skip(f"Coursera's weights are not at {path} (set ${WEIGHTS_VARIABLE} to the file)")
    return path


@pytest.fixture
def write_mat(tmp_path):
    """write_mat(name, **arrays) -> path of a MAT v5 file holding the arrays."""

    def write(name: str = "digits.mat", **arrays) -> Path:
        path = tmp_path / name
        scipy.io.savemat(path, arrays)
        return path

    return write


# ----------------------------------------------------------------------------- torchrun jobs

EXIT_WATCH = Path(__file__).parent / "exit_watch"  # its sitecustomize reports at each rank's exit


def with_exit_watch(env: dict) -> dict:
    """``env`` with tests/exit_watch first on PYTHONPATH: each rank of a torchrun job started
    with it says on stderr, at exit, which of gloo's threads are still running."""
    paths = [str(EXIT_WATCH), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def gloo_threads_at_exit(stderr: str) -> dict[int, str]:
    """rank -> the gloo threads it said were still running at its exit (``"[]"``: none); a
    rank's line may follow a progress bar's last, unended one."""
    said = re.findall(r"rank (\d+): gloo threads at exit: (.*)$", stderr, re.MULTILINE)
    return {int(rank): threads for rank, threads in said}


# ----------------------------------------------------------------- small runs and in-process CLIs


def relu_batch(generator: torch.Generator) -> tuple[MLP, torch.Tensor, torch.Tensor]:
    """A float64 400-25-10 relu network and a batch of 40 random inputs (b, 400) and labels (b,),
    drawn from ``generator`` in that order (a caller may draw more after)."""
    model = MLP(400, (25,), 10, "relu", "glorot", generator).double()
    x = torch.randn(40, 400, generator=generator, dtype=torch.float64)  # no unit dead by chance
    y = torch.randint(0, 10, (40,), generator=generator)
    return model, x, y


def write_subset(directory: Path, digits, per_digit: int) -> Path:
    """An ex4-style v5 .mat of the first ``per_digit`` shipped digits of each class (Coursera
    labels) in ``directory``."""
    X, y = digits
    keep = np.concatenate([np.flatnonzero(y == d)[:per_digit] for d in range(10)])
    path = directory / f"digits{10 * per_digit}.mat"
    scipy.io.savemat(
        path, {"X": X[keep].astype(np.float64), "y": np.where(y[keep] == 0, 10, y[keep])}
    )
    return path


@pytest.fixture(scope="session")
def small_digits(tmp_path_factory, digits) -> Path:
    """An ex4-style v5 .mat of 40 shipped digits (4 of each, Coursera labels): fast to train on."""
    return write_subset(tmp_path_factory.mktemp("data"), digits, 4)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, small_digits) -> Path:
    """A finished 3-epoch run on ``small_digits``: copy it before changing anything in it."""
    from digits_torch import fit, make_config

    logdir = tmp_path_factory.mktemp("runs")
    config = make_config(  # seed: a constant lr, so a resume may extend --epochs
        "seed",
        data=str(small_digits),
        epochs=3,
        device="cpu",
        logdir=str(logdir),
        quiet=True,
        figures=False,
    )
    return fit(config).run_dir


@pytest.fixture(scope="session")
def shipped_teacher(tmp_path_factory) -> Path:
    """A small teacher on the shipped digits (one epoch): what a test of the default preset
    passes as --teacher, instead of the 100-epoch teacher the default trains first."""
    from digits_torch import fit, make_config

    config = make_config(
        "seed", hidden=(40,), epochs=1, lr=0.1, val_fraction=0.2, device="cpu", quiet=True,
        figures=False, logdir=str(tmp_path_factory.mktemp("teacher")),
    )  # fmt: skip
    return fit(config).run_dir


@dataclass
class Ran:
    """What an entry point did: its exit code, what it wrote to stderr, what it returned."""

    code: int
    stderr: str
    value: object = None


@pytest.fixture
def run_entry(capfd):
    """run_entry(call) runs ``call()`` as a process would and returns a :class:`Ran`.

    ``call`` is a CLI ``main`` bound to its argv (``SystemExit`` gives the code) or a library
    function (a ``UserError`` becomes the line a CLI would print, code 2). Warnings are added to
    stderr, as a process would print them; any other exception propagates and fails the test,
    as it would print a traceback.
    """

    def run(call: Callable[[], object]) -> Ran:
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for quiet in (DeprecationWarning, PendingDeprecationWarning, ResourceWarning):
                warnings.simplefilter("ignore", quiet)  # hidden in a process too
            try:
                ran = Ran(0, "", call())
            except SystemExit as exit_:
                ran = Ran(exit_.code, "")
            except UserError as err:
                ran = Ran(EXIT_USAGE, f"error: {err}\n")
        ran.stderr = capfd.readouterr().err + ran.stderr
        ran.stderr += "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
        return ran

    return run


def one_error(ran: Ran, *needles: str) -> str:
    """The one ``error:`` line a refused call printed (exit 2), holding each of ``needles``."""
    lines = ran.stderr.splitlines()
    assert ran.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), ran.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def png_of_size(width: int, height: int) -> bytes:
    """A PNG header for a 1-bit image of any size, with a token IDAT: enough to learn the size,
    never decoded (refused on size, or failing as damaged if it were)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grey
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks
