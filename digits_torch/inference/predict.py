"""``python -m digits_torch predict [MODEL] IMAGE... [--json OUT] [--show DIR] [--device D]``

Read the digit in each image (a drawing, a scan or a photo of one digit; PNG, JPEG, BMP, GIF,
TIFF, ...) with a trained model: a run directory (its best.pt), a checkpoint, a safetensors
export, or ex4's Theta1/Theta2 .mat. Each image is made into a 20 x 20 input as MNIST's digits
were made (:mod:`digits_torch.images.images`). One line per image: the digit and the three most
probable digits; then ``wrote <path>`` for each file written. As every batch tool, a bad image is
one ``error: <image>: <problem>`` line on stderr and the others are still predicted and written;
the exit code is then 2. A name holding control characters (a newline) is shown quoted, as
Python writes it, so that it cannot pass for another line.

One IMAGE alone is read by the model shipped in the package
(:func:`~digits_torch.inference.model_card.shipped_model`, built by
``scripts/build_shipped_model.py``).

    from digits_torch.inference.predict import predict_images
    predict_images("runs/<run>", ["seven.png"])[0].digit
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import torch

from ..core.data import NUM_CLASSES, to_image
from ..core.losses import LOSSES
from ..core.model import MLP
from ..errors import (
    EXIT_USAGE,
    ArgumentParser,
    UserError,
    error_line,
    exit_on_error,
    print_stderr,
    print_stdout,
    shown_name,
    writing,
)
from ..images.image_files import read_image
from ..images.images import EX4_SIDE, greyscale, preprocess_image
from ..plots import render
from ..runtime.devices import resolve_device
from ..store.files import output_path, write_json, write_new
from ..store.run_contents import owner_of
from .loading import CHECKPOINT_SUFFIXES, MODEL_FILES, Trained, as_trained
from .model_card import shipped_model

if TYPE_CHECKING:  # matplotlib is imported where a picture is drawn (--show), not to predict
    from matplotlib.figure import Figure

__all__ = ["Prediction", "predict_images"]

TOP = 3  # how many digits each line shows


@dataclass(frozen=True)
class Prediction:
    """What the model read in one image.

    path: the image file (None for an image given in memory). digit: the most probable digit.
    probabilities: (10,) floats summing to 1, ``probabilities[d]`` for digit d (see
    :class:`~digits_torch.inference.loading.Trained` for how they are computed). pixels: (400,)
    float32, the model's input, a 20 x 20 image unrolled column-major (``to_image(pixels)`` stands
    it up).
    """

    path: str | None
    digit: int
    probabilities: tuple[float, ...]
    pixels: np.ndarray = field(repr=False, compare=False)

    def top(self, k: int = TOP) -> list[tuple[int, float]]:
        """The ``k`` most probable digits and their probabilities, most probable first."""
        order = np.argsort(self.probabilities, kind="stable")[::-1][:k]
        return [(int(d), self.probabilities[d]) for d in order]

    def as_dict(self) -> dict:
        """JSON-ready: path, digit, probabilities, top3."""
        return {
            "path": self.path,
            "digit": self.digit,
            "probabilities": list(self.probabilities),
            "top3": [[d, p] for d, p in self.top()],
        }


def predict_images(
    model: Trained | MLP | str | Path,
    images: Iterable[str | Path | PIL.Image.Image | np.ndarray],
    device: str = "cpu",
) -> list[Prediction]:
    """Read the digit in each image.

    Args:
        model: a run directory, checkpoint, safetensors or Theta .mat path, a
            :class:`~digits_torch.inference.loading.Trained`, or an :class:`MLP` (softmax
            probabilities).
        images: paths, PIL images or arrays (see
            :func:`~digits_torch.images.images.preprocess_image`).
        device: where the model runs (a model given as an MLP stays where it is).

    Raises:
        UserError: the model cannot be read or does not take 20 x 20 digits, or an image is bad
            (the first bad one).
    """
    trained = checked_model(model, device)
    return [_predict(trained, image) for image in images]


def checked_model(model: Trained | MLP | str | Path, device: str = "cpu") -> Trained:
    """The model as a :class:`Trained`, refused unless it reads 20 x 20 images as 10 digits."""
    trained = as_trained(model, map_location=resolve_device(device))
    where = model if isinstance(model, (str, Path)) else None
    pixels, classes = trained.model.input_size, trained.model.num_classes
    if pixels != EX4_SIDE * EX4_SIDE:
        raise UserError(f"the model takes {pixels} pixels, not 20 x 20 = 400", where)
    if classes != NUM_CLASSES:
        raise UserError(f"the model has {classes} outputs, not one per digit", where)
    return trained


def _predict(trained: Trained, image) -> Prediction:
    """Read one image (a path, which names it, or a PIL image or array, which has no name)."""
    path = image if isinstance(image, (str, Path)) else None
    return _predict_pixels(trained, _pixels(image, path), path)


def _pixels(image, path: str | Path | None) -> np.ndarray:
    """:func:`preprocess_image` of ``image``, a user error naming ``path`` (quoted if odd)."""
    try:
        return preprocess_image(image)
    except UserError as err:  # a blank image: the message names the image
        where = err.path if err.path is not None else path
        raise UserError(err.problem, None if where is None else shown_name(where)) from None


def _predict_pixels(trained: Trained, pixels: np.ndarray, path: str | Path | None) -> Prediction:
    """The prediction for ``pixels`` (400,), the input made from the image at ``path``."""
    # the model reads the float64 pixels in its own dtype, on its device
    probabilities = trained.probabilities(torch.from_numpy(pixels)[None])[0].double().cpu().numpy()
    name = None if path is None else str(path)
    return Prediction(name, int(probabilities.argmax()), tuple(probabilities.tolist()), pixels)


def describe(prediction: Prediction) -> str:
    """One line: ``<path>: <digit>  (7 0.981, 1 0.012, 9 0.003)``."""
    top = ", ".join(f"{d} {p:.3f}" for d, p in prediction.top())
    return f"{shown_name(prediction.path)}: {prediction.digit}  ({top})"


# ---------------------------------------------------------------------------------- the picture


def figure(grey: np.ndarray, prediction: Prediction) -> Figure:
    """The image as read beside the 20 x 20 input, upright, titled with the digit and the top
    three probabilities. ``grey``: the image's :func:`~digits_torch.images.images.greyscale`,
    (H, W), transparency as paper."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")
    original, seen = fig.subplots(1, 2)
    original.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
    original.set_title("your image", fontsize=10)
    seen.imshow(to_image(prediction.pixels), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    seen.set_title("what the network sees (20 x 20)", fontsize=10)
    for ax in (original, seen):
        ax.set_xticks([])
        ax.set_yticks([])
    top = ",  ".join(f"{d}: {100 * p:.1f} %" for d, p in prediction.top())
    fig.suptitle(f"{Path(prediction.path or 'image').name}: {prediction.digit}   ({top})")
    return fig


def _picture_paths(paths: Sequence[str], folder: Path) -> list[Path]:
    """``folder/<stem>.png`` per image; a name taken already, in this call or by a file in the
    folder (the user's own image, or another call's picture), gets ``-2``, ``-3``, ..."""
    taken: set[str] = set()
    pictures = []
    for path in paths:
        stem, n = Path(path).stem, 1
        while (name := stem if n == 1 else f"{stem}-{n}") in taken or _exists(
            folder / f"{name}.png"
        ):
            n += 1
        taken.add(name)
        pictures.append(folder / f"{name}.png")
    return pictures


def _exists(path: Path) -> bool:
    """Whether anything, a dangling link included, has this name."""
    return path.exists() or path.is_symlink()


# -------------------------------------------------------------------------------- command line


@exit_on_error
def main(argv: list[str] | None = None) -> list[Prediction]:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("the following arguments are required: IMAGE")
    args.model, args.images = _model_and_images([args.model, *args.images])
    # --json's file: a regular file or none yet, and not one a run or a sweep keeps; refused
    # before the work
    json_out = output_path(args.json) if args.json else None
    show = _show_folder(args.show) if args.show else None
    trained = checked_model(args.model, args.device)
    # As every batch tool: each good image is predicted (and its picture and result written),
    # each bad one is one error line, and the exit status says that one was bad.
    images, bad = [], 0
    for path in args.images:
        try:
            images.append((path, *_read(path, keep_grey=show is not None)))
        except UserError as err:
            print_stderr(error_line(err))
            bad += 1
    predictions = _predict_all(trained, images, show)
    if json_out is not None and predictions:  # the results of the good images, if any
        write_json(json_out, _report(args.model, trained, predictions))
        print_stdout(f"wrote {shown_name(json_out)}")
    if bad:
        raise SystemExit(EXIT_USAGE)
    return predictions


def _predict_all(trained: Trained, images: list, show: Path | None) -> list[Prediction]:
    """The prediction of each (path, pixels, greyscale) read, each said on a line; with
    ``show``, its picture written there and said."""
    pictures = _picture_paths([path for path, _, _ in images], show) if show is not None else []
    if show is not None and images:
        with writing(show):
            show.mkdir(parents=True, exist_ok=True)
    predictions = []
    for k, (path, pixels, grey) in enumerate(images):
        predictions.append(prediction := _predict_pixels(trained, pixels, path))
        print_stdout(describe(prediction))
        if show is not None:  # never over a file there: the name is one no file has
            write_new(pictures[k], _png(figure(grey, prediction)))
            print_stdout(f"wrote {shown_name(pictures[k])}")
    return predictions


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m digits_torch predict",
        description="Read the digit in each image with a trained model: a run directory (its "
        "best.pt), a checkpoint, a safetensors export, or ex4's Theta1/Theta2 .mat.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        help=f"{MODEL_FILES}, or a run's name (default, for one IMAGE alone: the model shipped "
        "in the package)",
    )
    parser.add_argument("images", metavar="IMAGE", nargs="*", help="image files, one digit each")
    parser.add_argument("--json", metavar="OUT", help="also write every result to this JSON file")
    parser.add_argument(
        "--show", metavar="DIR", help="write per image DIR/<name>.png: it beside what the model saw"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    return parser


def _model_and_images(paths: list[str]) -> tuple[str, list[str]]:
    """MODEL IMAGE... as before; one path alone is an image, read by the shipped model.

    Raises:
        UserError: one path alone that names a model (a directory, or a model file by its
            extension): a model and no image.
    """
    if len(paths) > 1:
        return paths[0], paths[1:]
    first = Path(paths[0])
    if first.is_dir() or first.suffix.lower() in CHECKPOINT_SUFFIXES:
        raise UserError("is a model: give the images to read after it", shown_name(first))
    return str(shipped_model()), paths


def _show_folder(name: str) -> Path:
    """--show's folder: one there, or none yet (made once every image has been read), and not
    one whose pictures a run or a sweep keeps (a run's figures/, a sweep's directory)."""
    folder = Path(name)
    if folder.exists() and not folder.is_dir():
        raise UserError("is not a directory, for --show's pictures", name)
    owner = owner_of(folder / "picture.png")  # every picture there is theirs
    if owner is not None:
        kind, directory = owner
        raise UserError(f"holds the pictures of the {kind} {directory}; show elsewhere", name)
    return folder


def _read(path: str, keep_grey: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's input made from the image file at ``path``, and its greyscale for the
    picture (if ``keep_grey``: at most 1024 pixels a side, not the whole decoded image).

    Raises:
        UserError: naming the image (quoted if its name has control characters).
    """
    try:
        image = read_image(path)
    except UserError as err:
        raise UserError(err.problem, shown_name(path)) from None
    return _pixels(image, path), greyscale(image) if keep_grey else None


def _png(fig: Figure) -> bytes:
    png = io.BytesIO()
    PIL.Image.fromarray(render(fig)).save(png, format="PNG", optimize=True)
    return png.getvalue()


def _report(model: str, trained: Trained, predictions: list[Prediction]) -> dict:
    """What --json writes."""
    return {
        "model": model,
        "probabilities": LOSSES[trained.loss].probabilities_name,
        "predictions": [p.as_dict() for p in predictions],
    }
