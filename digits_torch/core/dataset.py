"""The digits as a torch ``Dataset``: two tensors, taken by index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .data import load_digits

__all__ = ["DigitsDataset"]


class DigitsDataset(Dataset):
    """The digits as tensors: ``dataset[i]`` is ``(x, y)``, x float32 (n_pixels,), y int64 digit.

    The whole dataset lives in two tensors, optionally already on ``device``, so a training
    loop can take batches as index slices instead of collating samples one by one.

    Args:
        X: pixels, shape (m, n_pixels).
        y: digits 0..9, shape (m,).
        device: where to keep the tensors (default: CPU).
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, device: str | torch.device | None = None):
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        self.X = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)

    @classmethod
    def from_file(cls, path: str | Path | None = None, device: str | torch.device | None = None):
        """Load with :func:`load_digits` (``None``: the shipped dataset) and wrap."""
        return cls(*load_digits(path), device=device)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index):
        return self.X[index], self.y[index]
