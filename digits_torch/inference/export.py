"""``python -m digits_torch export MODEL OUT [--format safetensors|onnx|coursera]``

Write a trained model (a run directory's best.pt, a checkpoint, a safetensors export, or ex4's
Theta .mat) in a format other tools read, by default the one OUT's extension names
(``.safetensors``, ``.onnx``, ``.mat``):

* ``safetensors``: the weights, with the architecture, loss and model card in the file's
  metadata (JSON); :func:`digits_torch.load_model` and every command here read it back, weights
  exactly equal.
* ``onnx``: the network as an ONNX graph, input ``pixels`` (batch, 400), output ``logits``
  (batch, 10), the batch size free; metadata ``digits_torch.architecture`` and
  ``digits_torch.loss`` say how to read the logits, ``digits_torch.model_card`` holds the model
  card. Needs ``pip install "digits-torch[onnx]"``.
* ``coursera``: ex4's ``Theta1``/``Theta2`` .mat (bias in column 0, label 10 for the digit 0),
  which Octave's and MATLAB's ex4 code loads; sigmoid networks with one hidden layer only.

Inputs are ex4's: 20 x 20 images unrolled column-major, ink 1 and paper 0 (see
:mod:`digits_torch.images.images` to make them from a picture). The file is written atomically.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from ..core.model import MLP
from ..errors import ArgumentParser, UserError, exit_on_error, print_stdout
from ..reference.coursera import save_weights
from ..store.checkpoints import BEST, save_safetensors
from ..store.files import output_path, write_atomically
from .loading import MODEL_FILES, Trained, as_trained
from .model_card import CARD_KEY, model_card

__all__ = ["FORMATS", "export_format", "export_model"]

FORMATS = ("safetensors", "onnx", "coursera")
ALIASES = {"mat": "coursera"}  # what the file is, for what it is in
EXTENSIONS = {".safetensors": "safetensors", ".onnx": "onnx", ".mat": "coursera"}
ONNX_EXTRA = 'pip install "digits-torch[onnx]"'


def export_model(
    model: Trained | MLP | str | Path,
    format: str | None,
    out: str | Path,
    loss: str | None = None,
    card: dict | None = None,
) -> Path:
    """Write ``model`` to ``out`` in ``format`` (one of :data:`FORMATS`; see the module docstring).

    Args:
        model: a run directory, checkpoint, safetensors or Theta .mat path, a
            :class:`~digits_torch.inference.loading.Trained`, or an :class:`MLP`.
        format: one of :data:`FORMATS` (``"mat"`` for ``"coursera"``), or None for the one
            ``out``'s extension names (see :func:`export_format`).
        loss: the loss the model was trained with, ``"softmax"`` or ``"coursera"``, recorded by
            safetensors and ONNX; default: the file's, or ``"softmax"`` for an MLP.
        card: the model card safetensors and ONNX carry in their metadata (default:
            :func:`~digits_torch.inference.model_card.model_card` of ``model``).

    Returns:
        ``out`` as a Path.

    Raises:
        UserError: an unknown format or one ``out``'s extension contradicts, a model that
            cannot be read, one the format cannot hold, a missing optional package, or a file
            that cannot be written.
    """
    out = Path(out)
    format = export_format(out, format)
    check_target(model, out)
    trained = as_trained(model, loss)
    card = model_card(model, trained) if card is None else card
    writer = {"safetensors": _safetensors, "onnx": _onnx, "coursera": _coursera}[format]
    writer(trained, out, card)
    return out


def export_format(out: str | Path, format: str | None = None) -> str:
    """The format to write ``out`` in: ``format`` (``"mat"`` read as ``"coursera"``), else the
    one its extension names (:data:`EXTENSIONS`). A known extension of another format than
    ``format`` is refused; any other extension goes with an explicit ``format``.

    Raises:
        UserError: an unknown format, a known extension that contradicts it, or no format and
            an extension that names none.
    """
    out = Path(out)
    named = EXTENSIONS.get(out.suffix.lower())
    if format is None:
        if named is None:
            extensions = ", ".join(f"{ext} ({fmt})" for ext, fmt in EXTENSIONS.items())
            extension = f"extension {out.suffix}" if out.suffix else "no extension"
            problem = f"{extension} names no format; name it {extensions}, or give --format"
            raise UserError(problem, out)
        return named
    format = ALIASES.get(format, format)
    if format not in FORMATS:
        known = ", ".join(FORMATS)
        raise UserError(f"unknown format {format!r} (known: {known}; mat for coursera)")
    if named not in (None, format):
        wanted = next(ext for ext, fmt in EXTENSIONS.items() if fmt == format)
        problem = f"its extension says {named}, not {format}: name it {wanted}, or drop --format"
        raise UserError(problem, out)
    return format


def check_target(model: Trained | MLP | str | Path, out: Path) -> None:
    """Refuse to write over the model file exported from, or over a file a run or a sweep
    keeps (:func:`~digits_torch.store.files.output_path`): the run could no longer resume, or would
    read back another model.

    Raises:
        UserError: naming ``out``.
    """
    if isinstance(model, (str, Path)):
        source = Path(model) / BEST if Path(model).is_dir() else Path(model)
        if out.exists() and source.exists() and os.path.samefile(source, out):
            raise UserError("is the model being exported; refusing to write over it", out)
    output_path(out)  # nor over a file of a run or a sweep


def _safetensors(trained: Trained, out: Path, card: dict) -> None:
    save_safetensors(trained.model, out, trained.loss, card)


def _coursera(trained: Trained, out: Path, card: dict) -> None:  # ex4's .mat holds no card
    model = trained.model
    if model.activation != "sigmoid" or len(model.hidden_sizes) != 1 or model.num_classes != 10:
        raise UserError(
            "ex4's Theta1/Theta2 hold a sigmoid network with one hidden layer and 10 outputs; "
            f"this one is {_describe(model)}",
            out,
        )
    save_weights(model, out)


def _onnx(trained: Trained, out: Path, card: dict) -> None:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"ONNX export needs {' and '.join(missing)}: {ONNX_EXTRA}", out)
    import onnx

    model = copy.deepcopy(trained.model).cpu().eval()
    weight = model.layers[0].weight
    example = torch.zeros(2, model.input_size, dtype=weight.dtype)  # 2: no batch size of 1 baked in
    with _quiet_exporter():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}},
            verbose=False,
        )
    proto = program.model_proto
    properties = {
        "digits_torch.architecture": json.dumps(model.architecture()),
        "digits_torch.loss": trained.loss,
        f"digits_torch.{CARD_KEY}": json.dumps(card),
    }
    onnx.helper.set_model_props(proto, properties)
    write_atomically(out, proto.SerializeToString())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide what torch's ONNX exporter says about itself: torchvision ops it skips (logged as
    warnings) and deprecations inside torch (FutureWarning). Nothing about the model."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def _describe(model: MLP) -> str:
    return f"{model.shape_text()} {model.activation}"


# -------------------------------------------------------------------------------- command line


@exit_on_error
def main(argv: list[str] | None = None) -> Path:
    parser = ArgumentParser(
        prog="python -m digits_torch export",
        description="Write a trained model (a run directory, a checkpoint, a safetensors export "
        "or ex4's Theta1/Theta2 .mat) as safetensors, ONNX or ex4's Theta1/Theta2 .mat.",
    )
    parser.add_argument(
        "model", metavar="MODEL", help=f"{MODEL_FILES}, or a run's name under runs/"
    )
    parser.add_argument(
        "--format",
        choices=(*FORMATS, *ALIASES),
        help="what to write: safetensors, onnx, or coursera (also: mat), ex4's Theta1/Theta2 "
        "(default: the one OUT's extension names: .safetensors, .onnx, .mat)",
    )
    parser.add_argument("out", metavar="OUT", help="the file to write")
    parser.add_argument(
        "--force", action="store_true", help="replace OUT if it exists (else: refused)"
    )
    args = parser.parse_args(argv)
    format = export_format(args.out, args.format)  # all refused before the work
    check_target(args.model, Path(args.out))  # the model itself, a run's file, a device node...
    out = output_path(args.out)
    if out.exists() and not args.force:  # an earlier export, or any other file: not silently
        raise UserError("exists; pass --force to replace it", out)
    trained = as_trained(args.model)
    out = export_model(trained, format, out, card=model_card(args.model, trained))
    print_stdout(f"wrote {out} ({format}: {_describe(trained.model)}, loss {trained.loss})")
    return out
