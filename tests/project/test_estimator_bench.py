"""benchmarks/bench_estimator.py runs end to end and prints both ratios (its figures are not
tested: speed is measured, not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("threadpoolctl")

ROOT = Path(__file__).resolve().parents[2]


def test_bench_estimator_prints_both_ratios(tmp_path):
    out = tmp_path / "est.json"
    ran = subprocess.run(
        [sys.executable, "benchmarks/bench_estimator.py", "--epochs", "2", "--repeats", "1",
         "--json", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "sklearn / exact = " in ran.stdout and "sklearn / fast  = " in ran.stdout
    results = json.loads(out.read_text())
    assert set(results["median_s"]) == {"sklearn", "exact", "fast"}
    # the exact arithmetic trains scikit-learn's weights: the same accuracy, to the last digit
    assert results["training_accuracy"]["exact"] == results["training_accuracy"]["sklearn"]
    assert results["sklearn_over_exact"] > 0 and results["sklearn_over_fast"] > 0
