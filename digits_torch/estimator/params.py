"""The estimator's parameters: scikit-learn's 23, with its defaults and its checks, and three
of this package's own (``device``, ``arithmetic``, ``logdir``).

scikit-learn's rule: ``__init__`` stores the parameters as given; :func:`check_params`, called at
``fit``, raises the ``ValueError`` scikit-learn's own ``MLPClassifier`` raises (its constraint
table is used as it is, so the messages are word for word scikit-learn's).
"""

from __future__ import annotations

import os

from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.utils._param_validation import StrOptions

from ..config.bounds import is_device_spec

__all__ = ["ARITHMETIC", "DEFAULTS", "OWN_DEFAULTS", "PARAMETER_CONSTRAINTS", "check_params"]

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

PARAMETER_CONSTRAINTS = {
    **SklearnMLPClassifier._parameter_constraints,
    "device": [str],
    "arithmetic": [StrOptions(set(ARITHMETIC))],
    "logdir": [str, os.PathLike, None],
}


def check_params(estimator) -> None:
    """scikit-learn's checks of every parameter, then the device's spelling: a ValueError."""
    estimator._validate_params()
    if not is_device_spec(estimator.device):
        raise ValueError(
            f"The 'device' parameter of {type(estimator).__name__} must be 'auto', 'cpu', "
            f"'cuda' or 'cuda:N'. Got {estimator.device!r} instead."
        )
