"""``python -m digits_torch sweep``: many networks at once, over a grid of config fields.

    python -m digits_torch sweep --grid l2=0,0.01,0.1,1 --seeds 0-2      # 12 networks
    python -m digits_torch sweep --preset seed --grid lr=0.001,0.01 --grid hidden=25,100
    python -m digits_torch sweep --resume runs/20261201-220000-sweep      # after a kill

Every ``train.py`` flag sets a field for all networks; ``--grid FIELD=V1,V2,...`` sweeps a field
(``hidden=25,100,50x50``); ``--seeds 0-4`` (or ``0,3,7``) sweeps the seed. Every combination is
checked as a :class:`TrainConfig` before anything runs. SGD networks that share a
:func:`~digits_torch.sweep.plan.stack_key` train together as one
:class:`~digits_torch.sweep.stack.Stack`; Adam, L-BFGS and sklearn-exact networks run one after
another through ``fit``. The plan, with the
memory it needs, is printed first.

``runs/<timestamp>-sweep[-name]/`` holds ``sweep.json``, ``results.csv``, the figures, and one
directory per network in a ``train.py`` run's layout (``evaluate``, ``plots``, ``load_model`` and
``train.py --resume`` work on each). Networks' files are written on a time budget
(``--save-every`` seconds) and when each network ends; ``--resume`` continues from them. Their
pictures are drawn once every network has trained: the best configuration's by default, every
network's with ``--figures`` (:mod:`~digits_torch.sweep.figures`).

One process writes a sweep directory: rank 0 holds its lock from before it reads sweep.json
(whose names and directories must lie inside the sweep) to the end.

Over ranks (``torchrun --standalone --nproc-per-node N -m digits_torch sweep ...``): rank 0
decides for all (it reads sweep.json to resume, makes the sweep directory and writes the first
sweep.json, and brings every network back to its last commit); each rank trains every N-th
network from its own rank on (its stacks planned from that share, its solo networks through
``fit`` alone), on its own device, and writes their directories and its own commit file; rank 0
gathers the results and writes sweep.json, results.csv, the figures and the table as one process
would. Each rank's memory is checked for its share (ranks of one machine share its RAM). Across
machines, the sweep directory must be on a filesystem every rank shares. Ranks that finish early
wait for the others at the final gather, so the job's collectives wait up to a day
(:data:`RANK_WAIT`), not ``--rank-timeout``: a rank that dies still ends the job at once
(torchrun stops the others, and gloo reports the closed connection). Ctrl-C or SIGTERM to
torchrun reaches every rank; each saves, rank 0 says how to resume (with any number of ranks, or
none), and all exit 130.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import os
import shutil
import socket
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import arguments
from ..config.config import DEFAULT_PRESET, TrainConfig
from ..config.config_files import read_config_file
from ..core.data import default_data_path, load_digits
from ..errors import ArgumentParser, UserError, error_cut_short, exit_on_error, print_stderr
from ..runtime.devices import resolve_device
from ..runtime.distributed import (
    Ranks,
    any_rank,
    from_lead,
    gather_to_lead,
    job_ranks,
    joined,
    launch_command,
    own_errors,
)
from ..runtime.interrupts import StopRequests
from ..store.runs import RunLock, new_run_dir
from ..train.teachers import checked_teacher
from .figures import draw_network, figures_mode, pictured
from .grid import expand, parse_grid, parse_seeds
from .plan import describe_plan, memory_needed
from .record import SWEEP, read_sweep, write_sweep_json
from .report import report, write_results
from .teachers import name_teachers
from .train import Network, plan_networks, recover, run_sweep

__all__ = ["main", "parse_grid", "parse_seeds", "run_command"]

EXIT_INTERRUPTED = 130
# Seconds a rank waits for the others at a collective: one that is done with its share waits at
# the final gather for the slowest, possibly for hours (a rank that dies ends the job at once).
RANK_WAIT = 24 * 3600.0


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


# ----------------------------------------------------------------------------- the command


class _Parser(ArgumentParser):
    """The sweep's flags: ``--seed 0-2`` (train.py's one seed) hints at ``--seeds``."""

    def _suggestion(self, message: str) -> str:
        if message.startswith("argument --seed: invalid"):
            return " (did you mean --seeds?)"
        return super()._suggestion(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m digits_torch sweep",
        usage="%(prog)s --grid FIELD=V1,V2 [--seeds SEEDS] [FLAG ...]\n"
        "       %(prog)s --resume SWEEP_DIR",
        description="Train many networks at once over a grid of config fields. Every train.py "
        "flag (grouped below)\nsets a field for all networks.",
        argument_default=argparse.SUPPRESS,
        conflict_handler="resolve",  # its --checkpoint-every replaces train.py's
        epilog=arguments.presets_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep = parser.add_argument_group("sweep")  # the sweep's own flags first, then train.py's
    sweep.add_argument(
        "--grid",
        action="append",
        metavar="FIELD=V1,V2",
        default=[],
        help="sweep a config field over values (repeat for more fields); "
        "hidden sizes as 25 or 50x50, aug_elastic as 10x2.9",
    )
    sweep.add_argument("--seeds", metavar="SEEDS", help="sweep the seed: 0-4 or 0,3,7")
    sweep.add_argument(
        "--resume",
        metavar="SWEEP_DIR",
        help="continue a sweep that was stopped (only --device, --quiet, --checkpoint-every)",
    )
    groups = arguments.add_config_arguments(parser)
    # train.py's --checkpoint-every, for a sweep's stacks: its files are written as one
    groups["output"].add_argument(
        "--checkpoint-every",
        "--save-every",  # its former name, still taken
        dest="checkpoint_every",
        type=float,
        metavar="SECONDS",
        help="write every network's files at most this often, and on Ctrl-C or SIGTERM "
        f"(default: {TrainConfig.checkpoint_every:g}; --save-every: its former name)",
    )
    sweep.add_argument(  # replaces train.py's --figures: a sweep draws once all have trained
        "--figures",
        action=argparse.BooleanOptionalAction,
        help="once every network has trained, draw every network's pictures into its "
        "figures/ (--figures) or none (--no-figures); by default only the best "
        "configuration's networks' (the closing table's first row)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """The command (``digits-sweep``): exits 0, 2 on a user error, 130 when interrupted."""
    run_command(argv)


@exit_on_error
def run_command(argv: list[str] | None = None) -> Path:
    """:func:`main`, returning the sweep directory (on every rank of a torchrun job)."""
    given = vars(build_parser().parse_args(argv))
    ranks = job_ranks()
    with joined(ranks, RANK_WAIT):
        return _sweep(given, ranks)


@dataclass
class _Sweep:
    """A sweep as rank 0 decides it for every rank."""

    grid: dict[str, list]
    networks: list[Network]
    dir: Path | None  # None until rank 0 makes it (a new sweep)
    logdir: str
    name: str
    shape: tuple[int, int]  # of the data: (images, pixels)
    plan: str = ""
    diverged: set[str] = dataclasses.field(default_factory=set)  # when it was stopped
    figures: str = "best"  # whose pictures it draws once trained (sweep_figures.MODES)


@dataclass
class _Share:
    """What one rank trains, as it tells rank 0: for the plan and the memory check."""

    plan: str  # its networks, as describe_plan says them
    count: int
    device: str
    host: str
    needed: int  # bytes, for its largest stack
    available: int | None  # bytes free on its device


def _sweep(given: dict, ranks: Ranks) -> Path:
    """The sweep, as one rank runs it: rank 0 decides what to train; each rank plans its share
    and rank 0 checks and prints the plans and makes the sweep directory; each rank trains its
    share and sends rank 0 the results, which rank 0 writes."""
    save_every = given.pop("checkpoint_every", TrainConfig.checkpoint_every)
    # rank 0's lock on the sweep directory, held here: one sweep writes it at a time
    with contextlib.ExitStack() as locks:
        planned = from_lead(ranks, lambda: _what_to_train(given, locks))
        device = planned.networks[0].config.device
        with own_errors(ranks):
            share = _share(ranks.mine(planned.networks), device, planned.shape)
        shares = gather_to_lead(ranks, share)
        planned = from_lead(ranks, lambda: _start(planned, shares, locks))
        mine = ranks.mine(planned.networks)  # round robin: stacks and solo runs spread alike
        interrupted = _train_share(planned, mine, save_every, ranks)
        with StopRequests() as waiting:  # a rank done with its share waits here for the others
            done = gather_to_lead(ranks, [_result(n) for n in mine])
            interrupted = any_rank(ranks, interrupted or waiting.signum is not None)
        if interrupted:
            if ranks.lead:
                print_stderr(_resume_hint(planned.dir, ranks))
            raise SystemExit(EXIT_INTERRUPTED)
        if ranks.lead:
            _finish(planned, done)
        return planned.dir


def _what_to_train(given: dict, locks: ExitStack) -> _Sweep:
    """On rank 0: the grid and its networks, from the flags or (``--resume``) sweep.json (its
    lock then added to ``locks``)."""
    given = dict(given)
    specs, seeds = given.pop("grid"), given.pop("seeds", None)
    sweep_dir, config_file = given.pop("resume", None), given.pop("config", None)
    if sweep_dir is not None:
        if specs or seeds or config_file or set(given) - {"device", "quiet"}:
            raise UserError(
                "a resumed sweep keeps its grid and config; give only --device, --quiet"
            )
        sweep_dir = Path(sweep_dir)
        grid, networks, figures = read_sweep(sweep_dir, locks)
        networks = [
            dataclasses.replace(n, config=dataclasses.replace(n.config, **given)) for n in networks
        ]
    else:
        grid = parse_grid(specs)
        if seeds is not None:
            if "seed" in grid:
                raise UserError("sweep seeds with --seeds or --grid seed=..., not both")
            grid["seed"] = parse_seeds(seeds)
        _check_flags(given, grid, seeds is not None)
        # a config file is a base, as train.py takes it: the flags override it, the grid both
        given = {**(read_config_file(config_file) if config_file else {}), **given}
        logdir = given.get("logdir", TrainConfig.logdir)
        networks = expand(given.pop("preset", DEFAULT_PRESET), given, grid, Path(logdir))
        figures = figures_mode(given)
    logdir, name = given.get("logdir", TrainConfig.logdir), given.get("name", "")
    base = networks[0].config
    resolve_device(base.device)  # a device missing everywhere: said once, by rank 0
    X, _ = load_digits(base.data or default_data_path())
    # a bad --teacher is one line before the sweep directory is made, not a sweep.json and
    # network directories left with nothing in them
    for teacher in sorted({n.config.teacher for n in networks if n.config.teacher is not None}):
        checked_teacher(teacher, base.logdir, X.shape[1])
    return _Sweep(grid, networks, sweep_dir, logdir, name, X.shape, figures=figures)


def _check_flags(given: dict, grid: dict, seeds: bool) -> None:
    """Refuse a flag for a field the grid sweeps: the grid's values would silently win."""
    for field in grid:
        if field in given:
            flag = "--" + field.replace("_", "-")
            swept = "--seeds" if seeds and field == "seed" else f"--grid {field}=..."
            raise UserError(f"{flag} and {swept} both set {field}; give one")


