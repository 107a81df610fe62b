"""The recipes' tests' shared batch."""

from __future__ import annotations

import pytest
import torch

from digits_torch.core.model import MLP


@pytest.fixture
def batch():
    """A float64 400-25-10 relu network, 40 random images, their labels and a teacher's logits."""
    g = torch.Generator().manual_seed(0)
    model = MLP(400, (25,), 10, "relu", "glorot", g).double()
    x = torch.randn(40, 400, generator=g, dtype=torch.float64)  # no unit dead by chance
    y = torch.randint(0, 10, (40,), generator=g)
    teacher = torch.randn(40, 10, generator=g, dtype=torch.float64) * 4
    return model, x, y, teacher
