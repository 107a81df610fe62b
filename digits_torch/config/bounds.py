"""Each config field's bound, and the rules that relate fields: the table
:class:`~digits_torch.config.config.TrainConfig` checks in ``__post_init__``, as scikit-learn's
``_parameter_constraints``.

One rule per field (:data:`FIELD_RULES`), then a few named rules across fields
(:data:`CROSS_RULES`), each a test and the one-line problem a failing value gets. The CLI, the
Python API and a hand-edited ``config.json`` are held to the same bounds. The choices a field
takes are here too (:data:`OPTIMIZERS`, :data:`DTYPES`, ...), as the tables they name are
elsewhere (``LOSSES``, ``ACTIVATIONS``, ``SCHEDULES``).
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from collections.abc import Callable, Sequence

import torch

from ..core.losses import LOSSES
from ..core.model import ACTIVATIONS, INITS
from ..optim.optimizers import OPTIMIZERS
from ..optim.schedule import SCHEDULES
from .presets import PRESETS

__all__ = [
    "ACTIVATION_ALIASES",
    "BACKPROPS",
    "CROSS_RULES",
    "DTYPES",
    "FIELD_RULES",
    "FULL_BATCH",
    "MAX_THREADS",
    "MONITORS",
    "OPTIMIZERS",
    "did_you_mean",
    "is_device_spec",
    "parameter_count",
    "suggestion",
    "training_memory",
]

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
# Below this the teacher's softened outputs are one-hot anyway, and logits / T overflows float32
# (from about 1e-37 on: a NaN loss that no smaller --lr would cure).
MIN_TEMPERATURE = 0.01


# (is the value allowed, the problem if not); the problem may name {value} (or, for a rule
# across fields, {config}).
Rule = tuple[Callable[[typing.Any], bool], str]


def parameter_count(sizes: Sequence[int]) -> int:
    """Weights and biases of a network whose layers have ``sizes`` units, inputs first and
    classes last (``(400, 25, 10)``: 10,285)."""
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))


def _one_of(label: str, choices, aliases: dict[str, str] | None = None) -> Rule:
    """A field that takes one of ``choices``: its problem names them, the bad value, and the
    nearest choice (:func:`suggestion`; an alias is another name of a choice, already mapped to
    it by ``__post_init__``)."""
    named = ", ".join(choices)
    if aliases:
        named += " (" + ", ".join(f"{a}: {c}" for a, c in aliases.items()) + ")"
    return (lambda v: v in choices), f"{label} must be one of {named}, not {{value!r}}"


def suggestion(field: str, value) -> str:
    """What a bad value of ``field`` is told beside its problem: the nearest choice, if any."""
    return did_you_mean(value, CHOICES[field]) if field in CHOICES else ""


def did_you_mean(value, choices) -> str:
    """``; did you mean X?`` for the choice nearest a mistyped ``value``, else ''."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _at_least(label: str, low: float) -> Rule:
    return (lambda v: v >= low), f"{label} must be >= {low}"


def _in_unit(label: str) -> Rule:  # [0, 1)
    return (lambda v: 0 <= v < 1), f"{label} must be in [0, 1)"


def is_device_spec(spec: str) -> bool:
    return re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec) is not None


# What an empty --logdir is told (new_run_dir says it too, for compare's --logdir).
EMPTY_LOGDIR = "logdir must name a directory for runs (. for the working directory), not be empty"

# A run directory's name is <date>-<time>-<preset>-<name>[-N]: 200 bytes leave the rest room
# within the 255 bytes a file system takes, so a run is refused before its teacher trains.
MAX_NAME_BYTES = 200

# One rule per field, checked in this order (a float field must also be finite). Not NaN-safe
# comparisons on purpose: NaN fails every one of them.
FIELD_RULES: dict[str, Rule] = {
    "preset": ((lambda v: v in PRESETS), f"unknown preset (choose from {', '.join(PRESETS)})"),
    "device": (is_device_spec, "unknown device {value!r} (use auto, cpu, cuda or cuda:N)"),
    "name": (
        lambda v: re.fullmatch(r"[\w.+=-]*", v) is not None and len(v.encode()) <= MAX_NAME_BYTES,
        "name may hold letters, digits and . _ - + = only, at most "
        f"{MAX_NAME_BYTES} bytes (it becomes part of a directory name, of at most 255)",
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
    "activation": _one_of("activation", ACTIVATIONS, ACTIVATION_ALIASES),
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
    "data": ((lambda v: v is None or v != ""), "data must name a .mat file (or be left out)"),
    "teacher": ((lambda v: v is None or v != ""), "teacher must name a run or a model file"),
    # "" is most often an unset variable ($LOGDIR): refused, not read as the working directory
    "logdir": ((lambda v: v != ""), EMPTY_LOGDIR),
    "teacher_preset": (
        lambda v: v is None or (v in PRESETS and "teacher_preset" not in PRESETS[v]),
        "teacher preset must be a preset that trains without a teacher of its own "
        f"({', '.join(p for p in PRESETS if 'teacher_preset' not in PRESETS[p])}), not {{value!r}}",
    ),
    "distill_temperature": (
        (lambda v: MIN_TEMPERATURE <= v <= MAX_TEMPERATURE),
        f"distill temperature must be >= {MIN_TEMPERATURE} and <= {MAX_TEMPERATURE:.0f}",
    ),
    "distill_weight": ((lambda v: 0 <= v <= 1), "distill weight must be in [0, 1]"),
    "stop_on": _one_of("stop on", MONITORS),
    "tol": _at_least("tol", 0),
    "patience": _at_least("patience", 0),
}
# The fields that take one of a few names, and the names a mistyped one is compared with.
CHOICES: dict[str, tuple[str, ...]] = {
    "preset": tuple(PRESETS),
    "activation": (*ACTIVATIONS, *ACTIVATION_ALIASES),
    "init": INITS,
    "loss": tuple(LOSSES),
    "optimizer": tuple(OPTIMIZERS),
    "backprop": BACKPROPS,
    "dtype": tuple(DTYPES),
    "schedule": tuple(SCHEDULES),
    "stop_on": MONITORS,
    "teacher_preset": tuple(PRESETS),
}


def training_memory(hidden: tuple[int, ...], batch_size: int, dtype: str) -> int:
    """Bytes that training a ``ESTIMATED_INPUTS``-``hidden``-10 MLP needs, roughly: weights,
    their gradients and two optimizer buffers (Adam's), and a batch's activations forward and
    back (the batch capped at the shipped 5,000 digits). The bound a config is held to before
    any data is read; a sweep counts what a stack needs on its data with
    :func:`digits_torch.sweep.plan.memory_needed`."""
    sizes = (ESTIMATED_INPUTS, *hidden, 10)
    weights = parameter_count(sizes)
    activations = min(batch_size, 5000) * sum(sizes) * 3
    return (4 * weights + activations) * DTYPES[dtype].itemsize


def _fits_in_memory(config) -> bool:
    return training_memory(config.hidden, config.batch_size, config.dtype) <= MEMORY_LIMIT


_REVIVABLE = (("relu", "sgd"), ("relu", "adam"))


def _sklearn_exact_rule(test: Callable[[typing.Any], bool], problem: str) -> Rule:
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