def _share(networks: list[Network], device_spec: str, shape: tuple[int, int]) -> _Share:
    """This rank's plan: its stacks and solo networks, and the memory they need on its device."""
    stacks, solo = plan_networks(networks)
    device = resolve_device(device_spec)
    needed = max((memory_needed([n.config for n in s], *shape) for s in stacks), default=0)
    available = available_memory(device)
    plan = describe_plan(stacks, solo, needed, available)
    return _Share(plan, len(networks), str(device), socket.gethostname(), needed, available)


def _start(planned: _Sweep, shares: list[_Share], locks: ExitStack) -> _Sweep:
    """On rank 0, once every rank has planned its share: refuse a sweep that does not fit,
    print the plan, make the sweep directory (a new sweep; its lock added to ``locks``), write
    sweep.json, and bring every network back to its last commit (a resumed sweep), before any
    rank trains."""
    _check_memory(shares)
    plan = _whole_plan(shares)
    print(plan)
    sweep_dir, networks, new = planned.dir, planned.networks, planned.dir is None
    if new:
        sweep_dir = new_run_dir(planned.logdir, "sweep", planned.name)
        networks = [
            dataclasses.replace(n, config=dataclasses.replace(n.config, logdir=str(sweep_dir)))
            for n in networks
        ]
    try:
        if new:
            locks.enter_context(RunLock(sweep_dir))
        write_sweep_json(sweep_dir, planned.grid, networks, plan, planned.figures)
    except UserError:
        if new:  # a full disk, say: a sweep that never started leaves nothing, as a run
            shutil.rmtree(sweep_dir, ignore_errors=True)
        raise
    diverged = recover(sweep_dir, networks)
    return dataclasses.replace(
        planned, dir=sweep_dir, networks=networks, plan=plan, diverged=diverged
    )


