"""``sweep.json``: what a sweep is (its grid, plan and networks, each with its config, directory
and metrics), written by rank 0 and read back, checked, to resume: nothing read may make the
sweep write outside its directory. The metrics are for its readers: a resume takes each finished
network's from its own metrics.json, which its last commit wrote."""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

from ..config.config import TrainConfig
from ..core.read_files import parse_json, read_bytes
from ..errors import UserError
from ..store.files import write_json
from ..store.run_contents import SWEEP
from ..store.runs import RunLock
from .figures import MODES
from .train import Network

__all__ = ["SWEEP", "read_sweep", "write_sweep_json"]


def write_sweep_json(
    sweep_dir: Path, grid: dict, networks: list[Network], plan: str, figures: str
) -> None:
    """``figures``: whose pictures the sweep draws (:data:`~digits_torch.sweep.figures.MODES`)."""
    write_json(
        sweep_dir / SWEEP,
        {
            "format": 1,
            "figures": figures,
            "grid": grid,  # (json writes a tuple, such as hidden's, as a list)
            "plan": plan.splitlines(),
            "networks": [
                {
                    "name": n.name,
                    "dir": None if n.dir is None else n.dir.name,
                    "values": n.values,
                    "config": n.config.to_dict(),
                    "metrics": n.metrics,
                }
                for n in networks
            ],
        },
    )


def read_sweep(sweep_dir: Path, locks: ExitStack) -> tuple[dict, list[Network], str]:
    """The grid, networks and pictures (whose: ``figures``) of the sweep to resume, read
    holding its lock (added to ``locks``), and checked: nothing read may make the sweep write
    outside its directory."""
    path = sweep_dir / SWEEP
    if not path.is_file():
        raise UserError(f"not a sweep directory to resume (no {SWEEP})", sweep_dir)
    # one sweep at a time: locked before reading what it will change
    locks.enter_context(RunLock(sweep_dir))
    content = read_bytes(path)
    try:
        saved = parse_json(content)
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
        figures = saved.get("figures", "best")  # a sweep.json from before it was recorded
        if figures not in MODES:
            raise ValueError(f"figures {figures!r} is not one of {', '.join(MODES)}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"unreadable ({err})", path) from None
    _check_names(networks, path)
    return grid, networks, figures


def _check_names(networks: list[Network], path: Path) -> None:
    """Each network of a sweep.json read back has a name of its own that is a plain directory
    name, the name its config trains under, and a directory (if any) of such a name."""
    if not networks:
        raise UserError("holds no networks", path)
    seen: set[str] = set()
    for index, network in enumerate(networks):
        named = [("name", network.name)] + [("dir", d.name) for d in [network.dir] if d]
        for what, name in named:
            plain = isinstance(name, str) and re.fullmatch(r"[\w+=-][\w.+=-]*", name)
            if not plain or len(name.encode()) > 255:
                raise UserError(
                    f"network {index}: {what} {name!r} is not a directory name in the sweep "
                    "(letters, digits and . _ - + =, not first a dot)",
                    path,
                )
        if network.dir is not None and network.dir.parent != path.parent:  # an absolute dir
            raise UserError(f"network {index}: dir {str(network.dir)!r} is outside the sweep", path)
        if network.plan.running.name != network.name:
            raise UserError(
                f"network {index}: its config's name {network.plan.running.name!r} is not its name "
                f"{network.name!r}",
                path,
            )
        if network.name in seen:
            raise UserError(f"network {index}: name {network.name!r} is given twice", path)
        seen.add(network.name)
