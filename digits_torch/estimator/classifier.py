"""``MLPClassifier``: scikit-learn's estimator of the same name, trained by this package.

The same constructor (scikit-learn's 23 parameters and defaults, plus ``device``,
``arithmetic`` and ``logdir``), methods and fitted attributes, so a script written for
``sklearn.neural_network.MLPClassifier`` runs with only its import changed, and so do
``clone``, ``GridSearchCV``, ``Pipeline``, ``cross_val_score`` and pickle.

Why the default arithmetic is scikit-learn's own (``arithmetic="sklearn"``): a user who changes
the import should get the numbers their script printed before (the article's 0.9658 and 0.9186
to the last digit), not numbers near them. It trains in X's float type on the CPU, every random
number drawn from scikit-learn's ``RandomState`` in its order. ``arithmetic="fast"`` trains in
float32 with torch's own optimizers and random numbers and hand-written backpropagation: the
same model family and hyperparameters, a different (equally good) run, and what a CUDA device
is for (``device="auto"`` takes the GPU for it where there is one).

Training runs the core loop's minibatch epoch (:mod:`digits_torch.core.loop`) with one torch
thread (the package's measured best for networks this small; results are repeatable only at a
fixed thread count), restored afterwards; under ``GridSearchCV(n_jobs=2)`` each job then uses
one thread.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse
import torch
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ..core.model import MLP
from ..fast.backprop import loss_and_gradients
from ..optim.optimizers import SGD, Adam
from ..optim.stopping import EarlyStopping
from ..reference.sklearn_exact import RandomStream, SklearnAdam, SklearnSGD
from ..runtime.devices import resolve_device
from ..runtime.threads import cpu_threads
from .arithmetic import SklearnBackprop, forward, model_layers
from .inputs import batch_size, check_sample_weight, first_partial_fit, validate_input
from .params import PARAMETER_CONSTRAINTS, check_params
from .run_directory import RunDirectory
from .solvers import Epochs, fit_lbfgs, fit_stochastic
from .state import to_numpy, to_torch

__all__ = ["MLPClassifier"]

STOCHASTIC = ("sgd", "adam")


def fit_context(fit_method):
    """What scikit-learn's private ``_fit_context`` does for its estimators' fits, on its
    public config: the parameters checked once (:func:`.params.check_params`), then the fit
    with the checks of the scikit-learn functions it calls skipped (they are given checked
    values)."""

    @functools.wraps(fit_method)
    def fit(estimator, *args, **kwargs):
        check_params(estimator)
        with config_context(skip_parameter_validation=True):
            return fit_method(estimator, *args, **kwargs)

    return fit


ACTIVATION_NAMES = {"logistic": "sigmoid"}  # scikit-learn's name -> MLP's; the rest agree


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multilayer perceptron classifier: ``sklearn.neural_network.MLPClassifier`` on PyTorch.

    Parameters are scikit-learn's (see its documentation), with its defaults, plus:

    Args:
        device: "auto", "cpu", "cuda" or "cuda:N". "auto": the CPU for the sklearn arithmetic,
            CUDA for the fast one where there is a GPU.
        arithmetic: "sklearn" (scikit-learn's arithmetic and random numbers, step for step) or
            "fast" (float32, torch's optimizers and generator).
        logdir: None writes nothing; a directory: the fit's run directory is made in it.

    Attributes are scikit-learn's: ``classes_``, ``coefs_`` and ``intercepts_`` (numpy,
    (in, out) weights), ``loss_``, ``best_loss_``, ``loss_curve_``, ``validation_scores_``,
    ``best_validation_score_``, ``t_``, ``n_iter_``, ``n_layers_``, ``n_outputs_``,
    ``out_activation_``, ``n_features_in_``, ``feature_names_in_``.
    """

    _parameter_constraints = PARAMETER_CONSTRAINTS

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="auto",
        arithmetic="sklearn",
        logdir=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.arithmetic = arithmetic
        self.logdir = logdir

    # ------------------------------------------------------------------ fitting

    @fit_context
    def fit(self, X, y, sample_weight=None):
        """Fit the model to images X (m, n) and labels y (m,) (or (m, k) multilabel), each
        example weighted by ``sample_weight`` (m,) if given."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self) -> bool:
        if self.solver not in STOCHASTIC:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    @available_if(_check_solver)
    @fit_context
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), going on from the last; ``classes`` on the first call."""
        if first_partial_fit(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def _fit(self, X, y, sample_weight, incremental: bool):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = validate_input(self, X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X)
        device = self._device()
        run = None if self.logdir is None else RunDirectory(self.logdir, self.get_params())
        try:
            with cpu_threads(1):
                self._train(X, Y, sample_weight, hidden, device, first_pass, incremental, run)
        except BaseException:
            if run is not None:
                run.close()
            raise
        if run is not None:
            self.run_dir_ = run.dir
            run.close(self, X, self._label_binarizer.inverse_transform(Y))
        return self

    def _train(self, X, Y, sw, hidden, device, first_pass: bool, incremental: bool, run) -> None:
        """Draw or load the weights, train with the solver, keep the weights as numpy."""
        model = self._model(X.shape[1], hidden, Y.shape[1], X.dtype, device, first_pass)
        stream = RandomStream(check_random_state(self.random_state))
        if first_pass:
            self._initialize(Y, len(hidden) + 2)
            self._draw_weights(model, stream)
            self._best_params = None
        if self.solver == "lbfgs":
            X_t = torch.from_numpy(X).to(device)
            targets = self._targets(Y, sw, model, device)
            fit_lbfgs(self, model, X_t, targets, self._exact_gradients(weighted=sw is not None))
        else:
            self._fit_stochastic(model, X, Y, sw, device, stream, incremental, run)
        self._keep(model)

    def _fit_stochastic(self, model, X, Y, sw, device, stream, incremental, run):
        optimizer = self._optimizer(model)
        if incremental and self._optimizer_state is not None:
            optimizer.load_state_dict(to_torch(self._optimizer_state))
        rows, validation = np.arange(len(X)), None
        if self.early_stopping:
            rows, validation = self._split(model, X, Y, sw, stream.random_state, device)
        X_t = torch.from_numpy(X[rows]).to(device=device, dtype=model_dtype(model))
        epochs = Epochs(
            X=X_t,
            targets=self._targets(Y[rows], None if sw is None else sw[rows], model, device),
            gradients=self._gradients(count=run is not None, weighted=sw is not None),
            order=self._order(stream),
            batch_size=batch_size(self.batch_size, len(rows)),
            validation=validation,
            callbacks=() if run is None else (run,),
        )
        fit_stochastic(self, model, optimizer, epochs, incremental)
        self._optimizer_state = to_numpy(optimizer.state_dict())
        self._set_best_attributes()

    def _device(self) -> torch.device:
        if self.device == "auto" and self.arithmetic == "sklearn":
            return torch.device("cpu")
        return resolve_device(self.device)

    def _initialize(self, Y: np.ndarray, n_layers: int) -> None:
        """scikit-learn's ``_initialize``: the attributes a first fit starts from."""
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = n_layers
        binary_or_multilabel = self._label_binarizer.y_type_ != "multiclass"
        self.out_activation_ = "logistic" if binary_or_multilabel else "softmax"
        self._optimizer_state = None
        for name in ("loss_curve_", "validation_scores_", "best_loss_", "best_validation_score_"):
            self.__dict__.pop(name, None)  # lbfgs sets none of them
        if self.solver in STOCHASTIC:
            self.loss_curve_ = []
            self.validation_scores_ = [] if self.early_stopping else None
            monitor = "val_accuracy" if self.early_stopping else "train_loss"
            self._stopping = EarlyStopping(monitor, self.tol, self.n_iter_no_change)
            self._set_best_attributes()

    def _set_best_attributes(self) -> None:
        best = self._stopping.best_score_  # larger is better: minus the loss, or the accuracy
        if self.early_stopping:
            self.best_loss_, self.best_validation_score_ = None, best
        else:
            self.best_loss_, self.best_validation_score_ = -best, None

    def _model(self, n_in, hidden, n_out, dtype, device, first_pass: bool) -> MLP:
        """The network, on ``device`` in X's float type; after a first fit, its weights."""
        activation = ACTIVATION_NAMES.get(self.activation, self.activation)
        throwaway = torch.Generator().manual_seed(0)  # redrawn below: spare torch's global one
        model = MLP(n_in, hidden, n_out, activation, "glorot", generator=throwaway)
        model = model.to(device=device, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype)
        if not first_pass:
            with torch.no_grad():
                for layer, coef, intercept in zip(model.layers, self.coefs_, self.intercepts_):
                    layer.weight.copy_(torch.from_numpy(coef.T.copy()))
                    layer.bias.copy_(torch.from_numpy(intercept))
        return model

    def _draw_weights(self, model: MLP, stream: RandomStream) -> None:
        """scikit-learn's Glorot draws from its RandomState; the fast arithmetic draws with a
        torch generator seeded from it."""
        if self.arithmetic == "sklearn":
            stream.init_(model)
        else:
            model.reset_parameters("glorot", self._torch_generator(stream))

    def _torch_generator(self, stream: RandomStream) -> torch.Generator:
        if not hasattr(stream, "torch_generator"):
            seed = int(stream.random_state.randint(np.iinfo(np.int32).max))
            stream.torch_generator = torch.Generator().manual_seed(seed)
        return stream.torch_generator

    def _optimizer(self, model: MLP) -> torch.optim.Optimizer:
        params, lr = model.parameters(), float(self.learning_rate_init)
        exact = self.arithmetic == "sklearn"
        nesterov = self.nesterovs_momentum and self.momentum > 0  # torch's needs momentum
        if self.solver == "sgd" and exact:
            return SklearnSGD(params, lr=lr, momentum=self.momentum, nesterov=nesterov)
        if exact:
            return SklearnAdam(params, lr, self.beta_1, self.beta_2, self.epsilon)
        # fused: one kernel a step, where the default step costs twice as much on this network
        if self.solver == "sgd":
            return SGD(params, lr=lr, momentum=self.momentum, nesterov=nesterov, fused=True)
        betas = (self.beta_1, self.beta_2)
        return Adam(params, lr=lr, betas=betas, eps=self.epsilon, fused=True)

    def _exact_gradients(self, count: bool = True, weighted: bool = False) -> SklearnBackprop:
        softmax = self.out_activation_ == "softmax"
        return SklearnBackprop(float(self.alpha), softmax, count, weighted)

    def _gradients(self, count: bool, weighted: bool):
        """The batch's gradients; ``count``: whether the epoch's accuracy is read."""
        if self._takes_indices(weighted):
            return functools.partial(loss_and_gradients, loss="softmax", l2=float(self.alpha))
        return self._exact_gradients(count, weighted)

    def _takes_indices(self, weighted: bool) -> bool:
        """The fast softmax without weights: the package's own backprop, on class indices."""
        return self.arithmetic == "fast" and self.out_activation_ == "softmax" and not weighted

    def _targets(self, Y: np.ndarray, sw, model: MLP, device: torch.device) -> torch.Tensor:
        """What the gradients take: class indices for the fast softmax, else indicator rows
        (with each row's weight as a last column where ``sw`` (m,) is given)."""
        if self._takes_indices(sw is not None):
            return torch.from_numpy(Y.argmax(axis=1)).to(device)
        dtype = model_dtype(model)
        targets = torch.from_numpy(Y).to(device=device, dtype=dtype)
        if sw is None:
            return targets
        weights = torch.from_numpy(np.asarray(sw)).to(device=device, dtype=dtype)
        return torch.cat([targets, weights[:, None]], dim=1)

    def _order(self, stream: RandomStream):
        if not self.shuffle:
            return lambda m: torch.arange(m)
        if self.arithmetic == "sklearn":
            return stream.order
        generator = self._torch_generator(stream)
        return lambda m: torch.randperm(m, generator=generator)

    def _split(self, model, X, Y, sw, random_state, device):
        """scikit-learn's early-stopping split (stratified for one output column): the training
        rows, and the validation images with their accuracy function."""
        stratify = Y if self.n_outputs_ == 1 else None
        rows, held = train_test_split(
            np.arange(len(X)),
            random_state=random_state,
            test_size=self.validation_fraction,
            stratify=stratify,
        )
        if len(held) < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size "
                "of your dataset."
            )
        y_val = self._label_binarizer.inverse_transform(Y[held])
        sw_val = None if sw is None else sw[held]
        X_val = torch.from_numpy(X[held]).to(device=device, dtype=model_dtype(model))

        def accuracy(images: torch.Tensor) -> float:
            prob = forward(model_layers(model), model.activation, images, self._softmax)[-1]
            predicted = self._decode(prob.cpu().numpy())
            return accuracy_score(y_val, predicted, sample_weight=sw_val)

        return rows, (X_val, torch.no_grad()(accuracy))

    def _keep(self, model: MLP) -> None:
        """The fitted weights as scikit-learn's numpy arrays, (in, out), on the CPU."""
        self.coefs_ = [layer.weight.detach().cpu().numpy().T.copy() for layer in model.layers]
        self.intercepts_ = [layer.bias.detach().cpu().numpy().copy() for layer in model.layers]
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed."
            )

    # ------------------------------------------------------------------ predicting

    @property
    def _softmax(self) -> bool:
        return self.out_activation_ == "softmax"

    @torch.no_grad()
    def _probabilities(self, X) -> np.ndarray:
        """The output layer's (m, k) values for X, computed on the CPU from ``coefs_``."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        X = X.toarray() if scipy.sparse.issparse(X) else X
        dtype = self.coefs_[0].dtype
        layers = [
            (torch.from_numpy(coef).t(), torch.from_numpy(intercept))
            for coef, intercept in zip(self.coefs_, self.intercepts_)
        ]
        images = torch.from_numpy(np.ascontiguousarray(X, dtype=dtype))
        activation = ACTIVATION_NAMES.get(self.activation, self.activation)
        with cpu_threads(1):
            return forward(layers, activation, images, self._softmax)[-1].numpy()

    def _decode(self, prob: np.ndarray) -> np.ndarray:
        if self.n_outputs_ == 1:
            prob = prob.ravel()
        return self._label_binarizer.inverse_transform(prob)

    def predict(self, X) -> np.ndarray:
        """The predicted labels of X (m, n): (m,), or (m, k) indicators for multilabel."""
        return self._decode(self._probabilities(X))

    def predict_proba(self, X) -> np.ndarray:
        """(m, classes) probabilities, columns in the order of ``classes_``."""
        prob = self._probabilities(X)
        if self.n_outputs_ == 1:
            prob = prob.ravel()
            return np.vstack([1 - prob, prob]).T
        return prob

    def predict_log_proba(self, X) -> np.ndarray:
        """The log of :meth:`predict_proba`."""
        prob = self.predict_proba(X)
        return np.log(prob, out=prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict:
        """The estimator's state with every tensor as a CPU numpy array (see :mod:`.state`)."""
        return to_numpy(super().__getstate__())


def model_dtype(model: MLP) -> torch.dtype:
    return model.layers[0].weight.dtype
