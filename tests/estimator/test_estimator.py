"""digits_torch.MLPClassifier against scikit-learn's own MLPClassifier, and in scikit-learn's
machinery (clone, GridSearchCV, Pipeline, cross_val_score, pickle), on the shipped digits."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import digits_torch  # noqa: E402
from digits_torch import load_digits  # noqa: E402
from digits_torch.estimator import MLPClassifier, solvers  # noqa: E402
from digits_torch.estimator.params import DEFAULTS, OWN_DEFAULTS  # noqa: E402

TOLERANCE = 1e-8
SMALL = {"hidden_layer_sizes": (10,), "max_iter": 15, "random_state": 0}


@pytest.fixture(scope="module")
def digits():
    """400 of the shipped digits as the file stores them: float64 X (400, 400), labels 1..10."""
    X, labels = load_digits(dtype=np.float64, stored_labels=True)
    rows = np.random.RandomState(0).choice(len(X), 400, replace=False)
    return X[rows], labels[rows]


def quietly(estimator, *args, method="fit", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return getattr(estimator, method)(*args, **kwargs)


def assert_same_fit(ours, theirs, tolerance=TOLERANCE):
    """The same weights, loss curve, iterations and stopping figures as scikit-learn's."""
    assert ours.n_iter_ == theirs.n_iter_
    for name in ("n_layers_", "n_outputs_", "out_activation_", "t_", "n_features_in_"):
        assert getattr(ours, name, None) == getattr(theirs, name, None), name
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    for got, want in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance)
    assert ours.loss_ == pytest.approx(theirs.loss_, abs=tolerance)
    for name in ("loss_curve_", "validation_scores_"):
        if getattr(theirs, name, None) is None:
            assert getattr(ours, name, None) is None, name
        else:
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), atol=tolerance)
    for name in ("best_loss_", "best_validation_score_"):
        assert getattr(ours, name, None) == pytest.approx(getattr(theirs, name, None)), name


CASES = {
    "sgd": {"solver": "sgd"},
    "sgd-adaptive-early_stopping": {
        "solver": "sgd",
        "learning_rate": "adaptive",
        "early_stopping": True,
        "tol": 0.1,
        "n_iter_no_change": 1,
    },
    "sgd-invscaling-tanh": {"solver": "sgd", "learning_rate": "invscaling", "activation": "tanh"},
    "sgd-logistic-no_shuffle-batch_50": {
        "solver": "sgd",
        "activation": "logistic",
        "shuffle": False,
        "batch_size": 50,
    },
    "adam": {},
    "adam-early_stopping": {"early_stopping": True},
    "adam-two_layers-identity": {"hidden_layer_sizes": (8, 6), "activation": "identity"},
    "lbfgs": {"solver": "lbfgs"},
}


@pytest.mark.parametrize("params", CASES.values(), ids=CASES.keys())
def test_the_sklearn_arithmetic_is_scikit_learns(digits, params):
    X, labels = digits
    params = {**SMALL, **params}
    ours = quietly(MLPClassifier(**params), X, labels)
    theirs = quietly(SklearnMLPClassifier(**params), X, labels)
    assert_same_fit(ours, theirs)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=TOLERANCE)
    if params.get("early_stopping"):  # the best epoch's weights, not the last's
        assert ours.best_validation_score_ == max(ours.validation_scores_)


@pytest.mark.parametrize("kind", ["binary", "multilabel", "strings"])
def test_any_labels_as_scikit_learn_takes_them(digits, kind):
    X, labels = digits
    y = {
        "binary": labels % 2,  # one logistic output unit
        "multilabel": np.stack([labels % 2, labels > 5, labels == 3], axis=1).astype(int),
        "strings": np.array(["zero", "one", "two", "three", "four"])[labels % 5],
    }[kind]
    ours = quietly(MLPClassifier(**SMALL, early_stopping=kind == "binary"), X, y)
    theirs = quietly(SklearnMLPClassifier(**SMALL, early_stopping=kind == "binary"), X, y)
    assert_same_fit(ours, theirs)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=TOLERANCE)
    expected_units = {"binary": 1, "multilabel": 3, "strings": 5}[kind]
    assert ours.coefs_[-1].shape == (10, expected_units)
    assert ours.score(X, y) == theirs.score(X, y)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sample_weights_as_scikit_learns(digits, solver):
    X, labels = digits
    weights = np.random.RandomState(1).rand(len(X)) * 2
    params = {**SMALL, "solver": solver, "early_stopping": solver == "adam"}
    ours = quietly(MLPClassifier(**params), X, labels, sample_weight=weights)
    theirs = quietly(SklearnMLPClassifier(**params), X, labels, sample_weight=weights)
    assert_same_fit(ours, theirs)
    unweighted = quietly(MLPClassifier(**params), X, labels)
    assert not np.allclose(unweighted.coefs_[0], ours.coefs_[0])  # the weights did act


