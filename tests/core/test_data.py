"""digits_torch.core.data on the shipped dataset and on every kind of bad file."""

from __future__ import annotations

import builtins

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from digits_torch import DigitsDataset, UserError, load_digits
from digits_torch.core.data import stratified_split, to_image


def test_default_dataset_has_ex4_layout(digits):
    X, y = digits
    assert X.shape == (5000, 400) and X.dtype == np.float32
    assert X.flags["C_CONTIGUOUS"]  # rows contiguous: batches gather whole rows
    assert y.shape == (5000,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [500] * 10
    # grouped by digit, zeros first, as ex4data1
    assert (np.diff(y) >= 0).all() and y[0] == 0 and y[-1] == 9


def test_default_file_stores_coursera_labels():
    from digits_torch.core.data import default_data_path

    raw = scipy.io.loadmat(default_data_path())
    assert raw["X"].dtype == np.float64 and raw["X"].shape == (5000, 400)
    assert raw["y"].dtype == np.uint8 and raw["y"].shape == (5000, 1)
    assert raw["y"][0, 0] == 10 and set(np.unique(raw["y"])) == set(range(1, 11))


def test_to_image_is_upright(digits):
    """A '1' is a vertical stroke: upright, its ink spreads over rows, not columns."""
    X, y = digits
    ones = X[y == 1][:50]
    upright = np.stack([to_image(row) for row in ones]).mean(axis=0)
    rows_inked = (upright.mean(axis=1) > 0.1).sum()
    cols_inked = (upright.mean(axis=0) > 0.1).sum()
    assert rows_inked > 2 * cols_inked
    np.testing.assert_array_equal(to_image(X[0]), X[0].reshape(20, 20).T)


def test_accepts_both_label_conventions_and_vector_shapes(write_mat, digits):
    X, y = digits
    Xs, ys = X[::50], y[::50]
    for labels in (np.where(ys == 0, 10, ys), ys):  # Coursera 1..10, plain 0..9
        for shaped in (labels.reshape(-1, 1), labels.reshape(1, -1), labels.astype(np.float64)):
            got_X, got_y = load_digits(write_mat(X=Xs.astype(np.float64), y=shaped))
            np.testing.assert_array_equal(got_y, ys)
            np.testing.assert_array_equal(got_X, Xs)


def test_integer_pixels_and_other_sizes(write_mat):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(7, 784), dtype=np.uint8)
    X, y = load_digits(write_mat(X=pixels, y=np.arange(7)))
    assert X.shape == (7, 784) and X.dtype == np.float32
    np.testing.assert_allclose(X, pixels / 255.0, rtol=1e-6)
    X16, _ = load_digits(write_mat(X=pixels.astype(np.int16), y=np.arange(7)))
    np.testing.assert_array_equal(X16, pixels.astype(np.float32))


def test_reads_matlab_v73_through_h5py(tmp_path, digits):
    X, y = digits
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["X"] = X[:20].astype(np.float64).T  # MATLAB stores column-major: arrays come transposed
        f["y"] = np.where(y[:20] == 0, 10, y[:20]).astype(np.float64).reshape(1, -1)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64")
    got_X, got_y = load_digits(path)
    np.testing.assert_array_equal(got_X, X[:20])
    np.testing.assert_array_equal(got_y, y[:20])


def test_v73_without_h5py_says_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["X"] = np.zeros((400, 2))
    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("no h5py")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(UserError, match=r"v7\.3 \(HDF5\).*install h5py"):
        load_digits(path)


GOOD_X = np.random.default_rng(1).random((4, 400))
GOOD_Y = np.array([[10], [1], [2], [3]])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"y": GOOD_Y}, r"no variable 'X' \(found: y\)"),
        ({"X": GOOD_X}, r"no variable 'y' \(found: X\)"),
        ({"X": GOOD_X, "y": GOOD_Y[:3]}, r"X has 4 rows but y has 3 labels"),
        ({"X": np.where(GOOD_X > 0.5, np.nan, GOOD_X), "y": GOOD_Y}, r"NaN or infinite"),
        ({"X": np.where(GOOD_X > 0.5, np.inf, GOOD_X), "y": GOOD_Y}, r"NaN or infinite"),
        ({"X": GOOD_X, "y": np.array([1, 2, 3, 11])}, r"labels must be 1\.\.10.*found \[11\]"),
        ({"X": GOOD_X, "y": np.array([0, 2, 3, 10])}, r"mix conventions"),
        ({"X": GOOD_X, "y": np.array([1.5, 2, 3, 4])}, r"not whole numbers"),
        ({"X": GOOD_X[:, :399], "y": GOOD_Y}, r"399 pixels per row, which is not a square"),
        ({"X": np.zeros((0, 400)), "y": np.zeros((0, 1))}, r"X is empty"),
        ({"X": GOOD_X, "y": np.array(["a", "b", "c", "d"])}, r"y must be numeric labels"),
    ],
)
def test_bad_contents_name_file_and_problem(write_mat, arrays, message):
    path = write_mat(**arrays)
    with pytest.raises(UserError, match=message) as err:
        load_digits(path)
    assert str(err.value).startswith(f"{path}: ")


def test_bad_files_name_file_and_problem(tmp_path):
    cases = {
        tmp_path / "missing.mat": r"no such file or directory",
        tmp_path: r"is a directory",
    }
    (tmp_path / "empty.mat").write_bytes(b"")
    cases[tmp_path / "empty.mat"] = r"empty file"
    (tmp_path / "text.mat").write_text("this is not a MAT file\n" * 20)
    cases[tmp_path / "text.mat"] = r"not a readable MAT file"
    for path, message in cases.items():
        with pytest.raises(UserError, match=message) as err:
            load_digits(path)
        assert str(err.value).startswith(f"{path}: "), str(err.value)


def test_dataset_wraps_tensors(digits):
    X, y = digits
    dataset = DigitsDataset(X, y)
    assert len(dataset) == 5000
    x0, y0 = dataset[0]
    assert x0.shape == (400,) and x0.dtype == torch.float32 and y0.item() == 0
    xb, yb = dataset[torch.tensor([0, 4999])]
    assert xb.shape == (2, 400) and yb.tolist() == [0, 9]
    assert DigitsDataset.from_file().X.shape == (5000, 400)


def test_stratified_split_is_seeded_and_stratified(digits):
    _, y = digits
    train, val = stratified_split(y, 0.2, seed=3)
    assert len(val) == 1000 and np.bincount(y[val]).tolist() == [100] * 10
    assert np.intersect1d(train, val).size == 0 and len(train) + len(val) == 5000
    again, _ = stratified_split(y, 0.2, seed=3)
    other, _ = stratified_split(y, 0.2, seed=4)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    assert len(stratified_split(y, 0.0, seed=0)[1]) == 0
