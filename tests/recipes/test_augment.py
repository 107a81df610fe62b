"""Augmentation: the column-major layout is respected, the random draws are reproducible, and
the elastic fields are Simard et al.'s smoothed noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digits_torch.core.data import to_image
from digits_torch.recipes.augment import affine, elastic_field, random_affine


@pytest.fixture(scope="module")
def rows(digits) -> torch.Tensor:
    X, _ = digits
    return torch.from_numpy(X[::500])  # (10, 400): one of each digit


def moved(rows, rotation=0.0, scale=1.0, shift_x=0.0, shift_y=0.0) -> torch.Tensor:
    m = rows.shape[0]
    return affine(
        rows,
        torch.full((m,), float(rotation)),
        torch.full((m,), float(scale)),
        torch.full((m,), float(shift_x)),
        torch.full((m,), float(shift_y)),
    )


def test_identity_returns_the_same_rows(rows):
    torch.testing.assert_close(moved(rows), rows, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, 3), (-1, -2)])
def test_shift_moves_ink_right_and_down_on_the_upright_image(rows, dx, dy):
    out = moved(rows, shift_x=dx, shift_y=dy)
    for before, after in zip(rows, out):
        image, shifted = to_image(before), to_image(after)
        expected = np.roll(image, (dy, dx), axis=(0, 1))  # rows down by dy, columns right by dx
        # Away from the borders (where np.roll wraps and affine brings in background):
        inner = (slice(3, -3), slice(3, -3))
        np.testing.assert_allclose(shifted[inner], expected[inner], atol=1e-5)


def test_rotation_by_90_degrees_turns_the_upright_image_counter_clockwise(rows):
    out = moved(rows, rotation=90)
    for before, after in zip(rows, out):
        np.testing.assert_allclose(to_image(after), np.rot90(to_image(before)), atol=1e-5)


def test_scaling_up_spreads_the_ink_from_the_centre(rows):
    def spread(batch):  # mean distance of ink from the image centre, per image
        images = np.stack([to_image(r) for r in batch]).clip(0)
        r, c = np.indices(images.shape[1:]) - (images.shape[1] - 1) / 2
        return (images * np.hypot(r, c)).sum((1, 2)) / images.sum((1, 2))

    assert (spread(moved(rows, scale=1.2)) > spread(rows)).all()
    assert (spread(moved(rows, scale=0.8)) < spread(rows)).all()


def test_random_affine_is_reproducible_and_draws_nothing_when_off(rows):
    a = random_affine(rows, torch.Generator().manual_seed(3), 2.0, 10.0, 0.1)
    b = random_affine(rows, torch.Generator().manual_seed(3), 2.0, 10.0, 0.1)
    assert torch.equal(a, b) and a.shape == rows.shape and a.is_contiguous()
    assert not torch.allclose(a, rows, atol=1e-3)
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    assert random_affine(rows, generator) is rows
    assert torch.equal(generator.get_state(), state)


def test_the_elastic_field_is_uniform_noise_smoothed_as_scipy_smooths_it():
    ndimage = pytest.importorskip("scipy.ndimage")
    field = elastic_field(3, 20, 10.0, 2.9, torch.Generator().manual_seed(5))  # (3, 20, 20, 2)
    noise = torch.rand(
        3, 2, 20, 20, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    noise = (noise * 2 - 1).numpy()
    for image in range(3):
        for axis in range(2):
            smoothed = ndimage.gaussian_filter(noise[image, axis], 2.9, mode="constant")
            np.testing.assert_allclose(field[image, :, :, axis].numpy(), 10 * smoothed, atol=1e-12)


def test_elastic_distortion_draws_after_the_affine_map_and_moves_ink_locally(rows):
    affine_only = random_affine(rows, torch.Generator().manual_seed(3), 1.0, 10.0, 0.1)
    generator = torch.Generator().manual_seed(3)
    barely = random_affine(rows, generator, 1.0, 10.0, 0.1, elastic=(1e-9, 2.9))
    assert (barely - affine_only).abs().max() < 1e-6  # the same affine draws come first
    after = torch.Generator().manual_seed(3)
    torch.rand(4 * 10 + 2 * 10 * 400, generator=after, dtype=torch.float64)
    assert torch.equal(generator.get_state(), after.get_state())  # 4 m + 2 m side^2 numbers
    elastic = random_affine(rows, torch.Generator().manual_seed(3), elastic=(10.0, 2.9))
    change = (elastic - rows).abs()
    assert change.max() > 0.1  # ink moved ...
    assert change.sum(1).mean() < 0.5 * rows.sum(1).mean()  # ... but the digit is still there
    again = random_affine(rows, torch.Generator().manual_seed(3), elastic=(10.0, 2.9))
    assert torch.equal(elastic, again)