def test_float32_images_train_in_float32(digits):
    X, labels = digits
    ours = quietly(MLPClassifier(**SMALL, solver="sgd"), X.astype(np.float32), labels)
    theirs = quietly(SklearnMLPClassifier(**SMALL, solver="sgd"), X.astype(np.float32), labels)
    assert ours.coefs_[0].dtype == np.float32
    assert_same_fit(ours, theirs, tolerance=1e-5)


def test_partial_fit_goes_on_as_scikit_learns(digits):
    X, labels = digits
    ours, theirs = MLPClassifier(**SMALL), SklearnMLPClassifier(**SMALL)
    classes = np.unique(labels)
    for start in (0, 100, 200):
        rows = slice(start, start + 150)
        ours.partial_fit(X[rows], labels[rows], classes=classes)
        theirs.partial_fit(X[rows], labels[rows], classes=classes)
    assert_same_fit(ours, theirs)
    assert ours.t_ == 450
    with pytest.raises(ValueError, match="classes not in"):
        ours.partial_fit(X[:10], np.full(10, 99))
    with pytest.raises(AttributeError, match="partial_fit"):
        MLPClassifier(solver="lbfgs").partial_fit(X, labels, classes=classes)


def test_warm_start_goes_on_as_scikit_learns(digits):
    X, labels = digits
    ours = MLPClassifier(**SMALL, solver="sgd", warm_start=True)
    theirs = SklearnMLPClassifier(**SMALL, solver="sgd", warm_start=True)
    for _ in range(2):
        quietly(ours, X, labels)
        quietly(theirs, X, labels)
    assert len(ours.loss_curve_) == 2 * SMALL["max_iter"]
    assert_same_fit(ours, theirs)
    with pytest.raises(ValueError, match="warm_start can only be used"):
        ours.fit(X, labels % 3)


def test_pickle_holds_cpu_numpy_state_only(digits):
    X, labels = digits
    model = quietly(MLPClassifier(**SMALL), X, labels)
    state = model.__getstate__()

    def leaves(tree):
        if isinstance(tree, dict):
            for value in tree.values():
                yield from leaves(value)
        elif isinstance(tree, (list, tuple)):
            for value in tree:
                yield from leaves(value)
        else:
            yield tree

    found = [leaf for leaf in leaves(state) if isinstance(leaf, (torch.Tensor, torch.device))]
    assert found == []  # so a pickle made on a GPU machine loads where there is none
    assert not any(isinstance(v, torch.nn.Module) for v in state.values())
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    quietly(again, X[:150], labels[:150], method="partial_fit")  # goes on from its optimizer
    quietly(model, X[:150], labels[:150], method="partial_fit")
    assert_same_fit(again, model, tolerance=0)


