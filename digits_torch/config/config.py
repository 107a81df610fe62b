"""The run's configuration: one frozen dataclass, each field with its meaning and its roles.

    config = make_config("coursera", device="cpu")   # a preset, with overrides
    config.to_dict()                                 # what a run saves as config.json

Each field declares its roles beside its help text (:data:`ROLES`: a hyperparameter, names the
run, may change on resume, may be swept, shared by a stack, ...), and every list of fields by
role is derived from them (:func:`fields_with`). Its bound is a row of the table in
:mod:`.bounds`, checked in ``__post_init__`` with the rules across fields, so a bad value is one
:class:`UserError` naming it; the presets are :mod:`.presets`. A run reads it once, into its
plan (:mod:`.plan`). A new field: its line here, its bound, its value in the plan, the code it
affects, and its row of tests/config/test_bounds.py.

The module runs past 400 lines: the fields with their help texts describe a run, read at once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import typing
from dataclasses import dataclass, field

from ..errors import UserError
from .bounds import (
    ACTIVATION_ALIASES,
    CROSS_RULES,
    FIELD_RULES,
    FULL_BATCH,
    did_you_mean,
    suggestion,
    training_memory,
)
from .presets import DEFAULT_PRESET, LOGDIR, PRESETS

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "ROLES",
    "TrainConfig",
    "fields_with",
    "make_config",
    "preset_differences",
    "from_json",
    "type_problem",
]

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
    the name of scikit-learn's MLPClassifier parameter that means the same, if any, and the
    names ``--help`` gives its values (one, or a fixed-length tuple's; default: its name)."""
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
        LOGDIR, "where run directories are created (TensorBoard's --logdir)", roles=("sweep_wide",)
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
        "takes): it labels each epoch's digits with soft targets, learned beside the true ones; "
        "a run trained on this run's split (else see --teacher-any-split)",
        roles=(*TRAINS, "augments"),
        metavar=("RUN_OR_MODEL",),
    )
    teacher_preset: str | None = _field(
        None,
        "without --teacher: first train a teacher with this preset on the same digits and "
        "split (seed, val fraction, data), or reuse one that finished in --logdir",
        roles=(*TRAINS, "augments"),
        metavar=("PRESET",),
    )
    teacher_any_split: bool = _field(
        False,
        "distil from a --teacher not known to have trained on this run's split (a model file, "
        "another seed's or data file's run): it may have learned this run's validation digits, "
        "whose accuracy then flatters the student",
        roles=(),
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
        "the watched metric must improve by more than this to count as progress",
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
                raise UserError(problem.format(value=value) + suggestion(name, value))
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
        """What :func:`~digits_torch.recipes.augment.random_affine` takes after the generator."""
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
        return cls(**{k: from_json(k, v) for k, v in values.items() if k in known})


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


def _check_types(config: TrainConfig) -> None:
    """Each field holds its annotated type (ints for float fields too, never bools for numbers).

    The CLI's parser converts flags already; this catches the Python API and hand-edited configs,
    which would otherwise fail later with a TypeError, or worse, not at all (epochs=2.5).
    """
    for name in _field_types():
        problem = type_problem(name, getattr(config, name))
        if problem:
            raise UserError(problem)


def type_problem(name: str, value) -> str | None:
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


def from_json(name: str, value):
    """Field ``name``'s ``value`` as JSON held it: a list read back as the tuple a tuple field
    holds."""
    return tuple(value) if isinstance(value, list) and name in tuple_fields() else value


@functools.cache
def tuple_fields() -> dict[str, tuple]:
    """The tuple-valued fields and their element types (``(int, ...)`` for hidden sizes)."""
    return {
        name: typing.get_args(kind)
        for name, kind in _field_types().items()
        if typing.get_origin(kind) is tuple
    }


@functools.cache
def _field_types() -> dict:
    return typing.get_type_hints(TrainConfig)


def make_config(preset: str = DEFAULT_PRESET, **overrides) -> TrainConfig:
    """A TrainConfig from a preset's defaults, with ``overrides`` taking precedence."""
    if preset not in PRESETS:
        raise UserError(
            f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})"
            + did_you_mean(preset, PRESETS)
        )
    return TrainConfig(**{**PRESETS[preset], **overrides, "preset": preset})


def preset_differences(config: TrainConfig, ignore: tuple[str, ...] = ()) -> dict:
    """The fields of ``config`` (bar ``ignore``) that differ from its preset's, in field order."""
    preset = make_config(config.preset).to_dict()
    return {k: v for k, v in config.to_dict().items() if k not in ignore and v != preset[k]}
