"""The one place a device is chosen: :func:`resolve_device`."""

from __future__ import annotations

import torch

from ..config.bounds import is_device_spec
from ..errors import UserError
from .distributed import job_ranks

__all__ = ["resolve_device"]


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
    if not is_device_spec(spec):
        raise UserError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():  # cuda or cuda:N
        raise UserError(f"device {spec}: CUDA is not available on this machine")
    # N read here, not by torch.device, which refuses cuda:01 or an N past C's long unnamed
    index, count = (int(spec[5:]) if spec != "cuda" else None), torch.cuda.device_count()
    if ranks.parallel:
        if index is not None:
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
    if index is not None and index >= count:
        raise UserError(f"device {spec}: this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)
