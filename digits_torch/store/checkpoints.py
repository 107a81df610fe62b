"""Checkpoints: state dicts written atomically, read back with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts; never a pickled model.
Loading uses ``torch.load(..., weights_only=True)``, which refuses any pickle that would run code.
Before torch 2.6 it could be bypassed (CVE-2025-32434), and advisories report a later bypass fixed
in 2.10: hence the dependency's floor, torch >= 2.10.

Keys: ``format``, ``epoch`` (completed epochs), ``architecture`` (:meth:`MLP.architecture`),
``model``, ``optimizer`` and ``scheduler`` (state dicts; ``scheduler`` is None for a constant
lr), ``rng`` (the CPU generator's state: shuffling and augmentation draw from it), ``config``
(the run's :class:`~digits_torch.config.config.TrainConfig` as a dict), ``progress`` (the stopping
rule's and best model's bookkeeping, :class:`~digits_torch.optim.stopping.EarlyStopping`),
``seconds`` (training time so far). ``best.pt`` holds only ``format``, ``epoch``, ``architecture``,
``model`` and ``config``.

Resuming reads a run's own checkpoint back: :func:`check_fits` (the checkpoint's model is the one
the config builds), :func:`restore` (the training state into the live objects) and
:func:`best_weights` (the best model so far, from ``best.pt``).

A model can also travel as safetensors (:func:`save_safetensors`): its weights, and in the
file's metadata its architecture and the loss it was trained with. :func:`load_checkpoint` reads
such a file as a checkpoint holding ``format``, ``architecture``, ``model`` and ``config`` (only
``loss``), so :func:`load_checkpoint` and everything built on it load both kinds.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from pathlib import Path

import torch

from ..core.model import MLP
from ..core.read_files import check_regular, parse_json
from ..errors import UserError, one_line, reading
from .files import write_atomically
from .run_contents import BEST, LATEST

__all__ = [
    "BEST",
    "LATEST",
    "best_weights",
    "check_fits",
    "checkpoint_bytes",
    "load_checkpoint",
    "model_checkpoint",
    "restore",
    "save_checkpoint",
    "save_safetensors",
    "training_checkpoint",
]

FORMAT = 1
# What a checkpoint needs beyond the model to continue a run (best.pt lacks all but config).
RESUMABLE = frozenset({"epoch", "optimizer", "rng", "config", "progress", "seconds"})
SAFETENSORS_FORMAT = "digits-torch"  # the "format" of our safetensors files' metadata
CARD_KEY = (
    "model_card"  # the metadata entry holding a model card (digits_torch.inference.model_card)
)
ARCHITECTURE = ("input_size", "hidden_sizes", "num_classes", "activation")  # MLP.architecture()


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (see :func:`write_atomically`).

    Raises:
        UserError: the file cannot be written (disk full, read-only, too large, ...).
    """
    # Serialise in memory first (a checkpoint is ~100 kB): then every failure below is the disk's
    # and becomes a UserError, while a failure to serialise stays a bug with its traceback.
    write_atomically(path, checkpoint_bytes(state))


