"""What the pictures share: grids of 20 x 20 tiles, the grey scales of ink and of weights, a
model's predictions, and the words that say what a picture shows."""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config.plan import Recipe
from ..core.data import to_image
from ..core.model import MLP
from ..core.read_files import parse_json, read_bytes
from ..errors import UserError
from ..runtime.threads import cpu_threads
from ..store.runs import METRICS

if TYPE_CHECKING:  # matplotlib is imported where a picture is drawn
    from matplotlib.figure import Figure
    from matplotlib.image import FigureImage
    from matplotlib.transforms import Transform

__all__ = [
    "DPI",
    "best_epoch",
    "digits_named",
    "first_layer",
    "centred_baseline",
    "grid_shape",
    "ink_on",
    "ink_scale",
    "line_box",
    "line_ink",
    "line_width",
    "numpy_rows",
    "picture_threads",
    "place",
    "predict",
    "text_metrics",
    "font_heights",
    "tile_grid",
    "title_layer",
    "TileGrid",
    "training_labels",
    "weight_limit",
]

DPI = 100


def digits_named(digits: str, count: int) -> str:
    """ "validation digits (1,000)": what a picture shows, for its title."""
    return f"{digits} ({count:,})"


def training_labels(recipe: Recipe | None) -> tuple[str, str]:
    """The learning curves' training labels (loss, accuracy): what they were computed on (by
    the run's recipe; None: unknown)."""
    if recipe is None:
        return "training (with L2 term)", "training"
    on = "augmented digits, " if recipe.augmented else ""
    on += "distillation loss, " if recipe.distilled else ""  # not the validation's data loss
    loss = f"training ({on}{'with L2 term' if recipe.objective.l2 else 'no L2 term'})"
    return loss, "training (augmented digits)" if recipe.augmented else "training"


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of the squarest grid holding ``count`` images: 25 -> (5, 5)."""
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


@dataclass
class TileGrid:
    """A grid of square tiles drawn as one composed image, with no Axes (see :func:`tile_grid`).

    ``image`` is the composed picture, placed on the page pixel for pixel, and ``titles`` the
    tiles' titles over it (:func:`title_layer`); ``boxes`` are each tile's (left, top, size) in
    the grid's pixels (x right from its left edge, y down from its top), row by row. The grid
    stands on the page's bottom edge, ``left`` pixels from its left, ``height`` pixels tall.
    """

    figure: Figure
    image: FigureImage
    titles: FigureImage | None
    boxes: list[tuple[int, int, int]]
    left: int
    height: int

    def pixels(self) -> Transform:
        """The grid's pixels (x right, y down) to the page, at any dpi the page is drawn at."""
        from matplotlib.transforms import Affine2D

        to_inches = Affine2D().scale(1, -1).translate(self.left, self.height).scale(1 / DPI)
        return to_inches + self.figure.dpi_scale_trans

    def frame(self, k: int, colour: str = "red") -> None:
        """A border around tile k, drawn over its edge (under the titles, as the tiles are)."""
        from matplotlib.patches import Rectangle

        left, top, size = self.boxes[k]
        box = Rectangle(
            (left, top), size, size, fill=False, edgecolor=colour, linewidth=2.5,
            transform=self.pixels(), zorder=0,
        )  # fmt: skip
        self.figure.add_artist(box)

    def say(self, k: int, text: str) -> None:
        """``text`` in the middle of tile k's place (a grid with nothing to show says so)."""
        left, top, size = self.boxes[k]
        centre = (left + size / 2, top + size / 2)
        self.figure.text(*centre, text, ha="center", va="center", transform=self.pixels())

    def suptitle(self, text: str, **kwargs) -> None:
        """The picture's title, its top 0.1 inch below the page's (a fraction would put a
        second line over a tall picture's first row)."""
        self.figure.suptitle(text, y=1 - 0.1 / self.figure.get_figheight(), va="top", **kwargs)

    def extent(self) -> tuple[float, float, float, float]:
        """The tiles' extent in figure fractions: (x0, y0, x1, y1)."""
        width, height = self.figure.get_size_inches() * DPI  # the page's pixels
        lefts, tops = [b[0] for b in self.boxes], [b[1] for b in self.boxes]
        size = self.boxes[0][2]
        return (
            (self.left + min(lefts)) / width,
            (self.height - max(tops) - size) / height,
            (self.left + max(lefts) + size) / width,
            (self.height - min(tops)) / height,
        )


