"""Reading a picture safely: :func:`read_image` decodes an image file's first frame, upright,
refusing before it decodes anything what is no raster image, too large (a decompression bomb) or
damaged; :func:`from_array` takes pixels from an array instead. Each problem is one UserError.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
from PIL import ImageOps

from ..core.read_files import check_regular
from ..errors import UserError, one_line

__all__ = ["MAX_PIXELS", "RASTER_FORMATS", "check_size", "from_array", "read_image"]

MAX_PIXELS = 40_000_000  # larger images are refused unread: 40 megapixels is a big phone photo

# What read_image lets Pillow open: raster formats decoded by Pillow itself. Never EPS or PDF,
# which Pillow hands to Ghostscript (another program, run on the user's file), nor the rare
# scientific and game formats no one draws a digit in.
RASTER_FORMATS = (
    "PNG", "JPEG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "AVIF", "PPM", "TGA", "ICO", "PCX",
    "QOI", "SGI", "JPEG2000",
)  # fmt: skip
SHOWN_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WebP")


def read_image(path: str | Path) -> PIL.Image.Image:
    """Decode an image file's first frame, upright (its EXIF orientation applied).

    Raises:
        UserError: missing, a symlink loop, a directory, empty, not in one of
            :data:`RASTER_FORMATS`, over :data:`MAX_PIXELS`, or truncated or damaged.
    """
    path = Path(path)
    # what is no image file is refused before it is opened: a FIFO, a device, empty, ...
    check_regular(path, "an image", empty=False)
    try:
        with warnings.catch_warnings():
            # Pillow warns of a decompression bomb above 89 megapixels, and refuses above twice
            # that, when it reads the header; we refuse earlier, and never decode a pixel of it.
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(path, formats=_raster_formats()) as image:
                check_size(image, path)
                return _decode(image, path)
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning):
        raise UserError(f"over the limit of {MAX_PIXELS // 10**6} megapixels", path) from None
    except PIL.UnidentifiedImageError:
        raise UserError(_unread_format(path), path) from None
    except OSError as err:
        raise UserError(f"cannot read ({err.strerror or err})", path) from None


@functools.cache
def _raster_formats() -> tuple[str, ...]:
    """The :data:`RASTER_FORMATS` this Pillow has (AVIF needs a Pillow built with it)."""
    PIL.Image.init()
    return tuple(f for f in RASTER_FORMATS if f in PIL.Image.OPEN)


def _unread_format(path: Path) -> str:
    """Why a file Pillow was not let open (or could not) is refused."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        head = f.read(8)
        if head.startswith((b"%!", b"\xc5\xd0\xd3\xc6", b"%PDF")):  # PostScript, DOS EPS, PDF
            return (
                "PostScript or PDF, not a raster image: it is not read (Pillow would run "
                "Ghostscript on it); save it as PNG"
            )
    return f"not an image in a format this reads ({', '.join(SHOWN_FORMATS)}, ...)"


def check_size(image: PIL.Image.Image, path: Path | None = None) -> None:
    """Refuse an image over :data:`MAX_PIXELS`, or of no pixels."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        problem = f"{width} x {height} pixels is over the limit of {MAX_PIXELS // 10**6} megapixels"
        raise UserError(problem, path)
    if width == 0 or height == 0:
        raise UserError(f"an image of {width} x {height} pixels holds nothing", path)


def _decode(image: PIL.Image.Image, path: Path) -> PIL.Image.Image:
    """Load the open image's first frame (a damaged file fails here) and turn it upright."""
    try:
        image.seek(0)
        image.load()
    except Exception as err:  # Pillow raises many types for a damaged file; the user needs one
        raise UserError(f"truncated or damaged image ({one_line(err)})", path) from None
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # damaged EXIF data: the pixels are still good, as they were stored
        return image.copy()


def from_array(array: np.ndarray) -> PIL.Image.Image:
    """An array of pixels as an 8-bit PIL image: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise UserError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.dtype.kind not in "biuf":
        raise UserError(f"an image array must hold numbers, got {array.dtype}")
    top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(array.dtype, 1.0)
    values = array.astype(np.float64) / top
    if not np.isfinite(values).all():
        raise UserError("the image array holds NaN or infinite values")
    image = PIL.Image.fromarray(np.round(np.clip(values, 0, 1) * 255).astype(np.uint8))
    check_size(image)
    return image