def checkpoint_bytes(state: dict) -> bytes:
    """The bytes :func:`save_checkpoint` writes for ``state`` (their SHA-256 is recorded of a
    distilled run's teacher.pt)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_safetensors(
    model: MLP, path: str | Path, loss: str = "softmax", card: dict | None = None
) -> None:
    """Write the model's weights as a safetensors file, atomically.

    The tensors are the state dict's, by name, in the model's dtype; the metadata (strings)
    holds ``format`` (``"digits-torch"``), ``architecture`` (:meth:`MLP.architecture` as JSON)
    and ``loss`` (``"softmax"`` or ``"coursera"``), and ``model_card`` (``card`` as JSON) when
    given (:mod:`digits_torch.inference.model_card`). :func:`load_checkpoint` reads the weights back
    exactly.

    Raises:
        UserError: safetensors is not installed, or the file cannot be written.
    """
    safetensors = _import_safetensors(path)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    metadata = {
        "format": SAFETENSORS_FORMAT,
        "architecture": json.dumps(model.architecture()),
        "loss": loss,
    }
    if card is not None:
        metadata[CARD_KEY] = json.dumps(card)
    write_atomically(path, safetensors.torch.save(tensors, metadata=metadata))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint file (or a run directory's ``best.pt``), refusing pickles that run code.
    A safetensors file (:func:`save_safetensors`) reads as a checkpoint too.

    The result is checked: a dict whose ``model`` weights have exactly the shapes its
    ``architecture`` needs, and are finite.

    Raises:
        UserError: missing, empty, truncated, not a checkpoint, a pickle that is not plain data,
            weights that do not fit the architecture, or weights that are not finite.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / BEST).exists():
            raise UserError(f"not a run directory (no {BEST})", path)
        path = path / BEST
    check_regular(path, "a checkpoint")  # a FIFO would block torch.load for ever
    with reading(path), open(path, "rb") as f:
        head = f.read(9)
    if not head:
        raise UserError("empty file, not a checkpoint", path)
    if head[:6] == b"MATLAB":  # an easy mix-up; torch would only say its pickle is unreadable
        raise UserError(
            "a MATLAB .mat file, not a checkpoint (for ex4's weights use load_weights)", path
        )
    if head[8:9] == b"{":  # safetensors: an 8-byte header length, then the JSON header
        state = _read_safetensors(path, map_location)
    elif head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch's zip, a legacy pickle
        state = _torch_load(path, map_location)
    else:  # torch.load would say only "list index out of range" of, say, a text file
        problem = "not a readable checkpoint (neither torch's zip nor a pickle nor safetensors)"
        raise UserError(problem, path)
    _check_state(state, path)
    return state


def model_from_state(state: dict, map_location: str | torch.device = "cpu") -> MLP:
    """The :class:`MLP` of a checkpoint already read (and checked) by :func:`load_checkpoint`."""
    model = MLP(**state["architecture"])
    model.to(_dtype_of(state["model"]))  # a float64 run's model stays float64
    model.load_state_dict(state["model"])
    return model.to(map_location).eval()


def _torch_load(path: Path, map_location: str | torch.device):
    """``torch.load(weights_only=True)``, every failure a UserError naming the file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a damaged file makes torch raise many types; the user needs one
        # torch's weights-only unpickler stops at the first thing that is not a tensor or plain
        # data, before building it: a GLOBAL (an importable name, which a pickle calls to run
        # code) or an opcode it does not know (a damaged file).
        unsafe = isinstance(err, pickle.UnpicklingError) and re.search(r"GLOBAL ([\w.]+)", str(err))
        if unsafe:
            problem = (
                f"refused: loading it would call {unsafe.group(1)}; checkpoints hold only data"
            )
            raise UserError(problem, path) from None
        raise UserError(
            f"not a readable checkpoint ({one_line(err, _BOILERPLATE)})", path
        ) from None


