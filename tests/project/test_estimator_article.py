"""The article's script with only the import changed (examples/from_scikit_learn.py), end to
end on the shipped digits: it prints the article's training accuracies, 0.9658 (relu) and
0.9186 (logistic), and draws its three pictures. The suite's one 1000-epoch run of each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[2]


def test_the_articles_script_prints_the_articles_figures(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ran = subprocess.run(
        [sys.executable, "-W", "ignore", str(ROOT / "examples" / "from_scikit_learn.py"),
         "--out", str(tmp_path)],
        capture_output=True, text=True, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "relu: training accuracy 0.9658" in ran.stdout
    assert "logistic: training accuracy 0.9186" in ran.stdout
    for name in ("digits.png", "hidden_units.png", "mistakes.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
