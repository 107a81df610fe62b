"""A sweep's plan (digits_torch.sweep.plan): which networks stack (minibatch SGD outside
sklearn-exact mode, with a loss the hand-written backward pass knows), a plan and its config
keyed alike, the memory a stack needs as its dtype, batch groups, augmentation and validation
digits change it, and the plan's lines for stderr. Which fields change the stack key and the
batch group are tests/config/test_plan.py's and tests/config/test_roles.py's; memory linear in
the networks, and a sweep refused when it does not fit, are tests/sweep/test_sweep.py's."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from digits_torch import make_config
from digits_torch.config.plan import make_plan
from digits_torch.core.model import shape_text
from digits_torch.fast import backprop
from digits_torch.sweep.plan import describe_plan, memory_needed, stack_key, stackable

ROWS, PIXELS = 5000, 400  # the shipped digits


def _recipe(**overrides):
    return make_plan(make_config("seed", **overrides)).recipe


@pytest.mark.parametrize(
    "overrides, stacks",
    [({}, True), ({"momentum": 0.0}, True), ({"optimizer": "adam"}, False),
     ({"optimizer": "lbfgs"}, False), ({"sklearn_exact": True}, False)],
)  # fmt: skip
def test_minibatch_sgd_outside_sklearn_exact_mode_stacks(overrides, stacks):
    assert stackable(_recipe(**overrides)) is stacks


def test_a_loss_without_a_hand_written_output_error_does_not_stack(monkeypatch):
    recipe = _recipe(loss="coursera")
    assert stackable(recipe)
    losses = dict(backprop.LOSSES)
    losses["coursera"] = losses["coursera"]._replace(output_error=None)
    monkeypatch.setattr(backprop, "LOSSES", losses)
    assert not stackable(recipe) and stackable(_recipe(loss="softmax"))


def test_a_config_and_its_plan_have_one_stack_key_and_need_the_same_memory():
    configs = [make_config("seed", seed=s) for s in (0, 1)]
    plans = [make_plan(c) for c in configs]
    assert [stack_key(c) for c in configs] == [stack_key(p) for p in plans]
    assert memory_needed(configs, ROWS, PIXELS) == memory_needed(plans, ROWS, PIXELS)


def test_memory_is_counted_in_the_dtypes_bytes():
    def need(dtype):
        return memory_needed(
            [make_config("seed", dtype=dtype, seed=s) for s in range(3)], ROWS, PIXELS
        )

    assert need("float64") == 2 * need("float32")


def test_networks_that_share_batches_need_less_than_networks_that_do_not():
    """One batch group: one batch of inputs and one validation pass for all of them."""

    def need(seeds, **overrides):
        configs = [make_config("seed", seed=s, **overrides) for s in seeds]
        return memory_needed(configs, ROWS, PIXELS)

    assert need([0, 0, 0, 0]) < need([0, 1, 2, 3]) and need([0, 0, 0, 0]) < need([0, 0, 1, 1])
    assert need([0, 0], aug_shift=1.0) < need([0, 1], aug_shift=1.0)  # one augmented copy
    # the validation digits: one copy per batch group
    val = [need(s, val_fraction=0.2) - need(s, val_fraction=0.0) for s in ([0, 0], [0, 1])]
    assert val[0] < val[1]


def test_augmented_data_and_validation_digits_take_memory():
    def need(**overrides):
        return memory_needed([make_config("seed", **overrides)], ROWS, PIXELS)

    assert need(aug_shift=1.0) > need() and need(aug_rotate=10.0) == need(aug_shift=1.0)
    assert need(val_fraction=0.2) > need(val_fraction=0.0)
    assert need(hidden=(50,)) > need() and need(batch_size=100) < need()


def _network(name, **overrides):
    """A sweep's network as describe_plan reads it: its name and plan."""
    return SimpleNamespace(name=name, plan=make_plan(make_config("seed", **overrides)))


def test_the_plan_says_each_stack_its_batch_groups_and_how_they_multiply():
    shared = [_network(f"{i}", seed=0) for i in range(3)]
    own = [_network(f"{i}", seed=i, hidden=(7,), dtype="float64", batch_size=20) for i in range(2)]
    text = describe_plan([shared, own], [], 5 * 2**20, None)
    lines = text.splitlines()
    assert lines[0] == "5 network(s):" and len(lines) == 4
    r, q = shared[0].plan.recipe, own[0].plan.recipe
    assert lines[1].startswith(f"  stack 1: 3 SGD networks {shape_text(r.hidden)} {r.activation} ")
    assert f"float32, batch {r.batch_size}: 1 batch group(s)" in lines[1]
    assert lines[1].endswith("one wide product each)")
    assert (
        f"2 SGD networks {shape_text((7,))} {q.activation} float64, batch 20: 2 batch group(s)"
        in lines[2]
    )
    assert lines[2].endswith("batched products)")
    assert lines[3] == "  memory: about 5.0 MiB for the largest stack (unknown)"


def test_the_plan_names_each_network_trained_alone_and_the_memory_available():
    solo = [_network("a", optimizer="adam"), _network("b", sklearn_exact=True)]
    memory, available = 3 * 2**20 + 2**19, 2048 * 2**20
    lines = describe_plan([[_network("c")]], solo, memory, available).splitlines()
    assert lines[0] == "3 network(s):"
    assert lines[2] == "  a: adam, one after another through fit (does not stack)"
    assert lines[3] == "  b: sklearn-exact, one after another through fit (does not stack)"
    assert lines[4] == "  memory: about 3.5 MiB for the largest stack (2,048 MiB available)"


def test_the_plan_says_a_cuda_graph_stack_runs_eagerly():
    graphed = _network("g")
    graphed.plan = dataclasses.replace(
        graphed.plan, recipe=dataclasses.replace(graphed.plan.recipe, cuda_graph=True)
    )
    plain = describe_plan([[_network("p")]], [], 0, None)
    assert "--cuda-graph" not in plain
    text = describe_plan([[_network("p"), graphed]], [], 0, None)
    assert text.splitlines()[-2] == (
        "  (--cuda-graph: stacks run eagerly; each stack is already few kernels)"
    )
    solo_graphed = describe_plan([[_network("p")]], [graphed], 0, None)
    assert "--cuda-graph" not in solo_graphed  # only a stack runs eagerly
