"""The estimator leans on no private scikit-learn API without a tested fallback: its parameter
table's own checks (where scikit-learn's private ``_param_validation`` is missing or changed)
raise scikit-learn's errors word for word, and the two small private helpers it replaced
(``_check_partial_fit_first_call``, ``_check_sample_weight``) behave as scikit-learn's."""

from __future__ import annotations

import importlib
import re
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
import sklearn.utils  # noqa: E402
from sklearn import config_context  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier  # noqa: E402

from digits_torch.estimator import MLPClassifier, constraints, params  # noqa: E402
from digits_torch.estimator.inputs import check_sample_weight, first_partial_fit  # noqa: E402

X, Y = np.arange(12.0).reshape(4, 3), np.array([1, 2, 1, 2])  # never trained: checks come first

# one bad value a parameter, for every kind of constraint in the table
BAD = {
    "hidden_layer_sizes": 0,
    "activation": "softplus",
    "solver": "newton",
    "alpha": -1.0,
    "batch_size": 0,
    "learning_rate": "cyclic",
    "learning_rate_init": 0.0,
    "power_t": float("nan"),
    "max_iter": 1.5,
    "shuffle": "yes",
    "random_state": -1,
    "tol": -0.1,
    "verbose": -1,
    "warm_start": 1,
    "momentum": 2,
    "nesterovs_momentum": None,
    "early_stopping": "no",
    "validation_fraction": 1.0,
    "beta_1": 1,
    "beta_2": -0.5,
    "epsilon": 0,
    "n_iter_no_change": 0,
    "max_fun": 0,
}
OWN_BAD = {"arithmetic": "slow", "logdir": 3, "device": 5}


def error(kind, name: str, value) -> str:
    """The message of the ValueError that fitting ``kind(name=value)`` raises, any options in
    braces sorted (their order is a set's, which differs between sets of the same strings)."""
    with pytest.raises(ValueError) as raised:
        kind(**{name: value}).fit(X, Y)
    return re.sub(
        r"\{([^}]*)\}", lambda m: "{" + ", ".join(sorted(m[1].split(", "))) + "}", str(raised.value)
    )


def test_the_table_is_scikit_learns():
    assert params.VALIDATION is not constraints  # scikit-learn's machinery, where it works
    assert set(params.PARAMETER_CONSTRAINTS) == set(params.DEFAULTS) | set(params.OWN_DEFAULTS)
    for name, value in BAD.items():
        assert error(MLPClassifier, name, value) == error(SklearnMLPClassifier, name, value)
    assert error(MLPClassifier, "activation", "softplus") == (
        "The 'activation' parameter of MLPClassifier must be a str among {'identity', "
        "'logistic', 'relu', 'tanh'}. Got 'softplus' instead."
    )


def test_without_the_private_module_the_own_checks_give_the_same_errors(monkeypatch):
    every = {**BAD, **OWN_BAD}
    expected = {name: error(MLPClassifier, name, value) for name, value in every.items()}
    try:
        with monkeypatch.context() as hidden:
            hidden.setitem(sys.modules, "sklearn.utils._param_validation", None)
            hidden.delattr(sklearn.utils, "_param_validation")
            importlib.reload(params)
            assert params.VALIDATION is constraints
            got = {name: error(MLPClassifier, name, value) for name, value in every.items()}
    finally:
        importlib.reload(params)
    assert params.VALIDATION is not constraints  # scikit-learn's again, for the other tests
    assert got == expected
    assert expected["logdir"] == (
        "The 'logdir' parameter of MLPClassifier must be an instance of 'str', an instance of "
        "'os.PathLike' or None. Got 3 instead."
    )


@pytest.mark.parametrize("machinery", ["sklearn", "own"])
def test_both_machineries_pass_every_kind_of_good_value(machinery):
    v = params.VALIDATION if machinery == "sklearn" else constraints
    table = params.constraint_table(v)
    good = {
        "hidden_layer_sizes": [5, 3],
        "batch_size": 10,
        "random_state": np.random.RandomState(0),
        "verbose": True,
        "shuffle": np.bool_(False),
        "n_iter_no_change": np.inf,
        "momentum": 1,
        "max_iter": np.int64(3),
        "logdir": Path("runs"),
    }
    for name, value in {**params.DEFAULTS, **params.OWN_DEFAULTS, **good}.items():
        v.validate_parameter_constraints(table, {name: value}, caller_name="MLPClassifier")
    with pytest.raises(ValueError, match="'max_iter' parameter of MLPClassifier must be"):
        v.validate_parameter_constraints(table, {"max_iter": 0}, caller_name="MLPClassifier")


def test_a_changed_private_module_is_not_used():
    assert params._working(params.VALIDATION) and params._working(constraints)
    assert not params._working(None)
    assert not params._working(types.SimpleNamespace())  # its names gone
    lenient = types.SimpleNamespace(
        **{k: getattr(constraints, k) for k in ("Interval", "Options", "StrOptions")},
        validate_parameter_constraints=lambda *args, **kwargs: None,  # checks nothing
    )
    assert not params._working(lenient)


def test_skip_parameter_validation_skips_the_table_as_scikit_learns_does():
    for kind in (MLPClassifier, SklearnMLPClassifier):
        with config_context(skip_parameter_validation=True), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            kind(alpha=-1.0, hidden_layer_sizes=(2,), max_iter=1).fit(X, Y)
    with config_context(skip_parameter_validation=True), pytest.raises(ValueError):
        MLPClassifier(device="gpu").fit(X, Y)  # this package's own check stays


def test_partial_fits_first_call():
    est = types.SimpleNamespace()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        first_partial_fit(est, None)
    assert first_partial_fit(est, [3, 1, 3, 2])
    np.testing.assert_array_equal(est.classes_, [1, 2, 3])
    assert not first_partial_fit(est, None)
    assert not first_partial_fit(est, np.array([2, 3, 1]))
    with pytest.raises(ValueError, match="is not the same as on last call to partial_fit"):
        first_partial_fit(est, [1, 2])


def test_sample_weights_are_checked_as_scikit_learn_checks_them():
    rows = np.zeros((3, 2))
    weights = check_sample_weight(2.5, rows)
    assert weights.dtype == np.float64 and weights.tolist() == [2.5, 2.5, 2.5]
    assert check_sample_weight([1, 0, 2], rows).dtype == np.float64
    assert check_sample_weight(np.ones(3, np.float32), rows).dtype == np.float32
    assert check_sample_weight(np.ones((6, 2))[::2, 0], rows).flags.c_contiguous
    with pytest.raises(ValueError, match="Sample weights must be 1D array or scalar, got 2D"):
        check_sample_weight(np.ones((3, 1)), rows)
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(2,\), expected \(3,\)!"):
        check_sample_weight([1, 2], rows)
    with pytest.raises(ValueError, match="at least one non-zero number"):
        check_sample_weight([0, 0, 0], rows)


def test_lbfgs_that_stops_short_warns_as_scikit_learn_does(digits):
    """L-BFGS-B cut off at max_iter: the same ConvergenceWarning, word for word, and the same
    n_iter_ (the package's own few lines, not scikit-learn's private helper)."""
    X, y = digits
    X, y = X[::50].astype(np.float64), y[::50]
    said = []
    for estimator in (SklearnMLPClassifier, MLPClassifier):
        clf = estimator(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=3, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf.fit(X, y)
        messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
        said.append((messages, clf.n_iter_))
    assert said[0] == said[1]
    assert len(said[0][0]) == 1 and "max_iter=3" in said[0][0][0]
