"""What the pictures share: grids of 20 x 20 tiles, the grey scales of ink and of weights, a
model's predictions, and the words that say what a picture shows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import TrainConfig
from ..data import to_image
from ..errors import UserError
from ..model import MLP
from ..read_files import parse_json, read_bytes
from ..runs import METRICS

if TYPE_CHECKING:  # matplotlib is imported where a picture is drawn
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "best_epoch",
    "digits_named",
    "first_layer",
    "grid_shape",
    "image_grid",
    "ink_scale",
    "numpy_rows",
    "predict",
    "show_digit",
    "training_labels",
    "weight_limit",
]

DPI = 100


def digits_named(digits: str, count: int) -> str:
    """ "validation digits (1,000)": what a picture shows, for its title."""
    return f"{digits} ({count:,})"


def training_labels(config: TrainConfig | None) -> tuple[str, str]:
    """The learning curves' training labels (loss, accuracy): what they were computed on."""
    if config is None:
        return "training (with L2 term)", "training"
    on = "augmented digits, " if config.augmented else ""
    on += "distillation loss, " if config.distilled else ""  # not the validation's data loss
    loss = f"training ({on}{'with L2 term' if config.l2 else 'no L2 term'})"
    return loss, "training (augmented digits)" if config.augmented else "training"


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of the squarest grid holding ``count`` images: 25 -> (5, 5)."""
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def image_grid(
    count: int, tile: float, title_lines: int = 0, colorbar: bool = False
) -> tuple[Figure, list]:
    """A figure holding ``count`` bare square axes of ``tile`` inches, row by row.

    Placed by hand rather than by a layout engine: the sizes are known, and constrained layout
    would double the time to draw a grid. At 100 dpi a 0.6 inch tile draws each of a 20 x 20
    digit's pixels 3 screen pixels wide. ``colorbar`` leaves room on the right for one.
    """
    rows, cols = grid_shape(count)
    gap, title, top = 0.05, 0.16 * title_lines, 0.4  # inches; top: room for the suptitle
    cell = tile + gap
    grid_width, bar = cols * cell + gap, (1.2 if colorbar else 0.0)  # bar, ticks and label
    width, height = max(grid_width + bar, 4.5), top + rows * (cell + title)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    left0 = (width - bar - grid_width) / 2 + gap  # centred when the title sets the width
    axes = []
    for k in range(count):
        row, col = divmod(k, cols)
        left = left0 + col * cell
        bottom = height - top - (row + 1) * (cell + title) + gap
        ax = fig.add_axes((left / width, bottom / height, tile / width, tile / height))
        ax.set_axis_off()
        axes.append(ax)
    return fig, axes


def ink_scale(rows: np.ndarray) -> tuple[float, float]:
    """One grey scale for a grid of digits, (white, black), so that a faint digit stays faint.

    White is the median pixel, which is the background of digit images (0 here, but -1 in data
    scaled to [-1, 1]); darker than black never happens, brighter than white is clipped.
    """
    if rows.size == 0:
        return 0.0, 1.0
    white, black = float(np.median(rows)), float(rows.max())
    return white, black if black > white else white + 1.0


def show_digit(ax, row: np.ndarray, scale: tuple[float, float]) -> None:
    """Draw one digit upright, dark ink on white."""
    ax.imshow(to_image(row), cmap="gray_r", vmin=scale[0], vmax=scale[1], interpolation="nearest")


def weight_limit(weights: np.ndarray) -> float:
    """Half-range of the hidden units' grey scale: the 99th percentile of |weight|."""
    return float(np.percentile(np.abs(weights), 99)) or 1.0


def first_layer(model: MLP) -> np.ndarray:
    """First-layer weights, (units, side * side) on the CPU; the inputs must form a square."""
    weights = model.layers[0].weight.detach().cpu().numpy()
    if math.isqrt(weights.shape[1]) ** 2 != weights.shape[1]:
        raise ValueError(f"the model's {weights.shape[1]} inputs are not a square image")
    return weights


@torch.no_grad()
def predict(model: MLP, X: np.ndarray) -> np.ndarray:
    """Predicted digits, (m,), computed where the model lives, in its dtype."""
    weight = model.layers[0].weight
    x = torch.as_tensor(X).to(device=weight.device, dtype=weight.dtype)
    return model(x).argmax(dim=1).cpu().numpy()


def numpy_rows(X: np.ndarray | torch.Tensor) -> np.ndarray:
    return X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)


def best_epoch(run_dir: Path) -> int | None:
    """The epoch of best.pt, from metrics.json (written when the run ended)."""
    try:
        epoch = parse_json(read_bytes(run_dir / METRICS))["best_epoch"]
    except (UserError, ValueError, KeyError, TypeError):  # TypeError: not an object ([1])
        return None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
