"""Property-based tests of load_digits' shape and label handling (hypothesis).

Whatever the number of examples, image side, label convention, orientation of y, pixel and label
types and file format, the loader returns X float32 (m, side**2) holding the written pixels
(uint8 scaled to [0, 1]) and y int64 (m,) holding the digits; anything else is a UserError.
Derandomized: the same examples every run.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from digits_torch import UserError, load_digits

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
PIXEL_TYPES = [np.float64, np.float32, np.uint8, np.int8, np.int16, np.uint16]
LABEL_TYPES = [np.uint8, np.int16, np.int32, np.float64]
FORMATS = ["v4", "v6", "v7", "v7.3"]


@pytest.fixture(scope="module")
def write(tmp_path_factory):
    """write(arrays, fmt) -> a new MAT file of that format (module-scoped: hypothesis runs a test
    many times within one call of a fixture)."""
    folder, names = tmp_path_factory.mktemp("properties"), itertools.count()

    def write(arrays_: dict[str, np.ndarray], fmt: str) -> Path:
        path = folder / f"{next(names)}.mat"
        if fmt == "v7.3":
            with h5py.File(path, "w", userblock_size=512) as f:
                for name, value in arrays_.items():
                    f[name] = np.asarray(value).T  # MATLAB's column-major layout
        else:
            version = "4" if fmt == "v4" else "5"
            scipy.io.savemat(path, arrays_, format=version, do_compression=fmt == "v7")
        return path

    return write


def pixels(dtype) -> st.SearchStrategy:
    if np.dtype(dtype).kind == "f":
        return st.floats(-1e3, 1e3, allow_nan=False, width=np.dtype(dtype).itemsize * 8)
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


@st.composite
def ex4_files(draw):
    """(the arrays to write, the format, the pixels written, the digits written)."""
    m, side = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    pixel_type = draw(st.sampled_from(PIXEL_TYPES))
    X = draw(arrays(pixel_type, (m, side * side), elements=pixels(pixel_type)))
    digits = draw(arrays(np.int64, m, elements=st.integers(0, 9)))
    coursera = draw(st.booleans())
    labels = np.where(digits == 0, 10, digits) if coursera else digits
    labels = labels.astype(draw(st.sampled_from(LABEL_TYPES)))
    shape = draw(st.sampled_from([(m, 1), (1, m)]))
    fmt = draw(st.sampled_from(FORMATS))
    return {"X": X, "y": labels.reshape(shape)}, fmt, X, digits


@SETTINGS
@given(ex4_files())
def test_any_well_formed_file_loads_as_written(write, file):
    contents, fmt, written, digits = file
    X, y = load_digits(write(contents, fmt))
    assert X.dtype == np.float32 and X.shape == written.shape
    assert y.dtype == np.int64 and y.shape == (len(written),)
    if written.dtype == np.uint8:
        np.testing.assert_allclose(X, written / 255.0, rtol=1e-6)
    else:
        np.testing.assert_array_equal(X, written.astype(np.float32))
    np.testing.assert_array_equal(y, digits)
    assert ((0 <= y) & (y <= 9)).all()


@SETTINGS
@given(
    labels=arrays(np.int64, st.integers(1, 15), elements=st.integers(-3, 13)),
    fmt=st.sampled_from(FORMATS),
)
def test_labels_load_exactly_when_they_follow_one_convention(write, labels, fmt):
    X = np.zeros((len(labels), 4))
    path = write({"X": X, "y": labels.reshape(-1, 1).astype(np.float64)}, fmt)
    valid = bool(((0 <= labels) & (labels <= 10)).all()) and not (
        (labels == 0).any() and (labels == 10).any()
    )
    if valid:
        _, y = load_digits(path)
        np.testing.assert_array_equal(y, labels % 10)  # 10 is the digit 0, the rest themselves
    else:
        with pytest.raises(UserError, match=r"labels (must be|mix)") as err:
            load_digits(path)
        assert str(err.value).startswith(f"{path}: ")


@SETTINGS
@given(
    m=st.integers(1, 8),
    n=st.integers(1, 50),
    labels=st.integers(0, 9),
    fmt=st.sampled_from(FORMATS),
)
def test_shapes_load_exactly_when_square_and_counts_agree(write, m, n, labels, fmt):
    path = write({"X": np.ones((m, n)), "y": np.ones((labels, 1))}, fmt)
    square = round(n**0.5) ** 2 == n
    if square and labels == m:
        X, y = load_digits(path)
        assert X.shape == (m, n) and y.shape == (m,)
    else:
        with pytest.raises(UserError, match=r"not a square image|rows but y has|is empty"):
            load_digits(path)
