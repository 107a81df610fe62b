"""``python -m digits_torch.sweep``: many networks at once, over a grid of config fields.

    python -m digits_torch.sweep --grid l2=0,0.01,0.1,1 --seeds 0-2      # 12 networks
    python -m digits_torch.sweep --preset seed --grid lr=0.001,0.01 --grid hidden=25,100
    python -m digits_torch.sweep --resume runs/20261201-220000-sweep      # after a kill

Every ``train.py`` flag sets a field for all networks; ``--grid FIELD=V1,V2,...`` sweeps a field
(``hidden=25,100,50x50``); ``--seeds 0-4`` (or ``0,3,7``) sweeps the seed. Every combination is
checked as a :class:`TrainConfig` before anything runs. SGD networks that share a
:func:`~digits_torch.stacked.stack_key` train together as one :class:`~digits_torch.stacked.Stack`;
Adam, L-BFGS and sklearn-exact networks run one after another through ``fit``. The plan, with the
memory it needs, is printed first.

``runs/<timestamp>-sweep[-name]/`` holds ``sweep.json``, ``results.csv``, the figures, and one
directory per network in a ``train.py`` run's layout (``evaluate``, ``plots``, ``load_model`` and
``train.py --resume`` work on each). Networks' files are written on a time budget
(``--save-every`` seconds) and when each network ends; ``--resume`` continues from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import re
import sys
import typing
from pathlib import Path

import torch

from . import cli
from .config import DEFAULT_PRESET, TrainConfig, make_config, resolve_device
from .data import default_data_path, load_digits
from .errors import ArgumentParser, UserError, exit_on_error
from .files import write_json
from .runs import new_run_dir
from .stacked import memory_needed
from .sweep_report import report, write_results
from .sweep_train import Network, plan_networks, recover, run_sweep

__all__ = ["main", "parse_grid", "parse_seeds", "run_command"]

SWEEP = "sweep.json"
EXIT_INTERRUPTED = 130
# how a sweep runs, not what it trains
UNSWEPT = ("preset", "device", "logdir", "name", "quiet", "rank_timeout")


# ----------------------------------------------------------------------------- the grid


def _parse_value(field: str, kind, text: str):
    """One --grid value for ``field`` of type ``kind``; ValueError says what it is not."""
    if field == "hidden":
        if not re.fullmatch(r"\d+(x\d+)*", text):
            raise ValueError("not hidden sizes like 25 or 50x50")
        return tuple(int(h) for h in text.split("x"))
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
            raise UserError(f"--grid {spec}: unknown field {field!r}")
        if field in UNSWEPT:
            raise UserError(f"--grid {spec}: {field} is the same for the whole sweep; set it once")
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


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            seeds += list(range(int(low), int(high) + 1)) if dash else [int(low)]
        except ValueError:
            raise UserError(f"--seeds {text}: give seeds like 0-4 or 0,3,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text}: give each seed once")
    return seeds


def _label(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def expand(preset: str, given: dict, grid: dict[str, list], logdir: Path) -> list[Network]:
    """Every combination of the grid as a checked config (a UserError names a bad one)."""
    fields = list(grid)
    networks = []
    combos = list(itertools.product(*grid.values()))
    width = len(str(len(combos) - 1))
    for index, combo in enumerate(combos):
        values = dict(zip(fields, combo))
        label = "-".join(f"{f}={_label(v)}" for f, v in values.items()) or "base"
        name = f"{index:0{width}d}-" + re.sub(r"[^\w.+=-]", "_", label)
        try:
            config = make_config(preset, **{**given, **values, "name": name, "logdir": str(logdir)})
        except UserError as err:
            shown = ", ".join(f"{f}={_label(v)}" for f, v in values.items())
            raise UserError(f"network {shown}: {err}") from None
        networks.append(Network(name, values, config))
    return networks


def describe_plan(stacks, solo, memory: int, available: int | None) -> str:
    count = sum(len(s) for s in stacks) + len(solo)
    lines = [f"{count} network(s):"]
    for i, stack in enumerate(stacks, 1):
        c = stack[0].config
        seeds = len(
            {
                (n.config.seed, n.config.aug_shift, n.config.aug_rotate, n.config.aug_scale)
                for n in stack
            }
        )
        shape = "-".join(map(str, (400, *c.hidden, 10)))
        how = "one wide product each" if seeds < len(stack) else "batched products"
        lines.append(
            f"  stack {i}: {len(stack)} SGD networks {shape} {c.activation} {c.dtype}, batch "
            f"{c.batch_size}: {seeds} batch group(s) (same seed and augmentation share batches; "
            f"{how})"
        )
    for n in solo:
        kind = "sklearn-exact" if n.config.sklearn_exact else n.config.optimizer
        lines.append(f"  {n.name}: {kind}, one after another through fit (does not stack)")
    if any(n.config.cuda_graph for s in stacks for n in s):
        lines.append("  (--cuda-graph: stacks run eagerly; each stack is already few kernels)")
    free = "unknown" if available is None else f"{available / 2**20:,.0f} MiB available"
    lines.append(f"  memory: about {memory / 2**20:,.1f} MiB for the largest stack ({free})")
    return "\n".join(lines)


def available_memory(device: torch.device) -> int | None:
    """Bytes free on ``device``: CUDA's free memory, or the CPU's available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _write_sweep_json(sweep_dir: Path, grid: dict, networks: list[Network], plan: str) -> None:
    write_json(
        sweep_dir / SWEEP,
        {
            "format": 1,
            "grid": {
                k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in grid.items()
            },
            "plan": plan.splitlines(),
            "networks": [
                {
                    "name": n.name,
                    "dir": None if n.dir is None else n.dir.name,
                    "values": {
                        k: list(v) if isinstance(v, tuple) else v for k, v in n.values.items()
                    },
                    "config": n.config.to_dict(),
                    "metrics": n.metrics,
                }
                for n in networks
            ],
        },
    )


