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
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints import BEST, load_checkpoint, model_from_state
from .config import LOSSES
from .coursera import load_weights
from .errors import UserError
from .model import MLP

__all__ = ["Trained", "as_trained", "load_trained"]


@dataclass(frozen=True)
class Trained:
    """A model with the loss it was trained with.

    model: the :class:`MLP`, in eval mode. loss: ``"softmax"`` or ``"coursera"``.
    run_dir: the run directory it came from, or None.
    """

    model: MLP
    loss: str
    run_dir: Path | None = None

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Each digit's probability for pixels x of shape (batch, input_size): (batch, classes),
        rows summing to 1. Softmax of the logits, or normalised sigmoids for ``coursera``."""
        logits = self.model(x)
        if self.loss == "coursera":
            units = torch.sigmoid(logits)
            return units / units.sum(dim=1, keepdim=True)
        return torch.softmax(logits, dim=1)


def load_trained(path: str | Path, map_location: str | torch.device = "cpu") -> Trained:
    """The model in a run directory (its best.pt), a checkpoint, a safetensors export, or ex4's
    Theta1/Theta2 .mat, on ``map_location``.

    Raises:
        UserError: no such file, a directory that is not a run, or a file that holds no model.
    """
    path = Path(path)
    if path.is_dir() and not (path / BEST).exists():
        raise UserError(f"not a run directory (no {BEST})", path)
    if not path.exists():
        raise UserError("no such file or directory", path)
    if path.suffix.lower() == ".mat":
        return Trained(load_weights(path).to(map_location).eval(), "coursera")
    state = load_checkpoint(path, map_location)
    config = state.get("config")
    loss = config.get("loss", "softmax") if isinstance(config, dict) else "softmax"
    if loss not in LOSSES:
        raise UserError(f"unknown loss {loss!r} (known: {', '.join(LOSSES)})", path)
    model = model_from_state(state, map_location)
    return Trained(model, loss, path if path.is_dir() else None)


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
