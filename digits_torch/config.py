"""The run's configuration: one frozen dataclass, its validation, the presets and the device.

    config = make_config("coursera", device="cpu")   # a preset, with overrides
    config.to_dict()                                 # what a run saves as config.json

Validation is a table, as scikit-learn's ``_parameter_constraints``: one rule per field
(:data:`FIELD_RULES`), then a few named rules that relate fields (:data:`CROSS_RULES`). Every
rule runs in ``__post_init__``, so the CLI, the Python API and a hand-edited ``config.json`` are
held to the same bounds, and a bad value is one :class:`UserError` naming it.

Each field declares its roles beside its help text (:data:`ROLES`: a hyperparameter, names the
run, may change on resume, may be swept, shared by a stack, ...), and every list of fields by
role is derived from them (:func:`fields_with`). Adding a field touches its line here, the code
it affects, and its row of tests/test_bounds.py.

The module runs past 400 lines on purpose: the fields with their help texts, the rule table and
the presets are one declarative description of a run, meant to be read side by side.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import numbers
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .distributed import job_ranks
from .errors import UserError, no_such_path, reading
from .losses import LOSSES
from .model import ACTIVATIONS, INITS
from .schedule import SCHEDULES

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "ROLES",
    "TrainConfig",
    "fields_with",
    "make_config",
    "preset_differences",
    "read_config_file",
    "resolve_device",
]

OPTIMIZERS = ("sgd", "adam", "lbfgs", "fmincg")
# Optimizers that take one step on all the training digits per epoch: an epoch is an iteration.
FULL_BATCH = ("lbfgs", "fmincg")
BACKPROPS = ("explicit", "autograd")
MONITORS = ("train_loss", "val_loss", "val_accuracy")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
ACTIVATION_ALIASES = {"logistic": "sigmoid"}  # scikit-learn's name for the sigmoid
SEED_LIMIT = 2**64  # torch.Generator.manual_seed takes seeds below this
SKLEARN_SEED_LIMIT = 2**32  # numpy's RandomState, which sklearn-exact mode draws from
MAX_DEPTH = 100  # hidden layers
MEMORY_LIMIT = 64 * 2**30  # bytes a model may need while training (an estimate, see below)
ESTIMATED_INPUTS = 400  # pixels per image assumed by the estimate (the shipped 20 x 20)
MAX_THREADS = 1024  # torch.set_num_threads overflows above 2**31 - 1; no machine has this many
MAX_RANK_TIMEOUT = 7 * 24 * 3600.0  # seconds (a week); a timedelta overflows above about 1e14
MAX_AUG_SHIFT = 20.0  # pixels: the side of ex4's images; a shift past it moves every digit out
MAX_AUG_ROTATE = 180.0  # degrees either way: a full turn
MAX_ELASTIC = (100.0, 20.0)  # pixels: alpha, sigma (Simard et al. used 34 and 4 on 28 x 28)
MAX_TEMPERATURE = 100.0


# A field's roles: what the package does with it, declared beside its help text (as its bound
# is in FIELD_RULES). Every list of fields by role is derived from them (:func:`fields_with`).
ROLES = {
    "hparam": "a hyperparameter: the run's HParams entry lists it",
    "named": "a run directory's name shows it where it differs from the preset's",
    "learned": "changes what a network learns: a sweep's --grid may vary it",
    "sweep_wide": "how a whole sweep runs: one value for all its networks, never swept",
    "resumable": "a resume may change it: how a run goes on or is watched, not what it trained",
    "stacked": "a stack's networks share it: their shapes, data and loss (the stack key)",
    "augments": "distorts or labels a batch's digits: stacked networks share batches only if equal",
}
# The roles of a field that changes what a network learns: most fields.
TRAINS = ("hparam", "named", "learned")


def _field(
    default,
    help: str,
    roles: tuple[str, ...] = TRAINS,
    sklearn: str | None = None,
    metavar: tuple[str, ...] | None = None,
):
    """A config field with its one-line meaning, which ``--help`` shows, its :data:`ROLES`,
    the name of scikit-learn's MLPClassifier parameter that means the same, if any, and (a
    fixed-length tuple) the names ``--help`` gives its values."""
    unknown = set(roles) - ROLES.keys()
    if unknown:
        raise ValueError(f"unknown field roles {sorted(unknown)}")
    metadata = {"help": help, "roles": roles, "sklearn": sklearn, "metavar": metavar}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; each run saves it as config.json.

    The field defaults are the ``seed`` preset: the article's scikit-learn script.
    """

    # --- run
    preset: str = _field(
        "seed",
        "named defaults to start from (listed below; flags override)",
        roles=("hparam", "sweep_wide"),
    )
    device: str = _field(
        "auto",
        "auto, cpu, cuda or cuda:N (auto = CUDA when available)",
        roles=("hparam", "sweep_wide", "resumable"),
    )
    logdir: str = _field(
        "runs", "where run directories are created (TensorBoard's --logdir)", roles=("sweep_wide",)
    )
    name: str = _field("", "appended to the run directory's name", roles=("sweep_wide",))
    image_every: int = _field(
        50, "log the hidden units to TensorBoard as an image every N epochs (0: never)", roles=()
    )
    figures: bool = _field(
        True, "draw the run's pictures into figures/ and TensorBoard at the end", roles=()
    )
    quiet: bool = _field(False, "print only the final line", roles=("sweep_wide", "resumable"))
    checkpoint_every: float = _field(
        5.0,
        "seconds of training between checkpoints (also written at the end and on Ctrl-C or "
        "SIGTERM; a kill loses at most this much; 0: every epoch)",
        roles=("resumable",),
    )
    rank_timeout: float = _field(
        120.0,
        "under torchrun: seconds a rank waits for the others at a collective before the job "
        "ends with an error (a rank died, a machine went away)",
        roles=("sweep_wide", "resumable"),
    )
    # --- data
    data: str | None = _field(
        None,
        "ex4-style .mat to train on (default: the shipped 5,000 digits)",
        roles=(*TRAINS, "stacked"),
    )
    seed: int = _field(
        0, "seeds initialisation, shuffling and the validation split", sklearn="random_state"
    )
    val_fraction: float = _field(
        0.0,
        "share of each digit held out for validation (0: train on all)",
        roles=(*TRAINS, "stacked"),
        sklearn="validation_fraction",
    )
    # --- model
    hidden: tuple[int, ...] = _field(
        (25,), "hidden layer sizes", roles=(*TRAINS, "stacked"), sklearn="hidden_layer_sizes"
    )
    activation: str = _field(
        "relu",
        "hidden activation: sigmoid (or scikit-learn's name, logistic), relu, tanh, identity",
        roles=(*TRAINS, "stacked"),
        sklearn="activation",
    )
    init: str = _field(
        "glorot", "initial weights: glorot (scikit-learn's) or coursera (uniform +-0.12)"
    )
    loss: str = _field(
        "softmax",
        "softmax cross-entropy, or coursera (ex4's sum of sigmoid log-losses)",
        roles=(*TRAINS, "stacked"),
    )
    # --- optimisation
    optimizer: str = _field(
        "sgd", "sgd, adam, lbfgs or fmincg (the last two: full batch, one iteration an epoch)"
    )
    epochs: int = _field(
        1000,
        "most epochs to train (L-BFGS: iterations)",
        roles=(*TRAINS, "resumable"),
        sklearn="max_iter",
    )
    batch_size: int = _field(
        200,
        "examples per step (capped at the training set's size)",
        roles=(*TRAINS, "stacked"),
        sklearn="batch_size",
    )
    lr: float = _field(
        0.001, "learning rate (L-BFGS: initial step length)", sklearn="learning_rate_init"
    )
    momentum: float = _field(0.9, "SGD momentum", sklearn="momentum")
    nesterov: bool = _field(True, "SGD with Nesterov momentum", sklearn="nesterovs_momentum")
    backprop: str = _field("explicit", "gradients by hand-written backprop (fast) or autograd")
    dtype: str = _field(
        "float32", "float32 or float64, for the weights and the data", roles=(*TRAINS, "stacked")
    )
    sklearn_exact: bool = _field(
        False,
        "repeat scikit-learn's MLPClassifier(solver='sgd') step for step: init, validation "
        "split and shuffles from numpy's RandomState(seed), its SGD, its clipped log-loss",
    )
    threads: int = _field(
        1,
        "CPU threads for torch's operations (0: torch's default, one per core); results are "
        "bit-for-bit repeatable at the same count (docs/speed.md)",
        roles=("hparam",),
    )
    cuda_graph: bool = _field(
        False,
        "on CUDA, replay each epoch as one captured CUDA graph (needs SGD, explicit backprop, "
        "float32; no effect on CPU)",
        roles=("hparam", "named"),
    )
    # --- schedule
    schedule: str = _field(
        "constant",
        "lr schedule per epoch: constant; cosine (down to 0); scikit-learn's invscaling "
        "(lr / (samples seen + 1) ** power_t) or adaptive (lr / 5 where training would stop)",
        sklearn="learning_rate",
    )
    power_t: float = _field(0.5, "invscaling's exponent", sklearn="power_t")
    # --- regularisation
    l2: float = _field(
        1e-4,
        "lambda: adds lambda / (2 * batch size) * sum of squared non-bias weights",
        sklearn="alpha",
    )
    label_smoothing: float = _field(
        0.0, "targets: one-hot mixed with this share of the uniform distribution"
    )
    # --- augmentation
    aug_shift: float = _field(
        0.0,
        "augmentation: most pixels an image is shifted along each axis",
        roles=(*TRAINS, "augments"),
    )
    aug_rotate: float = _field(
        0.0,
        "augmentation: most degrees an image is rotated either way",
        roles=(*TRAINS, "augments"),
    )
    aug_scale: float = _field(
        0.0, "augmentation: most relative change of an image's size", roles=(*TRAINS, "augments")
    )
    aug_elastic: tuple[float, float] = _field(
        (0.0, 0.0),
        "augmentation: elastic distortions (Simard et al. 2003), random displacements smoothed "
        "by a Gaussian of SIGMA pixels and scaled by ALPHA (0 0: none)",
        roles=(*TRAINS, "augments"),
        metavar=("ALPHA", "SIGMA"),
    )
    # --- distillation and dead units
    teacher: str | None = _field(
        None,
        "distil from this trained model (a run directory or model file, as digits-evaluate "
        "takes): it labels each epoch's digits with soft targets, learned beside the true ones",
        roles=(*TRAINS, "augments"),
    )
    teacher_preset: str | None = _field(
        None,
        "without --teacher: first train a teacher with this preset on the same digits and "
        "split (seed, val fraction, data), or reuse one that finished in --logdir",
        roles=(*TRAINS, "augments"),
    )
    distill_temperature: float = _field(
        3.0,
        "distillation: the temperature T that softens the teacher's and the network's outputs",
        roles=(*TRAINS, "augments"),
    )
    distill_weight: float = _field(
        0.7, "distillation: the soft targets' share w of the loss, w T^2 KL + (1 - w) CE"
    )
    revive_dead_units: bool = _field(
        False,
        "every 5 epochs in the first half, give dead relu units of the first hidden layer new "
        "incoming weights and zero outgoing ones",
    )
    # --- stopping
    stop_on: str = _field(
        "train_loss",
        "what early stopping watches: train_loss, val_loss or val_accuracy",
        sklearn="early_stopping",
    )
    tol: float = _field(
        1e-9,
        "the watched figure must improve by more than this to count as progress",
        sklearn="tol",
    )
    patience: int = _field(
        10,
        "stop after more than this many epochs without progress (0: never)",
        sklearn="n_iter_no_change",
    )

    def __post_init__(self) -> None:
        _check_types(self)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "aug_elastic", tuple(float(v) for v in self.aug_elastic))
        activation = ACTIVATION_ALIASES.get(self.activation, self.activation)
        object.__setattr__(self, "activation", activation)
        for name, (ok, problem) in FIELD_RULES.items():
            value = getattr(self, name)
            if not ok(value):
                raise UserError(problem.format(value=value))
        for name, kind in _field_types().items():
            value = getattr(self, name)
            if kind is float and not math.isfinite(value):
                raise UserError(f"{name.replace('_', ' ')} must be finite, got {value}")
        for ok, problem in CROSS_RULES:
            if not ok(self):
                raise UserError(problem.format(config=self))

    @property
    def hidden_depth(self) -> int:
        return len(self.hidden)

    @property
    def hidden_text(self) -> str:
        shown = " ".join(map(str, self.hidden[:8]))
        return shown + (" ..." if len(self.hidden) > 8 else "")

    @property
    def full_batch(self) -> bool:
        """Whether an epoch is one full-batch iteration (L-BFGS): what plots and tables call it."""
        return self.optimizer in FULL_BATCH

    @property
    def step_name(self) -> str:
        """What one epoch is called: "iteration" for a full-batch optimizer, else "epoch"."""
        return "iteration" if self.full_batch else "epoch"

    @property
    def augmented(self) -> bool:
        """Whether training sees randomly distorted digits (any augmentation field above 0)."""
        return bool(self.aug_shift or self.aug_rotate or self.aug_scale or self.aug_elastic[0])

    @property
    def augmentation(self) -> tuple:
        """What :func:`~digits_torch.augment.random_affine` takes after the generator."""
        return (self.aug_shift, self.aug_rotate, self.aug_scale, self.aug_elastic)

    @property
    def distilled(self) -> bool:
        """Whether the network learns a teacher's soft targets (``teacher`` or its preset)."""
        return self.teacher is not None or self.teacher_preset is not None

    @property
    def memory_text(self) -> str:
        """:func:`training_memory` of this config, in human units."""
        size = float(training_memory(self.hidden, self.batch_size, self.dtype))
        for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
            if size < 1000 or unit == "PB":
                return f"{size:.1f} {unit}"
            size /= 1000
        raise AssertionError("unreachable")

    def to_dict(self) -> dict:
        """JSON-ready: tuples become lists."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config of ``values`` (a saved config.json); unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _tuples(k, v) for k, v in values.items() if k in known})


def fields_with(role: str, has: bool = True) -> tuple[str, ...]:
    """The names of the fields that have ``role`` (a key of :data:`ROLES`), in field order; with
    ``has=False``, of those that do not."""
    if role not in ROLES:
        raise ValueError(f"unknown field role {role!r}")
    fields = dataclasses.fields(TrainConfig)
    return tuple(f.name for f in fields if (role in f.metadata["roles"]) == has)


def sklearn_fields() -> dict[str, str]:
    """scikit-learn MLPClassifier's parameter names -> the fields that mean the same."""
    fields = dataclasses.fields(TrainConfig)
    return {f.metadata["sklearn"]: f.name for f in fields if f.metadata["sklearn"]}


