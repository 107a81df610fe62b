"""What a fit trains on: the data checked and encoded as scikit-learn's ``MLPClassifier``
does (on scikit-learn's public helpers; the two private ones it uses are a few lines here),
and its batch size."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import validate_data

__all__ = ["batch_size", "check_sample_weight", "first_partial_fit", "validate_input"]


def validate_input(est, X, y, incremental: bool, reset: bool) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``_validate_input``: X (m, n) as a dense C-ordered float array (float32
    for the fast arithmetic), y checked against (or setting) ``est.classes_``; returns X and
    the (m, k) boolean indicator rows of y."""
    X, y = validate_data(
        est,
        X,
        y,
        accept_sparse=["csr", "csc"],
        multi_output=True,
        dtype=(np.float64, np.float32),
        reset=reset,
    )
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    if not hasattr(est, "classes_") or (not est.warm_start and not incremental):
        est._label_binarizer = LabelBinarizer()
        est._label_binarizer.fit(y)
        est.classes_ = est._label_binarizer.classes_
    else:
        classes = unique_labels(y)
        if est.warm_start:
            if set(classes) != set(est.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {est.classes_}, `y` has {classes}"
                )
        elif len(np.setdiff1d(classes, est.classes_, assume_unique=True)):
            raise ValueError(
                f"`y` has classes not in `est.classes_`. `est.classes_` has "
                f"{est.classes_}. 'y' has {classes}."
            )
    Y = est._label_binarizer.transform(y).astype(bool)
    X = X.toarray() if scipy.sparse.issparse(X) else X  # the network's layers are dense
    if est.arithmetic == "fast":
        X = X.astype(np.float32, copy=False)
    return np.ascontiguousarray(X), Y


def batch_size(requested, m: int) -> int:
    """The rows of a step: scikit-learn's ``min(200, m)`` for "auto", else ``requested``
    clipped to [1, m] (with its warning)."""
    if requested == "auto":
        return min(200, m)
    if requested > m:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
            stacklevel=3,
        )
    return int(np.clip(requested, 1, m))


def first_partial_fit(est, classes) -> bool:
    """Whether this is ``est``'s first ``partial_fit`` (then ``classes`` are required and set
    ``est.classes_``); later ``classes``, if given, must be the first call's (scikit-learn's
    private ``_check_partial_fit_first_call``, its messages)."""
    known = getattr(est, "classes_", None)
    if classes is None:
        if known is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return False
    if known is None:
        est.classes_ = unique_labels(classes)
        return True
    if not np.array_equal(known, unique_labels(classes)):
        raise ValueError(
            f"`classes={classes!r}` is not the same as on last call to partial_fit, was: {known!r}"
        )
    return False


def check_sample_weight(sample_weight, X: np.ndarray) -> np.ndarray:
    """The (m,) weights of X's m rows, C-ordered float64 (float32 kept): a number weighs every
    row alike (scikit-learn's private ``_check_sample_weight``, its messages)."""
    m = len(X)
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(m, sample_weight, dtype=np.float64)
    else:
        sample_weight = check_array(
            sample_weight,
            accept_sparse=False,
            ensure_2d=False,
            dtype=[np.float64, np.float32],
            order="C",
            input_name="sample_weight",
        )
        if sample_weight.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
                f"Expected either a scalar value or a 1D array of length {m}."
            )
        if sample_weight.shape != (m,):
            raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected {(m,)}!")
    if np.all(sample_weight == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sample_weight
