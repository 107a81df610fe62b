"""Checkpoints (digits_torch.store.checkpoints) on their own: a training checkpoint's every key
comes back from disk as it went in, through the bytes checkpoint_bytes promises; resuming puts
each saved state back into live objects and refuses what it cannot; a copy of the weights stays
put while the model trains on; and a safetensors file carries exactly its promised metadata.
The refusals of hostile files, run end to end, are tests/end_to_end/test_hostile.py's."""

from __future__ import annotations

import json
import os

import pytest
import safetensors
import torch

from digits_torch.core.model import MLP
from digits_torch.errors import UserError
from digits_torch.store import checkpoints
from digits_torch.store.checkpoints import (
    BEST,
    best_weights,
    check_fits,
    checkpoint_bytes,
    clone_weights,
    load_checkpoint,
    load_run_file,
    model_checkpoint,
    model_from_state,
    restore,
    save_checkpoint,
    save_safetensors,
    training_checkpoint,
)


class _Stopping:
    """The stopping rule's face towards a checkpoint: a state dict in, a state dict out."""

    def __init__(self, best_epoch=0):
        self.best_epoch = best_epoch

    def state_dict(self):
        return {"best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self.best_epoch = state["best_epoch"]


def _model(seed, hidden=(3,), input_size=4, dtype=torch.float32):
    return MLP(input_size, hidden, 2, "relu", generator=torch.Generator().manual_seed(seed)).to(
        dtype
    )


def _trained(seed):
    """A model, its SGD with momentum and a step scheduler after one step, a used generator."""
    model = _model(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    rng = torch.Generator().manual_seed(seed)
    model(torch.rand(5, 4, generator=rng)).sum().backward()
    optimizer.step()
    scheduler.step()
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "rng": rng,
            "stopping": _Stopping(best_epoch=seed)}  # fmt: skip


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_training_checkpoint_reads_back_with_every_key(tmp_path):
    live = _trained(seed=3)
    state = training_checkpoint(live["model"], epoch=7, config={"lr": 0.5}, seconds=1.25,
                                **{k: v for k, v in live.items() if k != "model"})  # fmt: skip
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(state, path)
    assert path.read_bytes() == checkpoint_bytes(state)
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no temp file left beside it
    back = load_checkpoint(path)
    assert back.keys() == checkpoints.RESUMABLE | {"format", "architecture", "model", "scheduler"}
    assert back["format"] == checkpoints.FORMAT and back["epoch"] == 7
    assert back["architecture"] == live["model"].architecture()
    assert _same_weights(back["model"], live["model"].state_dict())
    assert back["config"] == {"lr": 0.5} and back["seconds"] == 1.25
    assert back["scheduler"] == live["scheduler"].state_dict()
    assert back["progress"] == {"best_epoch": 3}
    assert torch.equal(back["rng"], live["rng"].get_state())
    momentum = live["optimizer"].state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(back["optimizer"]["state"][0]["momentum_buffer"], momentum)


def test_a_constant_lr_saves_no_scheduler_and_best_pt_holds_only_the_model(tmp_path):
    live = _trained(seed=1)
    live["scheduler"] = None
    model = live.pop("model")
    assert training_checkpoint(model, 1, {}, 0.0, **live)["scheduler"] is None
    best = model_checkpoint(model, clone_weights(model), epoch=2, config={"a": 1})
    assert best.keys() == {"format", "epoch", "architecture", "model", "config"}


def test_restore_puts_every_state_back_and_returns_epoch_and_seconds(tmp_path):
    saved = _trained(seed=5)
    model = saved.pop("model")
    state = training_checkpoint(model, 4, {}, 2.5, **saved)
    save_checkpoint(state, tmp_path / "c.pt")
    into = _trained(seed=6)  # other weights, other momentum, another rng state
    into["scheduler"] = torch.optim.lr_scheduler.StepLR(into["optimizer"], 3, gamma=0.1)
    epoch, seconds = restore(load_checkpoint(tmp_path / "c.pt"), tmp_path / "c.pt", **into)
    assert (epoch, seconds) == (4, 2.5)
    assert _same_weights(into["model"].state_dict(), model.state_dict())
    assert into["scheduler"].state_dict() == saved["scheduler"].state_dict()
    assert torch.equal(into["rng"].get_state(), saved["rng"].get_state())
    assert into["stopping"].best_epoch == 5
    mine, theirs = (o["state"][0]["momentum_buffer"] for o in
                    (into["optimizer"].state_dict(), saved["optimizer"].state_dict()))  # fmt: skip
    assert torch.equal(mine, theirs)


def test_restore_returns_a_plain_int_and_float(tmp_path):
    saved = _trained(seed=2)
    state = training_checkpoint(saved.pop("model"), 1, {}, 0.0, **saved)
    state["epoch"], state["seconds"] = torch.tensor(4), 2  # what another writer might store
    epoch, seconds = restore(state, tmp_path / "c.pt", **_trained(seed=2))
    assert (epoch, seconds) == (4, 2.0) and type(epoch) is int and type(seconds) is float


def test_restore_without_a_scheduler_leaves_the_saved_one_unread(tmp_path):
    saved = _trained(seed=2)
    state = training_checkpoint(saved.pop("model"), 1, {}, 0.0, **saved)
    del state["scheduler"]  # not read when the run has a constant lr
    into = _trained(seed=2)
    into["scheduler"] = None
    assert restore(state, tmp_path / "c.pt", **into) == (1, 0.0)


@pytest.mark.parametrize("missing", sorted(checkpoints.RESUMABLE - {"config"}))
def test_restore_refuses_a_checkpoint_without_the_training_state(missing, tmp_path):
    saved = _trained(seed=2)
    state = training_checkpoint(saved.pop("model"), 1, {}, 0.0, **saved)
    del state[missing]
    with pytest.raises(UserError) as err:
        restore(state, tmp_path / "c.pt", **_trained(seed=2))
    assert str(err.value) == f"{tmp_path / 'c.pt'}: cannot resume from it ('{missing}')"


def test_clone_weights_keeps_the_weights_of_its_moment():
    model = _model(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy = clone_weights(model)
    assert _same_weights(copy, before)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert _same_weights(copy, before)
    assert not any(t.requires_grad for t in copy.values())


def test_best_weights_are_best_pts_or_the_current_ones(tmp_path):
    model = _model(seed=0)
    current = best_weights(tmp_path, model)  # no best.pt yet: a copy of the live weights
    assert _same_weights(current, model.state_dict())
    with torch.no_grad():
        model.layers[0].weight.add_(1.0)
    assert not torch.equal(current["layers.0.weight"], model.layers[0].weight)
    best = _model(seed=9)
    save_checkpoint(model_checkpoint(best, best.state_dict(), 1, {}), tmp_path / BEST)
    assert _same_weights(best_weights(tmp_path, model), best.state_dict())
    with pytest.raises(UserError, match="holds another model than the run's checkpoint"):
        best_weights(tmp_path, _model(seed=0, hidden=(5,)))


def test_a_run_directory_reads_as_its_best_pt_but_a_run_file_is_never_a_directory(tmp_path):
    model = _model(seed=4)
    save_checkpoint(model_checkpoint(model, model.state_dict(), 3, {}), tmp_path / BEST)
    assert load_checkpoint(tmp_path)["epoch"] == 3
    with pytest.raises(UserError, match=f"^{tmp_path}: is a directory, not a checkpoint$"):
        load_run_file(tmp_path)


def test_check_fits_blames_the_data_for_its_pixels_and_the_checkpoint_for_the_rest(tmp_path):
    data, ckpt = tmp_path / "digits.mat", tmp_path / "c.pt"
    saved = model_checkpoint(_model(0), {}, 0, {})
    check_fits(saved, _model(1), ckpt, data)  # the same architecture: no complaint
    with pytest.raises(UserError) as err:
        check_fits(saved, _model(0, input_size=6), ckpt, data)
    assert str(err.value) == f"{data}: has 6 pixels per image, but the model in {ckpt} takes 4"
    with pytest.raises(UserError) as err:
        check_fits(saved, _model(0, hidden=(5,)), ckpt, data)
    assert str(err.value).startswith(f"{ckpt}: its model ") and "[5]" in str(err.value)


def test_a_float64_checkpoint_builds_a_float64_model(tmp_path):
    model = _model(seed=0, dtype=torch.float64)
    save_checkpoint(model_checkpoint(model, model.state_dict(), 1, {}), tmp_path / "c.pt")
    back = model_from_state(load_checkpoint(tmp_path / "c.pt"))
    assert back.layers[0].weight.dtype == torch.float64 and not back.training
    assert _same_weights(back.state_dict(), model.state_dict())


class _Code:
    """Not plain data: unpickling it would import and call this module's code."""


def test_a_pickle_of_code_is_refused_by_name(tmp_path):
    path = tmp_path / "c.pt"
    model = _model(0)
    torch.save({**model_checkpoint(model, model.state_dict(), 1, {}), "x": _Code()}, path)
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    assert str(err.value) == (
        f"{path}: refused: loading it would call {__name__}._Code; checkpoints hold only data"
    )


def test_a_legacy_pickle_checkpoint_still_reads(tmp_path):
    model = _model(0)
    path = tmp_path / "old.pt"
    torch.save(model_checkpoint(model, model.state_dict(), 2, {}), path,
               _use_new_zipfile_serialization=False)  # fmt: skip
    assert path.read_bytes()[:1] == b"\x80"
    assert _same_weights(load_checkpoint(path)["model"], model.state_dict())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_refused(bad, tmp_path):
    model = _model(0)
    weights = clone_weights(model)
    weights["layers.1.bias"][1] = bad
    save_checkpoint(model_checkpoint(model, weights, 1, {}), tmp_path / "c.pt")
    with pytest.raises(UserError, match=r"weights are not finite \(layers\.1\.bias holds"):
        load_checkpoint(tmp_path / "c.pt")


@pytest.mark.parametrize("card", [None, {"name": "tiny"}])
def test_safetensors_metadata_holds_the_promised_names(card, tmp_path):
    model = _model(0)
    path = tmp_path / "m.safetensors"
    save_safetensors(model, path, loss="coursera", card=card)
    with safetensors.safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    expected = {"format": "digits-torch", "architecture": json.dumps(model.architecture()),
                "loss": "coursera"}  # fmt: skip
    if card is not None:
        expected["model_card"] = json.dumps(card)
    assert metadata == expected
    back = load_checkpoint(path)
    assert back.keys() == {"format", "architecture", "model", "config"}
    assert back["config"] == {"loss": "coursera"} and back["format"] == checkpoints.FORMAT
    assert _same_weights(back["model"], model.state_dict())
