"""benchmarks/bench_draw.py runs end to end and writes its figures (their values are not tested:
speed is measured, not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_draw_writes_its_figures(tmp_path):
    out = tmp_path / "draw.json"
    command = [sys.executable, "benchmarks/bench_draw.py", "--requests", "3", "--warmup", "1"]
    ran = subprocess.run(
        [*command, "--json", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    figures = json.loads(out.read_text())
    assert figures["requests"] == 3 and figures["torch_threads"] == 1
    assert 0 < figures["min_ms"] <= figures["median_ms"] <= figures["p90_ms"] <= figures["max_ms"]
    assert "POST /predict, 3 round trips" in ran.stdout
