"""What a fitted estimator keeps, as CPU data only.

A pickle of the estimator holds numpy arrays and plain Python values, never a torch tensor, a
device or an ``nn.Module``: a model fitted on a GPU unpickles on a machine without one, and an
old pickle does not depend on torch's pickling of its objects. The optimizer's state (kept for
``partial_fit`` to go on where it stopped) travels the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["to_numpy", "to_torch"]


def to_numpy(tree: Any) -> Any:
    """``tree`` (dicts, lists, tuples of values) with every tensor a numpy array on the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu().numpy().copy()
    if isinstance(tree, dict):
        return {key: to_numpy(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_numpy(value) for value in tree)
    if isinstance(tree, torch.device):
        return str(tree)
    return tree


def to_torch(tree: Any) -> Any:
    """The inverse of :func:`to_numpy` for optimizer state: numpy arrays become CPU tensors
    (``Optimizer.load_state_dict`` moves them to their parameters' device and dtype)."""
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(tree.copy())
    if isinstance(tree, dict):
        return {key: to_torch(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_torch(value) for value in tree)
    return tree
