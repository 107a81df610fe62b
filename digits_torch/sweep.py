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
import contextlib
import dataclasses
import itertools
import json
import os
import re
import signal
import sys
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import cli, plots
from .checkpoints import (
    BEST,
    LATEST,
    best_weights,
    check_fits,
    load_run_file,
    model_checkpoint,
    restore,
    save_checkpoint,
)
from .config import DEFAULT_PRESET, TrainConfig, make_config, resolve_device
from .data import default_data_path, load_digits
from .errors import ArgumentParser, UserError, exit_on_error
from .files import link_atomically, write_json
from .losses import score
from .runs import METRICS, RunLog, new_run_dir, read_history
from .stacked import Member, Stack, memory_needed, stack_key, stackable
from .sweep_report import report, write_results
from .training import fit, resume

__all__ = ["Network", "main", "parse_grid", "parse_seeds", "plan_networks"]

SWEEP = "sweep.json"
EXIT_INTERRUPTED = 130
UNSWEPT = ("preset", "device", "logdir", "name", "quiet")  # how a sweep runs, not what it trains
NOT_HPARAMS = ("logdir", "quiet", "name", "image_every", "figures")


@dataclass
class Network:
    """One network of a sweep: its directory's name, its swept values and its config."""

    name: str
    values: dict
    config: TrainConfig
    dir: Path | None = None
    metrics: dict | None = None


# ----------------------------------------------------------------------------- the grid


def _parse_value(field: str, kind, text: str):
    if field == "hidden":
        if not re.fullmatch(r"\d+(x\d+)*", text):
            raise ValueError("hidden sizes are like 25 or 50x50")
        return tuple(int(h) for h in text.split("x"))
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError("not true or false")
        return text.lower() == "true"
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
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
                reason = (
                    str(err) if field in ("hidden",) or types[field] is bool else "not a number"
                )
                raise UserError(f"--grid {spec}: {item.strip()!r} is {reason}") from None
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


def plan_networks(networks: list[Network]) -> tuple[list[list[Network]], list[Network]]:
    """(stacks of networks trained together, networks trained one after another by ``fit``)."""
    stacks: dict[tuple, list[Network]] = {}
    solo = []
    for network in networks:
        if stackable(network.config):
            stacks.setdefault(stack_key(network.config), []).append(network)
        else:
            solo.append(network)
    return list(stacks.values()), solo


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


# ----------------------------------------------------------------------------- the files