def tile_grid(
    rows: np.ndarray,
    tile: float,
    cmap: str,
    limits: tuple[float, float],
    titles: list[str] | None = None,
    colorbar: bool = False,
    suptitle_lines: int = 1,
) -> TileGrid:
    """``rows`` (count, side * side), each a column-major image, as one image of a grid of
    upright tiles, row by row.

    Each tile is ``tile`` inches square, its pixels sampled as Agg draws an image at that size
    ("nearest"), with white gaps, and ``titles`` (one a tile, lines split by "\\n") above them.
    One image and no Axes: an Axes per tile would cost matplotlib ~3 ms each to make and draw
    (a 400-unit picture took seconds), even one over them all ~8 ms, and a Text per title ~1
    ms. ``limits`` (low, high) is the one grey scale of ``cmap``; ``colorbar`` leaves room on
    the right for one; ``suptitle_lines`` sizes the room on top.
    """
    tiles = np.stack([to_image(row) for row in rows]) if len(rows) else np.zeros((0, 20, 20))
    count, side = len(tiles), tiles.shape[-1]
    grid_rows, cols = grid_shape(max(count, 1))
    # All in whole pixels at DPI, so that the composed image maps 1:1 onto the page.
    title_lines = max((t.count("\n") + 1 for t in titles), default=0) if titles else 0
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
    gaps = colormaps[cmap].with_extremes(bad=(0, 0, 0, 0))  # the page's white shows through
    image = place(fig, np.ma.masked_invalid(mosaic), left0, cmap=gaps, zorder=-1)  # under all
    image.set_clim(*limits)
    words = None
    if titles:
        layer = title_layer(boxes, titles, mosaic.shape)
        words = place(fig, layer, left0)
    return TileGrid(fig, image, words, boxes, left0, grid_height)


def place(fig: Figure, pixels: np.ndarray, left: int, bottom: int = 0, **kwargs) -> FigureImage:
    """``pixels`` (rows top to bottom) on the page at (``left``, ``bottom``) pixels, one to one
    (keywords: FigureImage's, such as cmap, norm, zorder)."""
    from matplotlib.image import FigureImage

    class _Pixels(FigureImage):
        """A FigureImage drawn unresampled where the page is drawn at the figure's dpi: its
        array is then already the page's pixels, and matplotlib's resampling (the identity,
        "nearest" at 1:1) took nearly all of a grid's drawing time. The same pixels either way
        (tests/plots/test_plots.py renders both)."""

        def make_image(self, renderer, magnification=1.0, unsampled=False):
            same = renderer.dpi == self.get_figure(root=True).dpi
            return super().make_image(renderer, magnification, unsampled=same)

    image = _Pixels(fig, offsetx=left, offsety=bottom, origin="lower", **kwargs)
    image.set_array(pixels[::-1])  # "lower": the last row at the bottom, as unresampled draws
    image.set_interpolation("nearest")
    fig.images.append(image)
    image._remove_method = fig.images.remove
    return image


TITLE_POINTS = 9  # a tile's title


