"""scikit-learn is optional (the ``sklearn`` extra): ``import digits_torch`` works without it,
and asking for ``digits_torch.MLPClassifier`` says what to install. Each runs in a fresh
interpreter where ``sklearn`` cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HIDE_SKLEARN = "import sys\nsys.modules['sklearn'] = None  # as if not installed\n"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HIDE_SKLEARN + code], cwd=ROOT, capture_output=True, text=True
    )


def test_the_package_imports_without_scikit_learn():
    ran = run("import digits_torch\nfrom digits_torch import MLP, load_digits\nprint('ok')")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "ok\n"


def test_the_estimator_without_scikit_learn_says_what_to_install():
    ran = run(
        "import digits_torch\n"
        "try:\n    digits_torch.MLPClassifier\n"
        "except ImportError as error:\n    print(error)\n"
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == (
        "digits_torch.MLPClassifier needs scikit-learn: pip install digits-torch[sklearn]\n"
    )


def test_the_sklearn_extra_is_declared():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '\nsklearn = ["scikit-learn>=1.6"]\n' in pyproject
    assert '    "scikit-learn>=1.6",\n' in pyproject  # dev's, the same floor
