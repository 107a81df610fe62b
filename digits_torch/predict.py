"""``python -m digits_torch.predict MODEL IMAGE... [--json OUT] [--show DIR] [--device D]``

Read the digit in each image (a drawing, a scan or a photo of one digit; PNG, JPEG, BMP, GIF,
TIFF, ...) with a trained model: a run directory (its best.pt), a checkpoint, a safetensors
export, or ex4's Theta1/Theta2 .mat. Each image is made into a 20 x 20 input as MNIST's digits
were made (:mod:`digits_torch.images`). One line per image: the digit and the three most probable
digits. A bad image gets one ``error: <image>: <problem>`` line on stderr, the others are still
read, and the exit code is 2.

    from digits_torch.predict import predict_images
    predict_images("runs/<run>", ["seven.png"])[0].digit
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from matplotlib.figure import Figure

from .config import resolve_device
from .data import NUM_CLASSES, to_image
from .errors import EXIT_USAGE, ArgumentParser, UserError, error_line, exit_on_error, tell
from .errors import show as show_line
from .files import output_path, write_json
from .images import EX4_SIDE, greyscale, preprocess_image, read_image
from .model import MLP
from .plots import render, save_png
from .trained import MODEL_FILES, Trained, as_trained

__all__ = ["Prediction", "predict_images"]

TOP = 3  # how many digits each line shows


@dataclass(frozen=True)
class Prediction:
    """What the model read in one image.

    path: the image file (None for an image given in memory). digit: the most probable digit.
    probabilities: (10,) floats summing to 1, ``probabilities[d]`` for digit d (see
    :class:`~digits_torch.trained.Trained` for how they are computed). pixels: (400,) float32,
    the model's input, a 20 x 20 image unrolled column-major (``to_image(pixels)`` stands it up).
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
            :class:`~digits_torch.trained.Trained`, or an :class:`MLP` (softmax probabilities).
        images: paths, PIL images or arrays (see :func:`~digits_torch.images.preprocess_image`).
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


def _predict(trained: Trained, image, path: str | Path | None = None) -> Prediction:
    """Read one image (a path, PIL image or array); ``path`` names it (default: the image path)."""
    if path is None and isinstance(image, (str, Path)):
        path = image
    try:
        pixels = preprocess_image(image)
    except UserError as err:  # a blank image: the message names the image
        raise UserError(err.problem, err.path or path) from None
    weight = trained.model.layers[0].weight
    x = torch.from_numpy(pixels)[None].to(device=weight.device, dtype=weight.dtype)
    probabilities = trained.probabilities(x)[0].double().cpu().numpy()
    name = None if path is None else str(path)
    return Prediction(name, int(probabilities.argmax()), tuple(probabilities.tolist()), pixels)


def describe(prediction: Prediction) -> str:
    """One line: ``<path>: <digit>  (7 0.981, 1 0.012, 9 0.003)``."""
    top = ", ".join(f"{d} {p:.3f}" for d, p in prediction.top())
    return f"{prediction.path}: {prediction.digit}  ({top})"


# ---------------------------------------------------------------------------------- the picture


def figure(image: PIL.Image.Image, prediction: Prediction) -> Figure:
    """The image as read (greyscale, transparency as paper) beside the 20 x 20 input, upright,
    titled with the digit and the top three probabilities."""
    fig = Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")
    original, seen = fig.subplots(1, 2)
    original.imshow(greyscale(image), cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
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
    """``folder/<stem>.png`` per image; a stem taken already gets ``-2``, ``-3``, ..."""
    taken: set[str] = set()
    pictures = []
    for path in paths:
        stem, n = Path(path).stem, 1
        while (name := stem if n == 1 else f"{stem}-{n}") in taken:
            n += 1
        taken.add(name)
        pictures.append(folder / f"{name}.png")
    return pictures


# -------------------------------------------------------------------------------- command line


@exit_on_error
def main(argv: list[str] | None = None) -> list[Prediction]:
    args = _parser().parse_args(argv)
    json_out = output_path(args.json) if args.json else None  # refused before the work
    trained = checked_model(args.model, args.device)
    show = Path(args.show) if args.show else None
    predictions, failures = _read_each(trained, args.images, show)
    if json_out is not None:
        write_json(json_out, _report(args.model, trained, predictions, failures))
    if failures:
        raise SystemExit(EXIT_USAGE)
    return predictions


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m digits_torch.predict",
        description="Read the digit in each image with a trained model: a run directory (its "
        "best.pt), a checkpoint, a safetensors export, or ex4's Theta1/Theta2 .mat.",
    )
    parser.add_argument("model", metavar="MODEL", help=f"{MODEL_FILES}, or a run's name")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files, one digit each")
    parser.add_argument("--json", metavar="OUT", help="also write every result to this JSON file")
    parser.add_argument(
        "--show", metavar="DIR", help="write per image DIR/<name>.png: it beside what the model saw"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    return parser


def _read_each(
    trained: Trained, paths: Sequence[str], show: Path | None
) -> tuple[list[Prediction], list[dict]]:
    """Read, print (and draw into ``show``) each image in turn; a bad one is an error line.

    Returns:
        The predictions, and ``{"path", "error"}`` for each bad image.
    """
    predictions, failures = [], []
    pictures = _picture_paths(paths, show) if show else []
    for k, path in enumerate(paths):
        try:
            image = read_image(path)
            prediction = _predict(trained, image, path)
        except UserError as err:
            tell(error_line(err))
            failures.append({"path": path, "error": err.problem})
            continue
        show_line(describe(prediction))
        predictions.append(prediction)
        if show:
            save_png(render(figure(image, prediction)), pictures[k])
    return predictions, failures


def _report(model: str, trained: Trained, predictions, failures) -> dict:
    """What --json writes."""
    return {
        "model": model,
        "probabilities": "normalised sigmoids" if trained.loss == "coursera" else "softmax",
        "predictions": [p.as_dict() for p in predictions],
        "errors": failures,
    }


if __name__ == "__main__":
    main()
