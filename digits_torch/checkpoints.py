"""Checkpoints: state dicts written atomically, read back with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts; never a pickled model.
Loading uses ``torch.load(..., weights_only=True)``, which refuses any pickle that would run code.

Keys: ``format``, ``epoch`` (completed epochs), ``architecture`` (:meth:`MLP.architecture`),
``model`` and ``optimizer`` (state dicts), ``rng`` (the CPU generator's state), ``config``
(the run's :class:`~digits_torch.training.TrainConfig` as a dict), ``progress`` (the stopping
rule's and best model's bookkeeping), ``seconds`` (training time so far).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import UserError
from .model import MLP

__all__ = ["load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = 1
LATEST, BEST = "checkpoint.pt", "best.pt"


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a temp file beside it, fsync, then rename.

    A crash at any moment leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint file (or a run directory's ``best.pt``), refusing pickles that run code.

    Raises:
        UserError: missing, truncated, not a checkpoint, or a pickle that is not plain data.
    """
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    if not path.exists():
        raise UserError("no such checkpoint", path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe pickle"
        raise UserError(f"refused: not plain checkpoint data ({first[:100]})", path) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        reason = " ".join(str(err).split())[:100] or type(err).__name__
        raise UserError(f"not a readable checkpoint ({reason})", path) from None
    if not isinstance(state, dict) or "model" not in state or "architecture" not in state:
        raise UserError("not a digits-torch checkpoint (no model or architecture)", path)
    return state


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> MLP:
    """The trained :class:`MLP` from a checkpoint file or a run directory (its ``best.pt``).

    The model is returned in eval mode on ``map_location``, in the dtype it was trained in.
    """
    state = load_checkpoint(path, map_location)
    try:
        model = MLP(**state["architecture"])
        model.to(_dtype_of(state["model"]))  # a float64 run's model stays float64
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError) as err:
        reason = " ".join(str(err).split())[:120]
        raise UserError(f"checkpoint does not fit its model ({reason})", path) from None
    return model.to(map_location).eval()


def _dtype_of(weights) -> torch.dtype:
    """The one floating dtype of a state dict's tensors; float32 when there is not exactly one."""
    values = weights.values() if isinstance(weights, dict) else []
    dtypes = {v.dtype for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else torch.float32


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: fsync the directory entry (a no-op where the OS can't)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