# ------------------------------------------------------------------------------ presets

# Each preset is a set of defaults; explicit arguments override them (make_config, the CLI).
PRESETS: dict[str, dict] = {
    # The article's MLPClassifier(hidden_layer_sizes=(25,), solver="sgd", random_state=0,
    # max_iter=1000, alpha=1e-4, tol=1e-9): the field defaults above.
    "seed": {},
    # Coursera ML ex4: sigmoid units, ex4's cost with lambda 1, uniform +-0.12 init, 50
    # iterations of a full-batch quasi-Newton method (ex4 uses fmincg, --optimizer fmincg here;
    # L-BFGS passes 95 % on every seed, fmincg gives ex4's 95.3 +- 1 %: docs/recipe.md).
    "coursera": {
        "activation": "sigmoid",
        "init": "coursera",
        "loss": "coursera",
        "optimizer": "lbfgs",
        "epochs": 50,
        "lr": 1.0,
        "l2": 1.0,
        "patience": 0,
        "image_every": 10,  # 5 pictures of the hidden units forming over the 50 iterations
    },
    # The best held-out accuracy found for 400-25-10 trained alone on the 5,000 digits
    # (docs/recipe.md), chosen by validation accuracy over seeds none of the reported figures
    # use. Trains on 80 % of each digit; best.pt is chosen on the other 20 %.
    "tuned": {
        "lr": 0.1,
        "batch_size": 50,
        "schedule": "cosine",
        "epochs": 150,
        "l2": 0.02,
        "aug_shift": 1.0,
        "aug_rotate": 10.0,
        "aug_scale": 0.1,
        "val_fraction": 0.2,
        "stop_on": "val_accuracy",
        "patience": 0,
    },
    # A wide network that distorts its digits elastically too: the teacher of "distilled".
    "teacher": {
        "hidden": (400,),
        "lr": 0.1,
        "batch_size": 50,
        "schedule": "cosine",
        "epochs": 100,
        "l2": 0.02,
        "aug_shift": 1.0,
        "aug_rotate": 10.0,
        "aug_scale": 0.1,
        "aug_elastic": (10.0, 2.9),
        "val_fraction": 0.2,
        "stop_on": "val_accuracy",
        "patience": 0,
    },
    # The default: 400-25-10 distilled from a "teacher" trained first on the same split (so
    # that it never sees the validation digits), with its dead units revived; chosen as tuned
    # was (docs/recipe.md). The tuned recipe, longer, with half its L2.
    "distilled": {
        "lr": 0.1,
        "batch_size": 50,
        "schedule": "cosine",
        "epochs": 300,
        "l2": 0.01,
        "aug_shift": 1.0,
        "aug_rotate": 10.0,
        "aug_scale": 0.1,
        "teacher_preset": "teacher",
        "distill_temperature": 3.0,
        "distill_weight": 0.7,
        "revive_dead_units": True,
        "val_fraction": 0.2,
        "stop_on": "val_accuracy",
        "patience": 0,
    },
    # The same MLPClassifier reproduced step for step, in float64 as scikit-learn computes: in
    # float64 its training accuracy, loss curve and epochs are scikit-learn's.
    "sklearn": {"sklearn_exact": True, "dtype": "float64"},
}
DEFAULT_PRESET = "distilled"


