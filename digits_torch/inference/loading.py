"""A trained model from whichever file holds it, and how its outputs read as probabilities.

    trained = load_trained("runs/<run>")   # or a checkpoint, a .safetensors export, ex4's .mat
    trained.model, trained.loss            # the MLP, and "softmax" or "coursera"
    trained.probabilities(x)               # (batch, 10), each row summing to 1

The loss a model was trained with decides what its outputs mean. Softmax cross-entropy trains
logits whose softmax is the probability of each digit. ex4's cost (``loss="coursera"``) trains an
independent sigmoid unit per digit, so the ten sigmoids need not sum to 1; we divide them by
their sum (normalised sigmoids), which keeps their order and so the predicted digit. A run's
checkpoint records its loss in its config; a safetensors export in its metadata; ex4's Theta .mat
records nothing and is ex4's own network, so it is read as ``coursera``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config.presets import LOGDIR
from ..core.losses import LOSSES
from ..core.model import MLP
from ..core.read_files import check_regular
from ..errors import UserError, no_such_path, reading
from ..reference.coursera import load_weights
from ..store.checkpoints import load_checkpoint, model_from_state
from ..store.runs import find_run

__all__ = ["CHECKPOINT_SUFFIXES", "Trained", "as_trained", "load_model", "load_trained"]


@dataclass(frozen=True)
class Trained:
    """A model with the loss it was trained with.

    model: the :class:`MLP`, in eval mode. loss: ``"softmax"`` or ``"coursera"``.
    run_dir: the run directory it came from, or None. config: the run's config as its
    checkpoint saved it (``{}`` for ex4's weights; only ``loss`` for a safetensors export).
    """

    model: MLP
    loss: str
    run_dir: Path | None = None
    config: dict = field(default_factory=dict, repr=False, compare=False)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Each digit's probability for pixels x of shape (batch, input_size): (batch, classes),
        rows summing to 1. Softmax of the logits, or normalised sigmoids for ``coursera``."""
        return LOSSES[self.loss].probabilities(self.model(x))


MODEL_FILES = "a run directory, a checkpoint .pt, a .safetensors export or ex4's .mat weights"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")  # model files by their name


def load_trained(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    logdir: str | Path = LOGDIR,
) -> Trained:
    """The model in a run directory (its best.pt), a checkpoint, a safetensors export, or ex4's
    Theta1/Theta2 .mat, on ``map_location``: what every command that takes a model reads.

    A run is named as :func:`~digits_torch.store.runs.find_run` takes it: a path, or a bare name
    under ``logdir``. A file is told by its contents, else its extension.

    Raises:
        UserError: no such path, a directory that is not a run (a directory of runs names its
            latest), or a file that holds no model.
    """
    path = find_run(path, logdir)
    if not path.exists():
        raise no_such_path(path)
    kind = "checkpoint" if path.is_dir() else _file_kind(path)
    if kind == "mat":
        return Trained(load_weights(path).to(map_location).eval(), "coursera")
    state = load_checkpoint(path, map_location)
    config = state.get("config")
    config = config if isinstance(config, dict) else {}
    loss = config.get("loss", "softmax")
    if loss not in LOSSES:
        raise UserError(f"unknown loss {loss!r} (known: {', '.join(LOSSES)})", path)
    model = model_from_state(state, map_location)
    return Trained(model, loss, path if path.is_dir() else None, config)


def load_model(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    logdir: str | Path = LOGDIR,
) -> MLP:
    """The trained :class:`MLP` in whatever :func:`load_trained` reads (a run directory or a
    run's name under ``logdir``: its best.pt; a checkpoint; a safetensors export; ex4's
    Theta1/Theta2 .mat), as every command takes it: in eval mode on ``map_location``, in the
    dtype it was trained in."""
    return load_trained(path, map_location, logdir).model


def _file_kind(path: Path) -> str:
    """``"mat"`` or ``"checkpoint"``: by the first bytes where they tell (a MAT file's header, a
    zip's, a pickle's, safetensors' JSON header), else by the extension."""
    check_regular(path, "a model file")  # a FIFO would block for ever
    with reading(path), open(path, "rb") as f:
        head = f.read(9)
    if head[:6] == b"MATLAB":  # v5 to v7.3 (HDF5 behind the same text header)
        return "mat"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80" or head[8:9] == b"{":
        return "checkpoint"  # torch's zip, a legacy torch file or pickle, safetensors
    suffix = path.suffix.lower()
    if suffix == ".mat":  # MAT v4 has no header
        return "mat"
    if suffix in CHECKPOINT_SUFFIXES or not head:  # load_checkpoint says what is wrong
        return "checkpoint"
    raise UserError(f"not a model file (expected {MODEL_FILES})", path)


def as_trained(
    model: Trained | MLP | str | Path,
    loss: str | None = None,
    map_location: str | torch.device = "cpu",
) -> Trained:
    """``model`` as a :class:`Trained`: loaded if it is a path (see :func:`load_trained`).

    ``loss`` overrides the file's; an :class:`MLP` given as it is has ``softmax`` unless told.
    """
    if loss is not None and loss not in LOSSES:
        raise UserError(f"unknown loss {loss!r} (known: {', '.join(LOSSES)})")
    if isinstance(model, MLP):
        return Trained(model, loss or "softmax")
    trained = model if isinstance(model, Trained) else load_trained(model, map_location)
    return trained if loss is None else dataclasses.replace(trained, loss=loss)
