"""What the pictures share: grids of 20 x 20 tiles, the grey scales of ink and of weights, a
model's predictions, and the words that say what a picture shows."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import TrainConfig
from ..data import to_image
from ..model import MLP
from ..runs import METRICS

if TYPE_CHECKING:  # matplotlib is imported where a picture is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import FigureImage

__all__ = [
    "DPI",
    "best_epoch",
    "digits_named",
    "first_layer",
    "grid_shape",
    "ink_scale",
    "numpy_rows",
    "predict",
    "tile_grid",
    "TileGrid",
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


@dataclass
class TileGrid:
    """A grid of square tiles drawn as one composed image with one Axes (see :func:`tile_grid`).

    ``image`` is the composed picture, placed on the page pixel for pixel; ``ax`` lies over it,
    its data coordinates the image's pixels (x right, y down), and holds the titles and frames;
    ``boxes`` are each tile's (left, top, size) in those pixels, row by row.
    """

    figure: Figure
    ax: Axes
    image: FigureImage
    boxes: list[tuple[int, int, int]]

    def title(self, k: int, text: str) -> None:
        """Tile k's title, above it (as a small Axes title would sit: 2 points up)."""
        left, top, size = self.boxes[k]
        x, y = left + size / 2, top - 2 * DPI / 72
        self.ax.text(x, y, text, ha="center", va="baseline", fontsize=9, multialignment="center")

    def frame(self, k: int, colour: str = "red") -> None:
        """A border around tile k, drawn over its edge."""
        from matplotlib.patches import Rectangle

        left, top, size = self.boxes[k]
        box = Rectangle((left, top), size, size, fill=False, edgecolor=colour, linewidth=2.5)
        box.set_clip_on(False)
        self.ax.add_patch(box)

    def suptitle(self, text: str, **kwargs) -> None:
        """The picture's title, its top 0.1 inch below the page's (a fraction would put a
        second line over a tall picture's first row)."""
        self.figure.suptitle(text, y=1 - 0.1 / self.figure.get_figheight(), va="top", **kwargs)

    def extent(self) -> tuple[float, float, float, float]:
        """The tiles' extent in figure fractions: (x0, y0, x1, y1)."""
        x0, y0, width, height = self.ax.get_position().bounds
        right, bottom = self.ax.get_xlim()[1], self.ax.get_ylim()[0]  # the image's pixels
        lefts, tops = [b[0] for b in self.boxes], [b[1] for b in self.boxes]
        size = self.boxes[0][2]
        return (
            x0 + width * min(lefts) / right,
            y0 + height * (1 - (max(tops) + size) / bottom),
            x0 + width * (max(lefts) + size) / right,
            y0 + height * (1 - min(tops) / bottom),
        )


def tile_grid(
    rows: np.ndarray,
    tile: float,
    cmap: str,
    limits: tuple[float, float],
    title_lines: int = 0,
    colorbar: bool = False,
    suptitle_lines: int = 1,
) -> TileGrid:
    """``rows`` (count, side * side), each a column-major image, as one image of a grid of
    upright tiles, row by row.

    Each tile is ``tile`` inches square, its pixels sampled as Agg draws an image at that size
    ("nearest"), with white gaps and ``title_lines`` of room above each for a title. One image on
    one Axes: an Axes per tile would cost matplotlib ~3 ms each to make and draw (a 400-unit
    picture took seconds). ``limits`` (low, high) is the one grey scale of ``cmap``;
    ``colorbar`` leaves room on the right for one; ``suptitle_lines`` sizes the room on top.
    """
    tiles = np.stack([to_image(row) for row in rows]) if len(rows) else np.zeros((0, 20, 20))
    count, side = len(tiles), tiles.shape[-1]
    grid_rows, cols = grid_shape(max(count, 1))
    # All in whole pixels at DPI, so that the composed image maps 1:1 onto the page.
    size, gap, title = round(tile * DPI), 5, 16 * title_lines
    top = 40 + 20 * max(suptitle_lines - 1, 0)  # room for the suptitle, a line more each
    cell = size + gap
    grid_width, bar = cols * cell + gap, (120 if colorbar else 0)  # bar, ticks and label
    grid_height = grid_rows * (cell + title)
    width, height = max(grid_width + bar, 450), top + grid_height
    # NaN in the gaps, the tiles' values in their own dtype
    mosaic = np.full((grid_height, grid_width), np.nan, np.result_type(tiles.dtype, np.float32))
    sample = ((2 * np.arange(size) + 1) * side) // (2 * size)  # pixel centres, as "nearest"
    big = tiles[:, sample][:, :, sample]
    boxes = []
    for k in range(max(count, 1)):  # none: one empty cell, for a word
        row, col = divmod(k, cols)
        left, y = gap + col * cell, row * (cell + title) + title
        if k < count:
            mosaic[y : y + size, left : left + size] = big[k]
        boxes.append((left, y, size))
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    left0 = (width - bar - grid_width) // 2  # centred when the title sets the width
    # Placed pixel for pixel, not resampled: drawing takes a few milliseconds at any size.
    image = fig.figimage(
        np.ma.masked_invalid(mosaic),
        xo=left0,
        yo=0,
        origin="upper",
        cmap=colormaps[cmap].with_extremes(bad=(0, 0, 0, 0)),  # the gaps: the page's white
        vmin=limits[0],
        vmax=limits[1],
        zorder=-1,  # under the Axes' titles and frames
    )
    image.set_interpolation("nearest")  # 1:1, no smoothing filter
    # The Axes over it, in its pixels (x right, y down), holds the titles and the frames.
    ax = fig.add_axes((left0 / width, 0, grid_width / width, grid_height / height))
    ax.set(xlim=(0, grid_width), ylim=(grid_height, 0))
    ax.set_axis_off()
    return TileGrid(fig, ax, image, boxes)


def ink_scale(rows: np.ndarray) -> tuple[float, float]:
    """One grey scale for a grid of digits, (white, black), so that a faint digit stays faint.

    White is the median pixel, which is the background of digit images (0 here, but -1 in data
    scaled to [-1, 1]); darker than black never happens, brighter than white is clipped.
    """
    if rows.size == 0:
        return 0.0, 1.0
    white, black = float(np.median(rows)), float(rows.max())
    return white, black if black > white else white + 1.0


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
        return json.loads((run_dir / METRICS).read_text())["best_epoch"]
    except (OSError, ValueError, KeyError):
        return None
