"""The article's script with only the import changed (examples/from_scikit_learn.py), end to
end on the shipped digits at a few epochs: it prints what scikit-learn's own MLPClassifier, run
the same way, scores (to the printed digits) and draws its three pictures.

The article's 1000 epochs (0.9658 relu, 0.9186 logistic, about a minute) are not run here:
``python examples/from_scikit_learn.py --out pictures`` prints them (docs/from-scikit-learn.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier  # noqa: E402

from digits_torch import load_digits  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 30  # a few: its figures are not the article's, the agreement is the point


def scikit_learns_lines(out: Path) -> str:
    """What the script prints when its estimator is scikit-learn's own, at EPOCHS."""
    X, y = load_digits(dtype=np.float64, stored_labels=True)  # as scipy.io.loadmat reads them
    lines = []
    for activation in ("relu", "logistic"):
        clf = SklearnMLPClassifier(
            hidden_layer_sizes=(25,),
            activation=activation,
            solver="sgd",
            random_state=0,
            max_iter=EPOCHS,
            alpha=1e-4,
            tol=1e-9,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        lines.append(f"{activation}: training accuracy {clf.score(X, y):.4f}")
        if activation == "relu":
            wrong = int(np.count_nonzero(clf.predict(X) != y))
    lines.append(f"{wrong} mistakes; pictures in {out}")
    return "\n".join(lines) + "\n"


def test_the_articles_script_prints_what_scikit_learns_estimator_scores(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ran = subprocess.run(
        [sys.executable, "-W", "ignore", str(ROOT / "examples" / "from_scikit_learn.py"),
         "--out", str(tmp_path), "--epochs", str(EPOCHS)],
        capture_output=True, text=True, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == scikit_learns_lines(tmp_path)
    for name in ("digits.png", "hidden_units.png", "mistakes.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
