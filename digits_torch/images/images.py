"""Your own digits: any picture of one digit made into the network's input, as MNIST was made.

    row = preprocess_image("seven.png")   # (400,) float32: a 20 x 20 image unrolled column-major

MNIST's digits were size-normalised to fit a 20 x 20 box, keeping their aspect ratio, with
anti-aliasing, then centred in a 28 x 28 frame by their centre of mass; the shipped digits are
those frames shrunk to 20 x 20 (``scripts/build_dataset.py``). A digit that a person draws or
photographs goes the same way, so that it lands where the network expects digits:

1. **Read** (:func:`~digits_torch.images.image_files.read_image`): PNG, JPEG, BMP, GIF (its first
   frame), TIFF, WebP or another raster format Pillow decodes itself (never EPS or PDF, which it
   hands to Ghostscript), turned upright by its EXIF orientation. Over 40 megapixels is refused
   before decoding (a decompression bomb), as is a truncated or damaged file.
2. **Grey** (:func:`greyscale`): luminance in [0, 1], box-averaged down to at most
   :data:`WORK_SIDE` pixels a side. Transparent pixels are paper: white behind dark ink, black
   behind light ink.
3. **Ink** (:func:`ink`): the paper's brightness is a smooth surface fitted to the pixels that
   are not ink (a photo's paper is unevenly lit), and ink is whatever lies farthest from it,
   darker or lighter: dark-on-light and light-on-dark both work. Its contrast is stretched to
   [0, 1], paper 0; what is within the paper's noise is set to 0, and so are specks, pieces of
   ink with under :data:`SPECK` of the largest piece's. An image with no ink that stands out from
   its paper is blank, a user error.
4. **Pen** (:func:`thicken`): strokes far thinner than MNIST's for the digit's size (a thin pen
   on a large canvas) are widened to MNIST's usual width.
5. **Frame** (:func:`mnist_frame`): the ink's extent (its pixels of at least
   :data:`EXTENT_LEVEL` ink) is scaled so its longer side is 20 pixels, and put in a 28 x 28
   frame at the whole-pixel offset that brings its centre of mass nearest pixel (14, 14) (row and
   column indices from 0). MNIST did the same: of the 5,000 originals of the shipped digits,
   4,999 have an extent of 20 pixels above 0 (4,976 at 0.35), and every centre of mass lies
   within half a pixel of (14, 14). One Pillow bicubic resample (anti-aliased when shrinking)
   scales and places the digit.
6. **Shrink** (:func:`frame_to_row`): the 28 x 28 frame to 20 x 20 and unrolled column-major,
   exactly as ``scripts/build_dataset.py`` made the shipped digits.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import PIL.Image
import scipy.ndimage
from PIL import ImageChops

from ..errors import UserError
from .image_files import check_size, from_array, read_image

__all__ = ["frame_to_row", "greyscale", "preprocess_image"]

WORK_SIDE = 1024  # larger images are box-averaged down to this many pixels a side, for speed
MNIST_FRAME, MNIST_BOX, MNIST_CENTRE = 28, 20, 14.0  # pixels; the centre as a 0-based index
EX4_SIDE = 20  # the network's input is 20 x 20
# The ink's extent is that of its pixels of at least this much ink. Of the levels 0.2 to 0.5 tried,
# 0.35 frames the shipped digits, upsampled back to 28 x 28 (so blurred: thin stroke ends fade),
# most like the originals (least mean absolute pixel difference of the 20 x 20 rows).
EXTENT_LEVEL = 0.35
THIN, PEN = 0.06, 0.11  # strokes thinner than THIN x the extent are thickened to PEN x it
STROKE_SIDE = 80  # pixels: the digit's size where strokes are measured and thickened
PAPER_GRID, PAPER_FITS = 64, 5  # the paper's brightness is fitted on this grid, this many times
SPECK = 0.05  # a piece with less ink than this share of the largest piece's is noise
MIN_CONTRAST = 0.04  # ink must differ from the paper by this much (of full black to white) ...
NOISE_CONTRAST = 8.0  # ... and by this many times the paper's noise (its robust std. deviation)
NOISE_FLOOR = 3.0  # contrast below this many noise deviations is paper
_HIGH_BIT = {"I": 65535.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "F": 1.0}


def preprocess_image(image: str | Path | PIL.Image.Image | np.ndarray) -> np.ndarray:
    """One digit in an image, as the network's input (see the module docstring for the steps).

    Args:
        image: a path to an image file, a PIL image, or an array of shape (H, W) (grey),
            (H, W, 3) (RGB) or (H, W, 4) (RGBA): uint8 0-255, uint16 0-65535, or floats in [0, 1].

    Returns:
        float32 array of shape (400,): a 20 x 20 image unrolled column-major (ex4's layout), ink
        about 1 and background about 0 (the bicubic resample overshoots a little, as in the
        shipped digits).

    Raises:
        UserError: an unreadable file (see :func:`read_image`), or a blank image.
    """
    if isinstance(image, (str, Path)):
        image = read_image(image)
    elif isinstance(image, np.ndarray):
        image = from_array(image)
    check_size(image)
    return frame_to_row(mnist_frame(thicken(ink(greyscale(image)))))


def greyscale(image: PIL.Image.Image) -> np.ndarray:
    """The image's luminance, transparent pixels turned to paper (white behind dark paint, black
    behind light paint), box-averaged down to at most :data:`WORK_SIDE` pixels a side.

    Returns:
        float32 array of shape (H, W), 0 black and 1 white (a float image keeps its values).

    Raises:
        UserError: a float image with NaN or infinite pixels, or a colour mode Pillow cannot
            convert.
    """
    factor = max(1, math.ceil(max(image.size) / WORK_SIDE))
    if image.mode in _HIGH_BIT and "transparency" not in image.info:
        plane = np.asarray(image.convert("F").reduce(factor), dtype=np.float32)
        if not np.isfinite(plane).all():  # a float TIFF: NaN would read as blank, with warnings
            raise UserError("non-finite pixels (NaN or infinity) in a float image")
        return plane / np.float32(_HIGH_BIT[image.mode])
    if image.mode == "LAB":  # its L is lightness, 0 black to 255 white; Pillow converts no LAB
        return np.asarray(image.getchannel("L").reduce(factor), dtype=np.float32) / np.float32(255)
    if not _has_transparency(image):
        return np.asarray(_converted(image, "L").reduce(factor), dtype=np.float32) / np.float32(255)
    rgba = _converted(image, "RGBA")
    alpha = rgba.getchannel("A")
    painted = ImageChops.multiply(rgba.convert("RGB").convert("L"), alpha)  # luminance x alpha
    painted, alpha = (
        np.asarray(plane.reduce(factor), dtype=np.float32) / np.float32(255)
        for plane in (painted, alpha)
    )
    coverage = float(alpha.sum())
    paint = float(painted.sum()) / coverage if coverage else 0.0  # mean luminance of the paint
    paper = np.float32(1.0 if paint < 0.5 else 0.0)
    return painted + (1 - alpha) * paper


def ink(grey: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds: 0 is paper, 1 the ink's full contrast (module docstring).

    Args:
        grey: (H, W) luminance, as :func:`greyscale` gives.

    Returns:
        float32 (H, W) in [0, 1], some of it 1.

    Raises:
        UserError: no ink stands out from the paper (a blank image).
    """
    paper, noise = _paper(grey.astype(np.float32))
    flat = grey - paper  # paper about 0, ink away from it either way
    darker, lighter = -float(flat.min()), float(flat.max())
    contrast = max(darker, lighter)
    if contrast < max(MIN_CONTRAST, NOISE_CONTRAST * noise):
        raise UserError("blank: no ink stands out from the paper")
    amount = (-flat if darker > lighter else flat) / np.float32(contrast)
    floor = min(0.5, NOISE_FLOOR * noise / contrast)
    amount = np.clip((amount - floor) / (1 - floor), 0, 1)
    return _without_specks(amount.astype(np.float32))


