"""The flags of every :class:`TrainConfig` field, generated from the dataclass (train.py's and the
sweep's), and ``--help``'s presets block.

Every config field is a flag (``batch_size`` -> ``--batch-size``) with the field's one-line
meaning as its help, so a flag and its field cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
import types
import typing

from .config import DEFAULT_PRESET, PRESETS, TrainConfig, make_config
from .presets import PRESET_WORDS

# --help's groups of flags, in order (as timm's train.py groups its own): every field is in one
# (tests/cli/test_cli.py checks), and --config and --resume are the run's.
GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("preset", "device", "dtype", "threads", "backprop", "cuda_graph", "rank_timeout"),
    "data": ("data", "seed", "val_fraction"),
    "model": ("hidden", "activation", "init", "loss"),
    "optimisation": (
        *("optimizer", "epochs", "batch_size", "lr", "momentum", "nesterov", "schedule"),
        *("power_t", "l2", "label_smoothing", "sklearn_exact", "stop_on", "tol", "patience"),
    ),
    "augmentation": ("aug_shift", "aug_rotate", "aug_scale", "aug_elastic"),
    "distillation and dead units": (
        *("teacher", "teacher_preset", "teacher_any_split"),
        *("distill_temperature", "distill_weight"),
        "revive_dead_units",
    ),
    "output": ("logdir", "name", "image_every", "figures", "quiet", "checkpoint_every"),
}
HELP_WIDTH = 100  # the presets' block is wrapped to this many columns


def presets_help() -> str:
    """--help's presets block: each preset, what it is, and how it differs from the default."""
    default_values = make_config(DEFAULT_PRESET).to_dict()
    lines = [f"presets (explicit flags override them; the defaults shown are {DEFAULT_PRESET}'s):"]
    for name in PRESETS:  # each as its differences from the default preset
        values = make_config(name).to_dict()
        changed = [
            f"{k}={v}" for k, v in values.items() if k != "preset" and v != default_values[k]
        ]
        text = f"{PRESET_WORDS[name]}: " + (", ".join(changed) or "the default")
        lines += textwrap.wrap(
            text,
            HELP_WIDTH,
            initial_indent=f"  {name:10}",
            subsequent_indent=" " * 12,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def add_config_arguments(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """A flag for every :class:`TrainConfig` field, in :data:`GROUPS`, and ``--config``;
    returns the groups by name (a command adds its own flags to them)."""
    defaults = make_config(DEFAULT_PRESET)  # what a plain `python train.py` uses
    hints = typing.get_type_hints(TrainConfig)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    groups = {title: parser.add_argument_group(title) for title in GROUPS}
    for title, names in GROUPS.items():
        for name in names:
            _add_field(groups[title], fields[name], hints[name], getattr(defaults, name))
    groups["run"].add_argument(
        "--config",
        metavar="FILE",
        help="JSON (or TOML, Python 3.11+) of field = value, e.g. a run's config.json: "
        "overrides the preset, explicit flags override it",
    )
    return groups


def _add_field(group, f: dataclasses.Field, kind, default) -> None:
    """The flag of one config field (``batch_size`` -> ``--batch-size``), its help its meaning."""
    flag = "--" + f.name.replace("_", "-")
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
    help_text = f.metadata["help"] + ("" if shown in (None, "") else f" (default: {shown})")
    if kind is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
    elif typing.get_origin(kind) is tuple:
        items, metavar = typing.get_args(kind), f.metadata["metavar"]
        nargs = "+" if items[-1] is Ellipsis else len(items)
        group.add_argument(flag, type=items[0], nargs=nargs, metavar=metavar or "N", help=help_text)
    else:
        metavar = (f.metadata["metavar"] or (f.name.upper(),))[0]
        group.add_argument(flag, type=_scalar_type(kind), metavar=metavar, help=help_text)


def _scalar_type(kind):
    """str for ``str | None``, else the annotation itself (int, float, str)."""
    if isinstance(kind, types.UnionType):
        return next(t for t in typing.get_args(kind) if t is not type(None))
    return kind
