"""scikit-learn's own estimator checks (the suite it runs on its own estimators) on
digits_torch.MLPClassifier.

Every check passes in the default (sklearn) arithmetic with scikit-learn's default parameters,
as every one passes for scikit-learn's own MLPClassifier (the same 67 checks for both, two of
them skipped for both: no array-API namespace set, no ``decision_function``): no expected
failures to list. With smaller networks (``hidden_layer_sizes=(5,), max_iter=100``) both
estimators fail the same three cases of ``check_classifiers_train`` (too few epochs to reach its
accuracy bar), and nothing else.
"""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from digits_torch.estimator import MLPClassifier  # noqa: E402

EXPECTED_FAILED_CHECKS: dict[str, str] = {}  # none: see the module docstring


@parametrize_with_checks(
    [MLPClassifier(random_state=0)], expected_failed_checks=lambda _: EXPECTED_FAILED_CHECKS
)
def test_scikit_learns_estimator_checks(estimator, check):
    check(estimator)