# ------------------------------------------------------------------------------ validation

# (is the value allowed, the problem if not); the problem may name {value} (or, for a rule
# across fields, {config}).
Rule = tuple[Callable[[typing.Any], bool], str]


def _one_of(label: str, choices) -> Rule:
    return (lambda v: v in choices), f"{label} must be one of {', '.join(choices)}"


def _at_least(label: str, low: float) -> Rule:
    return (lambda v: v >= low), f"{label} must be >= {low}"


def _in_unit(label: str) -> Rule:  # [0, 1)
    return (lambda v: 0 <= v < 1), f"{label} must be in [0, 1)"


def _is_device_spec(spec: str) -> bool:
    return re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec) is not None


# One rule per field, checked in this order (a float field must also be finite). Not NaN-safe
# comparisons on purpose: NaN fails every one of them.
FIELD_RULES: dict[str, Rule] = {
    "preset": ((lambda v: v in PRESETS), f"unknown preset (choose from {', '.join(PRESETS)})"),
    "device": (_is_device_spec, "unknown device {value!r} (use auto, cpu, cuda or cuda:N)"),
    "name": (
        lambda v: re.fullmatch(r"[\w.+=-]*", v) is not None,
        "name may hold letters, digits and . _ - + = only (it becomes a directory name)",
    ),
    "image_every": _at_least("image every", 0),
    "checkpoint_every": _at_least("checkpoint every", 0),
    "rank_timeout": (
        (lambda v: 1 <= v <= MAX_RANK_TIMEOUT),
        f"rank timeout must be >= 1 second and <= {MAX_RANK_TIMEOUT:.0f} (a week)",
    ),
    "seed": ((lambda v: 0 <= v < SEED_LIMIT), "seed must be in [0, 2**64)"),
    "val_fraction": _in_unit("val fraction"),
    "hidden": ((lambda v: len(v) > 0 and min(v) >= 1), "hidden sizes must be >= 1"),
    "activation": _one_of("activation", ACTIVATIONS),
    "init": _one_of("init", INITS),
    "loss": _one_of("loss", LOSSES),
    "optimizer": _one_of("optimizer", OPTIMIZERS),
    "epochs": _at_least("epochs", 1),
    "batch_size": _at_least("batch size", 1),
    "lr": ((lambda v: 0 < v < math.inf), "lr must be positive"),
    "momentum": _in_unit("momentum"),
    "backprop": _one_of("backprop", BACKPROPS),
    "dtype": _one_of("dtype", DTYPES),
    "threads": ((lambda v: 0 <= v <= MAX_THREADS), f"threads must be >= 0 and <= {MAX_THREADS}"),
    "schedule": _one_of("schedule", SCHEDULES),
    "power_t": _at_least("power t", 0),
    "l2": _at_least("l2", 0),
    "label_smoothing": _in_unit("label smoothing"),
    "aug_shift": (
        (lambda v: 0 <= v <= MAX_AUG_SHIFT),
        f"aug values must be >= 0 and aug shift must be <= {MAX_AUG_SHIFT:.0f} pixels "
        "(the side of ex4's 20 x 20 images)",
    ),
    "aug_rotate": (
        (lambda v: 0 <= v <= MAX_AUG_ROTATE),
        f"aug values must be >= 0 and aug rotate must be <= {MAX_AUG_ROTATE:.0f} degrees",
    ),
    "aug_scale": ((lambda v: 0 <= v < 1), "aug values must be >= 0 and aug scale must be < 1"),
    "aug_elastic": (
        (
            lambda v: (
                all(0 <= x <= top for x, top in zip(v, MAX_ELASTIC)) and (v[0] == 0 or v[1] > 0)
            )
        ),
        f"aug elastic is ALPHA SIGMA in pixels: alpha in [0, {MAX_ELASTIC[0]:.0f}], sigma in "
        f"(0, {MAX_ELASTIC[1]:.0f}] (0 0: none)",
    ),
    "teacher": ((lambda v: v is None or v != ""), "teacher must name a run or a model file"),
    "teacher_preset": (
        lambda v: v is None or (v in PRESETS and "teacher_preset" not in PRESETS[v]),
        "teacher preset must be a preset that trains without a teacher of its own "
        f"({', '.join(p for p in PRESETS if 'teacher_preset' not in PRESETS[p])})",
    ),
    "distill_temperature": (
        (lambda v: 0 < v <= MAX_TEMPERATURE),
        f"distill temperature must be > 0 and <= {MAX_TEMPERATURE:.0f}",
    ),
    "distill_weight": ((lambda v: 0 <= v <= 1), "distill weight must be in [0, 1]"),
    "stop_on": _one_of("stop on", MONITORS),
    "tol": _at_least("tol", 0),
    "patience": _at_least("patience", 0),
}


