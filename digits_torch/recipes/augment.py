"""Data augmentation: small random shifts, rotations and scalings of the digit images, and
elastic distortions.

    X_epoch = random_affine(X_train, generator, shift=2.0, rotation=10.0, scale=0.1)
    X_epoch = random_affine(X_train, generator, elastic=(10.0, 2.9))   # Simard et al. 2003

Each epoch trains on a freshly distorted copy of the whole training set, made in one
``affine_grid`` + ``grid_sample`` call on the device the data lives on: a few milliseconds for
4,000 images, instead of a per-batch or per-sample transform. The random parameters are drawn
on the CPU from the run's generator, so every device distorts alike and a resumed run (which
restores the generator) continues exactly.

Rows are images unrolled column-major (MATLAB's ``X(:)``, see
:func:`digits_torch.core.data.to_image`): a row viewed as (side, side) in C order is the image's
transpose, so the upright image is that view transposed, and the result is transposed back before it
is flattened.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["affine", "elastic_field", "random_affine"]


def affine(
    X: torch.Tensor,
    rotation: torch.Tensor,
    scale: torch.Tensor,
    shift_x: torch.Tensor,
    shift_y: torch.Tensor,
    displacement: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rotate, scale and then shift every image, about the image centre; with
    ``displacement``, then read each output pixel from that far off where the map says.

    Args:
        X: (m, side * side) rows, column-major images.
        rotation: (m,) degrees, counter-clockwise as the upright image is seen.
        scale: (m,) size factors (1 keeps the size).
        shift_x, shift_y: (m,) pixels to the right and down.
        displacement: (m, side, side, 2) pixels (x right, y down) per upright output pixel
            (:func:`elastic_field`), or None.

    Returns:
        (m, side * side) contiguous rows in the same layout; ink moved in from outside the
        image is 0 (the background), values between pixel centres are bilinear.
    """
    m, n = X.shape
    side = math.isqrt(n)
    # grid_sample asks, for each output pixel p, where to read the input: q = A p + t, in
    # coordinates running from -1 to 1 across the image, x to the right and y down. Moving ink
    # by p = s R q + d therefore reads at q = R^T (p - d) / s. With y pointing down, a
    # counter-clockwise turn on screen is R = [[cos, sin], [-sin, cos]].
    angle = torch.deg2rad(rotation)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    dx, dy = shift_x * (2 / side), shift_y * (2 / side)
    theta = torch.stack(
        [
            torch.stack([cos, -sin, sin * dy - cos * dx], dim=1),
            torch.stack([sin, cos, -(sin * dx + cos * dy)], dim=1),
        ],
        dim=1,
    ).to(X.dtype)  # (m, 2, 3)
    upright = X.view(m, side, side).transpose(1, 2).unsqueeze(1)  # (m, 1, rows, columns)
    grid = _grid(theta, side)
    if displacement is not None:  # pixels -> grid units (2 / side per pixel)
        grid = grid + displacement.to(grid.dtype) * (2 / side)
    moved = F.grid_sample(upright, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved.squeeze(1).transpose(1, 2).reshape(m, n)  # back to column-major rows


def _grid(theta: torch.Tensor, side: int) -> torch.Tensor:
    """``F.affine_grid(theta, (m, 1, side, side), align_corners=False)``, computed faster.

    affine_grid multiplies each image's pixel centres by its own 3 x 2 matrix: m tiny matrix
    products, which take longer on a CPU than the resampling itself. The centres are the same
    for every image, so one (side^2, 3) x (3, 2 m) product does all of them at once.
    """
    m = theta.shape[0]
    identity = torch.eye(2, 3, dtype=theta.dtype, device=theta.device).unsqueeze(0)
    centres = F.affine_grid(identity, [1, 1, side, side], align_corners=False).view(-1, 2)
    homogeneous = F.pad(centres, (0, 1), value=1.0)  # (side^2, 3): x, y, 1
    grid = homogeneous @ theta.reshape(2 * m, 3).t()  # (side^2, 2 m)
    return grid.view(side, side, m, 2).permute(2, 0, 1, 3)  # (m, side, side, 2)


def random_affine(
    X: torch.Tensor,
    generator: torch.Generator,
    shift: float = 0.0,
    rotation: float = 0.0,
    scale: float = 0.0,
    elastic: tuple[float, float] = (0.0, 0.0),
) -> torch.Tensor:
    """Every image of X moved by its own random :func:`affine` map, drawn uniformly, and with
    ``elastic`` by its own random :func:`elastic_field` too.

    Args:
        X: (m, side * side) column-major rows, on any device.
        generator: a CPU generator; each call draws 4 m numbers from it, then (elastic) the
            2 m side^2 of the fields.
        shift: most pixels moved along each axis (uniform in [-shift, shift]).
        rotation: most degrees turned either way.
        scale: most relative change of size (factor uniform in [1 - scale, 1 + scale]).
        elastic: (alpha, sigma) in pixels: the fields' scale and smoothness; alpha 0: none.

    Returns:
        The distorted rows, or ``X`` itself (and nothing drawn) when all are 0.
    """
    alpha, sigma = elastic
    if shift == 0 and rotation == 0 and scale == 0 and alpha == 0:
        return X
    m, side = X.shape[0], math.isqrt(X.shape[1])
    u = torch.rand(4, m, generator=generator, dtype=torch.float64) * 2 - 1
    u = u.to(X.device)  # drawn on the CPU: the same numbers on every device
    field = elastic_field(m, side, alpha, sigma, generator).to(X.device) if alpha else None
    return affine(X, rotation * u[0], 1 + scale * u[1], shift * u[2], shift * u[3], field)


def elastic_field(
    m: int, side: int, alpha: float, sigma: float, generator: torch.Generator
) -> torch.Tensor:
    """m random displacement fields (Simard, Steinkraus and Platt 2003): per pixel and axis a
    uniform number in [-1, 1], smoothed by a Gaussian of ``sigma`` pixels, times ``alpha``.

    The smoothing is scipy's ``gaussian_filter(mode="constant")`` (zeros outside, the kernel
    cut at 4 sigma), done as two (side, side) matrix products instead of a convolution.

    Returns:
        (m, side, side, 2) float64 pixels (x, y) on the CPU, drawn from ``generator``.
    """
    u = torch.rand(m, 2, side, side, generator=generator, dtype=torch.float64) * 2 - 1
    g = _gaussian_matrix(side, sigma)
    smooth = g @ u @ g.t()  # rows and columns each smoothed: (m, 2, side, side)
    return (alpha * smooth).permute(0, 2, 3, 1)


def _gaussian_matrix(side: int, sigma: float) -> torch.Tensor:
    """(side, side) G with (G @ v)[i] = sum_j k(i - j) v[j]: a 1-D Gaussian filter of ``sigma``
    pixels, kernel radius int(4 sigma + 0.5), normalised over the whole kernel."""
    radius = int(4 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    index = torch.arange(side)
    distance = index.view(-1, 1) - index.view(1, -1)  # i - j
    weights = kernel[(distance + radius).clamp(0, 2 * radius)]
    return torch.where(distance.abs() <= radius, weights, torch.zeros(()))