def title_layer(boxes: list[tuple[int, int, int]], titles: list[str], shape: tuple) -> np.ndarray:
    """Black ink of each tile's title, centred 2 points above it (as an Axes title sits), as an
    RGBA (shape, 4) uint8 layer to lay over the tiles; the last line's baseline there."""
    layer = np.zeros((*shape, 4), dtype=np.uint8)
    step = round(1.2 * TITLE_POINTS * DPI / 72)  # baseline to baseline, as a Text spaces lines
    for (left, top, size), text in zip(boxes, titles):
        baseline = top - round(2 * DPI / 72)
        for up, line in enumerate(reversed(text.split("\n"))):
            ink_on(layer, line, TITLE_POINTS, left + size // 2, baseline - up * step)
    return layer


def ink_on(
    layer: np.ndarray,
    text: str,
    points: float,
    centre: int,
    baseline: int,
    colour: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """One line of ``text`` inked onto an RGBA uint8 ``layer`` (H, W, 4), centred on column
    ``centre`` with its baseline on row ``baseline`` (pixels), in ``colour`` (RGB 0..255)."""
    ink, above = line_ink(text, points)  # rows above the baseline
    y, x = baseline - above, centre - ink.shape[1] // 2
    spot = layer[y : y + ink.shape[0], x : x + ink.shape[1]]
    ink = ink[: spot.shape[0], : spot.shape[1]]
    np.maximum(spot[..., 3], ink, out=spot[..., 3])
    spot[..., :3][ink > 0] = colour


def centred_baseline(middle: int, points: float) -> int:
    """The baseline row (pixels, y down) of a line centred on row ``middle`` as a Text with
    va="center" sits: its box is the height of "lp", ascent and descent."""
    lp, above = line_ink("lp", points)  # its ink's rows, padding included
    return middle + round(lp.shape[0] / 2) - (lp.shape[0] - above)


def line_box(points: float) -> tuple[int, int]:
    """A line's box as matplotlib lays a Text out, in pixels: its height (that of "lp", ascent
    and descent) and the rows of it above the baseline."""
    font = _font(points)  # FreeType's metrics, as matplotlib's layout takes them
    font.set_text("lp", 0.0)
    height, descent = font.get_width_height()[1] / 64, font.get_descent() / 64
    return round(height), round(height - descent)


@functools.cache
def text_metrics(text: str, points: float) -> tuple[float, float, float]:
    """One line's (width, height, descent) in pixels, as Agg's renderer measures it for a
    Text's layout (hinted, as it is drawn)."""
    from matplotlib.backends.backend_agg import get_hinting_flag

    font = _font(points)
    font.set_text(text, 0.0, flags=get_hinting_flag())
    width, height = font.get_width_height()
    return width / 64, height / 64, font.get_descent() / 64


@functools.cache
def font_heights(points: float) -> tuple[float, float, float]:
    """The font's own ascent, descent and line gap in pixels (its OS/2 table), the least a
    line of a Text takes since matplotlib 3.10."""
    font = _font(points)
    table, units = font.get_sfnt_table("OS/2"), font.get_sfnt_table("head")["unitsPerEm"]
    scale = points * DPI / 72 / units
    return (
        table["sTypoAscender"] * scale,
        -table["sTypoDescender"] * scale,
        table["sTypoLineGap"] * scale,
    )


def line_width(text: str, points: float) -> int:
    """Pixels wide the ink of one line of ``text`` is."""
    return line_ink(text, points)[0].shape[1]


@functools.cache
def line_ink(text: str, points: float) -> tuple[np.ndarray, int]:
    """One line of text in the default font as Agg draws it: its coverage, (rows, cols) uint8,
    and how many of its rows lie above the baseline. (FreeType straight, as Agg's own text
    drawing does, without an Artist's layout: a hundredth of the time.)"""
    from matplotlib.backends.backend_agg import get_hinting_flag

    font = _font(points)
    font.set_text(text, 0.0, flags=get_hinting_flag())
    font.draw_glyphs_to_bitmap(antialiased=True)
    ink = np.asarray(font.get_image()).copy()
    return ink, ink.shape[0] - round(font.get_descent() / 64)


def _font(points: float):
    from matplotlib.font_manager import FontProperties, findfont, get_font

    font = get_font(findfont(FontProperties()))
    font.clear()
    font.set_size(points, DPI)
    return font


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


def predict(model: MLP, X: np.ndarray) -> np.ndarray:
    """Predicted digits, (m,), computed where the model lives, in its dtype (as
    :meth:`MLP.predict <digits_torch.core.model.MLP.predict>` does; on one CPU thread:
    :func:`picture_threads`)."""
    with picture_threads():
        return model.predict(X)


def picture_threads() -> contextlib.AbstractContextManager[int]:
    """torch on one CPU thread inside the block, as a run trains by default: a picture's forward
    pass over a few thousand digits takes ~3 ms on one, and 20 to 50 ms of CPU on two of a busy
    machine's cores, each waiting on the other."""
    return cpu_threads(1)


def numpy_rows(X: np.ndarray | torch.Tensor) -> np.ndarray:
    return X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)


def best_epoch(run_dir: Path) -> int | None:
    """The epoch of best.pt, from metrics.json (written when the run ended)."""
    try:
        epoch = parse_json(read_bytes(run_dir / METRICS))["best_epoch"]
    except (UserError, ValueError, KeyError, TypeError):  # TypeError: not an object ([1])
        return None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