class _Files:
    """One stacked network's run directory, written as ``fit`` writes it, in batches."""

    def __init__(self, network: Network, member: Member, start_seconds: float) -> None:
        self.network, self.member = network, member
        self.saved_config = member.config.to_dict()
        self.records: list[dict] = []
        self.images: list[tuple] = []
        self.seconds = start_seconds
        self.improved = False

    def open(self, resumed: bool) -> None:
        dir_ = self.network.dir
        self.log = RunLog(
            dir_, self.saved_config, resume_epoch=self.member.epoch if resumed else None
        )
        if not resumed:
            self.log.write_split(self.member.train_rows, self.member.val_rows)
            self.save_latest()
            link_atomically(dir_ / LATEST, dir_ / BEST)

    def add(self, record: dict, image) -> None:
        self.records.append(record)
        if image is not None:
            self.images.append((image, record["epoch"]))

    def save_latest(self) -> None:
        m = self.member
        state = model_checkpoint(m.model, m.model.state_dict(), m.epoch, self.saved_config)
        state.update(
            optimizer=m.optimizer.state_dict(),
            scheduler=None if m.scheduler is None else m.scheduler.state_dict(),
            rng=m.generator.get_state(),
            progress=m.stopping.state_dict(),
            seconds=self.seconds,
        )
        save_checkpoint(state, self.network.dir / LATEST)

    def flush(self) -> None:
        """History, then best.pt, then the checkpoint that counts them (the member is synced)."""
        if not self.records:
            return
        self.log.log_epochs(self.records)
        for image, epoch in self.images:
            self.log.log_image("hidden_units", image, epoch)
        has_val = len(self.member.val_rows) > 0
        if self.improved and has_val:
            best = model_checkpoint(
                self.member.model,
                self.member.best,
                self.member.stopping.best_epoch_,
                self.saved_config,
            )
            save_checkpoint(best, self.network.dir / BEST)
        self.save_latest()
        if not has_val:
            link_atomically(self.network.dir / LATEST, self.network.dir / BEST)
        self.records, self.images, self.improved = [], [], False

    def finish(self, X: torch.Tensor, y: torch.Tensor) -> dict:
        """metrics.json, figures and HParams for the best model, as ``fit`` reports a run."""
        self.flush()
        m, config = self.member, self.member.config
        m.model.load_state_dict(m.best)
        train = (X[m.train_rows], y[m.train_rows])
        val = (X[m.val_rows], y[m.val_rows]) if len(m.val_rows) else None
        _, train_accuracy = score(m.model, *train, config.loss)
        val_loss, val_accuracy = score(m.model, *val, config.loss) if val else (None, None)
        final = {
            "train_accuracy": train_accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        history = read_history(self.network.dir)
        metrics = {
            **final,
            "train_loss": history[-1]["train_loss"] if history else None,
            "epochs": m.epoch,
            "best_epoch": m.stopping.best_epoch_,
            "stopped": m.status,
            "seconds": history[-1]["seconds"] if history else 0.0,
            "device": str(X.device),
            "preset": config.preset,
        }
        self.log.write_metrics(metrics)
        if config.figures:
            shown = val if val is not None else train
            for name, figure in plots.run_figures(m.model, *shown, self.network.dir).items():
                image = plots.render(figure)
                plots.save_png(image, self.network.dir / plots.FIGURES / f"{name}.png")
        hyper = {k: v for k, v in self.saved_config.items() if k not in NOT_HPARAMS}
        self.log.log_hparams(hyper, final, step=m.epoch)
        self.log.close()
        return metrics


# ----------------------------------------------------------------------------- running


class _Stop:
    """SIGINT and SIGTERM ask the stack to stop at the end of its epoch, with its files saved."""

    def __init__(self) -> None:
        self.asked = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        def ask(signum, frame):
            self.asked = True

        previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """During a solo fit: SIGTERM interrupts it as Ctrl-C does (fit keeps its checkpoint)."""

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def _member(network: Network, X, labels, device) -> tuple[Member, float, bool]:
    """The network's member, fresh or (its directory has a checkpoint) restored from it."""
    member = Member(network.config, X, labels, device)
    path = network.dir / LATEST
    if not path.exists():
        return member, 0.0, False
    checkpoint = load_run_file(path)
    check_fits(checkpoint, member.model, path, network.config.data or default_data_path())
    epoch, seconds = restore(
        checkpoint,
        path,
        model=member.model,
        optimizer=member.optimizer,
        scheduler=member.scheduler,
        rng=member.generator,
        stopping=member.stopping,
    )
    member.epoch = epoch
    member.best = best_weights(network.dir, member.model)
    return member, seconds, True


def _train_stack(networks, device, save_every: float, stop: _Stop, quiet: bool) -> None:
    c = networks[0].config
    X_np, labels = load_digits(c.data or default_data_path(), dtype=c.dtype, stored_labels=True)
    X = torch.from_numpy(X_np).to(device)
    y = torch.from_numpy(labels % 10).to(device)
    files, members = {}, []
    for network in networks:
        if (network.dir / METRICS).exists():
            network.metrics = json.loads((network.dir / METRICS).read_text())
            continue
        network.dir.mkdir(exist_ok=True)
        member, seconds, resumed = _member(network, X_np, labels, device)
        members.append(member)
        files[id(member)] = _Files(network, member, seconds)
        files[id(member)].open(resumed)
    for member in members:  # ended before a kill beat their report
        if member.stopping.should_stop:
            member.status = "converged"
        elif member.epoch >= member.config.epochs:
            member.status = "max_epochs"
    stack = Stack([m for m in members if m.status == "training"], X, y)
    started = last_save = time.perf_counter()
    bar = tqdm(
        total=max(m.config.epochs - m.epoch for m in members),
        disable=quiet,
        leave=False,
        unit="epoch",
        desc=f"{len(members)} networks",
    )
    with stop.deferred():
        while stack.members and not stop.asked:
            ended = _epoch(stack, files, started)
            bar.update(1)
            now = time.perf_counter()
            if stop.asked or now - last_save >= save_every:
                stack.sync()
                for member in stack.members:
                    files[id(member)].flush()
                last_save = now
            for member in ended:  # synced as they left the stack
                files[id(member)].network.metrics = files[id(member)].finish(X, y)
    bar.close()
    if stop.asked:
        raise KeyboardInterrupt
    for member in members:  # those that had ended before a kill beat their report
        network = files[id(member)].network
        if network.metrics is None:
            network.metrics = files[id(member)].finish(X, y)


def _epoch(stack: Stack, files: dict, started: float) -> list[Member]:
    """One epoch of the stack, its records kept for the files; returns the members that ended."""
    ended, pictured = [], []
    for member, record in stack.train_epoch():
        f = files[id(member)]
        if member.status != "training":
            ended.append(member)
        if member.status == "diverged":  # as the solo run: that epoch is not logged
            continue
        record["seconds"] = f.seconds + time.perf_counter() - started
        f.improved |= record["epoch"] == member.stopping.best_epoch_
        f.add(record, None)
        every = member.config.image_every
        if every and record["epoch"] % every == 0:
            pictured.append(member)
    if pictured:
        stack.sync()  # the members' models hold this epoch's weights (those that left, too)
        for member in pictured:
            files[id(member)].images.append((plots.hidden_units_image(member.model), member.epoch))
    return ended


def _run_solo(network: Network, sweep_dir: Path, stop: _Stop) -> None:
    found = sorted(sweep_dir.glob(f"*-{network.config.preset}-{network.name}"))
    with stop.raising():
        if found and (found[-1] / METRICS).exists():
            network.dir = found[-1]
        elif found:
            network.dir = resume(found[-1], quiet=network.config.quiet).run_dir
        else:
            network.dir = fit(network.config).run_dir
    network.metrics = json.loads((network.dir / METRICS).read_text())


def run_sweep(sweep_dir: Path, networks: list[Network], save_every: float, quiet: bool) -> None:
    stacks, solo = plan_networks(networks)
    device = resolve_device(networks[0].config.device)
    stop = _Stop()
    for network in networks:
        if network.dir is None and stackable(network.config):
            network.dir = sweep_dir / network.name
    for stack in stacks:
        _train_stack(stack, device, save_every, stop, quiet)
    for network in solo:
        _run_solo(network, sweep_dir, stop)


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


@exit_on_error
def main(argv: list[str] | None = None) -> Path:
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
    try:
        run_sweep(sweep_dir, networks, save_every, base.quiet)
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
