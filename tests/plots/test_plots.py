"""digits_torch.plots: what each picture holds, on the shipped digits and a short real run."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.image import FigureImage
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from digits_torch import MLP, UserError, fit, load_model, make_config, plots
from digits_torch.cli.plots import main as plots_main
from digits_torch.core.data import stratified_split, to_image
from digits_torch.plots import drawing
from digits_torch.reference.coursera import save_weights
from digits_torch.store.runs import RunLock, read_history

FIGURES = {"digits.png", "hidden_units.png", "mistakes.png", "confusion.png", "learning_curves.png"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short real run: ex4's recipe for 6 iterations, a fifth of each digit held out."""
    config = make_config(
        "coursera",
        epochs=6,
        val_fraction=0.2,
        image_every=2,
        device="cpu",
        quiet=True,
        logdir=str(tmp_path_factory.mktemp("runs")),
    )
    return fit(config)


@pytest.fixture(scope="module")
def row_of(digits):
    """Which row of X an image shows: upright image bytes -> row index."""
    X, _ = digits
    return {to_image(row).tobytes(): i for i, row in enumerate(X)}


def _runs(filled: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-d bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], filled.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def tiles_of(fig) -> tuple[list[np.ndarray], list[tuple[int, int, int]]]:
    """What a grid picture shows: its one composed image cut at the blank gaps into tiles, row by
    row, each read back to 20 x 20 (the centre of each drawn pixel), with each tile's (left,
    top, size) in the image's pixels."""
    assert len(fig.images) in (1, 2)  # one composed image (and its titles), not one per tile
    mosaic = fig.images[0].get_array()[::-1]  # origin "lower": the array's last row on top
    filled = ~np.ma.getmaskarray(mosaic)
    tiles, corners = [], []
    for top, bottom in _runs(filled.any(axis=1)):
        for left, right in _runs(filled.any(axis=0)):
            block = mosaic[top:bottom, left:right]
            if np.ma.getmaskarray(block).all():  # a spare cell of the last row
                continue
            assert bottom - top == right - left and not np.ma.getmaskarray(block).any()
            centres = ((np.arange(20) + 0.5) * (bottom - top) / 20).astype(int)
            tiles.append(np.asarray(block)[np.ix_(centres, centres)])
            corners.append((left, top, bottom - top))
    return tiles, corners


def assert_titled(fig, corners: list[tuple[int, int, int]], titles: list[str]) -> None:
    """The picture's title layer holds exactly ``titles``' ink, each centred over its tile."""
    layer = np.asarray(fig.images[1].get_array())[::-1]
    expected = drawing.title_layer(corners, titles, layer.shape[:2])
    np.testing.assert_array_equal(layer, expected)
    assert all(expected[top - 14 : top, left : left + size, 3].any() for left, top, size in corners)


def test_digits_grid_shows_upright_labelled_digits(digits, row_of):
    X, y = digits
    fig = plots.digits_grid(X, y, n=100, seed=3)
    tiles, corners = tiles_of(fig)
    assert len(tiles) == 100 and fig.axes == []  # no Axes, whatever the count
    rows = [row_of[tile.tobytes()] for tile in tiles]  # KeyError: not an upright row of X
    assert len(set(rows)) == 100
    assert_titled(fig, corners, [str(y[row]) for row in rows])
    for tile, row in zip(tiles, rows):
        assert not np.array_equal(tile, X[row].reshape(20, 20))  # not the transpose
    assert fig.images[0].get_clim() == (0.0, float(X[rows].max()))  # one grey scale: the ink's
    assert fig._suptitle.get_text() == "100 digits drawn at random from 5,000"

    def drawn(seed):
        tiles, _ = tiles_of(plots.digits_grid(X, n=9, seed=seed))
        return [row_of[tile.tobytes()] for tile in tiles]

    assert drawn(3) == drawn(3) != drawn(4)  # seeded


