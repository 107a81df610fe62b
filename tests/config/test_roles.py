"""A field's roles (``_field(..., roles=...)`` in config.py) are what the package does with it:
the roles agree with one another, and each command acts on a field as its roles say."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from digits_torch import fit, make_config
from digits_torch.config.bounds import BACKPROPS, DTYPES, MONITORS, OPTIMIZERS
from digits_torch.config.config import PRESETS, ROLES, TrainConfig, fields_with, preset_differences
from digits_torch.core.losses import LOSSES
from digits_torch.core.model import ACTIVATIONS, INITS
from digits_torch.errors import UserError
from digits_torch.optim.schedule import SCHEDULES
from digits_torch.reference.sklearn_exact import SKLEARN_FIELDS
from digits_torch.sweep.plan import stack_key
from digits_torch.sweep.sweep import parse_grid
from digits_torch.train.run_files import hparams_of
from digits_torch.train.training import _NOT_TRAINING, _resumable

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
TYPES = typing.get_type_hints(TrainConfig)
NAMES = [*PRESETS, "auto", "cpu", *ACTIVATIONS, *INITS, *LOSSES, *OPTIMIZERS, *BACKPROPS]
NAMES += [*DTYPES, *SCHEDULES, *MONITORS, "x.mat"]


def _with(role: str) -> set[str]:
    return set(fields_with(role))


def _candidates(name: str, value) -> list:
    kind = TYPES[name]
    if name == "hidden":
        return [(7,)]
    if name == "aug_elastic":
        return [(10.0, 2.9)]
    if kind is bool:
        return [not value]
    if kind is int:
        return [value + 1]
    if kind is float:
        return [value / 2, 0.1]
    return NAMES  # str, and data's str | None


def _other(config: TrainConfig, name: str):
    """A valid value of field ``name`` other than ``config``'s (every field has one)."""
    value = getattr(config, name)
    for candidate in _candidates(name, value):
        try:
            changed = dataclasses.replace(config, **{name: candidate})
        except UserError:
            continue
        if getattr(changed, name) != value:
            return candidate
    raise AssertionError(f"no other value for {name}")


def _text(value) -> str:
    """``value`` as --grid writes it."""
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_digits):
    """A one-epoch run whose config lets every field change alone (sklearn_exact, stop_on too)."""
    config = make_config(
        "seed",
        data=str(small_digits),
        epochs=1,
        device="cpu",
        logdir=str(tmp_path_factory.mktemp("runs")),
        quiet=True,
        figures=False,
        val_fraction=0.2,
        stop_on="val_accuracy",
    )
    return fit(config)


def test_every_role_is_one_of_the_table_and_an_unknown_one_is_refused():
    assert {r for f in dataclasses.fields(TrainConfig) for r in f.metadata["roles"]} <= set(ROLES)
    with pytest.raises(ValueError, match="unknown field role"):
        fields_with("hparams")
    assert set(fields_with("learned")) | set(fields_with("learned", has=False)) == set(FIELDS)


def test_the_roles_agree():
    learned, named, hparam = _with("learned"), _with("named"), _with("hparam")
    # What changes what a network learns names its run, and what names a run is a hyperparameter
    assert learned <= named <= hparam
    # A sweep varies what its networks learn; what the whole sweep shares is never that
    assert not learned & _with("sweep_wide")
    # The stack key and the batch groups are made of what networks learn, and are not one
    assert _with("stacked") | _with("augments") <= learned
    assert not _with("stacked") & _with("augments")
    # A resume keeps the shapes, data and loss its checkpoint holds
    assert not _with("stacked") & _with("resumable")
    # MLPClassifier's parameters are what it learns with, each the name of one field
    assert set(SKLEARN_FIELDS.values()) <= learned
    named_by_sklearn = [f for f in dataclasses.fields(TrainConfig) if f.metadata["sklearn"]]
    assert len(SKLEARN_FIELDS) == len(named_by_sklearn)


def test_a_sweep_varies_exactly_the_learned_fields(run):
    for name in FIELDS:
        other = _other(run.config, name)
        spec = f"{name}={_text(other)}"
        if name in _with("learned"):
            assert parse_grid([spec]) == {name: [other]}, name
        else:
            with pytest.raises(UserError, match="set it once"):
                parse_grid([spec])


def test_the_stack_key_changes_exactly_with_the_stacked_fields(run):
    key = stack_key(run.config)
    for name in FIELDS:
        changed = dataclasses.replace(run.config, **{name: _other(run.config, name)})
        assert (stack_key(changed) != key) == (name in _with("stacked")), name


def test_hparams_and_run_names_hold_the_fields_their_roles_say(run):
    assert list(hparams_of(run.config.to_dict())) == list(fields_with("hparam"))
    shown = preset_differences(run.config, ignore=_NOT_TRAINING)
    for name in set(FIELDS) - {"preset"}:  # what the others are told apart from: named apart
        changed = dataclasses.replace(run.config, **{name: _other(run.config, name)})
        differs = preset_differences(changed, ignore=_NOT_TRAINING) != shown
        assert differs == (name in _with("named")), name


def test_a_resume_changes_exactly_the_resumable_fields(run):
    for name in FIELDS:
        overrides = {name: _other(run.config, name)}
        if name in _with("resumable"):
            config, _ = _resumable(run.run_dir, overrides)
            assert getattr(config, name) == overrides[name]
        else:
            with pytest.raises(UserError, match=f"cannot change {name}"):
                _resumable(run.run_dir, overrides)


def test_a_field_that_is_not_learned_leaves_the_trained_network_bitwise_equal(run, tmp_path):
    # threads and device: where it runs, equal up to the order of float sums, not bitwise
    for name in set(fields_with("learned", has=False)) - {"threads", "device"}:
        other = str(tmp_path / "elsewhere") if name == "logdir" else _other(run.config, name)
        result = fit(dataclasses.replace(run.config, **{name: other}))
        weights, trained = result.model.state_dict(), run.model.state_dict()
        assert all(torch.equal(weights[k], trained[k]) for k in trained), name
        assert result.metrics["val_loss"] == run.metrics["val_loss"], name