def training_memory(hidden: tuple[int, ...], batch_size: int, dtype: str) -> int:
    """Bytes that training a ``ESTIMATED_INPUTS``-``hidden``-10 MLP needs, roughly: weights,
    their gradients and two optimizer buffers (Adam's), and a batch's activations forward and
    back (the batch capped at the shipped 5,000 digits)."""
    sizes = (ESTIMATED_INPUTS, *hidden, 10)
    weights = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
    activations = min(batch_size, 5000) * sum(sizes) * 3
    return (4 * weights + activations) * DTYPES[dtype].itemsize


def _fits_in_memory(config: TrainConfig) -> bool:
    return training_memory(config.hidden, config.batch_size, config.dtype) <= MEMORY_LIMIT


_REVIVABLE = (("relu", "sgd"), ("relu", "adam"))


def _sklearn_exact_rule(test: Callable[[TrainConfig], bool], problem: str) -> Rule:
    return (lambda c: not c.sklearn_exact or test(c)), problem


# Rules that relate fields, in the order they are checked.
CROSS_RULES: list[Rule] = [
    (
        lambda c: len(c.hidden) <= MAX_DEPTH,
        f"at most {MAX_DEPTH} hidden layers, got {{config.hidden_depth}}",
    ),
    (
        _fits_in_memory,
        "hidden sizes {config.hidden_text} need about {config.memory_text} of memory to train "
        f"(estimate); the limit is {MEMORY_LIMIT // 2**30} GiB",
    ),
    (
        lambda c: c.val_fraction > 0 or not c.stop_on.startswith("val"),
        "stop on {config.stop_on} needs a validation split (--val-fraction > 0)",
    ),
    (
        lambda c: (
            not c.cuda_graph
            or (c.optimizer, c.backprop, c.dtype, c.sklearn_exact)
            == ("sgd", "explicit", "float32", False)
        ),
        "cuda graph needs --optimizer sgd --backprop explicit --dtype float32, "
        "without --sklearn-exact",
    ),
    _sklearn_exact_rule(
        lambda c: (c.optimizer, c.loss, c.init) == ("sgd", "softmax", "glorot"),
        "sklearn-exact mode trains with --optimizer sgd --loss softmax --init glorot",
    ),
    _sklearn_exact_rule(
        lambda c: c.schedule in ("constant", "invscaling", "adaptive"),
        "sklearn-exact mode has scikit-learn's schedules: constant, invscaling, adaptive",
    ),
    _sklearn_exact_rule(
        lambda c: c.stop_on != "val_loss", "sklearn-exact mode stops on train_loss or val_accuracy"
    ),
    _sklearn_exact_rule(
        lambda c: c.label_smoothing == 0 and not c.augmented,
        "sklearn-exact mode trains without label smoothing or augmentation",
    ),
    _sklearn_exact_rule(
        lambda c: not c.distilled and not c.revive_dead_units,
        "sklearn-exact mode trains without a teacher or dead-unit revival",
    ),
    (
        lambda c: not c.distilled or (c.loss, c.cuda_graph) == ("softmax", False),
        "distilling from a teacher trains with --loss softmax, without --cuda-graph",
    ),
    (
        lambda c: not c.revive_dead_units or (c.activation, c.optimizer) in _REVIVABLE,
        "--revive-dead-units revives relu units trained by --optimizer sgd or adam",
    ),
    _sklearn_exact_rule(
        lambda c: c.stop_on == "val_accuracy" or c.val_fraction == 0,
        "sklearn-exact mode holds out a validation set only to stop on val_accuracy "
        "(MLPClassifier's early_stopping)",
    ),
    _sklearn_exact_rule(
        lambda c: c.seed < SKLEARN_SEED_LIMIT,
        "sklearn-exact mode seeds numpy's RandomState: seed must be in [0, 2**32)",
    ),
]


