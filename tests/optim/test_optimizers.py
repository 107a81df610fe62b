"""The optimizers' table (digits_torch.optim.optimizers): each entry takes the lr, SGD its momentum
terms, L-BFGS one iteration a step with room to search the line; and the fused-SGD shortcut is
SGD's step bit for bit with any group options, or SGD's own step where it cannot be.

(Elsewhere: each name's optimizer type, tests/train/test_training.py; the shortcut with momentum,
Nesterov, a changing or a tensor lr, there too; the fallbacks without the private kernel,
tests/fast/test_fallbacks.py.)"""

from __future__ import annotations

import pytest
import torch

from digits_torch.optim import optimizers
from digits_torch.optim.optimizers import LBFGS_EVALS, OPTIMIZERS, optimizer_step


def _params(seed=0, shapes=((5, 3), (3,))):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in shapes]


def test_each_entry_takes_the_lr_and_sgd_its_momentum_terms():
    made = {name: make(_params(), 0.25, 0.5, True) for name, make in OPTIMIZERS.items()}
    assert all(optimizer.defaults["lr"] == 0.25 for optimizer in made.values())
    sgd = made["sgd"].defaults
    assert (sgd["momentum"], sgd["nesterov"]) == (0.5, True)
    assert sgd["fused"] is (optimizers._fused_sgd() is not None)  # the shortcut's kernel
    lbfgs = made["lbfgs"].defaults
    assert (lbfgs["max_iter"], lbfgs["max_eval"]) == (1, LBFGS_EVALS)
    assert lbfgs["line_search_fn"] == "strong_wolfe"


def test_sgd_without_momentum_drops_nesterov():
    """torch refuses Nesterov without momentum; a config may ask for both (the flag is kept for
    when momentum is set)."""
    with pytest.raises(ValueError, match="Nesterov"):
        torch.optim.SGD(_params(), lr=0.1, momentum=0.0, nesterov=True)
    sgd = OPTIMIZERS["sgd"](_params(), 0.1, 0.0, True)
    assert (sgd.defaults["momentum"], sgd.defaults["nesterov"]) == (0.0, False)


def _after_five_steps(make) -> float:
    """x after five steps on 100 x^2 from x = 0.1: L-BFGS's first trial step (lr / |g| along
    -g) lands on x = -0.9, where f is 81 times higher, so it fails the Armijo test."""
    p = torch.nn.Parameter(torch.tensor([0.1], dtype=torch.float64))
    optimizer = make([p])

    def closure():
        optimizer.zero_grad()
        f = 100 * (p**2).sum()
        f.backward()
        return f

    for _ in range(5):
        optimizer.step(closure)
    return p.item()


def test_lbfgs_searches_the_line_where_torchs_default_budget_stalls():
    """With max_iter=1, torch's default max_eval (max_iter * 5 // 4 = 1) leaves the line search
    no evaluation past the failed trial: the step is 0 at every call. The table's entry finds
    the minimum."""
    default = _after_five_steps(
        lambda ps: torch.optim.LBFGS(ps, lr=1.0, max_iter=1, line_search_fn="strong_wolfe")
    )
    assert default == 0.1  # stalled: the problem is the one the module's comment describes
    assert abs(_after_five_steps(lambda ps: OPTIMIZERS["lbfgs"](ps, 1.0, 0.0, False))) < 1e-12


def test_lbfgs_takes_one_iteration_a_step():
    """One iteration an epoch, as the module says (Rosenbrock's valley: no early convergence)."""
    p = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    optimizer = OPTIMIZERS["lbfgs"]([p], 1.0, 0.0, False)

    def closure():
        optimizer.zero_grad()
        f = 100 * (p[1] - p[0] ** 2) ** 2 + (1 - p[0]) ** 2
        f.backward()
        return f

    for step in range(1, 6):
        optimizer.step(closure)
        assert optimizer.state[p]["n_iter"] == step


@pytest.mark.parametrize(
    "options",
    [
        {"weight_decay": 0.01, "momentum": 0.9, "dampening": 0.1},
        {"weight_decay": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True},
        {"weight_decay": 0.3, "maximize": True},
    ],
)
def test_the_shortcut_is_sgds_step_bit_for_bit_with_each_group_option(options):
    """Weight decay, dampening and maximize, which the training configs leave at torch's
    defaults, are read from the group too."""
    fast, plain = _params(), _params()
    fast_sgd, plain_sgd = (
        torch.optim.SGD(ps, lr=0.1, fused=True, **options) for ps in (fast, plain)
    )
    grads = torch.Generator().manual_seed(1)
    shortcuts = 0
    for _ in range(4):
        for p, q in zip(fast, plain):
            p.grad = torch.randn(p.shape, generator=grads)
            q.grad = p.grad.clone()
        step = optimizer_step(fast_sgd)
        shortcuts += step != fast_sgd.step
        step()
        plain_sgd.step()
        for p, q in zip(fast, plain):
            assert torch.equal(p, q)
    assert shortcuts >= 3  # at most the first step was SGD's own
    assert not torch.equal(fast[0], _params()[0])  # the steps moved the parameters


def test_a_fused_sgd_with_two_param_groups_takes_its_own_step():
    """The shortcut updates one group with one lr; two groups take SGD.step, every time."""
    first, second = _params(), _params(seed=1)
    sgd = torch.optim.SGD([{"params": first}, {"params": second, "lr": 0.01}], lr=0.1,
                          momentum=0.9, fused=True)  # fmt: skip
    for _ in range(2):  # the second step has its momentum buffers
        for p in (*first, *second):
            p.grad = torch.ones_like(p)
        step = optimizer_step(sgd)
        assert step == sgd.step
        step()
