"""Inputs at the edges of what a command reads: weights in half precision, JSON or TOML nested
thousands deep, a path component over 255 bytes, a FIFO or a device where a file is read, many
images where one is bad. Each ends with a result or one ``error:`` line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digits_torch import evaluate, fit, load_digits, make_config, resume
from digits_torch.checkpoints import load_model
from digits_torch.runs import read_history
from digits_torch.schedule import InvScalingLR, advance


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_evaluate_scores_half_precision_weights(dtype, trained_run, small_digits, tmp_path):
    state = torch.load(trained_run / "best.pt", weights_only=True)
    state["model"] = {k: v.to(dtype) for k, v in state["model"].items()}
    torch.save(state, tmp_path / "half.pt")
    result = evaluate.evaluate(tmp_path / "half.pt", small_digits, device="cpu")
    model = load_model(tmp_path / "half.pt")
    assert next(model.parameters()).dtype == dtype
    X, y = load_digits(small_digits)
    with torch.no_grad():
        predicted = model(torch.from_numpy(X).to(dtype)).argmax(1).numpy()
    assert result["n"] == len(y) == 40
    assert result["accuracy"] == np.mean(predicted == y)
    assert np.isfinite(result["loss"])


def test_invscaling_keeps_scikit_learns_lrs_to_the_last_bit():
    optimizer = torch.optim.SGD([torch.zeros(1)], lr=0.1)
    scheduler = InvScalingLR(optimizer, samples_per_epoch=4000, power_t=0.5)
    for epoch in range(1, 4):
        advance(scheduler)
        assert optimizer.param_groups[0]["lr"] == 0.1 / (epoch * 4000 + 1) ** 0.5


def test_invscaling_with_a_huge_power_t_trains_and_resumes(small_digits, tmp_path):
    # 33 ** 300 passes the largest float: lr / (seen + 1) ** power_t was an OverflowError
    config = make_config(
        "seed", data=str(small_digits), schedule="invscaling", power_t=300.0, epochs=2,
        device="cpu", quiet=True, figures=False, logdir=str(tmp_path),
    )  # fmt: skip
    run = fit(config).run_dir
    assert [r["lr"] for r in read_history(run)] == [config.lr, 0.0]
    resume(run, epochs=3)
    assert [r["lr"] for r in read_history(run)] == [config.lr, 0.0, 0.0]
