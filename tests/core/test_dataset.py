"""The digits as a torch Dataset (digits_torch.core.dataset): load_digits' arrays as two tensors,
converted to float32 pixels and int64 digits, taken by index, slice or DataLoader, and kept on
the device asked for.

Its length and first item on the shipped dataset are tested in tests/core/test_data.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from digits_torch import DigitsDataset, load_digits


@pytest.fixture(scope="module")
def dataset() -> DigitsDataset:
    return DigitsDataset.from_file()


def test_the_shipped_dataset_is_load_digits_arrays_bit_for_bit(dataset, digits):
    X, y = digits
    assert (dataset.X.dtype, dataset.y.dtype) == (torch.float32, torch.int64)
    assert torch.equal(dataset.X, torch.from_numpy(X))
    assert torch.equal(dataset.y, torch.from_numpy(y))
    for i in (1, len(y) // 2, -1):
        x, label = dataset[i]
        assert x.shape == (X.shape[1],) and label.shape == ()
        assert torch.equal(x, torch.from_numpy(X[i])) and label.item() == y[i]


def test_a_slice_is_a_batch_of_rows_and_labels(dataset, digits):
    X, y = digits
    xb, yb = dataset[495:505]  # the last zeros and the first ones
    assert torch.equal(xb, torch.from_numpy(X[495:505])) and yb.tolist() == y[495:505].tolist()


def test_a_data_loader_batches_it_back_into_the_whole_dataset(dataset):
    batches = list(DataLoader(dataset, batch_size=1000))
    assert len(batches) == -(-len(dataset) // 1000)  # len() tells the loader how many
    assert torch.equal(torch.cat([xb for xb, _ in batches]), dataset.X)
    assert torch.equal(torch.cat([yb for _, yb in batches]), dataset.y)


def test_other_dtypes_become_float32_pixels_and_int64_digits(digits):
    X, y = digits
    dataset = DigitsDataset(X.astype(np.float64), y.astype(np.uint8))
    assert (dataset.X.dtype, dataset.y.dtype) == (torch.float32, torch.int64)
    assert torch.equal(dataset.X, torch.from_numpy(X))
    assert torch.equal(dataset.y, torch.from_numpy(y))


def test_rows_and_labels_of_different_counts_are_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"^X has 3 rows but y has 2$"):
        DigitsDataset(X[:3], y[:2])


def test_from_file_reads_the_file_it_is_given(small_digits, digits):
    X, y = load_digits(small_digits)
    dataset = DigitsDataset.from_file(small_digits)
    assert len(dataset) == len(y) < len(digits[1])
    assert torch.equal(dataset.X, torch.from_numpy(X))
    assert torch.equal(dataset.y, torch.from_numpy(y))


def test_both_tensors_are_kept_on_the_device_asked_for(digits):
    """The meta device (shapes and dtypes without data) stands for a GPU on a CPU-only machine."""
    X, y = digits
    dataset = DigitsDataset(X, y, device="meta")
    assert dataset.X.device == dataset.y.device == torch.device("meta")
    x, label = dataset[0]
    assert (x.device, x.shape, label.dtype) == (torch.device("meta"), (X.shape[1],), torch.int64)