def _check_types(config: TrainConfig) -> None:
    """Each field holds its annotated type (ints for float fields too, never bools for numbers).

    The CLI's parser converts flags already; this catches the Python API and hand-edited configs,
    which would otherwise fail later with a TypeError, or worse, not at all (epochs=2.5).
    """
    for name in _field_types():
        problem = _type_problem(name, getattr(config, name))
        if problem:
            raise UserError(problem)


def _type_problem(name: str, value) -> str | None:
    """Why ``value`` cannot be field ``name``'s (its type is wrong), or None."""
    kind = _field_types()[name]
    if kind in (int, float):
        ok = isinstance(value, numbers.Integral if kind is int else numbers.Real)
        ok = ok and not isinstance(value, bool)
        wanted = "an integer" if kind is int else "a number"
    elif kind is bool:
        ok, wanted = isinstance(value, bool), "true or false"
    elif kind is str:
        ok, wanted = isinstance(value, str), "a string"
    elif name in tuple_fields():
        items = tuple_fields()[name]
        number = numbers.Integral if items[0] is int else numbers.Real
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, number) and not isinstance(v, bool) for v in value
        )
        ok = ok and (items[-1] is Ellipsis or len(value) == len(items))
        count = "a sequence of" if items[-1] is Ellipsis else f"{len(items)}"
        wanted = f"{count} {'integers' if items[0] is int else 'numbers'}"
    else:  # str | None
        ok, wanted = value is None or isinstance(value, str), "a string or None"
    return None if ok else f"{name} must be {wanted}, got {value!r}"


