"""ex4's conjugate-gradient optimizer: it minimises, it resumes exactly, train.py offers it."""

from __future__ import annotations

import io

import torch

from digits_torch import fit, make_config, resume
from digits_torch.cli.train import build_parser
from digits_torch.optim.fmincg import Fmincg
from digits_torch.store.checkpoints import load_checkpoint


def _rosenbrock(p: torch.nn.Parameter):
    def closure() -> torch.Tensor:
        p.grad = None
        with torch.enable_grad():
            f = 100 * (p[1] - p[0] ** 2) ** 2 + (1 - p[0]) ** 2
            f.backward()
        return f.detach()

    return closure


def _start() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))


def test_fmincg_finds_rosenbrocks_minimum():
    p = _start()
    optimizer, closure = Fmincg([p]), _rosenbrock(p)
    for _ in range(100):
        optimizer.step(closure)
    assert torch.allclose(p.detach(), torch.ones(2, dtype=torch.float64), atol=1e-3)


def test_fmincg_resumes_bitwise_from_its_state_dict():
    p = _start()
    optimizer, closure = Fmincg([p]), _rosenbrock(p)
    for _ in range(7):
        optimizer.step(closure)
    saved = io.BytesIO()
    torch.save({"p": p.detach().clone(), "optimizer": optimizer.state_dict()}, saved)
    for _ in range(7):
        optimizer.step(closure)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    q = torch.nn.Parameter(state["p"].clone())
    resumed = Fmincg([q])
    resumed.load_state_dict(state["optimizer"])
    for _ in range(7):
        resumed.step(_rosenbrock(q))
    assert torch.equal(p.detach(), q.detach()) and not torch.equal(q.detach(), state["p"])


def test_train_py_offers_fmincg():
    args = build_parser().parse_args(["--preset", "coursera", "--optimizer", "fmincg"])
    assert args.optimizer == "fmincg"


def test_coursera_with_fmincg_reaches_ex4s_figure(tmp_path):
    # ex4: "about 95.3 %, may vary by about 1 %" after 50 iterations (seeds 0-19: docs/recipe.md)
    given = dict(device="cpu", logdir=str(tmp_path), quiet=True, figures=False)
    result = fit(make_config("coursera", optimizer="fmincg", **given))
    assert result.metrics["epochs"] == 50 and result.metrics["train_accuracy"] >= 0.943


def test_a_resumed_fmincg_run_equals_an_uninterrupted_one(tmp_path):
    base = dict(optimizer="fmincg", device="cpu", quiet=True, figures=False)
    whole = fit(make_config("coursera", epochs=6, logdir=str(tmp_path / "a"), **base))
    part = fit(make_config("coursera", epochs=3, logdir=str(tmp_path / "b"), **base))
    resume(part.run_dir, epochs=6)
    a = load_checkpoint(whole.run_dir / "checkpoint.pt")["model"]
    b = load_checkpoint(part.run_dir / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
