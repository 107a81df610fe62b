"""Jobs started by torchrun: which process this is (:class:`Ranks`), the process group, and the
few collectives training needs.

torchrun starts one process per GPU (or several on a CPU) with ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment; a process started any other way is the one rank of its own
job (:data:`SOLO`). Every rank of a job runs the same code on the same data from the same seed:
they differ only in the share of each batch they compute (:mod:`digits_torch.fast.data_parallel`),
or of a sweep's networks they train, and in that rank 0 alone writes the run directory.

The backend follows the device: gloo on the CPU, NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``
(:func:`digits_torch.runtime.devices.resolve_device`). A collective that fails, because another rank
died or a machine went away, or that waits longer than the run's ``rank_timeout``, raises
:class:`RankLost`: one line on stderr and a non-zero exit, never a hang.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from ..errors import UserError

if dist.is_available():
    # Imported here, before any group is made, for its default arguments: it binds
    # ``group=group.WORLD`` when first imported, and imported while a group is up (as torch.optim
    # does, by way of torch._dynamo, when it makes its first optimizer) it would hold that group
    # for good. destroy_process_group would then leave gloo's threads running on into the
    # interpreter's exit, where a peer rank closing its sockets can abort the process.
    import torch.distributed.nn.functional  # noqa: F401

__all__ = [
    "SOLO",
    "RankLost",
    "Ranks",
    "any_rank",
    "collective",
    "from_lead",
    "gather_to_lead",
    "job_ranks",
    "joined",
    "launch_command",
    "own_errors",
    "sum_over_ranks",
]

T = TypeVar("T")

ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # what torchrun sets for each process
RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT")  # where the ranks meet: torchrun sets these too


@dataclass(frozen=True)
class Ranks:
    """A process's place in its job: ``rank`` of ``world`` processes, ``local`` on its machine."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def lead(self) -> bool:
        """Rank 0: the one that writes, prints and decides for all."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def share(self, b: int) -> tuple[int, int]:
        """This rank's rows ``[lo, hi)`` of a batch of ``b``: contiguous, in rank order, sizes
        differing by at most one (a rank's share of a batch smaller than the job is empty)."""
        return self.rank * b // self.world, (self.rank + 1) * b // self.world

    def mine(self, items: list[T]) -> list[T]:
        """This rank's items of ``items``: every ``world``-th, from its rank on."""
        return items[self.rank :: self.world]


SOLO = Ranks()  # a process not started by torchrun (or torchrun with one process)


def launch_command(command: str, world: int) -> str:
    """``command``, as a user types it for one process (``python train.py ...``, ``python -m
    digits_torch ...``, ``digits-train ...``), as it starts a job of ``world`` processes: itself
    for one, else under torchrun, which starts the script (or ``-m`` module) itself. What an
    interrupted run or sweep says to resume it with."""
    if world == 1:
        return command
    return f"torchrun --nproc-per-node {world} {command.removeprefix('python ')}"


def job_ranks() -> Ranks:
    """This process's :class:`Ranks`, from the environment torchrun sets (else :data:`SOLO`)."""
    values = {key: os.environ.get(key) for key in ENVIRONMENT}
    if values["WORLD_SIZE"] is None:
        return SOLO
    try:
        rank, world, local = (int(values[key]) for key in ENVIRONMENT)
    except (TypeError, ValueError):
        shown = " ".join(f"{k}={v}" for k, v in values.items())
        raise _environment_error(f"an incomplete torchrun environment ({shown})") from None
    if not (0 <= rank < world and local >= 0):
        raise _environment_error(f"a torchrun environment with RANK={rank} of WORLD_SIZE={world}")
    return Ranks(rank, world, local)


def _environment_error(problem: str) -> UserError:
    """A bad torchrun environment: said by every process that sees it, since a process whose
    RANK is bad or not 0 may be the only one there is (rank 0 alone says other user errors)."""
    err = UserError(f"{problem}; start with torchrun")
    err.every_rank = True
    return err


class RankLost(UserError):
    """A collective failed or timed out: another rank of the job stopped, or stopped answering.

    Every rank that meets it says so (other user errors are said by rank 0 alone).
    """

    every_rank = True


@contextlib.contextmanager
def collective(ranks: Ranks) -> Iterator[None]:
    """Turn a failed collective inside into :class:`RankLost` (a traceback would hide it).

    Only collectives belong inside: gloo reports a lost peer or a timeout as a plain
    RuntimeError, which elsewhere would be a bug to show in full.
    """
    try:
        yield
    except RuntimeError as err:  # torch.distributed.DistError is one too
        reason = _first_sentence(str(err)) or type(err).__name__
        raise RankLost(
            f"rank {ranks.rank} of {ranks.world}: lost the job's other ranks ({reason}); "
            "one failed or was stopped, or did not answer within --rank-timeout seconds"
        ) from None


def _first_sentence(message: str) -> str:
    """A backend's message without its source location: ``[.../pair.cc:537] Read error ...:
    Connection reset by peer. This is typically...`` -> ``Read error ...: Connection reset by
    peer``."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", message.strip().split("\n")[0])
    return text.split(". ")[0].rstrip(".")[:200]


@contextlib.contextmanager
def joined(ranks: Ranks, timeout: float) -> Iterator[None]:
    """The job's process group while inside, its collectives giving up after ``timeout``
    seconds: gloo for CPU tensors, and NCCL for CUDA tensors where there is CUDA (the device a
    run trains on may be read from a checkpoint after the group is up). Nothing for a one-rank
    job, or where the caller has made the group already (it is theirs to end)."""
    if not ranks.parallel or dist.is_initialized():
        yield
        return
    missing = [key for key in RENDEZVOUS if not os.environ.get(key)]
    if missing:  # torch would raise a ValueError from deep inside init_process_group
        shown = " ".join(f"{k}={os.environ.get(k)}" for k in ("RANK", "WORLD_SIZE"))
        raise _environment_error(f"a torchrun environment ({shown}) without {' or '.join(missing)}")
    backend = "gloo"
    if torch.cuda.is_available() and dist.is_nccl_available():
        backend = "cpu:gloo,cuda:nccl"
        if ranks.local < torch.cuda.device_count():
            torch.cuda.set_device(ranks.local)  # NCCL's device (resolve_device picks the same)
    with collective(ranks):
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    try:
        yield
    finally:
        dist.destroy_process_group()


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``, replaced in place by its sum over the ranks (the same bits on every rank)."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(ranks: Ranks, flag: bool) -> bool:
    """Whether ``flag`` is true on any rank: what every rank then acts on alike."""
    if not ranks.parallel:
        return flag
    votes = torch.tensor([int(flag)], dtype=torch.int32)
    with collective(ranks):
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes.item())


def from_lead(ranks: Ranks, make: Callable[[], T]) -> T:
    """``make()`` run on rank 0, its result (or the :class:`UserError` it raised) on every
    rank: for what one rank decides for all, such as a new run directory's name, or a
    checkpoint read from rank 0's disk. Results travel pickled, between the job's ranks."""
    if not ranks.parallel:
        return make()
    box: list = [None]
    if ranks.lead:
        try:
            box = [("result", make())]
        except UserError as err:
            box = [("error", (err.problem, err.path))]
    with collective(ranks):
        dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
    kind, value = box[0]
    if kind == "error":
        raise UserError(*value)
    return value


def gather_to_lead(ranks: Ranks, mine: T) -> list[T] | None:
    """Every rank's ``mine``, in rank order, on rank 0 (None on the other ranks)."""
    if not ranks.parallel:
        return [mine]
    gathered: list | None = [None] * ranks.world if ranks.lead else None
    with collective(ranks):
        dist.gather_object(mine, gathered, dst=0)
    return gathered


@contextlib.contextmanager
def own_errors(ranks: Ranks) -> Iterator[None]:
    """A :class:`UserError` raised inside is this rank's own (its share of a sweep, not what
    every rank meets): every rank says it, ``rank N:`` first."""
    try:
        yield
    except UserError as err:
        if not ranks.parallel or getattr(err, "every_rank", False):
            raise
        own = UserError(f"rank {ranks.rank}: {err}")  # the path, if any, after the rank
        own.every_rank = True
        raise own from None