def test_grid_pictures_draw_the_pixels_matplotlib_would_resample_to(digits):
    """Tiles and titles are placed unresampled (the resampling is the identity at 1:1): the
    page's pixels are those of matplotlib's own "nearest" resampling."""
    X, y = digits
    for fig in (plots.digits_grid(X, y, n=12), plots.hidden_units(MLP(400, (7,)), X)):
        fast = plots.render(fig)
        for image in fig.images:
            image.__class__ = FigureImage  # matplotlib's own drawing: resampled
        np.testing.assert_array_equal(plots.render(fig), fast)
        assert (fast < 128).any() and (fast > 128).any()


def test_digits_grid_without_labels_and_any_count(digits):
    X, _ = digits
    fig = plots.digits_grid(X[:30], n=7)
    tiles, corners = tiles_of(fig)
    assert len(tiles) == 7  # the two spare cells of 3 x 3 left blank
    assert len({box[0] for box in corners}) == 3 and len({box[1] for box in corners}) == 3
    assert len(fig.images) == 1  # no titles


@pytest.mark.parametrize("units", [25, 7])
def test_hidden_units_share_one_scale(units):
    model = MLP(hidden_sizes=(units,), generator=torch.Generator().manual_seed(units))
    weights = model.layers[0].weight.detach().numpy()
    fig = plots.hidden_units(model)
    tiles, corners = tiles_of(fig)
    assert len(tiles) == units
    low, high = fig.images[0].get_clim()  # one image: one grey scale for every unit
    assert -low == high > 0
    assert fig.axes[-1].get_ylim() == (low, high)  # the colour bar's too
    for tile, unit in zip(tiles, weights):
        np.testing.assert_array_equal(tile, to_image(unit))
    if units == 25:
        assert len({box[0] for box in corners}) == len({box[1] for box in corners}) == 5

    # TensorBoard's bare picture: the same tiles on the same scale, 0.5 for a zero weight.
    mosaic = plots.hidden_units_image(model)
    cols = int(np.ceil(np.sqrt(units)))
    for k, unit in enumerate(weights):
        top, left = 1 + 21 * (k // cols), 1 + 21 * (k % cols)
        expected = np.clip(0.5 + 0.5 * to_image(unit) / high, 0, 1)
        np.testing.assert_allclose(mosaic[top : top + 20, left : left + 20], expected, atol=1e-6)
    assert mosaic.shape == (1 + 21 * int(np.ceil(units / cols)), 1 + 21 * cols)


@pytest.mark.parametrize("units", [25, 100])
def test_hidden_units_colour_bar_fits_in_the_picture(units):
    """The colour bar's ticks, their values and its label are inked right of it, in the page."""
    figure = plots.hidden_units(MLP(400, (units,)))
    plots.render(figure)  # drawn: the bar has its place
    bar = figure.axes[-1]  # the colour bar's axes, added last
    ink = figure.images[-1].get_array()[::-1][..., 3]  # origin "lower": the page's top row last
    height, right = ink.shape[0], round(bar.bbox.x1)
    assert not ink[:, : right + 1].any() and not ink[:, -2:].any()  # all right of it, in the page
    low, high = bar.get_ylim()
    locs = [v for v in bar.yaxis.get_majorticklocs() if low <= v <= high]
    assert len(locs) >= 3 and figure.images[0].get_clim() == (low, high)
    beside = ink[:, right + 1 : right + 6]  # the ticks, out of the bar
    for value, label in zip(locs, bar.yaxis.get_major_formatter().format_ticks(locs)):
        assert float(label.replace("−", "-")) == pytest.approx(value)
        y = round(height - bar.transData.transform((0, value))[1])
        assert (beside[y] == 255).all() and not beside[[y - 2, y + 2]].any()
        wide = drawing.line_width(label, 10) + 2
        np.testing.assert_array_equal(glyphs(ink[y - 7 : y + 8, right + 9 : right + 9 + wide]),
                                      written(label, 10))  # fmt: skip
    labels = max(drawing.line_width(label, 10) for label in ("0.00", "−0.00")) + 12
    turned = glyphs(ink[:, right + labels :])
    np.testing.assert_array_equal(np.rot90(turned, -1), written(bar.get_ylabel(), 10))
    assert bar.get_ylabel() == "weight"


def test_mistakes_name_predicted_and_true_digit(run, digits, row_of):
    X, y = digits
    predicted = run.model.predict(torch.from_numpy(X)).numpy()
    wrong = int((predicted != y).sum())
    assert wrong > 25  # six iterations leave plenty
    fig = plots.mistakes(run.model, X, y, n=25, digits="training digits")
    assert fig._suptitle.get_text().startswith(f"training digits (5,000): {wrong} misclassified")
    tiles, corners = tiles_of(fig)
    assert len(tiles) == 25
    rows = [row_of[tile.tobytes()] for tile in tiles]
    assert all(predicted[row] != y[row] for row in rows)
    assert_titled(fig, corners, [f"predicted {predicted[row]}\ntrue {y[row]}" for row in rows])
    for tile, row in zip(tiles, rows):
        assert not np.array_equal(tile, X[row].reshape(20, 20))


def test_mistakes_when_there_are_none(run, digits):
    X, y = digits
    right = run.model.predict(torch.from_numpy(X)).numpy() == y
    fig = plots.mistakes(run.model, X[right][:40], y[right][:40])
    said = [t.get_text() for t in fig.texts if t is not fig._suptitle]
    assert tiles_of(fig)[0] == [] and said == ["none"]
    assert fig._suptitle.get_text().startswith("digits (40): 0 misclassified")


def test_mistakes_and_confusion_show_the_predictions_they_are_given(run, digits):
    """run_figures predicts once for both pictures: given predictions are the ones shown."""
    X, y = digits
    predicted = (y + (np.arange(len(y)) < 7)) % 10  # the first 7 wrong, whatever the model says
    fig = plots.mistakes(run.model, X, y, predicted=predicted)
    assert fig._suptitle.get_text().startswith(f"digits ({len(y):,}): 7 misclassified")
    ax = plots.confusion(run.model, X, y, predicted=predicted).axes[0]
    assert ax.get_title().startswith(f"digits ({len(y):,}): {len(y) - 7} correct")


def test_pictures_pass_the_digits_through_torch_on_one_thread(run, digits, monkeypatch):
    """Their forward passes run on one CPU thread, as a run trains, and leave torch's count."""
    X, y = digits
    seen = []
    linear = torch.nn.functional.linear

    def counted(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return linear(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "linear", counted)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        plots.dead_units(run.model, X)
        drawing.predict(run.model, X)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}


def glyphs(coverage: np.ndarray) -> np.ndarray:
    """The ink of ``coverage`` (rows, cols), cut to its bounding box."""
    rows, cols = np.nonzero(coverage)
    return coverage[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def written(text: str, points: float) -> np.ndarray:
    """The glyphs of one line of ``text`` as the pictures' rasteriser inks them."""
    return glyphs(drawing.line_ink(text, points)[0])


def test_confusion_counts_every_digit_once(run, digits):
    X, y = digits
    predicted = run.model.predict(torch.from_numpy(X)).numpy()
    fig = plots.confusion(run.model, X, y, digits="validation digits")
    ax = fig.axes[0]
    correct = int((predicted == y).sum())
    assert ax.get_title().startswith(f"validation digits (5,000): {correct} correct")
    cells, frame = fig.images  # the cells' colours; the page's ink: counts, ticks, labels
    blocks = cells.get_array()[::-1]  # RGBA; origin "lower": the array's last row on top
    cell = blocks.shape[0] // 10
    assert blocks.shape == (10 * cell, 10 * cell, 4)
    counts = np.zeros((10, 10), dtype=int)  # counts[true, predicted], as the cells must show
    np.add.at(counts, (y, predicted), 1)
    # Each cell one block of its count's colour on a log scale (a 1 tinted, the largest count
    # the darkest); the empty ones transparent: the page's white.
    norm = LogNorm(vmin=0.5, vmax=counts.max())
    colours = colormaps["Blues"](norm(counts), bytes=True)
    colours[counts == 0] = 0
    np.testing.assert_array_equal(blocks, np.repeat(np.repeat(colours, cell, 0), cell, 1))
    assert len({tuple(c) for c in colours[counts > 0]}) > 2  # the colours tell counts apart
    # The Axes lies over the cells, a tick on each: the rows and columns are the digits.
    page = fig.bbox.height
    assert np.allclose(ax.bbox.bounds, (cells.ox, cells.oy, 10 * cell, 10 * cell))
    assert ax.get_xlim() == (-0.5, 9.5) and ax.get_ylim() == (9.5, -0.5)
    top = round(page - cells.oy - 10 * cell)  # the cells' top row on the page
    page_ink = frame.get_array()[::-1]
    assert (frame.ox, frame.oy) == (0, 0) and not ax.axison  # the ink is the Axes' drawing
    for d in range(10):  # each column's digit above it, each row's left of it, on a tick
        x, y = cells.ox + d * cell + cell // 2, top + d * cell + cell // 2
        assert (page_ink[top - 5 : top, x - 1 : x + 2, 3] == 255).all(axis=0).any()  # +- 1/2
        assert (page_ink[y - 1 : y + 2, cells.ox - 5 : cells.ox, 3] == 255).all(axis=1).any()
        above = page_ink[top - 25 : top - 6, x - 10 : x + 11, 3]
        beside = page_ink[y - 7 : y + 8, cells.ox - 22 : cells.ox - 6, 3]
        assert_array_equal_ink(above, str(d))
        assert_array_equal_ink(beside, str(d))
    assert_array_equal_ink(page_ink[top - 45 : top - 25, :, 3], "predicted digit")
    left_of = page_ink[top : top + 10 * cell, : cells.ox - 22, 3]
    np.testing.assert_array_equal(np.rot90(glyphs(left_of), -1), written("true digit", 10))
    # Each count is written in its cell (its glyphs, centred), white on dark cells; none empty.
    ink = np.array(page_ink[top : top + 10 * cell + 1, cells.ox : cells.ox + 10 * cell + 1])
    for edge in (ink[0], ink[-1], ink[:, 0], ink[:, -1]):
        assert (edge[:, 3] == 255).all()  # the frame around the cells
    ink[[0, -1]] = ink[:, [0, -1]] = 0  # read: off the cells
    shown = plots.render(fig)
    for (true, pred), count in np.ndenumerate(counts):
        spot = ink[true * cell : (true + 1) * cell, pred * cell : (pred + 1) * cell]
        page_cell = shown[top + true * cell :, cells.ox + pred * cell :][:cell, :cell]
        if not count:
            assert not spot[..., 3].any() and (page_cell[2:-2, 2:-2] == 255).all()  # blank, white
            continue
        rows, cols = np.nonzero(spot[..., 3])
        np.testing.assert_array_equal(glyphs(spot[..., 3]), written(str(count), 9))
        assert abs((rows.min() + rows.max()) / 2 - cell / 2) <= 2
        assert abs((cols.min() + cols.max()) / 2 - cell / 2) <= 2
        white = norm(count) > 0.6
        assert (spot[rows, cols, :3] == (255 if white else 0)).all()
        corner = page_cell[2, 2]  # away from the number: the cell's colour
        assert tuple(corner) == tuple(colours[true, pred, :3])


def assert_array_equal_ink(coverage: np.ndarray, text: str) -> None:
    np.testing.assert_array_equal(glyphs(coverage), written(text, 10))


def test_learning_curves_frames_are_inked_where_matplotlib_puts_them(run):
    """Each panel's frame, ticks and labels are one inked layer under the curves: a label at
    each tick its axis's locator places in view, reading that tick's value; the axis labels."""
    figure = plots.learning_curves(run.run_dir)
    ink = figure.images[0].get_array()[::-1][..., 3]  # origin "lower": the page's top row last
    height = ink.shape[0]
    for ax in figure.axes:
        assert not ax.axison  # not drawn twice
        left, bottom, right, top = (round(v) for v in ax.bbox.extents)
        y0, y1 = height - top, height - bottom  # rows, top down
        for edge in (ink[y0, left:right], ink[y1, left:right], ink[y0:y1, left], ink[y0:y1, right]):
            assert (edge == 255).all()  # the frame
        for which in "xy":
            axis = ax.xaxis if which == "x" else ax.yaxis
            low, high = sorted(axis.get_view_interval())
            locs = [v for v in axis.get_majorticklocs() if low <= v <= high]
            assert len(locs) >= 3
            for value, label in zip(locs, axis.get_major_formatter().format_ticks(locs)):
                assert float(label.replace("−", "-")) == pytest.approx(value)
                if which == "x":
                    x = round(ax.transData.transform((value, 1))[0])
                    assert (ink[y1 : y1 + 5, x] == 255).all()  # the tick, out of the frame
                    spot = ink[y1 + 6 : y1 + 26, x - 12 : x + 13]
                else:
                    y = round(height - ax.transData.transform((1, value))[1])
                    assert (ink[y, left - 5 : left] == 255).all()
                    wide = drawing.line_width(label, 10) + 4  # right-aligned; the y label beyond
                    spot = ink[y - 7 : y + 8, left - 6 - wide : left - 6]
                np.testing.assert_array_equal(glyphs(spot), written(label, 10))
        below = ink[y1 + 25 : y1 + 50, left:right]
        np.testing.assert_array_equal(glyphs(below), written(ax.get_xlabel(), 10))
        beside = ink[y0:y1, max(left - 70, 0) : left - 6]  # the y label, left of the tick labels
        turned = glyphs(beside[:, : np.flatnonzero(beside.any(axis=0))[0] + 16])
        np.testing.assert_array_equal(np.rot90(turned, -1), written(ax.get_ylabel(), 10))


def test_learning_curves_plot_the_history(run):
    history = read_history(run.run_dir)
    loss_ax, acc_ax = plots.learning_curves(run.run_dir).axes
    lines = {
        (ax, line.get_label()): line.get_ydata() for ax in (loss_ax, acc_ax) for line in ax.lines
    }
    np.testing.assert_allclose(
        lines[loss_ax, "training (with L2 term)"], [r["train_loss"] for r in history]
    )
    np.testing.assert_allclose(
        lines[loss_ax, "validation (data loss)"], [r["val_loss"] for r in history]
    )
    np.testing.assert_allclose(
        lines[acc_ax, "training"], [100 * r["train_accuracy"] for r in history]
    )
    np.testing.assert_allclose(
        lines[acc_ax, "validation"], [100 * r["val_accuracy"] for r in history]
    )
    best = f"best iteration ({run.metrics['best_epoch']})"  # coursera: L-BFGS
    assert (loss_ax, best) in lines and (acc_ax, best) in lines
    assert loss_ax.get_yscale() == "log"
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "iteration"


@pytest.mark.parametrize(
    ("flags", "step", "loss", "accuracy"),
    [
        ({}, "epoch", "training (augmented digits, with L2 term)", "training (augmented digits)"),
        ({"aug_shift": 0.0, "aug_rotate": 0.0, "aug_scale": 0.0, "l2": 0.0}, "epoch",
         "training (no L2 term)", "training"),
        ({"teacher": "TEACHER", "teacher_any_split": True}, "epoch",
         "training (augmented digits, distillation loss, with L2 term)",
         "training (augmented digits)"),
    ],
)  # fmt: skip
def test_learning_curves_say_what_training_was_on(tmp_path, small_digits, flags, step, loss,
                                                  accuracy, trained_run):  # fmt: skip
    flags = {k: str(trained_run) if v == "TEACHER" else v for k, v in flags.items()}
    config = make_config("tuned", data=str(small_digits), epochs=2, figures=False, device="cpu",
                         quiet=True, logdir=str(tmp_path), **flags)  # fmt: skip
    figure = plots.learning_curves(fit(config).run_dir)
    loss_ax, acc_ax = figure.axes
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == step
    assert loss_ax.get_legend_handles_labels()[1][0].replace(",\n", ", ") == loss
    # Each legend below its panel, no wider (it hides no epoch): each label's lines read off
    # the page's ink in order, each beside its handle, a line of its curve's colour and style.
    ink = figure.images[0].get_array()[::-1][..., 3]  # origin "lower": the page's top row last
    height, handles = ink.shape[0], iter(figure.artists)
    for ax in (loss_ax, acc_ax):
        left, bottom, right, _ = (round(v) for v in ax.bbox.extents)
        below = ink[height - bottom + 50 :, left:right]  # under the axis label
        rows = np.flatnonzero(below.any(axis=1))
        lines = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)  # the text's lines
        labels = ax.get_legend_handles_labels()[1]
        texts = [line for label in labels for line in label.split("\n")]
        assert len(lines) == len(texts) and not below[:, [0, -1]].any()  # none past the panel
        for text, line in zip(texts, lines):
            np.testing.assert_array_equal(glyphs(below[line]), written(text, 9))
        first = np.cumsum([0] + [label.count("\n") + 1 for label in labels])
        for k, (curve, handle) in enumerate(zip(ax.get_lines(), handles)):
            (x0, y0), (x1, _) = handle.get_transform().transform(handle.get_xydata()[[0, -1]])
            assert left < x0 < x1 < right and x1 - x0 == pytest.approx(25)  # two font sizes
            row = height - y0 - (height - bottom + 50)  # the handle's row in ``below``
            assert lines[first[k]][0] < row < lines[first[k + 1] - 1][-1]  # beside its label
            assert handle.get_color() == curve.get_color()
            assert handle.get_linestyle() == curve.get_linestyle()
    assert acc_ax.get_legend_handles_labels()[1][0] == accuracy


def test_full_batch_is_derived_from_the_optimizer():
    assert make_config("coursera").step_name == "iteration" and make_config("coursera").full_batch
    assert make_config("tuned").step_name == "epoch" and make_config("tuned").augmented
    assert (
        not make_config("seed").augmented and not make_config("seed", optimizer="adam").full_batch
    )


def test_hidden_units_mark_the_units_dead_on_the_training_digits(digits):
    X, _ = digits
    model = MLP(hidden_sizes=(25,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # units 3 and 7 never active: a bias far below any weighted sum
        model.layers[0].bias[[3, 7]] = -1e3
    dead = plots.dead_units(model, X)
    assert list(np.flatnonzero(dead)) == [3, 7]
    fig = plots.hidden_units(model, X)
    assert fig._suptitle.get_text().endswith(
        "2 of 25 units dead (never active on a training digit; red border)"
    )
    _, corners = tiles_of(fig)
    frames = fig.artists  # drawn on the page, in the grid's pixels
    framed = [corners.index((*map(round, f.get_xy()), round(f.get_width()))) for f in frames]
    assert framed == [3, 7] and all(f.get_width() == f.get_height() for f in frames)
    assert frames[0].get_edgecolor()[:3] == (1.0, 0.0, 0.0)
    relu = MLP(activation="relu", generator=torch.Generator().manual_seed(0))
    assert (
        plots.hidden_units(relu, X)
        ._suptitle.get_text()
        .endswith("0 of 25 units dead (never active on a training digit)")
    )
    # a sigmoid is never exactly 0: no count that could only ever say 0
    alive = plots.hidden_units(MLP(activation="sigmoid"), X)
    assert alive._suptitle.get_text() == "First-layer weights of the 25 hidden units"
    assert plots.hidden_units(model)._suptitle.get_text().count("dead") == 0  # no digits: no claim


def test_learning_curves_need_a_history(tmp_path):
    with pytest.raises(UserError, match="no epochs recorded"):
        plots.learning_curves(tmp_path)


def test_run_leaves_figures_and_tensorboard_images(run, digits):
    run_dir = run.run_dir
    assert {p.name for p in (run_dir / "figures").iterdir()} == FIGURES

    # The PNGs are the pictures of the reported model on the held-out digits, pixel for pixel.
    X, y = digits
    _, val = stratified_split(y, 0.2, 0)
    best = load_model(run_dir)
    for name, figure in (
        ("mistakes", plots.mistakes(best, X[val], y[val], digits="validation digits")),
        ("confusion", plots.confusion(best, X[val], y[val], digits="validation digits")),
    ):
        png = np.asarray(PIL.Image.open(run_dir / "figures" / f"{name}.png"))
        np.testing.assert_array_equal(png, plots.render(figure))

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert {"hidden_units", "figures/mistakes", "figures/confusion"} <= set(events.Tags()["images"])
    hidden = events.Images("hidden_units")
    assert [e.step for e in hidden] == [2, 4, 6]
    last = np.asarray(PIL.Image.open(io.BytesIO(hidden[-1].encoded_image_string)))
    latest = load_model(run_dir / "checkpoint.pt")  # the weights after epoch 6
    expected = np.round(plots.hidden_units_image(latest) * 255).astype(np.uint8)
    np.testing.assert_array_equal(last, expected)
    assert [e.step for e in events.Images("figures/confusion")] == [6]


def test_image_every_zero_logs_no_images_during_training(tmp_path):
    config = make_config(
        "coursera", epochs=2, image_every=0, device="cpu", quiet=True, logdir=str(tmp_path)
    )
    run_dir = fit(config).run_dir
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert set(events.Tags()["images"]) == {"figures/mistakes", "figures/confusion"}
    with pytest.raises(UserError, match="image every"):
        make_config(image_every=-1)


# ------------------------------------------------------------------------------ command line


def cli(*args):
    """``python -m digits_torch plots ARGS`` as a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "digits_torch", "plots", *map(str, args)],
        capture_output=True,
        text=True,
    )


def test_cli_redraws_a_run_and_draws_weights_files(run, tmp_path):
    result = cli(run.run_dir, "--out", tmp_path / "again")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr  # e.g. runpy's, if the package imported plots early
    assert {p.name for p in (tmp_path / "again").iterdir()} == FIGURES
    for name in FIGURES - {"learning_curves.png"}:  # the run's own data and validation split
        redrawn = np.asarray(PIL.Image.open(tmp_path / "again" / name))
        np.testing.assert_array_equal(
            redrawn, np.asarray(PIL.Image.open(run.run_dir / "figures" / name))
        )

    # the rest in this process: the command's main, as the process above ran it
    save_weights(run.model, tmp_path / "weights.mat")  # ex4's Theta1/Theta2 layout
    plots_main([str(tmp_path / "weights.mat"), "--out", str(tmp_path / "ex4")])
    assert {p.name for p in (tmp_path / "ex4").iterdir()} == FIGURES - {
        "learning_curves.png",
        "digits.png",
    }


def test_cli_draws_digits_of_any_file(write_mat, digits, tmp_path, monkeypatch, capsys):
    X, y = digits
    data = write_mat(
        "few.mat", X=X[::100].astype(np.float64), y=np.where(y[::100] == 0, 10, y[::100])
    )
    monkeypatch.chdir(tmp_path)
    plots_main(["--data", str(data), "--digits"])
    assert capsys.readouterr().out.split() == ["digits.png"]  # into the current folder
    drawn = np.asarray(PIL.Image.open(tmp_path / "digits.png"))
    np.testing.assert_array_equal(drawn, plots.render(plots.digits_grid(X[::100], y[::100])))


def test_cli_bad_path_is_one_line(tmp_path, run_entry):
    ran = run_entry(lambda: plots_main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]))
    assert ran.code == 2
    assert ran.stderr.splitlines() == [f"error: {tmp_path / 'nope'}: no such file or directory"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give a run directory"),
        (["{tmp}"], "not a run directory (no best.pt)"),
        (["{tmp}/x.txt"], "x.txt: not a model file (expected a run directory"),
        (["--digits", "--data", "{tmp}/none.mat"], "none.mat: no such file or directory"),
    ],
)
def test_cli_user_errors(tmp_path, capsys, args, message):
    (tmp_path / "x.txt").write_text("not a model")
    with pytest.raises(SystemExit) as exit_:
        plots_main([a.format(tmp=tmp_path) for a in args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err


def test_cli_does_not_draw_into_a_run_another_process_writes(run, tmp_path, capsys):
    """Into the run's own figures/ only as its one writer; --out draws elsewhere meanwhile."""
    before = {p: p.read_bytes() for p in (run.run_dir / "figures").iterdir()}
    with RunLock(run.run_dir):  # as a training process holds it
        with pytest.raises(SystemExit) as stopped:
            plots_main([str(run.run_dir)])
        assert stopped.value.code == 2
        message = capsys.readouterr().err
        assert "in use by another process" in message and "--out DIR" in message, message
        assert {p: p.read_bytes() for p in (run.run_dir / "figures").iterdir()} == before
        assert len(plots_main([str(run.run_dir), "--out", str(tmp_path / "elsewhere")])) == 5
    assert len(plots_main([str(run.run_dir)])) == 5  # once it is free
