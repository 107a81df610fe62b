"""Digits in Coursera ML exercise 4's layout: reading and checking ``.mat`` files, the split.

An ex4-style ``.mat`` file holds

* ``X``: m x n float (or integer) pixels, each row a square image of side sqrt(n) unrolled
  column-major, as MATLAB's ``X(:)`` does (ex4: 5000 x 400, 20 x 20 images);
* ``y``: m labels, a column or row vector, either Coursera's 1..10 (10 stands for the digit 0)
  or plain digits 0..9.

:func:`load_digits` reads such a file (by default the 5,000 MNIST digits shipped with the package,
built by ``scripts/build_dataset.py``) and returns plain digits;
:class:`~digits_torch.core.dataset.DigitsDataset` wraps them for torch. Anything wrong with a
file is a :class:`~digits_torch.errors.UserError` that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError, one_line, reading
from .read_files import check_regular

__all__ = [
    "default_data_path",
    "file_sha256",
    "load_digits",
    "stratified_split",
    "to_image",
]

NUM_CLASSES = 10


def default_data_path() -> Path:
    """Path of the shipped dataset: 5000 x 400 MNIST digits in ex4data1's layout."""
    return Path(str(resources.files("digits_torch") / "assets" / "digits5k.mat"))


def load_digits(
    path: str | Path | None = None,
    dtype: np.dtype | type | str = np.float32,
    stored_labels: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Load an ex4-style ``.mat`` file.

    Args:
        path: the file; ``None`` loads the shipped default dataset.
        dtype: float type of X. float64 keeps a float64 file's values exactly, as scikit-learn
            sees them (the shipped file's values are float32 numbers, so both types agree there).
        stored_labels: give y as the file stores it (Coursera's 1..10, or 0..9) instead of
            digits: what a script that passes the file's y to scikit-learn trains on.

    Returns:
        ``(X, y)``: X of shape (m, n_pixels) with n_pixels a square (400 for 20 x 20), y int64 of
        shape (m,) holding digits 0..9 (or the stored labels). uint8 pixels (0-255) are scaled
        to [0, 1]; other pixel types keep their values.

    Raises:
        UserError: the file is missing, unreadable, or its contents are not digits.
    """
    path = default_data_path() if path is None else Path(path)
    arrays = read_mat(path)
    for name in ("X", "y"):
        if name not in arrays:
            found = ", ".join(sorted(arrays)) or "no variables"
            raise UserError(f"no variable '{name}' (found: {found})", path)
    X = _check_pixels(arrays["X"], path, np.dtype(dtype))
    labels = _check_labels(arrays["y"], path, len(X))
    return X, labels if stored_labels else np.where(labels == 10, 0, labels)


def file_sha256(path: str | Path, what: str = "a file") -> str:
    """The SHA-256 of the file at ``path``, in hex: what a run records of its data file (and of
    its teacher.pt), so that a resume or a teacher on other digits is told apart from its own.
    ``what`` the file is, for the error that it is no regular file.

    Raises:
        UserError: the file is missing, not a regular file, or cannot be read.
    """
    path = Path(path)
    check_regular(path, what)  # a FIFO or a device (/dev/zero) would never end
    digest = hashlib.sha256()
    with reading(path), open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_image(row: np.ndarray | torch.Tensor) -> np.ndarray:
    """Turn one unrolled row of shape (side*side,) back into an upright (side, side) image.

    Rows are column-major (MATLAB's order), so this is a Fortran-order reshape; a plain
    row-major reshape would give the image's transpose.
    """
    row = row.detach().cpu().numpy() if isinstance(row, torch.Tensor) else np.asarray(row)
    side = math.isqrt(row.size)
    if side * side != row.size:
        raise ValueError(f"a row of {row.size} pixels is not a square image")
    return row.reshape(side, side, order="F")


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, validation) with ``fraction`` of every class in validation.

    Args:
        y: labels, shape (m,).
        fraction: share of each class held out, in [0, 1). 0 gives an empty validation set.
        seed: seeds the shuffle; the same seed always gives the same split.

    Returns:
        Two sorted int64 index arrays that partition ``range(m)``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        n_val = int(round(fraction * len(members)))
        held_out.append(rng.permutation(members)[:n_val])
    val = np.sort(np.concatenate(held_out)).astype(np.int64)
    train = np.setdiff1d(np.arange(len(y)), val).astype(np.int64)
    return train, val


# --------------------------------------------------------------------------- reading and checking


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def read_mat(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a MAT file (v4, v5/v6/v7 or, through h5py, v7.3) as numpy arrays."""
    check_regular(path, "a MAT file", empty=False)
    with reading(path), open(path, "rb") as f:
        head = f.read(2048)
    # HDF5's signature sits at offset 0 or a power of two from 512 on; MATLAB v7.3 puts it at 512.
    if any(head[offset : offset + 8] == _HDF5_SIGNATURE for offset in (0, 512, 1024)):
        return _read_hdf5(path)
    import scipy.io  # here, not at the top: it is most of what importing digits_torch would cost

    try:
        contents = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises many types for a bad file; the user needs one line
        raise UserError(f"not a readable MAT file ({one_line(err)})", path) from None
    return {k: v for k, v in contents.items() if not k.startswith("__")}


def _read_hdf5(path: Path) -> dict[str, np.ndarray]:
    """A MATLAB v7.3 file is HDF5 storing each array transposed (MATLAB is column-major)."""
    try:
        import h5py
    except ImportError:
        raise UserError(
            "MATLAB v7.3 (HDF5) file; install h5py to read it, or save it with "
            "save(..., '-v7') in MATLAB/Octave",
            path,
        ) from None
    try:
        with h5py.File(path, "r") as f:
            return {
                name: _hdf5_array(item)
                for name, item in f.items()
                if isinstance(item, h5py.Dataset) and not name.startswith("#")
            }
    except Exception as err:
        problem = f"not a readable MATLAB v7.3 (HDF5) file ({one_line(err)})"
        raise UserError(problem, path) from None


def _hdf5_array(item) -> np.ndarray:
    """One v7.3 variable, transposed back; MATLAB text (stored as uint16 codes) becomes text."""
    value = np.asarray(item[()]).T
    if item.attrs.get("MATLAB_class") in (b"char", "char"):
        return np.array(["".join(map(chr, row)) for row in np.atleast_2d(value)])
    return value


def _check_pixels(X: np.ndarray, path: Path, dtype: np.dtype) -> np.ndarray:
    import scipy.sparse  # (loadmat has imported it, for a file that is not HDF5)

    if scipy.sparse.issparse(X):  # MATLAB sparse matrices load as scipy.sparse; pixels are dense
        X = X.toarray()
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf":
        raise UserError(f"X must be a numeric matrix, got {_describe(X)}", path)
    if X.ndim != 2:
        raise UserError(f"X must be a matrix (examples x pixels), got shape {X.shape}", path)
    m, n = X.shape
    if m == 0 or n == 0:
        raise UserError(f"X is empty (shape {X.shape})", path)
    side = math.isqrt(n)
    if side * side != n:
        raise UserError(f"X has {n} pixels per row, which is not a square image", path)
    # MAT files are column-major; rows must be contiguous for fast batch gathers (C order).
    if X.dtype == np.uint8:
        return np.ascontiguousarray(X, dtype=dtype) / dtype.type(255)
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise UserError(
            f"X contains NaN or infinite values (or values too large for {dtype})", path
        )
    return X


def _check_labels(y: np.ndarray, path: Path, m: int) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "biuf":
        raise UserError(f"y must be numeric labels, got {_describe(y)}", path)
    if y.ndim > 2 or (y.ndim == 2 and 1 not in y.shape):
        raise UserError(f"y must be a vector of labels, got shape {y.shape}", path)
    y = y.reshape(-1)
    if len(y) != m:
        raise UserError(f"X has {m} rows but y has {len(y)} labels", path)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise UserError("y contains labels that are not whole numbers", path)
    # Range first, on the values as stored: casting 1e30 to int64 would wrap around.
    out_of_range = (y < 0) | (y > 10)
    if out_of_range.any():
        bad = [v.item() for v in np.unique(y[out_of_range])[:5]]
        bad = [int(v) if float(v).is_integer() else v for v in bad]
        raise UserError(f"labels must be 1..10 (Coursera) or 0..9, found {bad}", path)
    labels = y.astype(np.int64)
    if (labels == 0).any() and (labels == 10).any():
        raise UserError("labels mix conventions: both 0 and 10 occur (use 1..10 or 0..9)", path)
    return labels  # Coursera's 1..10 (10 is the digit 0) or 0..9


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        if value.dtype.names:
            return f"a struct of shape {value.shape}"
        if value.dtype.kind == "O":
            return f"a cell array of shape {value.shape}"
        if value.dtype.kind in "SU":
            return f"text of shape {value.shape}"
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
