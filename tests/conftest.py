"""Shared fixtures: the real default dataset, and Coursera's reference weights when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from digits_torch import load_digits

# ../shared/coursera/ beside the checkout holds ex4's pretrained weights. They are not ours to
# ship, so tests read them in place and skip when the folder is absent.
COURSERA = Path(__file__).resolve().parents[2] / "shared" / "coursera"


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The shipped dataset: X (5000, 400) float32, y (5000,) digits."""
    return load_digits()


@pytest.fixture(scope="session")
def ex4_weights() -> Path:
    path = COURSERA / "ex4weights.mat"
    if not path.exists():
        pytest.skip(f"Coursera's weights are not at {path}")
    return path


@pytest.fixture
def write_mat(tmp_path):
    """write_mat(name, **arrays) -> path of a MAT v5 file holding the arrays."""

    def write(name: str = "digits.mat", **arrays) -> Path:
        path = tmp_path / name
        scipy.io.savemat(path, arrays)
        return path

    return write
