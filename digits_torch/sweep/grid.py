"""A sweep's grid: ``--grid FIELD=V1,V2,...`` and ``--seeds`` parsed (:func:`parse_grid`,
:func:`parse_seeds`), and every combination expanded into a named, checked network
(:func:`expand`). A grid that would train one network twice is refused: fields that change how a
network is trained or watched but nothing it learns are set once for the whole sweep.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import typing
from pathlib import Path

from ..config.config import TrainConfig, fields_with, make_config
from ..config.config_files import close_field
from ..config.plan import make_plan
from ..errors import UserError
from ..store.runs import counted_label, name_safe, value_text
from .plan import stackable
from .train import Network

__all__ = ["UNLEARNED", "UNSWEPT", "expand", "parse_grid", "parse_seeds"]

# how a sweep runs, not what it trains
UNSWEPT = fields_with("sweep_wide")
# how a network is trained or watched, not what it learns: swept, they would train duplicates
UNLEARNED = tuple(f for f in fields_with("learned", has=False) if f not in UNSWEPT)
# other names for fields (scikit-learn's MLPClassifier, ex4's lambda): --grid says which it is
FIELD_ALIASES = {
    "lambda": "l2",
    "alpha": "l2",
    "learning_rate": "lr",
    "learning_rate_init": "lr",
    "hidden_layer_sizes": "hidden",
    "max_iter": "epochs",
    "random_state": "seed",
    "solver": "optimizer",
    "n_iter_no_change": "patience",
    "validation_fraction": "val_fraction",
    "nesterovs_momentum": "nesterov",
}
MAX_NETWORKS = 10_000  # per sweep: each leaves a run directory, and its plan lists every one
# Bytes of a network's name: a solo network's run directory adds a timestamp, its preset and
# perhaps a suffix (29 bytes at most) within a file name's 255.
NAME_BYTES = 200


def _parse_value(field: str, kind, text: str):
    """One --grid value for ``field`` of type ``kind``; ValueError says what it is not."""
    if field == "hidden":
        if not re.fullmatch(r"\d+(x\d+)*", text):
            raise ValueError("not hidden sizes like 25 or 50x50")
        return tuple(int(h) for h in text.split("x"))
    if typing.get_origin(kind) is tuple:  # aug_elastic: ALPHAxSIGMA
        items = typing.get_args(kind)
        try:
            value = tuple(items[0](v) for v in text.split("x"))
        except ValueError:
            value = ()
        if len(value) != len(items):
            raise ValueError(f"not {len(items)} numbers like 10x2.9")
        return value
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError("not true or false")
        return text.lower() == "true"
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError("not an integer" if kind is int else "not a number") from None
    return None if text.lower() == "none" and kind is not str else text


def parse_grid(specs: list[str]) -> dict[str, list]:
    """``["l2=0,0.1", "hidden=25,5x5"]`` -> ``{"l2": [0.0, 0.1], "hidden": [(25,), (5, 5)]}``."""
    types = typing.get_type_hints(TrainConfig)
    grid: dict[str, list] = {}
    for spec in specs:
        field, equals, text = spec.partition("=")
        field = field.strip().replace("-", "_")
        if not equals or not text.strip():
            raise UserError(f"--grid {spec}: give FIELD=V1,V2,...")
        if field not in types:
            raise UserError(f"--grid {spec}: unknown field {field!r}{_field_hint(field)}")
        if field in UNSWEPT:
            raise UserError(f"--grid {spec}: {field} is the same for the whole sweep; set it once")
        if field in UNLEARNED:
            raise UserError(
                f"--grid {spec}: {field} changes nothing a network learns; set it once for the "
                "whole sweep"
            )
        if field in grid:
            raise UserError(f"--grid {spec}: {field} is swept twice")
        values = []
        for item in text.split(","):
            try:
                values.append(_parse_value(field, types[field], item.strip()))
            except ValueError as err:
                raise UserError(f"--grid {spec}: {item.strip()!r} is {err}") from None
        if len(set(values)) != len(values):
            raise UserError(f"--grid {spec}: a value is given twice")
        grid[field] = values
    return grid


def _field_hint(field: str) -> str:
    """What an unknown --grid field may have meant: `` (lambda is l2 here)``, or a close one."""
    if field in FIELD_ALIASES:
        return f" ({field} is {FIELD_ALIASES[field]} here)"
    return close_field(field)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; at most :data:`MAX_NETWORKS`."""
    ranges: list[range] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            ranges.append(range(int(low), int(high if dash else low) + 1))
        except ValueError:
            raise UserError(f"--seeds {text}: give seeds like 0-4 or 0,3,7") from None
    count = sum(max(0, r.stop - r.start) for r in ranges)  # counted before any list is made
    if count > MAX_NETWORKS:
        raise UserError(
            f"--seeds {text}: {count:,} seeds, but a sweep trains at most {MAX_NETWORKS:,} "
            "networks; split it into several sweeps"
        )
    seeds = [seed for r in ranges for seed in r]
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text}: give each seed once")
    return seeds


def expand(preset: str, given: dict, grid: dict[str, list], logdir: Path) -> list[Network]:
    """Every combination of the grid as a checked config (a UserError names a bad one, or two
    that would train the same network)."""
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_NETWORKS:
        raise UserError(
            f"the grid makes {count:,} networks, but a sweep trains at most {MAX_NETWORKS:,}; "
            "split it into several sweeps"
        )
    fields = list(grid)
    networks = []
    seen: dict[TrainConfig, Network] = {}  # each config bar its name: the network it trains
    width = len(str(count - 1))
    for index, combo in enumerate(itertools.product(*grid.values())):
        values = dict(zip(fields, combo))
        name = _network_name(f"{index:0{width}d}", values)
        try:
            config = make_config(preset, **{**given, **values, "name": name, "logdir": str(logdir)})
        except UserError as err:
            raise UserError(f"network {_shown(values)}: {err}") from None
        if "threads" not in given and stackable(make_plan(config).recipe):
            # a stack's products are its networks' side by side: torch's threads (one per
            # core) pay there, where one network's tiny ones take one (docs/sweeps.md)
            config = dataclasses.replace(config, threads=0)
        network = Network(name, values, config)
        # a named teacher is what a network distils from: its teacher_preset then trains none
        trains = None if config.teacher is not None else config.teacher_preset
        twin = seen.setdefault(dataclasses.replace(config, name="", teacher_preset=trains), network)
        if twin is not network:  # activation=logistic,sigmoid: one is the other's alias
            differ = [f for f in fields if values[f] != twin.values[f]]
            pair = [_shown({f: n.values[f] for f in differ}) for n in (twin, network)]
            raise UserError(f"--grid: {pair[0]} and {pair[1]} train the same network; keep one")
        networks.append(network)
    return networks


def _shown(values: dict) -> str:
    return ", ".join(f"{f}={value_text(v)}" for f, v in values.items())


def _network_name(index: str, values: dict) -> str:
    """``03-l2=0.1-seed=1``: its index and swept values, as letters, digits and ``. _ + = -``;
    values past :data:`NAME_BYTES` are counted (``03-l2=0.1-+1``), as run names count them."""
    parts = [name_safe(f"{f}={value_text(v)}") for f, v in values.items()]
    fits = lambda label: len(f"{index}-{label}".encode()) <= NAME_BYTES  # noqa: E731
    return f"{index}-" + (counted_label(parts, fits) or "base")
