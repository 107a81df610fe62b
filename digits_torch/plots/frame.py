"""An Axes' frame, ticks, tick labels, grid and axis labels inked onto one page layer.

What matplotlib's axis artists draw, at the places its own layout puts them (default rcParams:
ticks out, 3.5 points major and 2 minor, labels 10 points, 3.5 points from their ticks, axis
labels 4 points from those), without their cost: an Axes' Tick objects and text layout take
~25 ms to make and draw, the ink a millisecond or two. The Axes itself keeps its scale, limits
and lines (drawn by matplotlib) with its axis turned off; its locators and formatters choose
the ticks, as they would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .drawing import DPI, font_heights, ink_on, line_box, line_ink, line_width, text_metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["ink_colorbar_axis", "ink_frame", "ink_legend", "page_layer"]

POINT = DPI / 72  # pixels
LABEL_POINTS = 10.0  # tick labels and axis labels: matplotlib's "medium"
BLACK = (0, 0, 0, 255)
GRID = (176, 176, 176, round(0.3 * 255))  # grid.color #b0b0b0 at the curves' alpha 0.3


def page_layer(fig) -> np.ndarray:
    """An empty RGBA (H, W, 4) uint8 layer the size of the figure's page, rows top down."""
    return np.zeros((round(fig.bbox.height), round(fig.bbox.width), 4), dtype=np.uint8)


