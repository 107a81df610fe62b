"""What the page asks the model: an image's digit, with the input it became and the hidden layer's
response; a shipped digit or a mistake at random; the model's description.

    reader = Reader()                        # the shipped model; or Reader("runs/<run>")
    reader.predict_bytes(png_bytes)          # {"digit", "probabilities", "input", "hidden"}

An uploaded image is read by the code that reads image files
(:func:`~digits_torch.images.image_files. read_image`: the same formats, size limits and checks) and
made into the input by :func:`~digits_torch.images.images.preprocess_image`, as ``digits-predict``
does: never a copy of either.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from ..core.data import load_digits
from ..core.model import ACTIVATIONS
from ..errors import UserError
from ..images.image_files import read_image
from ..images.images import preprocess_image
from ..inference.model_card import SHIPPED_MODEL, model_card, shipped_model
from ..inference.predict import checked_model
from ..recipes.dead_units import never_active

__all__ = ["Reader", "image_bytes_to_input"]


def image_bytes_to_input(body: bytes) -> np.ndarray:
    """The model's input, (400,) float32 column-major, made from an image file's bytes.

    The bytes go through a private temporary file so that :func:`read_image` reads them exactly as
    it reads a user's file (it opens files by path); the file is gone when this returns.

    Raises:
        UserError: empty, not an image, over 40 megapixels, damaged, or blank (no ink).
    """
    if not body:
        raise UserError("an empty body, not an image")
    with tempfile.NamedTemporaryFile(prefix="digits-draw-", suffix=".image") as file:
        file.write(body)
        file.flush()
        try:
            image = read_image(file.name)
        except UserError as err:  # the message names the temporary file: the user never saw it
            raise UserError(err.problem) from None
    return preprocess_image(image)


class Reader:
    """A model, the shipped digits, and what the page asks of them. Thread-safe: each request
    reads the model (in eval mode, without gradients) and nothing here changes after
    construction but the random generator, which a lock guards.

    Args:
        model: anything the commands take as MODEL (a run, checkpoint, safetensors, ex4 .mat);
            None for the shipped model.
        seed: seeds the choice of random digits.
    """

    def __init__(self, model: str | Path | None = None, seed: int | None = None) -> None:
        source = shipped_model() if model is None else model
        self.name = SHIPPED_MODEL if model is None else str(model)
        self.trained = checked_model(source)
        self.card = model_card(source, self.trained)
        X, self.labels = load_digits()
        self.digits = torch.from_numpy(X)
        with torch.no_grad():
            probabilities = self.trained.probabilities(self._as_model_input(self.digits))
            self.dead = never_active(self.trained.model, self._as_model_input(self.digits))
        self.predicted = probabilities.argmax(dim=1).numpy()
        self.mistakes = np.flatnonzero(self.predicted != self.labels)
        self._random = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def _as_model_input(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.trained.model.layers[0].weight
        return x.to(device=weight.device, dtype=weight.dtype)

    def predict_bytes(self, body: bytes) -> dict:
        """:meth:`answer` for the image in ``body`` (PNG, JPEG, ... bytes).

        Raises:
            UserError: see :func:`image_bytes_to_input`.
        """
        return self.answer(image_bytes_to_input(body))

    @torch.no_grad()
    def answer(self, pixels: np.ndarray) -> dict:
        """The page's view of one input ``pixels`` (400,): ``digit``; ``probabilities``, 10
        floats summing to 1 (index = digit); ``input``, the 400 pixels, column-major; ``hidden``,
        the first hidden layer's activations, one float per unit."""
        model = self.trained.model
        x = self._as_model_input(torch.as_tensor(pixels).reshape(1, -1))
        hidden = ACTIVATIONS[model.activation](model.layers[0](x))[0]
        probabilities = self.trained.probabilities(x)[0].double()
        return {
            "digit": int(probabilities.argmax()),
            "probabilities": probabilities.tolist(),
            "input": np.asarray(pixels, dtype=np.float64).tolist(),
            "hidden": hidden.double().tolist(),
        }

    def sample(self, mistake: bool = False) -> dict:
        """:meth:`answer` for a shipped digit at random (one the model gets wrong, if
        ``mistake``), with its ``index`` in the shipped digits (0-based) and true ``label``.

        Raises:
            UserError: ``mistake`` and the model gets every shipped digit right.
        """
        pool = self.mistakes if mistake else np.arange(len(self.labels))
        if len(pool) == 0:
            raise UserError("the model reads every shipped digit right: no mistake to show")
        with self._lock:
            index = int(self._random.choice(pool))
        answer = self.answer(self.digits[index].numpy())
        return {**answer, "index": index, "label": int(self.labels[index])}

    def description(self) -> dict:
        """What ``GET /model`` returns: the model's name, card, accuracy on the shipped digits,
        its first layer's incoming weights (units x 400, column-major) and dead units."""
        model = self.trained.model
        return {
            "name": self.name,
            "architecture": model.architecture(),
            "card": self.card,
            "shipped_digits": {
                "count": len(self.labels),
                "accuracy": float(np.mean(self.predicted == self.labels)),
                "mistakes": len(self.mistakes),
            },
            "hidden_weights": model.layers[0].weight.detach().double().cpu().tolist(),
            "dead_units": self.dead.cpu().tolist(),
        }