def _check_memory(shares: list[_Share]) -> None:
    """Refuse a sweep whose ranks need more than their device has free: the ranks of one
    machine share its RAM, while each has a GPU of its own."""
    sharing: dict[tuple[str, str], list[int]] = {}
    for rank, share in enumerate(shares):
        sharing.setdefault((share.host, share.device), []).append(rank)
    for (host, device), together in sharing.items():
        needed = sum(shares[r].needed for r in together)
        free = [shares[r].available for r in together if shares[r].available is not None]
        if not free or needed <= min(free):
            continue
        where = ""
        if len(shares) > 1:
            named = ", ".join(map(str, together))
            where = f" (rank{'s' if len(together) > 1 else ''} {named} on {host})"
        raise UserError(
            f"the sweep needs about {needed / 2**20:,.0f} MiB on {device}{where}, but only "
            f"{min(free) / 2**20:,.0f} MiB are available; sweep fewer networks at once"
        )


def _whole_plan(shares: list[_Share]) -> str:
    """The plan rank 0 prints: one process's, or each rank's under its name."""
    if len(shares) == 1:
        return shares[0].plan
    world = len(shares)
    count = sum(share.count for share in shares)
    lines = [f"{count} network(s) over {world} ranks (rank r trains networks r, r + {world}, ...):"]
    for rank, share in enumerate(shares):
        first, *rest = share.plan.splitlines()
        lines.append(f"  rank {rank} on {share.device}: {first}")
        lines += [f"  {line}" for line in rest]
    return "\n".join(lines)