def ink_frame(layer: np.ndarray, ax: Axes, grid: bool = False) -> None:
    """Ink ``ax``'s frame, ticks (major and minor, as its locators place them in its view),
    tick labels, axis labels and, with ``grid``, its major grid lines onto ``layer`` (the page,
    rows top down); then turn its own axis off, so that matplotlib does not draw them again.
    The x axis's ticks and label go below the frame, or above it where its label is on top."""
    height = layer.shape[0]
    left, bottom, right, top = ax.bbox.extents  # pixels, y up
    x0, x1, y0, y1 = round(left), round(right), round(height - top), round(height - bottom)
    (x_major, x_minor), (y_major, y_minor) = _ticks(ax, "x", height), _ticks(ax, "y", height)
    if grid:
        for x, _ in x_major:
            layer[y0:y1, x] = GRID
        for y, _ in y_major:
            layer[y, x0:x1] = GRID
    on_top = ax.xaxis.get_label_position() == "top"
    for ticks, points in ((x_major, 3.5), (x_minor, 2.0)):  # out of the frame
        length = round(points * POINT)
        rows = slice(y0 - length, y0) if on_top else slice(y1 + 1, y1 + 1 + length)
        for x, _ in ticks:
            layer[rows, x] = BLACK
    for ticks, points in ((y_major, 3.5), (y_minor, 2.0)):
        for y, _ in ticks:
            layer[y, x0 - round(points * POINT) : x0] = BLACK
    layer[y0, x0 : x1 + 1] = layer[y1, x0 : x1 + 1] = BLACK  # the spines
    layer[y0 : y1 + 1, x0] = layer[y0 : y1 + 1, x1] = BLACK
    pad, labelpad = round(7 * POINT), round(4 * POINT)  # tick and its pad; an axis label's
    line, ascent = line_box(LABEL_POINTS)  # a label's box: its height, and above its baseline
    # Baselines: under the frame, a box's top at the pad; over it, its bottom (the descent),
    # and the label 21 points over the frame. Checked row for row against matplotlib's picture.
    if on_top:
        tick_row, label_row = y0 - pad - (line - ascent) + 1, y0 - round(21 * POINT) + 1
    else:
        tick_row = y1 + pad + ascent
        label_row = tick_row + line + labelpad
    for x, text in x_major:
        ink_on(layer, text, LABEL_POINTS, x, tick_row)
    ink_on(layer, ax.get_xlabel(), LABEL_POINTS, (x0 + x1) // 2, label_row)
    widest = 0
    for y, text in y_major:  # right-aligned, the digits' ink centred on the tick
        width = line_width(text, LABEL_POINTS)
        widest = max(widest, width)
        ink_on(layer, text, LABEL_POINTS, x0 - pad - (width + 1) // 2, y + (ascent + 3) // 2)
    _ink_turned(layer, ax.get_ylabel(), x0 - pad - widest - labelpad, (y0 + y1 - 1) // 2)
    ax.set_axis_off()


def _ticks(ax: Axes, which: str, height: int) -> tuple[list, list]:
    """(major, minor) ticks of ``ax``'s x or y axis in its view: (page pixel, label) each, the
    pixel a column for x, a row (top down) for y; minor ticks unlabelled."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = sorted(axis.get_view_interval())
    span = (high - low) * 1e-10  # matplotlib keeps ticks within the view, up to rounding

    def placed(locs) -> list[float]:
        kept = [v for v in locs if low - span <= v <= high + span]
        points = [(v, 0.0) if which == "x" else (0.0, v) for v in kept]
        pixels = ax.transData.transform(points) if points else np.zeros((0, 2))
        return [round(p[0]) if which == "x" else round(height - p[1]) for p in pixels], kept

    majors, kept = placed(axis.get_majorticklocs())
    labels = axis.get_major_formatter().format_ticks(kept)
    minors, _ = placed(axis.get_minorticklocs())
    return list(zip(majors, labels)), [(m, "") for m in minors]


def _ink_turned(
    layer: np.ndarray, text: str, right: int | None, middle: int, left: int | None = None
) -> None:
    """``text`` turned a quarter left (reading upwards), black, its line's box ending at column
    ``right`` (or starting at ``left``) and centred on row ``middle``, as a y axis label sits."""
    line, ascent = line_box(LABEL_POINTS)
    lp, above = line_ink("lp", LABEL_POINTS)  # the ink's rows: the box's and some padding
    level = np.zeros((lp.shape[0], line_width(text, LABEL_POINTS) + 4, 4), dtype=np.uint8)
    ink_on(level, text, LABEL_POINTS, level.shape[1] // 2, above)
    # down to the box's bottom (the ink's top rows kept: a glyph may rise above the ascent)
    turned = np.rot90(level[: above + line - ascent])  # the descent now on the right
    top = middle - turned.shape[0] // 2
    left = right - turned.shape[1] if left is None else left
    spot = layer[top : top + turned.shape[0], left : left + turned.shape[1]]
    np.maximum(spot, turned[: spot.shape[0], : spot.shape[1]], out=spot)


def ink_legend(layer: np.ndarray, ax: Axes, points: float = 9.0) -> list:
    """``ax``'s legend (its lines' labels) inked onto ``layer`` (the page, rows top down) where
    ``ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=points,
    frameon=False)`` puts it, below the panel: a Legend's layout of boxes took ~10 ms a drawing.
    Returns each label's handle, a Line2D in page pixels as the Legend's, for the figure to draw
    (a line's dashes and antialiasing are matplotlib's own)."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import IdentityTransform

    em = points * POINT  # a legend's spacings are in font sizes (matplotlib's defaults)
    handles, labels = ax.get_legend_handles_labels()
    entries = [_legend_entry(label, points) for label in labels]
    x0, y0, x1, y1 = ax.bbox.extents  # pixels, y up
    width = (0.4 + 2.0 + 0.8 + 0.4) * em + max(entry[3] for entry in entries)
    left = (x0 + x1 - width) / 2  # centred under the panel, its top 0.2 of the panel below
    top = y0 - 0.2 * (y1 - y0) - 0.5 * em - 0.4 * em  # the border's pad, then the inner pad
    lines = []
    for handle, (baselines, box, middle, _) in zip(handles, entries):
        xs = [left + 0.4 * em + k * em for k in range(3)]  # two font sizes long
        line = Line2D(xs, [top - box + middle] * 3, drawstyle="default", marker="None")
        line.update_from(handle)
        line.set(transform=IdentityTransform(), clip_box=None, clip_path=None)
        lines.append(line)
        for text, below in baselines:
            width = line_width(text, points)
            row = round(layer.shape[0] - top + below) + 1  # as Agg rounds a baseline
            ink_on(layer, text, points, round(left + 3.2 * em) + width // 2, row)
        top -= box + 0.5 * em  # the label spacing
    return lines


def _legend_entry(label: str, points: float) -> tuple[list, float, float, float]:
    """How a legend lays ``label`` out (matplotlib's Text and TextArea, "normal" line spacing):
    ([(line, its baseline below the entry's top)], the entry's height, its handle's height over
    the entry's bottom, its widest line), in pixels."""
    ascent, descent, gap = font_heights(points)
    lp_ascent = text_metrics("lp", points)[1] - text_metrics("lp", points)[2]
    lines, spread = label.split("\n"), 0.0 if "\n" not in label else 0.5
    baselines, height, widest = [], 0.0, 0.0
    for line in lines:
        w, h, d = text_metrics(line, points)
        a = max(h - d, ascent) + spread * gap
        baselines.append((line, height + a))
        height += a + max(d, descent) + spread * gap
        widest = max(widest, w)
    if len(lines) == 1:  # a line at least as tall as "lp"
        a, d = max(lp_ascent, baselines[0][1]), height - baselines[0][1]
        baselines, height, base = [(label, a)], a + d, d
    else:  # centred on the handle
        base = height / 2 - lp_ascent / 2
    return baselines, height, base + 0.35 * points * POINT, widest


def ink_colorbar_axis(layer: np.ndarray, cax: Axes) -> None:
    """A vertical colour bar's ticks, tick labels and label, right of the bar as matplotlib
    puts them, inked onto ``layer`` (the page, rows top down); then its own axes hidden (the
    bar and its outline stay matplotlib's): their Tick objects and text took ~10 ms a drawing."""
    height = layer.shape[0]
    locator = cax.get_axes_locator()  # a bar with extensions is shrunk for them when drawn
    if locator is not None:
        cax.apply_aspect(locator(cax, None))
    right = round(cax.bbox.x1)
    ticks, _ = _ticks(cax, "y", height)
    pad = round(7 * POINT)  # the tick and its pad
    _, ascent = line_box(LABEL_POINTS)
    widest = 0
    for y, text in ticks:
        layer[y, right + 1 : right + 1 + round(3.5 * POINT)] = BLACK
        width = line_width(text, LABEL_POINTS)
        widest = max(widest, width)
        ink_on(layer, text, LABEL_POINTS, right + pad + width // 2 + 1, y + (ascent + 1) // 2)
    top, bottom = height - cax.bbox.y1, height - cax.bbox.y0
    label_left = right + pad + widest + round(4 * POINT)
    _ink_turned(layer, cax.get_ylabel(), None, round((top + bottom - 1) / 2) - 1, left=label_left)
    cax.xaxis.set_visible(False)
    cax.yaxis.set_visible(False)
