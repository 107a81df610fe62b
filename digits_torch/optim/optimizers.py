"""The optimizers ``--optimizer`` names (:data:`OPTIMIZERS`), and a step taken as cheaply as
torch allows (:func:`optimizer_step`).

* ``sgd``: ``torch.optim.SGD(fused=True)`` (one kernel for the whole update;
  unfused where this torch lacks the kernel, see :func:`optimizer_step`); in sklearn-exact mode a
  run takes scikit-learn's SGD instead (:class:`~digits_torch.reference.sklearn_exact.SklearnSGD`,
  :func:`~digits_torch.train.run_setup.make_optimizer`);
* ``adam``: ``torch.optim.Adam``;
* ``lbfgs``: ``torch.optim.LBFGS`` with a strong-Wolfe line search, one iteration an epoch: the
  closest relative in torch of ex4's fmincg (conjugate gradients with a Wolfe line search);
* ``fmincg``: ex4's own, :class:`~digits_torch.optim.fmincg.Fmincg`, one line search an epoch.

torch's three are made as :class:`SGD`, :class:`Adam` and :class:`LBFGS`: the same optimizers,
without the import of torch._dynamo their methods make (:mod:`.without_dynamo`). An optimizer is
one entry of :data:`OPTIMIZERS`: the config's checks take its names from there
(:mod:`digits_torch.config.bounds` imports this module, which therefore knows no config).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import torch

from .fmincg import Fmincg
from .without_dynamo import WithoutDynamo, no_grad_step

__all__ = ["LBFGS", "LBFGS_EVALS", "OPTIMIZERS", "SGD", "Adam", "optimizer_step"]

Params = Iterable[torch.nn.Parameter]

# Most objective evaluations in one L-BFGS iteration (its line search's budget).
LBFGS_EVALS = 25


class SGD(WithoutDynamo, torch.optim.SGD):
    """``torch.optim.SGD``: the same updates and state dict, without importing torch._dynamo."""

    step = no_grad_step(torch.optim.SGD.step)


class Adam(WithoutDynamo, torch.optim.Adam):
    """``torch.optim.Adam``: the same updates and state dict, without importing torch._dynamo."""

    step = no_grad_step(torch.optim.Adam.step)


class LBFGS(WithoutDynamo, torch.optim.LBFGS):
    """``torch.optim.LBFGS`` (whose own step imports nothing), without importing torch._dynamo."""


def _sgd(params: Params, lr: float, momentum: float, nesterov: bool) -> torch.optim.Optimizer:
    # fused: one kernel for the whole update, where this torch has it as it had
    return SGD(
        params,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov and momentum > 0,
        fused=_fused_sgd() is not None,
    )


def _adam(params: Params, lr: float, momentum: float, nesterov: bool) -> torch.optim.Optimizer:
    return Adam(params, lr=lr)


def _lbfgs(params: Params, lr: float, momentum: float, nesterov: bool) -> torch.optim.Optimizer:
    # max_eval given: torch's default, max_iter * 5 // 4, is 1 for max_iter=1, which leaves the
    # line search no evaluation past its first trial step; where that step fails the Armijo test
    # it returns a step of 0, the memory learns nothing, and every later call retries the same
    # step: the run stalls for good. 25 is torch's default budget for 20 iterations.
    return LBFGS(params, lr=lr, max_iter=1, max_eval=LBFGS_EVALS, line_search_fn="strong_wolfe")


def _fmincg(params: Params, lr: float, momentum: float, nesterov: bool) -> torch.optim.Optimizer:
    return Fmincg(params, lr=lr)  # lr: the first reduction


# --optimizer's choices: each made from the parameters, the learning rate and SGD's momentum
# terms (which the others ignore). The keys are the names a config accepts (bounds takes them
# from here), so no name falls through to another optimizer.
OPTIMIZERS: dict[str, Callable[[Params, float, float, bool], torch.optim.Optimizer]] = {
    "sgd": _sgd,
    "adam": _adam,
    "lbfgs": _lbfgs,
    "fmincg": _fmincg,
}


def optimizer_step(
    optimizer: torch.optim.Optimizer, lr: torch.Tensor | None = None
) -> Callable[[], None]:
    """``optimizer.step``, or for a fused torch SGD past its first step the same update cheaper.

    ``SGD.step()`` spends most of its time on hooks, a profiler range and regrouping the
    parameters by device and dtype, not on the update (benchmarks/README.md has the timings).
    The shortcut calls the very kernel ``SGD(fused=True).step()`` ends in, ``torch._fused_sgd_``,
    on the optimizer's own parameters, gradients and momentum buffers, so the step is bit-for-bit
    the same and the optimizer's state dict stays true. It is a private torch function: where it
    is missing or no longer takes these arguments (:func:`_fused_sgd`), :func:`make_optimizer`
    makes an unfused SGD and this returns its public ``optimizer.step``. The lr is read at each
    call, so schedules still act; or, where ``lr`` is given (a float32 tensor on the parameters'
    device), from that tensor when the step runs, which a captured CUDA graph needs.
    """
    fused_sgd = _fused_sgd()
    if fused_sgd is None or not isinstance(optimizer, torch.optim.SGD):
        return optimizer.step
    if not optimizer.defaults.get("fused") or len(optimizer.param_groups) != 1:
        return optimizer.step
    (group,) = optimizer.param_groups
    params, state = group["params"], optimizer.state
    if group["momentum"] and any("momentum_buffer" not in state[p] for p in params):
        return optimizer.step  # the first step creates the buffers; take it the usual way
    buffers = [state[p]["momentum_buffer"] for p in params] if group["momentum"] else []

    @torch.no_grad()
    def step() -> None:
        fused_sgd(
            params,
            [p.grad for p in params],
            buffers,
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            lr=group["lr"] if lr is None else lr,
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            is_first_step=False,
        )

    return step


@functools.cache
def _fused_sgd() -> Callable | None:
    """``torch._fused_sgd_`` if it exists and still updates as ``SGD.step()`` does, else None.

    Probed once on a two-parameter problem against the public optimizer, so a torch release that
    renames it or changes its arguments makes training take the public step, not fail.
    """
    fused = getattr(torch, "_fused_sgd_", None)
    if fused is None:
        return None
    mine, public = torch.tensor([1.0, -2.0]), torch.tensor([1.0, -2.0])
    grad = torch.tensor([0.5, 0.25])
    try:
        with torch.no_grad():
            fused(
                [mine],
                [grad],
                [torch.tensor([0.1, 0.2])],
                weight_decay=0.0,
                momentum=0.9,
                lr=0.1,
                dampening=0.0,
                nesterov=True,
                maximize=False,
                is_first_step=False,
            )
    except (RuntimeError, TypeError):
        return None
    public.grad = grad
    sgd = SGD([public], lr=0.1, momentum=0.9, nesterov=True)
    sgd.state[public]["momentum_buffer"] = torch.tensor([0.1, 0.2])
    sgd.step()
    return fused if torch.allclose(mine, public) else None