def _read_sweep(sweep_dir: Path) -> tuple[dict, list[Network]]:
    path = sweep_dir / SWEEP
    if not path.exists():
        raise UserError(f"not a sweep directory to resume (no {SWEEP})", sweep_dir)
    try:
        saved = json.loads(path.read_text())
        grid = {
            k: [tuple(v) if isinstance(v, list) else v for v in vs]
            for k, vs in saved["grid"].items()
        }
        networks = [
            Network(
                n["name"],
                {k: tuple(v) if isinstance(v, list) else v for k, v in n["values"].items()},
                TrainConfig.from_dict(n["config"]),
                None if n["dir"] is None else sweep_dir / n["dir"],
            )
            for n in saved["networks"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"unreadable ({err})", path) from None
    return grid, networks


# ----------------------------------------------------------------------------- the command


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m digits_torch.sweep",
        description="Train many networks at once over a grid of config fields. Every train.py "
        "flag sets a field for all networks.",
        parents=[cli.build_parser()],
        conflict_handler="resolve",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--grid",
        action="append",
        metavar="FIELD=V1,V2",
        default=[],
        help="sweep a config field over values (repeat for more fields); "
        "hidden sizes as 25 or 50x50",
    )
    parser.add_argument("--seeds", metavar="SEEDS", help="sweep the seed: 0-4 or 0,3,7")
    parser.add_argument(
        "--save-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="write every network's files at most this often (default: 5)",
    )
    parser.add_argument(
        "--resume",
        metavar="SWEEP_DIR",
        help="continue a sweep that was stopped (only --device, --quiet)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """The command (``digits-sweep``): exits 0, 2 on a user error, 130 when interrupted."""
    run_command(argv)


@exit_on_error
def run_command(argv: list[str] | None = None) -> Path:
    """:func:`main`, returning the sweep directory."""
    given = vars(build_parser().parse_args(argv))
    specs, seeds = given.pop("grid"), given.pop("seeds", None)
    save_every, sweep_dir = given.pop("save_every"), given.pop("resume", None)
    if sweep_dir is not None:
        if specs or seeds or set(given) - {"device", "quiet"}:
            raise UserError(
                "a resumed sweep keeps its grid and config; give only --device, --quiet"
            )
        sweep_dir = Path(sweep_dir)
        grid, networks = _read_sweep(sweep_dir)
        networks = [
            dataclasses.replace(n, config=dataclasses.replace(n.config, **given)) for n in networks
        ]
    else:
        grid = parse_grid(specs)
        if seeds is not None:
            if "seed" in grid:
                raise UserError("sweep seeds with --seeds or --grid seed=..., not both")
            grid["seed"] = parse_seeds(seeds)
        preset = given.pop("preset", DEFAULT_PRESET)
        logdir, name = given.get("logdir", TrainConfig.logdir), given.get("name", "")
        networks = expand(preset, given, grid, Path(logdir))
    base = networks[0].config
    device = resolve_device(base.device)
    stacks, solo = plan_networks(networks)
    X, _ = load_digits(base.data or default_data_path())
    needed = max((memory_needed([n.config for n in s], *X.shape) for s in stacks), default=0)
    available = available_memory(device)
    plan = describe_plan(stacks, solo, needed, available)
    if available is not None and needed > available:
        raise UserError(
            f"the sweep needs about {needed / 2**20:,.0f} MiB on {device}, but only "
            f"{available / 2**20:,.0f} MiB are available; sweep fewer networks at once"
        )
    print(plan)
    if sweep_dir is None:
        sweep_dir = new_run_dir(logdir, "sweep", name)
        networks = [
            dataclasses.replace(n, config=dataclasses.replace(n.config, logdir=str(sweep_dir)))
            for n in networks
        ]
    _write_sweep_json(sweep_dir, grid, networks, plan)
    diverged = recover(sweep_dir, networks)
    try:
        run_sweep(sweep_dir, networks, save_every, base.quiet, diverged=diverged)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; resume with: python -m digits_torch.sweep --resume {sweep_dir}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_INTERRUPTED) from None
    _write_sweep_json(sweep_dir, grid, networks, plan)
    rows = write_results(sweep_dir, grid, networks)
    print(report(sweep_dir, grid, rows))
    print(f"sweep: {sweep_dir}")
    return sweep_dir


if __name__ == "__main__":
    main()
