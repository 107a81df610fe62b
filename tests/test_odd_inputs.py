"""Inputs at the edges of what a command reads: weights in half precision, JSON or TOML nested
thousands deep, a path component over 255 bytes, a FIFO or a device where a file is read, many
images where one is bad. Each ends with a result or one ``error:`` line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digits_torch import evaluate, load_digits
from digits_torch.checkpoints import load_model


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