def read_config_file(path: str | Path) -> dict:
    """The fields a config file sets: JSON, or TOML (``.toml``, Python 3.11+), one table of
    ``field = value`` as config.json holds them (a run's own config.json is one).

    Each key must be a field and each value of its type (a UserError naming the file and the
    key); the bounds are checked once the file's values meet the preset's and the flags'.
    """
    path = Path(path)
    if not path.exists():
        raise no_such_path(path)
    with reading(path):
        text = path.read_bytes()
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib  # Python 3.11+
            except ImportError:
                raise UserError("TOML config files need Python 3.11+; use JSON", path) from None
            values = tomllib.loads(text.decode())
        else:
            values = json.loads(text)
    except UserError:
        raise
    except ValueError as err:  # JSONDecodeError, TOMLDecodeError and UnicodeDecodeError are
        raise UserError(f"not a valid config file ({err})", path) from None
    if not isinstance(values, dict):
        raise UserError("a config file holds one table of field = value", path)
    for key, value in values.items():
        if key not in _field_types():
            raise UserError(_unknown_key(key), path)
        problem = _type_problem(key, value)
        if problem:
            raise UserError(problem, path)
    return {k: _tuples(k, v) for k, v in values.items()}


def _tuples(name: str, value):
    """A JSON list read back as the tuple a tuple field holds."""
    return tuple(value) if isinstance(value, list) and name in tuple_fields() else value