def thicken(amount: np.ndarray) -> np.ndarray:
    """Strokes far thinner than MNIST's, for the digit's size, widened to MNIST's usual width.

    MNIST's digits were written with pens about a tenth of the digit's height wide; a digit drawn
    with a thin pen on a large canvas would shrink to faint hairlines. The stroke width is
    measured with the digit scaled to :data:`STROKE_SIDE` pixels (see :func:`_stroke_width`);
    measured so, MNIST's strokes (those of the shipped digits' originals) are 0.068 to 0.197 of
    the extent for 98 % of them, 0.111 the median, and 6 of the 5,000 are under :data:`THIN`.
    Below :data:`THIN` the ink is shrunk by block maxima (a hairline keeps its full ink) to an
    extent of :data:`STROKE_SIDE` to twice that, and dilated by a disc to :data:`PEN` of the
    extent. Other digits are returned as they are.

    Args:
        amount: (H, W) ink in [0, 1], as :func:`ink` gives.

    Returns:
        float32 (h, w) ink in [0, 1], some of it 1: ``amount`` itself, or the digit thickened at
        that scale.
    """
    scaled = _at_stroke_scale(amount)
    solid = scaled >= EXTENT_LEVEL
    relative = _stroke_width(solid) / _extent(solid)
    if relative >= THIN:
        return amount
    crop = _crop(amount)
    small = _block_max(crop, max(1, _extent(crop >= EXTENT_LEVEL) // STROKE_SIDE))
    radius = max(1, round((PEN - relative) * _extent(small >= EXTENT_LEVEL) / 2))
    disc = np.hypot(*np.mgrid[-radius : radius + 1, -radius : radius + 1]) <= radius + 0.5
    return scipy.ndimage.grey_dilation(np.pad(small, radius + 1), footprint=disc)


def mnist_frame(amount: np.ndarray) -> np.ndarray:
    """The ink in MNIST's framing: its longer side scaled to 20 pixels, in a 28 x 28 frame with
    its centre of mass within half a pixel of (14, 14).

    Args:
        amount: (H, W) ink in [0, 1], paper 0, some of it at :data:`EXTENT_LEVEL` or more.

    Returns:
        float32 (28, 28) in [0, 1].
    """
    solid = amount >= EXTENT_LEVEL
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    scale = MNIST_BOX / _extent(solid)  # frame pixels per image pixel
    mass = amount.sum(dtype=np.float64)
    centre_row = amount.sum(axis=1, dtype=np.float64) @ np.arange(amount.shape[0]) / mass
    centre_col = amount.sum(axis=0, dtype=np.float64) @ np.arange(amount.shape[1]) / mass
    # As MNIST did, the scaled digit's box goes in at a whole-pixel offset: the one that puts its
    # centre of mass nearest index 14. Coordinates are continuous here: pixel i spans [i, i + 1).
    top = _frame_edge(rows[0], centre_row, scale)
    left = _frame_edge(cols[0], centre_col, scale)
    span = MNIST_FRAME / scale
    canvas, box = _canvas(amount, top, left, span)
    size = (MNIST_FRAME, MNIST_FRAME)
    frame = PIL.Image.fromarray(canvas).resize(size, PIL.Image.Resampling.BICUBIC, box=box)
    return np.clip(np.asarray(frame, dtype=np.float32), 0, 1)


def _frame_edge(first: int, centre: float, scale: float) -> float:
    """Where the frame's first row (or column) starts in the image, in image pixels.

    ``first`` is the ink box's first row, ``centre`` the centre of mass's row index (pixel
    centres at index + 0.5), ``scale`` frame pixels per image pixel.
    """
    offset = round(MNIST_CENTRE + 0.5 - (centre + 0.5 - first) * scale)  # box's row in the frame
    return first - offset / scale


def frame_to_row(frame: np.ndarray) -> np.ndarray:
    """A 28 x 28 frame as ex4's 20 x 20 row: ``scripts/build_dataset.py``'s resize, exactly.

    Args:
        frame: (28, 28) pixels, 0 background and 1 ink.

    Returns:
        float32 (400,), the 20 x 20 bicubic (float, unrounded) resize unrolled column-major.
    """
    image = PIL.Image.fromarray(np.asarray(frame, dtype=np.float32))
    small = image.resize((EX4_SIDE, EX4_SIDE), PIL.Image.Resampling.BICUBIC)
    return np.asarray(small, dtype=np.float32).ravel(order="F")


# ------------------------------------------------------------------------------------- helpers


def _paper(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """The paper's brightness under the whole image, and its noise.

    A quadratic surface in the pixel coordinates (an unevenly lit photo's paper) is fitted by least
    squares to a grid of at most PAPER_GRID x PAPER_GRID pixels, again and again, each time to the
    pixels within 3 noise deviations of the last fit (the first: the median), so that ink, dark or
    light, drops out. The noise is the robust standard deviation (1.4826 x the median absolute
    residual) of the pixels kept about the fit before last.

    Returns:
        ``(paper, noise)``: float32 (H, W) brightness, and the noise as a float.
    """
    height, width = grey.shape
    step = max(1, math.ceil(max(height, width) / PAPER_GRID))
    y = (np.arange(height, dtype=np.float64) + 0.5) / height - 0.5
    x = (np.arange(width, dtype=np.float64) + 0.5) / width - 0.5
    sy, sx = np.meshgrid(y[::step], x[::step], indexing="ij")
    design = np.stack([np.ones_like(sy), sy, sx, sy * sy, sy * sx, sx * sx], -1).reshape(-1, 6)
    values = grey[::step, ::step].astype(np.float64).ravel()
    coef = np.array([np.median(values), 0, 0, 0, 0, 0])  # the first fit: flat, robust
    keep = np.ones(values.shape, dtype=bool)
    for _ in range(PAPER_FITS):
        residual = values - design @ coef
        noise = 1.4826 * float(np.median(np.abs(residual[keep])))
        keep = np.abs(residual) <= 3 * noise + 1e-6
        kept = design[keep]  # the normal equations: 6 x 6, fast (lstsq of all rows is not)
        coef = np.linalg.lstsq(kept.T @ kept, kept.T @ values[keep], rcond=None)[0]
    c, cy, cx, cyy, cyx, cxx = coef
    paper = c + cy * y[:, None] + cx * x[None, :] + cyy * (y * y)[:, None]
    paper = paper + cyx * np.outer(y, x) + cxx * (x * x)[None, :]
    return paper.astype(np.float32), noise


def _extent(solid: np.ndarray) -> int:
    """The longer side, in pixels, of the box around a mask's pixels."""
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    return max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)


def _crop(amount: np.ndarray) -> np.ndarray:
    """The box around the ink."""
    rows, cols = np.flatnonzero(amount.any(axis=1)), np.flatnonzero(amount.any(axis=0))
    return amount[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _block_max(amount: np.ndarray, factor: int) -> np.ndarray:
    """``amount`` shrunk ``factor`` times, each pixel the most ink of its factor x factor block."""
    height, width = (-(-n // factor) * factor for n in amount.shape)  # padded to whole blocks
    padded = np.pad(amount, ((0, height - amount.shape[0]), (0, width - amount.shape[1])))
    return padded.reshape(height // factor, factor, width // factor, factor).max(axis=(1, 3))


def _at_stroke_scale(amount: np.ndarray) -> np.ndarray:
    """The ink cropped to its box and scaled so its extent is STROKE_SIDE pixels, its most inked
    pixel 1 (float32)."""
    crop = _crop(amount)
    factor = STROKE_SIDE / _extent(crop >= EXTENT_LEVEL)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    resample = PIL.Image.Resampling.BOX if factor < 1 else PIL.Image.Resampling.BICUBIC
    scaled = np.asarray(PIL.Image.fromarray(crop).resize(size, resample), dtype=np.float32)
    return np.clip(scaled / scaled.max(), 0, 1)  # a hairline shrunk grows faint: stretched again


def _stroke_width(solid: np.ndarray) -> float:
    """Mean stroke width of a mask's pixels: twice its area over its boundary (a stroke of width
    w and length L has area w L and 2 L boundary pixels). Strokes 1 pixel wide read as 2."""
    inner = scipy.ndimage.binary_erosion(solid, structure=np.ones((3, 3)))
    return 2 * int(solid.sum()) / max(1, int((solid & ~inner).sum()))


def _converted(image: PIL.Image.Image, mode: str) -> PIL.Image.Image:
    """``image.convert(mode)``; a colour mode Pillow cannot convert is a user error."""
    try:
        return image.convert(mode)
    except ValueError:
        raise UserError(
            f"colour mode {image.mode} cannot be read; save the image as RGB or greyscale"
        ) from None


def _has_transparency(image: PIL.Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _without_specks(amount: np.ndarray) -> np.ndarray:
    """``amount`` with every piece of ink (8-connected) of under SPECK of the largest's ink zeroed,
    stretched again so that its most inked pixel is 1."""
    labels, count = scipy.ndimage.label(amount > 0, structure=np.ones((3, 3)))
    if count == 0:
        raise UserError("blank: no ink stands out from the paper")
    mass = scipy.ndimage.sum_labels(amount, labels, index=np.arange(1, count + 1))
    keep = np.concatenate([[False], mass >= SPECK * mass.max()])
    kept = np.where(keep[labels], amount, np.float32(0))
    return kept / kept.max()  # a speck may have held the brightest pixel


def _canvas(
    amount: np.ndarray, top: float, left: float, span: float
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The square of side ``span`` at (top, left) cut from ``amount`` (zero beyond its edges), on
    a canvas of whole pixels, and where that square lies on the canvas (Pillow's resize box)."""
    row0, col0 = math.floor(top), math.floor(left)
    side = math.ceil(span) + 2  # covers the square, with room for rounding
    canvas = np.zeros((side, side), dtype=np.float32)
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + side, amount.shape[0]), min(col0 + side, amount.shape[1])
    if r1 > r0 and c1 > c0:
        canvas[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = amount[r0:r1, c0:c1]
    return canvas, (left - col0, top - row0, left - col0 + span, top - row0 + span)
