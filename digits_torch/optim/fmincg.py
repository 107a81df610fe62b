"""ex4's optimizer: Polack-Ribiere conjugate gradients with Rasmussen's line search (fmincg).

Written from the algorithm of Carl Edward Rasmussen's ``minimize``/``fmincg``: each step is one
line search along the conjugate direction, bracketing by cubic extrapolation (at most EXT times
the last step) and then narrowing by quadratic or cubic interpolation (never within INT of an
end), until the Wolfe-Powell conditions hold (sufficient decrease RHO, curvature SIG) or MAX
evaluations are spent. The next search starts at the last step scaled by the ratio of slopes
(at most RATIO). A failed search restarts along steepest descent; two in a row end the descent.
ex4 counts one such line search as one of its 50 iterations, as :class:`Fmincg` does a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from .without_dynamo import WithoutDynamo

__all__ = ["Fmincg"]

RHO, SIG = 0.01, 0.5  # Wolfe-Powell: sufficient decrease, and the slope's shrinkage
INT, EXT = 0.1, 3.0  # keep away from a bracket's ends; extrapolate at most this many times
MAX, RATIO = 20, 100.0  # evaluations per line search; largest growth of the first trial step
_TINY = 2.2250738585072014e-308  # realmin: keeps a slope ratio finite


class Fmincg(WithoutDynamo, torch.optim.Optimizer):
    """Full-batch conjugate gradients; ``step(closure)`` is one line search.

    The closure returns the objective (a 0-dim tensor) at the current parameters and fills their
    ``.grad``. Everything carried between steps (direction, slope, trial step, the failure flag)
    lives in the state dict, so a resumed descent continues exactly.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1.0) -> None:
        # lr is Rasmussen's "red": the reduction in the objective the first search aims for
        super().__init__(params, {"lr": lr})
        self._params = [p for group in self.param_groups for p in group["params"]]

    def _flat(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def _evaluate(self, closure: Callable, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The objective and gradient (n,) at the flat parameters ``x`` (n,)."""
        self._set(x)
        with torch.enable_grad():
            f = float(closure())
        return f, self._flat([p.grad for p in self._params])

    @torch.no_grad()
    def _set(self, x: torch.Tensor) -> None:
        offset = 0
        for p in self._params:
            p.copy_(x[offset : offset + p.numel()].view_as(p))
            offset += p.numel()

    @torch.no_grad()
    def step(self, closure: Callable) -> torch.Tensor | None:  # type: ignore[override]
        """One line search along the conjugate direction; the parameters end at its best point."""
        state = self.state[self._params[0]]
        x = self._flat([p.detach() for p in self._params]).clone()
        if not state:
            f0, df0 = self._evaluate(closure, x)
            s = -df0
            d0 = -float(s @ s)
            state.update(
                f0=f0,
                df0=df0,
                s=s,
                d0=d0,
                x3=self.param_groups[0]["lr"] / (1 - d0),
                failed=False,
                done=False,
            )
        if state["done"]:
            return None
        x = _line_search(self, closure, x, state)
        self._set(x)
        return None


def _line_search(opt: Fmincg, closure: Callable, x: torch.Tensor, state: dict) -> torch.Tensor:
    """One of fmincg's iterations from ``x`` (n,), updating ``state``; the point reached (n,)."""
    f0, df0, s, d0, x3 = state["f0"], state["df0"], state["s"], state["d0"], state["x3"]
    best = (x, f0, df0)  # the lowest point seen, where a failed search falls back to
    evals = MAX
    x2, f2, d2 = 0.0, f0, d0
    while True:  # extrapolate until the step brackets a minimum or the budget runs out
        f3, df3 = opt._evaluate(closure, x + x3 * s)
        evals -= 1
        while not (math.isfinite(f3) and bool(torch.isfinite(df3).all())) and evals > 0:
            x3 = (x2 + x3) / 2  # back off towards the last good point
            f3, df3 = opt._evaluate(closure, x + x3 * s)
            evals -= 1
        if f3 < best[1]:
            best = (x + x3 * s, f3, df3)
        d3 = float(df3 @ s)
        if d3 > SIG * d0 or f3 > f0 + x3 * RHO * d0 or evals == 0:
            break
        x1, f1, d1, x2, f2, d2 = x2, f2, d2, x3, f3, d3
        x3 = _extrapolate(x1, f1, d1, x2, f2, d2)
    x4, f4, d4 = x3, f3, d3
    while (abs(d3) > -SIG * d0 or f3 > f0 + x3 * RHO * d0) and evals > 0:
        if d3 > 0 or f3 > f0 + x3 * RHO * d0:
            x4, f4, d4 = x3, f3, d3
        else:
            x2, f2, d2 = x3, f3, d3
        x3 = _interpolate(x2, f2, d2, x4, f4, d4, f0)
        f3, df3 = opt._evaluate(closure, x + x3 * s)
        evals -= 1
        if f3 < best[1]:
            best = (x + x3 * s, f3, df3)
        d3 = float(df3 @ s)
    if abs(d3) < -SIG * d0 and f3 < f0 + x3 * RHO * d0:  # the Wolfe-Powell conditions hold
        point = x + x3 * s
        beta = float(df3 @ df3 - df0 @ df3) / float(df0 @ df0)  # Polack-Ribiere
        s = beta * s - df3
        d_new = float(df3 @ s)
        if d_new > 0:  # not downhill: restart along steepest descent
            s, d_new = -df3, -float(df3 @ df3)
        x3 *= min(RATIO, d0 / (d_new - _TINY))  # the old slope over the new
        state.update(f0=f3, df0=df3, s=s, d0=d_new, x3=x3, failed=False)
        return point
    point, f_best, df_best = best
    s = -df_best
    d_new = -float(s @ s)
    state.update(f0=f_best, df0=df_best, s=s, d0=d_new, x3=1.0 / (1 - d_new))
    state["done"] = state["failed"]  # two failures in a row: nowhere left to go
    state["failed"] = True
    return point


def _extrapolate(x1: float, f1: float, d1: float, x2: float, f2: float, d2: float) -> float:
    """The next trial step past x2: the cubic's minimum through two points, kept in
    [x2 + INT (x2 - x1), EXT x2]; EXT x2 where the cubic has none ahead."""
    h = x2 - x1
    a = 6 * (f1 - f2) + 3 * (d2 + d1) * h
    b = 3 * (f2 - f1) - (2 * d1 + d2) * h
    root = b * b - a * d1 * h
    x3 = x1 - d1 * h * h / (b + math.sqrt(root)) if root >= 0 and b + math.sqrt(root) else -1.0
    if not math.isfinite(x3) or x3 < 0 or x3 > x2 * EXT:
        return x2 * EXT
    return max(x3, x2 + INT * h)


def _interpolate(
    x2: float, f2: float, d2: float, x4: float, f4: float, d4: float, f0: float
) -> float:
    """A trial step inside the bracket [x2, x4]: quadratic where f4 rose above the start f0,
    else cubic; never within INT of the bracket's ends."""
    h = x4 - x2
    try:
        if f4 > f0:
            x3 = x2 - (0.5 * d2 * h * h) / (f4 - f2 - d2 * h)
        else:
            a = 6 * (f2 - f4) / h + 3 * (d4 + d2)
            b = 3 * (f4 - f2) - (2 * d2 + d4) * h
            x3 = x2 + (math.sqrt(b * b - a * d2 * h * h) - b) / a
    except (ZeroDivisionError, ValueError):  # no real minimum: bisect
        x3 = (x2 + x4) / 2
    if not math.isfinite(x3):
        x3 = (x2 + x4) / 2
    return max(min(x3, x4 - INT * h), x2 + INT * h)
