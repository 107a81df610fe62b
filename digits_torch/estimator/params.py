"""The estimator's parameters: scikit-learn's 23, with its defaults and its checks, and three
of this package's own (``device``, ``arithmetic``, ``logdir``).

scikit-learn's rule: ``__init__`` stores the parameters as given; :func:`check_params`, called at
``fit``, raises the ``ValueError`` scikit-learn's own ``MLPClassifier`` raises, word for word.
The constraints are one declarative table in scikit-learn's style (its ``_parameter_constraints``),
built from scikit-learn's private validation module where that is there and works as the table
needs (its estimator checks read the table in its terms), else from this package's own
(:mod:`.constraints`), which gives the same errors.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from types import ModuleType

import numpy as np
from sklearn import get_config

from ..config.bounds import is_device_spec
from . import constraints as own_validation

try:  # private: it may move or change in a later scikit-learn (see _working)
    from sklearn.utils import _param_validation as sklearn_validation
except ImportError:
    sklearn_validation = None

__all__ = [
    "ARITHMETIC",
    "DEFAULTS",
    "OWN_DEFAULTS",
    "PARAMETER_CONSTRAINTS",
    "VALIDATION",
    "check_params",
    "constraint_table",
]

# scikit-learn's MLPClassifier defaults, in its constructor's order (all 23).
DEFAULTS = {
    "hidden_layer_sizes": (100,),
    "activation": "relu",
    "solver": "adam",
    "alpha": 0.0001,
    "batch_size": "auto",
    "learning_rate": "constant",
    "learning_rate_init": 0.001,
    "power_t": 0.5,
    "max_iter": 200,
    "shuffle": True,
    "random_state": None,
    "tol": 1e-4,
    "verbose": False,
    "warm_start": False,
    "momentum": 0.9,
    "nesterovs_momentum": True,
    "early_stopping": False,
    "validation_fraction": 0.1,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-8,
    "n_iter_no_change": 10,
    "max_fun": 15000,
}

# "sklearn": scikit-learn's float64 (or float32, as X) arithmetic, step for step, on any device;
# "fast": float32, torch's own optimizers and random numbers, hand-written backprop.
ARITHMETIC = ("sklearn", "fast")
# device "auto": the sklearn arithmetic on the CPU (where its figures are scikit-learn's to the
# last digit), the fast one on CUDA where there is a GPU.
OWN_DEFAULTS = {"device": "auto", "arithmetic": "sklearn", "logdir": None}


def constraint_table(v: ModuleType) -> dict[str, list]:
    """Each parameter's constraints (any one satisfied will do), in the terms of ``v``:
    scikit-learn's ``_param_validation`` or :mod:`.constraints`. scikit-learn's 23 as its
    ``MLPClassifier._parameter_constraints`` has them, then this package's three."""
    return {
        "hidden_layer_sizes": ["array-like", v.Interval(Integral, 1, None, closed="left")],
        "activation": [v.StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [v.StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [v.Interval(Real, 0, None, closed="left")],
        "batch_size": [v.StrOptions({"auto"}), v.Interval(Integral, 1, None, closed="left")],
        "learning_rate": [v.StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [v.Interval(Real, 0, None, closed="neither")],
        "power_t": [v.Interval(Real, 0, None, closed="left")],
        "max_iter": [v.Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [v.Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [v.Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [v.Interval(Real, 0, 1, closed="left")],
        "beta_1": [v.Interval(Real, 0, 1, closed="left")],
        "beta_2": [v.Interval(Real, 0, 1, closed="left")],
        "epsilon": [v.Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            v.Interval(Integral, 1, None, closed="left"),
            v.Options(Real, {np.inf}),
        ],
        "max_fun": [v.Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "arithmetic": [v.StrOptions(set(ARITHMETIC))],
        "logdir": [str, os.PathLike, None],
    }


def _working(v: ModuleType | None) -> bool:
    """Whether ``v`` builds the table, passes the defaults and rejects a bad value with a
    ValueError naming it: what this module needs of scikit-learn's private machinery."""
    if v is None:
        return False
    params = {**DEFAULTS, **OWN_DEFAULTS}
    try:
        table = constraint_table(v)
        v.validate_parameter_constraints(table, params, caller_name="MLPClassifier")
        v.validate_parameter_constraints(
            table, {**params, "alpha": -1.0}, caller_name="MLPClassifier"
        )
    except ValueError as error:
        return "'alpha' parameter of MLPClassifier must be" in str(error)
    except Exception:  # moved, renamed or changed: any of these means "not as we need it"
        return False
    return False  # it let alpha=-1 through


VALIDATION = sklearn_validation if _working(sklearn_validation) else own_validation
PARAMETER_CONSTRAINTS = constraint_table(VALIDATION)


def check_params(estimator) -> None:
    """Each parameter against the table, then the device's spelling: a ValueError
    (scikit-learn's message). Under scikit-learn's ``skip_parameter_validation`` only the
    device is checked, as scikit-learn checks nothing there."""
    if not get_config().get("skip_parameter_validation", False):
        VALIDATION.validate_parameter_constraints(
            PARAMETER_CONSTRAINTS,
            estimator.get_params(deep=False),
            caller_name=type(estimator).__name__,
        )
    if not is_device_spec(estimator.device):
        raise ValueError(
            f"The 'device' parameter of {type(estimator).__name__} must be 'auto', 'cpu', "
            f"'cuda' or 'cuda:N'. Got {estimator.device!r} instead."
        )
