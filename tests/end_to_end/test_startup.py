"""Start-up: asking train.py or the commands that draw nothing for --help (which imports the
package) leaves the heavy third-party packages unimported; they load when a picture is drawn, a
run is logged or a file is read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "tensorboard", "scipy.io", "scipy.sparse")

# Each prints the heavy modules it found imported, as JSON, on its last line.
SCRIPTS = {
    "train.py --help": (
        "import contextlib, io, runpy\n"
        "sys.argv = ['train.py', '--help']\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    runpy.run_path('train.py', run_name='__main__')\n"
        "assert '--epochs' in out.getvalue()\n"
    ),
    # the commands whose work needs no picture (plots' and compare's does)
    "evaluate, predict, export, sweep --help": (
        "import contextlib, io\n"
        "from digits_torch.__main__ import main\n"
        "for name in ('evaluate', 'predict', 'export', 'sweep'):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(out):\n"
        "        main([name, '--help'])\n"
        "    assert 'usage:' in out.getvalue(), name\n"
    ),
    # the loaders themselves, to show the check can fail: they do need scipy.io
    "load_digits()": "from digits_torch import load_digits; load_digits()",
}


def _heavy_modules_after(script: str) -> list[str]:
    code = (
        f"import json, sys\n{script}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout.splitlines()[-1])


@pytest.mark.parametrize("what", ["train.py --help", "evaluate, predict, export, sweep --help"])
def test_start_up_imports_none_of_the_heavy_packages(what):
    assert _heavy_modules_after(SCRIPTS[what]) == []


def test_reading_the_data_does_import_scipy_io():
    assert "scipy.io" in _heavy_modules_after(SCRIPTS["load_digits()"])
