"""Which of a sweep's networks train together, and what a stack of them needs.

* :func:`stackable`: minibatch SGD outside sklearn-exact mode (the rest train one by one);
* :func:`stack_key`: networks with one key share shapes, data and loss: one stack
  (:class:`~digits_torch.sweep.stack.Stack`);
* a recipe's ``batch_group``: networks of a stack with one group see the same batches (the same
  seed, distortions and teacher), so their first layer is one wide matrix product;
* :func:`memory_needed`: the bytes a stack needs, which the sweep checks before it starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config.bounds import DTYPES, parameter_count
from ..config.config import TrainConfig
from ..config.plan import Plan, Recipe, as_plan
from ..core.model import shape_text
from ..fast.backprop import effective_backprop

__all__ = [
    "describe_plan",
    "memory_needed",
    "stack_key",
    "stackable",
]


def stackable(recipe: Recipe) -> bool:
    """Whether the stack trains ``recipe``: minibatch SGD outside sklearn-exact mode, with an
    activation and a loss the hand-written backward pass knows (the stack's arithmetic is it)."""
    loss = recipe.objective.loss
    explicit = effective_backprop("explicit", recipe.activation, loss) == "explicit"
    return recipe.steps.optimizer == "sgd" and not recipe.steps.sklearn_exact and explicit


def stack_key(plan: Plan | TrainConfig) -> tuple:
    """Networks with equal keys train in one stack: the same shapes, data and loss (the fields
    whose role is "stacked")."""
    return as_plan(plan).recipe.stack_key


def memory_needed(plans: Sequence[Plan | TrainConfig], rows: int, pixels: int) -> int:
    """Bytes a stack of ``plans`` (or configs) needs, on data of ``rows`` images of ``pixels``
    pixels.

    Counted on the data itself, unlike the rough bound every config is held to before any data
    is read (:func:`digits_torch.config.bounds.training_memory`): weights, momentum, gradients,
    the pre-epoch snapshot, the best weights and each member's own model and optimizer; one
    batch's activations and inputs; the data, each batch group's augmented copy and the
    validation pass. It grows linearly with the networks.
    """
    recipes = [as_plan(p).recipe for p in plans]
    r = recipes[0]
    item = DTYPES[r.dtype].itemsize
    sizes = [pixels, *r.hidden, 10]
    params = parameter_count(sizes)
    K = len(recipes)
    groups = {x.batch_group: x for x in recipes}
    G, augmented = len(groups), sum(1 for x in groups.values() if x.augmented)
    val = int(round(rows * r.val_fraction))
    m = rows - val
    b, width = min(r.batch_size, m), sum(sizes[1:])
    copies = 7 + (val > 0)  # weights, momentum, gradients, snapshot (2), member model + buffer
    batch = K * b * width * 4 + G * b * pixels + (K * b * pixels if 1 < G < K else 0)
    data = rows * pixels + ((rows + augmented * m) * pixels + 2 * m * pixels if augmented else 0)
    validation = G * val * pixels + K * val * width * 3
    return item * (K * params * copies + batch + data + validation)


def describe_plan(stacks, solo, memory: int, available: int | None) -> str:
    """The sweep's plan, lines for stderr: each stack, each network trained alone, the memory."""
    count = sum(len(s) for s in stacks) + len(solo)
    lines = [f"{count} network(s):"]
    for i, stack in enumerate(stacks, 1):
        c = stack[0].plan.recipe
        seeds = len({n.plan.recipe.batch_group for n in stack})
        shape = shape_text(c.hidden)
        how = "one wide product each" if seeds < len(stack) else "batched products"
        lines.append(
            f"  stack {i}: {len(stack)} SGD networks {shape} {c.activation} {c.dtype}, batch "
            f"{c.batch_size}: {seeds} batch group(s) (same seed, augmentation and teacher share "
            f"batches; "
            f"{how})"
        )
    for n in solo:
        steps = n.plan.recipe.steps
        kind = "sklearn-exact" if steps.sklearn_exact else steps.optimizer
        lines.append(f"  {n.name}: {kind}, one after another through fit (does not stack)")
    if any(n.plan.recipe.cuda_graph for s in stacks for n in s):
        lines.append("  (--cuda-graph: stacks run eagerly; each stack is already few kernels)")
    free = "unknown" if available is None else f"{available / 2**20:,.0f} MiB available"
    lines.append(f"  memory: about {memory / 2**20:,.1f} MiB for the largest stack ({free})")
    return "\n".join(lines)