def test_clone_gridsearch_and_pipeline(digits):
    X, labels = digits
    model = MLPClassifier(**SMALL, arithmetic="fast")
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy is not model
    # two jobs, each told to report the torch threads it fitted with through its score
    search = GridSearchCV(
        model,
        {"alpha": [1e-4, 1e-2]},
        cv=2,
        n_jobs=2,
        scoring=lambda estimator, X, y: torch.get_num_threads(),
    )
    quietly(search, X, labels)
    assert list(search.cv_results_["mean_test_score"]) == [1.0, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = (
            cross_val_score(make_pipeline(StandardScaler(), kind(**SMALL)), X, labels, cv=3)
            for kind in (MLPClassifier, SklearnMLPClassifier)
        )
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert len(ours) == 3 and ours.min() > 0.3  # ten classes: chance is 0.1


def test_the_parameters_are_scikit_learns_and_checked_at_fit(digits):
    X, labels = digits
    theirs = SklearnMLPClassifier().get_params()
    ours = MLPClassifier().get_params()
    assert {k: v for k, v in ours.items() if k in theirs} == theirs == DEFAULTS
    assert set(ours) - set(theirs) == set(OWN_DEFAULTS)
    model = MLPClassifier(alpha=-1, device="gpu")  # nothing is checked in __init__
    with pytest.raises(ValueError, match="'alpha' parameter of MLPClassifier must be"):
        model.fit(X, labels)
    with pytest.raises(ValueError, match="'device' parameter"):
        model.set_params(alpha=1e-4).fit(X, labels)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            MLPClassifier(device="cuda").fit(X, labels)


def test_warnings_and_verbose_lines_are_scikit_learns(digits, capsys):
    X, labels = digits
    y = labels.reshape(-1, 1)
    outputs = []
    for kind in (MLPClassifier, SklearnMLPClassifier):
        estimator = kind(**SMALL, verbose=True, early_stopping=True, n_iter_no_change=2)
        with pytest.warns(DataConversionWarning), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X, y)
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert "Iteration 1, loss = " in outputs[0] and "Validation score: " in outputs[0]
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        MLPClassifier(max_iter=3, hidden_layer_sizes=(5,)).fit(X, labels)


def test_pandas_frames_name_their_features(digits):
    pd = pytest.importorskip("pandas")
    X, labels = digits
    frame = pd.DataFrame(X[:, :20], columns=[f"pixel{i}" for i in range(20)])
    model = quietly(MLPClassifier(**SMALL), frame, labels)
    assert list(model.feature_names_in_) == list(frame.columns)
    assert model.n_features_in_ == 20 and model.predict(frame).shape == (400,)


def test_the_fast_arithmetic_learns_the_digits(digits):
    X, labels = digits
    model = quietly(
        MLPClassifier(hidden_layer_sizes=(25,), random_state=0, arithmetic="fast"), X, labels
    )
    assert model.coefs_[0].dtype == np.float32
    assert model.score(X, labels) > 0.9  # training accuracy after 200 adam epochs
    again = quietly(clone(model), X, labels)  # a seed fixes the run
    np.testing.assert_array_equal(again.coefs_[0], model.coefs_[0])


def test_the_package_exports_the_estimator():
    assert digits_torch.MLPClassifier is MLPClassifier


def test_logdir_none_writes_nothing_and_a_logdir_gets_a_run(digits, tmp_path, monkeypatch):
    X, labels = digits
    monkeypatch.chdir(tmp_path)
    quietly(MLPClassifier(**SMALL), X, labels)
    assert list(tmp_path.iterdir()) == []
    model = quietly(
        MLPClassifier(**SMALL, early_stopping=True, logdir=tmp_path / "runs"), X, labels
    )
    assert model.run_dir_.parent == tmp_path / "runs"
    history = [json.loads(line) for line in (model.run_dir_ / "history.jsonl").open()]
    assert [r["train_loss"] for r in history] == model.loss_curve_
    assert [r["val_accuracy"] for r in history] == model.validation_scores_
    assert json.loads((model.run_dir_ / "config.json").read_text())["max_iter"] == 15
    assert list(model.run_dir_.glob("events.out.tfevents.*"))
    pictures = {p.stem for p in (model.run_dir_ / "figures").glob("*.png")}
    assert pictures == {"digits", "hidden_units", "mistakes", "confusion"}
    strings = np.array(list("abcdefghij"))[labels % 10]  # not digits: no pictures
    model = quietly(MLPClassifier(**SMALL, logdir=tmp_path / "runs"), X, strings)
    assert not (model.run_dir_ / "figures").exists()


def test_the_fast_steps_shortcut_is_the_optimizers_own_step(digits, monkeypatch):
    X, labels = digits
    params = {**SMALL, "solver": "sgd", "arithmetic": "fast", "learning_rate": "invscaling"}
    shortcut = quietly(MLPClassifier(**params), X, labels)
    monkeypatch.setattr(solvers, "optimizer_step", lambda optimizer: optimizer.step)
    public = quietly(MLPClassifier(**params), X, labels)
    for got, want in zip(
        shortcut.coefs_ + shortcut.intercepts_, public.coefs_ + public.intercepts_
    ):
        np.testing.assert_array_equal(got, want)
