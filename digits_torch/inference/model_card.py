"""A model card: what a model file holds, how it was trained and how well it reads digits.

    card = model_card("runs/<run>")       # a dict, JSON-ready
    read_card("model.safetensors")        # the card a safetensors export carries, or None

Every safetensors and ONNX export carries one in its metadata (key :data:`CARD_KEY`, JSON), and
so does the shipped model (:data:`SHIPPED_MODEL`, built by ``scripts/build_shipped_model.py``).
A card read from a file is passed on unchanged when that file is exported again: it describes
the training, which exporting does not change.
"""

from __future__ import annotations

import importlib.metadata
import json
from importlib import resources
from pathlib import Path

import safetensors
import torch

from ..core.data import default_data_path
from ..core.data import file_sha256 as sha256  # public here too, as model_card.sha256
from ..core.model import MLP
from ..errors import UserError
from ..store.checkpoints import CARD_KEY, load_checkpoint
from ..store.run_contents import METRICS
from .loading import Trained, as_trained

__all__ = ["CARD_KEY", "SHIPPED_MODEL", "model_card", "read_card", "sha256", "shipped_model"]

SHIPPED_NAME = "digits-400-25-10.safetensors"
SHIPPED_MODEL = "the shipped model"  # how messages name it
INPUT_LAYOUT = (
    "400 floats: a 20 x 20 image unrolled column-major (ex4's layout: pixel (row r, column c) "
    "at index 20 c + r), ink 1 and paper 0; a picture is made into one by digits_torch.images"
)
LABEL_ORDER = "output k is the digit k, for k = 0..9 (ex4's label 10 is the digit 0: output 0)"


def shipped_model() -> Path:
    """Path of the model shipped inside the package (``digits_torch/assets``)."""
    return Path(str(resources.files("digits_torch") / "assets" / SHIPPED_NAME))


def model_card(model: Trained | MLP | str | Path, loaded: Trained | None = None, **extra) -> dict:
    """The card of ``model`` (a path or a model in memory, as
    :func:`~digits_torch.inference.loading. as_trained` takes it; ``loaded``: it loaded already):
    the card its safetensors file carries, if it does, else one made from what it records:
    architecture, loss, the run's config (``recipe``) and final accuracies, the training data's
    SHA-256, input layout, label order, package and torch versions. ``extra`` entries are added
    (replacing those of the same name).

    Raises:
        UserError: the model cannot be read.
    """
    card = read_card(model) if isinstance(model, (str, Path)) else None
    if card is None:
        trained = loaded if loaded is not None else as_trained(model)
        config = trained.config
        card = {
            "architecture": trained.model.architecture(),
            "loss": trained.loss,
            "recipe": config,
            "accuracies": _accuracies(trained.run_dir),
            "data": _data(config),
            "input": INPUT_LAYOUT,
            "labels": LABEL_ORDER,
            "versions": versions(),
        }
    return {**card, **extra}


def read_card(path: str | Path) -> dict | None:
    """The card in a safetensors file's metadata; None for any other file, or one without."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() != ".safetensors":
        return None
    load_checkpoint(path)  # every problem with the file said as for any model file
    with safetensors.safe_open(str(path), framework="pt") as f:
        text = (f.metadata() or {}).get(CARD_KEY)
    if text is None:
        return None
    try:
        card = json.loads(text)
    except ValueError:
        raise UserError("its metadata's model card is not JSON", path) from None
    if not isinstance(card, dict):
        raise UserError("its metadata's model card is not a JSON object", path)
    return card


def versions() -> dict:
    """This package's and torch's versions."""
    try:
        package = importlib.metadata.version("digits-torch")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        package = "unknown"
    return {"digits_torch": package, "torch": torch.__version__}


def _data(config: dict) -> dict | None:
    """The training data's file and SHA-256 (None: unknown, as for ex4's weights)."""
    if "data" not in config:
        return None
    path = Path(config["data"]) if config["data"] else default_data_path()
    name = config["data"] or "the shipped digits (digits_torch/assets/digits5k.mat)"
    return {"file": name, "sha256": sha256(path) if path.is_file() else None}


def _accuracies(run_dir: Path | None) -> dict | None:
    """The run's final accuracies (fractions), from its metrics.json; None without a run."""
    if run_dir is None or not (run_dir / METRICS).is_file():
        return None
    metrics = json.loads((run_dir / METRICS).read_text())
    keys = ("train_accuracy", "val_accuracy", "train_examples", "val_examples")
    return {k: metrics.get(k) for k in keys}
