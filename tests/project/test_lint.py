"""The code stays clean: ruff's lint and format checks run with the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(command):
    # beside this interpreter first: a venv's python may run without the venv on PATH
    ruff = shutil.which("ruff", path=Path(sys.executable).parent) or shutil.which("ruff")
    assert ruff is not None, "ruff is part of the dev extra: pip install -e '.[dev]'"
    result = subprocess.run([ruff, *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
