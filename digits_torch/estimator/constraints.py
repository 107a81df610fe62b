"""Parameter constraints in scikit-learn's declarative style, this package's own: the part of
``sklearn.utils._param_validation`` that :mod:`.params`'s table uses, with its messages word
for word.

:mod:`.params` takes scikit-learn's own machinery where it is there and works as the table
needs (its estimator checks read the table in its terms); this module is the fallback where a
scikit-learn release has moved or changed that private module.

A constraint is an :class:`Interval`, :class:`Options` or :class:`StrOptions`, one of the
strings "array-like", "boolean", "random_state" and "verbose", a type (its instances), or None.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import scipy.sparse

__all__ = [
    "Interval",
    "InvalidParameterError",
    "Options",
    "StrOptions",
    "validate_parameter_constraints",
]


class InvalidParameterError(ValueError, TypeError):
    """A parameter of the wrong type or value (a ValueError, as scikit-learn's)."""


def _type_name(t: type) -> str:
    if t.__module__ == "builtins":
        return t.__qualname__
    return {Real: "float", Integral: "int"}.get(t, f"{t.__module__}.{t.__qualname__}")


class Interval:
    """Numbers of ``type`` (Integral or Real) from ``left`` to ``right`` (None: unbounded),
    ``closed`` "left", "right", "both" or "neither"."""

    def __init__(self, type, left, right, *, closed):
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, val) -> bool:
        if not isinstance(val, self.type) or (not isinstance(val, Integral) and np.isnan(val)):
            return False
        left = -np.inf if self.left is None else self.left
        right = np.inf if self.right is None else self.right
        above = val >= left if self.closed in ("left", "both") else val > left
        below = val <= right if self.closed in ("right", "both") else val < right
        return bool(above and below)

    def __str__(self) -> str:
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        if self.type is not Integral:  # bounds given as ints read as floats
            left = float(left) if self.left is not None else left
            right = float(right) if self.right is not None else right
        return (
            f"{'an int' if self.type is Integral else 'a float'} in the range "
            f"{'[' if self.closed in ('left', 'both') else '('}{left}, "
            f"{right}{']' if self.closed in ('right', 'both') else ')'}"
        )


class Options:
    """The values in ``options`` that are instances of ``type``."""

    def __init__(self, type, options):
        self.type, self.options = type, options

    def is_satisfied_by(self, val) -> bool:
        return isinstance(val, self.type) and val in self.options

    def __str__(self) -> str:
        return f"a {_type_name(self.type)} among {{{', '.join(map(repr, self.options))}}}"


class StrOptions(Options):
    """The strings in ``options``."""

    def __init__(self, options):
        super().__init__(str, options)


def _instances(*types: type) -> tuple:
    """(test, description) of the instances of any of ``types``, described as scikit-learn's."""
    names = [f"an instance of {_type_name(t)!r}" for t in types]
    return (lambda val: isinstance(val, types)), _joined(names)


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _array_like(val) -> bool:
    if scipy.sparse.issparse(val) or np.isscalar(val):
        return False
    return hasattr(val, "__len__") or hasattr(val, "shape") or hasattr(val, "__array__")


_SEEDS = Interval(Integral, 0, 2**32 - 1, closed="both")
_COUNTS = Interval(Integral, 0, None, closed="left")
_MARKERS = {
    "array-like": (_array_like, "an array-like"),
    "boolean": _instances(bool, np.bool_),
    "random_state": (
        lambda val: (
            val is None or _SEEDS.is_satisfied_by(val) or isinstance(val, np.random.RandomState)
        ),
        _joined([str(_SEEDS), _instances(np.random.RandomState)[1], "None"]),
    ),
    "verbose": (
        lambda val: _COUNTS.is_satisfied_by(val) or isinstance(val, (bool, np.bool_)),
        _joined([str(_COUNTS), _instances(bool)[1], _instances(np.bool_)[1]]),
    ),
}


def _test_and_description(constraint) -> tuple:
    if constraint is None:
        return (lambda val: val is None), "None"
    if isinstance(constraint, str):
        return _MARKERS[constraint]
    if isinstance(constraint, type):
        return _instances(constraint)
    return constraint.is_satisfied_by, str(constraint)


def validate_parameter_constraints(constraints: dict, params: dict, caller_name: str) -> None:
    """Raise :class:`InvalidParameterError` (scikit-learn's message) for the first parameter
    in ``params`` that satisfies none of its ``constraints``; parameters not in the table pass."""
    for name, value in params.items():
        if name not in constraints:
            continue
        tests, descriptions = zip(*map(_test_and_description, constraints[name]))
        if not any(test(value) for test in tests):
            raise InvalidParameterError(
                f"The {name!r} parameter of {caller_name} must be "
                f"{_joined(list(descriptions))}. Got {value!r} instead."
            )