@functools.cache
def tuple_fields() -> dict[str, tuple]:
    """The tuple-valued fields and their element types (``(int, ...)`` for hidden sizes)."""
    return {
        name: typing.get_args(kind)
        for name, kind in _field_types().items()
        if typing.get_origin(kind) is tuple
    }


def _unknown_key(key: str) -> str:
    close = close_field(key)
    return f"unknown key {key!r}" + (f" (did you mean {close!r}?)" if close else "")


def close_field(name: str) -> str | None:
    """The config field most like ``name`` (a mistyped field name), or None."""
    close = difflib.get_close_matches(name, list(_field_types()), n=1)
    return close[0] if close else None


@functools.cache
def _field_types() -> dict:
    return typing.get_type_hints(TrainConfig)


def make_config(preset: str = DEFAULT_PRESET, **overrides) -> TrainConfig:
    """A TrainConfig from a preset's defaults, with ``overrides`` taking precedence."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    return TrainConfig(**{**PRESETS[preset], **overrides, "preset": preset})


def preset_differences(config: TrainConfig, ignore: tuple[str, ...] = ()) -> dict:
    """The fields of ``config`` (bar ``ignore``) that differ from its preset's, in field order."""
    preset = make_config(config.preset).to_dict()
    return {k: v for k, v in config.to_dict().items() if k not in ignore and v != preset[k]}


def resolve_device(spec: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a device that exists here (or a UserError).

    The one place a device is chosen; the device never changes what is computed, only where
    (every random draw is made on the CPU). Under torchrun, ``auto`` and ``cuda`` mean
    ``cuda:LOCAL_RANK``: one GPU per rank of the machine.
    """
    ranks = job_ranks()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not _is_device_spec(spec):
        raise UserError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():  # cuda or cuda:N
        raise UserError(f"device {spec}: CUDA is not available on this machine")
    device, count = torch.device(spec), torch.cuda.device_count()
    if ranks.parallel:
        if device.index is not None:
            raise UserError(
                f"device {spec}: under torchrun each rank takes the GPU of its LOCAL_RANK; "
                "give --device cuda (or auto)"
            )
        if ranks.local >= count:
            raise UserError(
                f"device {spec}: LOCAL_RANK {ranks.local}, but this machine has {count} CUDA "
                "device(s): start at most one rank per GPU (--nproc-per-node)"
            )
        return torch.device("cuda", ranks.local)
    if device.index is not None and device.index >= count:
        raise UserError(f"device {spec}: this machine has {count} CUDA device(s)")
    return device
