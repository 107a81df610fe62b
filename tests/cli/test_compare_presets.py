"""scripts/compare_presets.py, which makes the README's table, still runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compare_presets_runs_and_tabulates(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare_presets.py"), "--presets", "coursera",
         "--seeds", "3", "--val-fraction", "0.2", "--json", str(tmp_path / "runs.json")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "runs.json").read_text())["coursera"]
    assert [r["seed"] for r in rows] == [3] and 0.8 < rows[0]["val_accuracy"] <= 1
    assert f"| `coursera` | {100 * rows[0]['val_accuracy']:.2f} (one seed) |" in out.stdout
    assert "+-" not in out.stdout  # one seed has no spread
    assert [p.name for p in tmp_path.iterdir()] == ["runs.json"]  # runs: in a temporary logdir
