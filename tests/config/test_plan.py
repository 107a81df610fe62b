"""The plan: a run's config read once into resolved values (digits_torch.config.plan)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from digits_torch import MLP, make_config
from digits_torch.config.config import fields_with
from digits_torch.config.plan import as_plan, make_plan
from digits_torch.optim.schedule import InvScalingLR


def test_a_plan_holds_its_configs_values_resolved():
    config = make_config("tuned", device="cpu", dtype="float64", label_smoothing=0.1)
    plan = make_plan(config)
    r = plan.recipe
    assert r.torch_dtype is torch.float64 and r.batch_size == 50 and r.augmented
    assert (r.objective.loss, r.objective.l2, r.objective.label_smoothing) == ("softmax", 0.02, 0.1)
    assert (r.steps.optimizer, r.steps.lr, r.steps.full_batch) == ("sgd", 0.1, False)
    assert r.stopping == ("val_accuracy", config.tol, 0) and r.step_name == "epoch"
    assert plan.running.device == "cpu" and plan.running.preset == "tuned"
    assert plan.config is config and as_plan(plan) is plan and as_plan(config) == plan


def test_the_schedule_is_interpreted_by_the_plan():
    model = MLP()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    cosine = make_plan(make_config("tuned")).recipe.schedule
    assert cosine.spans_epochs and not cosine.lowers_on_plateau
    assert isinstance(cosine.scheduler(sgd, 4000), torch.optim.lr_scheduler.CosineAnnealingLR)
    adaptive = make_plan(make_config("seed", schedule="adaptive")).recipe.schedule
    assert adaptive.lowers_on_plateau and adaptive.scheduler(sgd, 4000) is None
    invscaling = make_plan(make_config("seed", schedule="invscaling")).recipe.schedule
    assert isinstance(invscaling.scheduler(sgd, 4000), InvScalingLR)
    assert make_plan(make_config("coursera")).recipe.step_name == "iteration"


@pytest.mark.parametrize("role, key", [("stacked", "stack_key"), ("augments", "batch_group")])
def test_a_plans_keys_change_with_exactly_their_fields(role, key):
    """A sweep stacks networks by the plan's stack key and shares batches by its batch group:
    each changes with each field of its role (and the batch group with the seed), and with no
    other field."""
    base = make_config("seed")
    others = {"lr": 0.5, "epochs": 3, "quiet": True, "momentum": 0.5}
    for name, value in others.items():
        changed = dataclasses.replace(base, **{name: value})
        assert getattr(make_plan(changed).recipe, key) == getattr(make_plan(base).recipe, key)
    changes = {"hidden": (7,), "dtype": "float64", "loss": "coursera", "activation": "tanh"}
    changes |= {"data": "x.mat", "teacher": "t", "teacher_preset": "teacher", "val_fraction": 0.2}
    changes |= {"aug_elastic": (1.0, 1.0), "aug_scale": 0.1, "seed": 1, "batch_size": 7}
    for name in (*fields_with(role), *(("seed",) if role == "augments" else ())):
        value = changes[name] if name in changes else getattr(base, name) + 1
        changed = dataclasses.replace(base, **{name: value})
        assert getattr(make_plan(changed).recipe, key) != getattr(make_plan(base).recipe, key)