def _read_safetensors(path: Path, map_location: str | torch.device) -> dict:
    """A safetensors file as a checkpoint's state (see the module docstring), not yet checked."""
    safetensors = _import_safetensors(path)
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            weights = {name: f.get_tensor(name).to(map_location) for name in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise UserError(
            f"not a readable safetensors file ({one_line(err, _BOILERPLATE)})", path
        ) from None
    if metadata.get("format") != SAFETENSORS_FORMAT:
        raise UserError("a safetensors file without digits-torch's metadata", path)
    try:
        architecture = parse_json(metadata.get("architecture", ""))
    except ValueError:
        raise UserError("its metadata's architecture is not JSON", path) from None
    if "loss" not in metadata:  # a default would read a coursera model's sigmoids as softmax
        raise UserError("its metadata lacks the loss the model was trained with", path)
    config = {"loss": metadata["loss"]}
    return {"format": FORMAT, "architecture": architecture, "model": weights, "config": config}


def _import_safetensors(path: Path):
    """The safetensors package (with its torch functions), or a UserError naming the file."""
    try:
        import safetensors.torch
    except ImportError:
        raise UserError("safetensors is not installed (pip install safetensors)", path) from None
    return safetensors


def model_checkpoint(model: MLP, weights: dict, epoch: int, config: dict) -> dict:
    """What ``best.pt`` holds: ``weights`` (a state dict of ``model``) after ``epoch`` epochs of
    the run with ``config`` (a dict). The latest checkpoint holds this and the training state."""
    return {
        "format": FORMAT,
        "epoch": epoch,
        "architecture": model.architecture(),
        "model": weights,
        "config": config,
    }


def training_checkpoint(model: MLP, epoch: int, config: dict, seconds: float, **state) -> dict:
    """What ``checkpoint.pt`` holds: :func:`model_checkpoint` of the model's current weights,
    and the training state a resume restores: ``optimizer``, ``scheduler`` (None for a constant
    lr), ``rng`` (a generator or random stream) and ``stopping`` (each read through its
    ``state_dict``; the rng through ``get_state``), and the training ``seconds`` so far."""
    scheduler = state["scheduler"]
    return {
        **model_checkpoint(model, model.state_dict(), epoch, config),
        "optimizer": state["optimizer"].state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": state["rng"].get_state(),
        "progress": state["stopping"].state_dict(),
        "seconds": seconds,
    }


def load_run_file(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """:func:`load_checkpoint` for a run's own files, where a directory is never a run directory."""
    if path.is_dir():
        raise UserError("is a directory, not a checkpoint", path)
    return load_checkpoint(path, map_location)


def check_fits(checkpoint: dict, model: MLP, path: Path, data_path: Path) -> None:
    """The checkpoint's model (read from ``path``) must be ``model``, built for ``data_path``."""
    saved, needed = checkpoint["architecture"], model.architecture()
    if saved.get("input_size") != needed["input_size"]:
        problem = (
            f"has {needed['input_size']} pixels per image, but the model in {path} "
            f"takes {saved.get('input_size')}"
        )
        raise UserError(problem, data_path)
    if saved != needed:
        raise UserError(f"its model {saved} is not the one its config builds {needed}", path)


def restore(checkpoint: dict, path: Path, **into) -> tuple[int, float]:
    """Load the training state of ``checkpoint`` (read from ``path``) into the live objects.

    Args:
        into: ``model``, ``optimizer``, ``scheduler`` (None for a constant lr), ``rng`` (the
            run's generator or random stream) and ``stopping``: each has ``load_state_dict`` (the
            rng: ``set_state``).

    Returns:
        (completed epochs, training seconds so far).
    """
    try:
        into["model"].load_state_dict(checkpoint["model"])
        into["optimizer"].load_state_dict(checkpoint["optimizer"])
        if into["scheduler"] is not None:
            into["scheduler"].load_state_dict(checkpoint["scheduler"])
        into["rng"].set_state(checkpoint["rng"])
        into["stopping"].load_state_dict(checkpoint["progress"])
        return int(checkpoint["epoch"]), float(checkpoint["seconds"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # a checkpoint we did not write
        raise UserError(f"cannot resume from it ({one_line(err)})", path) from None


def best_weights(run_dir: Path, model: MLP) -> dict:
    """A resumed run's best weights so far: best.pt's, or the current ones if there is none.

    best.pt may be of a later epoch than checkpoint.pt (a run stopped by the NaN guard writes
    the best model it kept in memory): training those epochs again reaches that epoch and
    makes it the best again, so its weights stand in until then."""
    if not (run_dir / BEST).exists():  # stopped before its first epoch ended
        return clone_weights(model)
    best = load_run_file(run_dir / BEST, map_location=next(model.parameters()).device)
    if best["architecture"] != model.architecture():
        raise UserError("holds another model than the run's checkpoint", run_dir / BEST)
    return best["model"]


def clone_weights(model: MLP) -> dict:
    """A copy of the model's weights that later steps won't change."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _check_state(state, path: Path) -> None:
    """A checkpoint's ``architecture`` must build an MLP whose weights are exactly ``model``'s."""
    if not isinstance(state, dict) or not {"model", "architecture"} <= state.keys():
        raise UserError("not a digits-torch checkpoint (no model or architecture)", path)
    architecture, weights = state["architecture"], state["model"]
    if not isinstance(architecture, dict) or not isinstance(weights, dict):
        raise UserError("not a digits-torch checkpoint (model or architecture is not a dict)", path)
    missing = [name for name in ARCHITECTURE if name not in architecture]
    if missing:  # MLP's defaults would fill them in: a relu network read as a sigmoid one
        raise UserError(f"its architecture lacks {', '.join(missing)}", path)
    try:
        with torch.device("meta"):  # shapes only: a hostile architecture allocates nothing
            skeleton = MLP(**architecture)
    except (TypeError, ValueError) as err:
        raise UserError(
            f"invalid architecture {architecture} ({one_line(err, _BOILERPLATE)})", path
        ) from None
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    found = {
        name: tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        for name, t in weights.items()
    }
    for name in sorted(expected.keys() | found.keys()):
        if found.get(name) != expected.get(name):
            raise UserError(
                f"weights do not fit the file's {skeleton.shape_text()} architecture: {name} is "
                f"{found.get(name, 'missing')}, the architecture needs "
                f"{expected.get(name, 'no such weight')}",
                path,
            )
    for name, tensor in weights.items():
        if not tensor.is_floating_point():  # loading would round them into the model's floats
            dtype = str(tensor.dtype).removeprefix("torch.")
            raise UserError(f"weights must be floating point ({name} is {dtype})", path)
        if not bool(tensor.isfinite().all()):
            raise UserError(f"weights are not finite ({name} holds nan or inf)", path)


_BOILERPLATE = re.compile(
    r"weights only load failed|\(\d\)|check the documentation|please file|"
    r"weightsunpickler error:\s*$",
    re.IGNORECASE,
)


def _dtype_of(weights) -> torch.dtype:
    """The one floating dtype of a state dict's tensors; float32 when there is not exactly one."""
    values = weights.values() if isinstance(weights, dict) else []
    dtypes = {v.dtype for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else torch.float32
