"""benchmarks/bench_sweep.py runs end to end with small settings (its figures are not tested)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_sweep_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    ran = subprocess.run(
        [sys.executable, "benchmarks/bench_sweep.py", "--ks", "1,2", "--epochs", "1"]
        + ["--solo", "1", "--recipes", "article", "--device", "cpu", "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's package
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    results = json.loads(out.read_text())
    assert results["device"] == "cpu" and results["epochs"] == 1
    rows = results["rows"]
    assert [(r["batches"], r["k"]) for r in rows] == [
        ("shared", 1),
        ("shared", 2),
        ("own", 1),
        ("own", 2),
    ]
    for row in rows:
        for key in ("sweep_ms", "solo_ms", "sklearn_ms", "floor_ms", "memory_estimate_mib"):
            assert math.isfinite(row[key]) and row[key] > 0, (row, key)
    assert rows[1]["memory_estimate_mib"] > rows[0]["memory_estimate_mib"]
    assert len(ran.stdout.splitlines()) == 1 + len(rows)
