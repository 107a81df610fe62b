"""torch's optimizers, made, stepped and checkpointed without importing ``torch._dynamo``.

torch wraps ``Optimizer.add_param_group`` (which every optimizer's constructor calls),
``state_dict``, ``load_state_dict`` and ``zero_grad`` in decorators for torch.compile whose first
call imports ``torch._dynamo``, and the steps of SGD and Adam in one that imports it to mark a
graph break. That import is 1.6 s of a 4.7 s one-epoch ``python train.py --preset seed``
(2026-12-07, the 2-core VM), spent by every run; nothing here is compiled. An optimizer class
takes :class:`WithoutDynamo` first among its bases, and its step from :func:`no_grad_step` where
torch's step imports it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

__all__ = ["WithoutDynamo", "no_grad_step"]


def _undecorated(method: Callable) -> Callable:
    """``method`` without torch's wrappers (``functools.wraps`` keeps what each wraps as
    ``__wrapped__``); where there are none, the method itself, which does the same, slower."""
    return inspect.unwrap(method)


class WithoutDynamo:
    """An optimizer's bookkeeping methods, unwrapped (see the module docstring)."""

    add_param_group = _undecorated(torch.optim.Optimizer.add_param_group)
    state_dict = _undecorated(torch.optim.Optimizer.state_dict)
    load_state_dict = _undecorated(torch.optim.Optimizer.load_state_dict)
    zero_grad = _undecorated(torch.optim.Optimizer.zero_grad)


def no_grad_step(step: Callable) -> Callable:
    """torch's ``step`` unwrapped, run under ``no_grad``: what its wrapper does besides the import
    for an optimizer that is not ``differentiable`` (none here is)."""
    raw = _undecorated(step)

    @torch.no_grad()
    def unwrapped(self, closure: Callable[[], float] | None = None) -> float | None:
        return raw(self, closure)

    unwrapped.__doc__ = raw.__doc__
    return unwrapped