def _train_share(planned: _Sweep, mine: list[Network], save_every: float, ranks: Ranks) -> bool:
    """Train this rank's networks; returns whether Ctrl-C or SIGTERM stopped them (their files
    saved). An error here is this rank's own: every rank says its own."""
    try:
        with own_errors(ranks):
            if not ranks.lead:
                _check_shared(planned.dir)
            name_teachers(planned.dir, planned.networks, ranks)  # each trained once, first
            quiet = planned.networks[0].config.quiet
            run_sweep(
                planned.dir,
                mine,
                save_every,
                quiet,
                ranks=ranks,
                diverged=planned.diverged,
            )
    except KeyboardInterrupt as err:
        cut_short = error_cut_short(err)
        if cut_short is not None:  # the error ended the share; the signal came as it cleaned up
            raise cut_short from None
        return True
    return False


def _check_shared(sweep_dir: Path) -> None:
    """Every rank writes its networks into the sweep directory rank 0 made."""
    if not (sweep_dir / SWEEP).is_file():
        raise UserError(
            "not on this machine: under torchrun across machines, the sweep's --logdir must be "
            "on a filesystem every rank shares",
            sweep_dir,
        )


def _result(network: Network) -> tuple[str, str | None, dict | None]:
    """What a rank tells rank 0 of a network it trained: (name, its directory's name,
    metrics)."""
    return network.name, None if network.dir is None else network.dir.name, network.metrics


def _finish(planned: _Sweep, done: list[list[tuple]]) -> None:
    """On rank 0: every rank's results into the sweep's networks, then the sweep's files."""
    by_name = {network.name: network for network in planned.networks}
    for name, directory, metrics in itertools.chain.from_iterable(done):
        network = by_name[name]
        network.dir = None if directory is None else planned.dir / directory
        network.metrics = metrics
    write_sweep_json(planned.dir, planned.grid, planned.networks, planned.plan, planned.figures)
    rows = write_results(planned.dir, planned.grid, planned.networks)
    print(report(planned.dir, planned.grid, rows))
    _draw(planned, rows)
    print(f"sweep: {planned.dir}")


def _draw(planned: _Sweep, rows: list[dict]) -> None:
    """The networks' pictures, now that all have trained (see :mod:`digits_torch.sweep.figures`),
    and a line that says whose."""
    chosen = pictured(planned.figures, planned.grid, rows)
    for row in chosen:
        draw_network(planned.dir / row["dir"])
    if planned.figures == "none":
        print("pictures: none (--no-figures)")
    elif planned.figures == "every":
        print(f"pictures: every network's, in <network>/figures/ ({len(chosen)})")
    else:
        names = ", ".join(row["dir"] for row in chosen)
        print(
            f"pictures: the best configuration's {len(chosen)} network(s), in <network>/figures/ "
            f"({names}); every network's with --figures, or later with python -m "
            "digits_torch plots <network>"
        )


def _resume_hint(sweep_dir: Path, ranks: Ranks) -> str:
    again = launch_command(f"python -m digits_torch sweep --resume {sweep_dir}", ranks.world)
    hint = f"\ninterrupted; resume with: {again}"
    if not ranks.parallel:
        return hint
    also = "another --nproc-per-node, or python -m digits_torch sweep alone, resumes it too"
    return f"{hint}\n({also})"
