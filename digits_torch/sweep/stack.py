"""Many networks trained as one: K SGD networks of one architecture in stacked tensors.

    digits = read_digits(configs[0], device)
    runs = [set_up(c, digits=digits, stacked=True) for c in configs]
    stack = Stack(runs, *digits.on_device)           # stacked in each run's ``order``
    train_epochs(stack, saves, requests, bar)        # the loop a solo run trains in

A :class:`Stack` is the :class:`~digits_torch.train.run_loop.EpochTrainer` of a sweep. Each
network is set up by :func:`digits_torch.train.run_setup.set_up`, exactly as its solo ``fit`` run
is: its initial weights, validation split, optimizer, lr scheduler, stopping rule and CPU
generator; and each epoch its generator draws the augmentation and then the shuffle, as
:func:`digits_torch.train.epochs.make_epoch_function` does. What the stack changes is only how
the arithmetic is laid out:

* weights carry a leading model dimension: layer l is W (K, n_l, n_{l-1}) and b (K, n_l);
* networks whose generators are in the same state and that train on the same rows with the same
  augmentation (a *batch group*: the same seed) see the same batches, so their first layer is one
  wide matrix product, X_b (b, n) @ W1^T (n, K_g * h); groups are a leading dimension of a
  batched product (``baddbmm``), so K networks of K seeds are K narrow products in one call;
* lr, momentum, l2, label smoothing and the distillation weight are (K,) tensors; one update,
  torch.optim.SGD's (Nesterov) momentum arithmetic, steps the whole stack;
* a group's teacher labels its epoch's digits once, as the solo epoch does; dead units are
  revived network by network by the solo run's function, between batches and validation;
* the gradients are :func:`digits_torch.fast.backprop.loss_and_gradients`'s (L2 folded in).

A network that stops (early stopping, max epochs, a non-finite loss) leaves the stack at the end
of the epoch: its weights, momentum and generator go back into its set-up (for a non-finite
loss, those from before that epoch, as the solo run keeps its last good checkpoint), and the
others go on in a smaller stack.

This module keeps the networks and their batches; the arithmetic of a batch (forward, gradients,
SGD step) is :class:`~digits_torch.sweep.arithmetic.StackArithmetic`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..core.losses import data_loss
from ..recipes.augment import random_affine
from ..recipes.dead_units import revival_due, revival_generator, revive
from ..store.checkpoints import clone_weights
from ..train.epochs import teacher_soft
from ..train.run_setup import Run
from .arithmetic import StackArithmetic, predicted

__all__ = ["Stack"]


class _Group:
    """Networks that see the same batches: a slice of the stack, one generator's draws."""

    def __init__(self, members: list[Run], device: torch.device) -> None:
        first = members[0]
        self.members = members
        self.generator = first.rng
        train_rows, val_rows = first.rows
        self.rows = torch.from_numpy(train_rows).to(device)
        self.recipe = r = first.recipe
        self.augmentation, self.augmented = r.augmentation, r.augmented
        self.teacher = first.teacher  # the group's: its networks have one teacher
        self.val_rows = torch.from_numpy(val_rows).to(device)


def _group_key(member: Run) -> tuple:
    return (
        member.rng.get_state().numpy().tobytes(),
        member.rows[0].tobytes(),
        member.recipe.batch_group,
    )


class Stack(StackArithmetic):
    """The networks' weights stacked, and their epochs trained together (an
    :class:`~digits_torch.train.run_loop.EpochTrainer`: ``trainees`` are the networks still
    training).

    Args:
        members: networks with one :func:`stack_key` (set up with ``stacked=True``), each at
            its own epoch (a resumed sweep); those that have ended are left out.
        X: (rows, n) every image of the data file, on the device, in the networks' dtype.
        y: (rows,) their digits, on the device.
    """

    def __init__(self, members: Sequence[Run], X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X, y
        self.device, self.dtype = X.device, X.dtype
        self.members: list[Run] = []
        self._snapshot_before: tuple | None = None
        self._scratch_buffers: dict[tuple, torch.Tensor] = {}
        self._augmented: torch.Tensor | None = None
        self._build([m for m in members if m.status == "training"])

    @property
    def trainees(self) -> list[Run]:
        return self.members

    # ------------------------------------------------------------------ building and leaving

    def _build(self, members: list[Run]) -> None:
        """Stack ``members``' weights and momentum, ordered by batch group."""
        groups: dict[tuple, list[Run]] = {}
        # In a canonical order, so that a resumed sweep stacks as the uninterrupted one did.
        for member in sorted(members, key=lambda m: m.order):
            groups.setdefault(_group_key(member), []).append(member)
        self.members = [m for group in groups.values() for m in group]
        self._scratch_buffers.clear()  # their shapes were the old stack's
        self.index = {id(m): k for k, m in enumerate(self.members)}
        self.groups = [_Group(group, self.device) for group in groups.values()]
        if not self.members:
            return
        sizes = [len(group) for group in groups.values()]
        # Equal groups: the first layer is (groups, b, n) @ (groups, n, K_g h), one batched
        # product; unequal ones (after networks left) take one narrow product per network.
        self.per_group = sizes[0] if len(set(sizes)) == 1 else 1
        self.group_of = torch.repeat_interleave(
            torch.arange(len(sizes), device=self.device), torch.tensor(sizes, device=self.device)
        )
        models = [m.model for m in self.members]
        layers = range(len(models[0].layers))
        self.weights = [torch.stack([m.layers[i].weight.detach() for m in models]) for i in layers]
        self.biases = [torch.stack([m.layers[i].bias.detach() for m in models]) for i in layers]
        self.weight_buffers = [self._buffers(i, "weight") for i in range(len(self.weights))]
        self.bias_buffers = [self._buffers(i, "bias") for i in range(len(self.weights))]
        recipes = [m.recipe for m in self.members]
        objectives = [r.objective for r in recipes]
        self.momentum = self._per_model([r.steps.momentum for r in recipes])
        self.l2 = self._per_model([o.l2 for o in objectives])
        self.smoothing = self._per_model([o.label_smoothing for o in objectives])
        self.any_smoothing = any(o.label_smoothing for o in objectives)
        # distillation: the same temperature in a group; groups without a teacher weigh 0
        self.distilled = any(g.teacher is not None for g in self.groups)
        self.temperature = self._per_model([o.temperature for o in objectives])
        taught = [m.teacher is not None for m in self.members]
        weights = [o.soft_weight if t else 0.0 for o, t in zip(objectives, taught)]
        self.distill_weight = self._per_model(weights)
        nesterov = [m.optimizer.param_groups[0]["nesterov"] for m in self.members]
        self.nesterov = self._per_model(nesterov).bool() if len(set(nesterov)) > 1 else nesterov[0]
        self.activation = recipes[0].activation
        self.loss = objectives[0].loss
        self.batch = min(recipes[0].batch_size, self.m)
        self.has_val = self.members[0].has_val
        if self.has_val:  # the best weights so far: a resumed network's from its best.pt
            bests = [m.best for m in self.members]
            self.best = [
                [torch.stack([b[f"layers.{i}.{name}"] for b in bests]).clone() for i in layers]
                for name in ("weight", "bias")
            ]

    def _buffers(self, layer: int, name: str) -> torch.Tensor:
        """The layer's stacked momentum buffers: the members' own, zeros where none yet (a first
        step from zero is torch's first step, buffer = gradient)."""
        found = []
        for member in self.members:
            param = getattr(member.model.layers[layer], name)
            buffer = member.optimizer.state.get(param, {}).get("momentum_buffer")
            found.append(torch.zeros_like(param) if buffer is None else buffer.detach())
        return torch.stack(found)

    def _per_model(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=self.dtype, device=self.device)

    def sync(self) -> None:
        """Copy every network's weights, momentum, best weights and generator state out of the
        stack."""
        if not self.members:
            return
        buffers = (self.weight_buffers, self.bias_buffers)
        self._sync(range(len(self.members)), self.weights, self.biases, buffers)
        for group in self.groups:
            for member in group.members[1:]:
                member.rng.set_state(group.generator.get_state())

    @torch.no_grad()
    def _sync(self, indices, weights, biases, buffers) -> None:
        for k in indices:
            member = self.members[k]
            for i, layer in enumerate(member.model.layers):
                pairs = (
                    (layer.weight, weights[i], buffers[0][i]),
                    (layer.bias, biases[i], buffers[1][i]),
                )
                for param, stacked, buffer in pairs:
                    param.copy_(stacked[k])
                    if member.recipe.steps.momentum and member.epoch > 0:
                        state = member.optimizer.state[param]
                        state["momentum_buffer"] = buffer[k].clone()
            if self.has_val:
                member.best = {
                    **{f"layers.{i}.weight": w[k].clone() for i, w in enumerate(self.best[0])},
                    **{f"layers.{i}.bias": b[k].clone() for i, b in enumerate(self.best[1])},
                }
            else:
                member.best = clone_weights(member.model)

    # ------------------------------------------------------------------ the epoch

    @torch.no_grad()
    def train_epoch(self) -> list[tuple[Run, dict, bool]]:
        """One epoch of every network: (network, its record, whether its loss is finite), in
        stack order. The networks whose bookkeeping ends them leave at :meth:`end_epoch`."""
        self._snapshot_before = self._snapshot()
        losses, hits = self._batches()
        self._revive()
        # as the solo epoch computes them: an int64 count / m is a float32, then read as float64
        measured = [losses.double(), (hits / self.m).double()]
        if self.has_val:
            measured += list(self._validate())
        values = torch.stack(measured).tolist()  # the epoch's one read from the device
        results = []
        for k, member in enumerate(self.members):
            val = (values[2][k], values[3][k]) if self.has_val else (None, None)
            record = {"epoch": member.epoch + 1, "val_loss": val[0], "val_accuracy": val[1]}
            record["train_loss"], record["train_accuracy"] = values[0][k], values[1][k]
            results.append((member, record, math.isfinite(record["train_loss"])))
        return results

    def _revive(self) -> None:
        """The networks whose revival is due have their dead units revived, each by the solo
        run's function on its own model and optimizer; then the stack is built again."""
        due = [
            (k, m)
            for k, m in enumerate(self.members)
            if m.recipe.revive_dead_units and revival_due(m.epoch + 1, m.recipe.epochs)
        ]
        if not due:
            return
        self.sync()
        for k, member in due:
            group = self.groups[int(self.group_of[k])]
            X = self.X.index_select(0, group.rows)  # the training digits, as run.train holds them
            generator = revival_generator(member.recipe.seed, member.epoch + 1)
            revive(member.model, member.optimizer, X, generator)
        self._build(self.members)

    def keep_best(self, run: Run) -> None:
        """The network's weights now become its best (copied out at :meth:`sync`)."""
        if self.has_val:
            k = self.index[id(run)]
            for best, now in zip(self.best[0] + self.best[1], self.weights + self.biases):
                best[k].copy_(now[k])

    def end_epoch(self) -> None:
        """Networks that ended leave; a diverged one with its state from before the epoch."""
        leaving = [
            k for k, m in enumerate(self.members) if m.status not in ("training", "diverged")
        ]
        diverged = [k for k, m in enumerate(self.members) if m.status == "diverged"]
        if leaving or diverged:
            self._leave(leaving, diverged, self._snapshot_before)

    def _snapshot(self) -> tuple:
        """Weights, momentum and generators before the epoch, for members whose loss diverges."""
        weights = [w.clone() for w in self.weights]
        biases = [b.clone() for b in self.biases]
        buffers = ([w.clone() for w in self.weight_buffers], [b.clone() for b in self.bias_buffers])
        states = [group.generator.get_state() for group in self.groups]
        return weights, biases, buffers, states

    def _leave(self, leaving: list[int], diverged: list[int], snapshot: tuple) -> None:
        self.sync()
        weights, biases, buffers, states = snapshot
        self._sync(diverged, weights, biases, buffers)
        for k in diverged:
            group = int(self.group_of[k])
            self.members[k].rng.set_state(states[group])
        gone = set(leaving) | set(diverged)
        staying = [m for k, m in enumerate(self.members) if k not in gone]
        self._build(staying)

    @property
    def m(self) -> int:
        return len(self.members[0].rows[0])

    def _draws(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Each group's epoch draws, in the solo order (augmentation, then the shuffle), and
        the soft targets of its teacher, if any, computed on what the solo epoch computes them.

        Returns (source images, (G, m) rows of the source, (G, m) rows of y, in batch order;
        (G, m, classes) soft targets in batch order, or None when no group has a teacher).
        """
        source, source_rows, label_rows, softs = self._source(), [], [], []
        offset = self.X.shape[0]  # each augmented group's images follow the data's
        for group in self.groups:
            images = None
            if group.augmented or group.teacher is not None:
                images = self.X.index_select(0, group.rows)
            if group.augmented:
                images = random_affine(images, group.generator, *group.augmentation)
                source[offset : offset + self.m].copy_(images)
            order = torch.randperm(self.m, generator=group.generator).to(self.device)
            if group.augmented:
                source_rows.append(order + offset)
                offset += self.m
            else:
                source_rows.append(group.rows[order])
            label_rows.append(group.rows[order])
            if group.teacher is not None:  # what the solo epoch labels, then in batch order
                softs.append(teacher_soft(group.teacher, images, group.recipe)[order])
            else:
                softs.append(None)
        soft = None
        if self.distilled:  # a group without a teacher: zeros, weighed 0
            shape = next(t for t in softs if t is not None).shape
            soft = torch.stack([self.X.new_zeros(shape) if t is None else t for t in softs])
        return source, torch.stack(source_rows), torch.stack(label_rows), soft

    def _source(self) -> torch.Tensor:
        """The images batches are gathered from: the data, then room for each augmented group's
        distorted training set (one copy per group, made once and refilled every epoch)."""
        augmented = sum(group.augmented for group in self.groups)
        if not augmented:
            return self.X
        shape = (self.X.shape[0] + augmented * self.m, self.X.shape[1])
        if self._augmented is None or self._augmented.shape != shape:
            self._augmented = self.X.new_empty(shape)
            self._augmented[: self.X.shape[0]].copy_(self.X)
        return self._augmented

    def _batches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's batches; returns (K,) mean objectives and (K,) hit counts."""
        source, rows, label_rows, soft = self._draws()
        self.minus_lr = -self._per_model([m.lr for m in self.members])  # (K,), this epoch's
        objectives, hits, sizes = [], [], []
        for start in range(0, self.m, self.batch):
            index = rows[:, start : start + self.batch]
            G, b = index.shape
            xb = self._gather(source, index.reshape(-1)).view(G, b, -1)
            yb = self.y.index_select(0, label_rows[:, start : start + self.batch].reshape(-1))
            soft_b = None
            if soft is not None:  # (G, b, classes) -> (K, classes, b), as the logits
                soft_b = soft[:, start : start + self.batch].index_select(0, self.group_of).mT
            objective, correct = self._gradients(xb, yb.view(G, b), soft_b)
            objectives.append(objective)
            hits.append(correct)
            sizes.append(b)
        weights = torch.tensor(sizes, dtype=self.dtype, device=self.device)
        return weights @ torch.stack(objectives) / self.m, torch.stack(hits).sum(0)

    def _gather(self, source: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``source.index_select(0, rows)``, into a kept buffer (:meth:`_scratch`)."""
        buffer = self._scratch("batch", (len(rows), source.shape[1]))
        return torch.index_select(source, 0, rows, out=buffer)

    def _validate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) validation loss and accuracy, as :func:`digits_torch.core.losses.score` gives
        them."""
        rows = torch.stack([group.val_rows for group in self.groups])  # (G, v)
        G, v = rows.shape
        xv = self.X.index_select(0, rows.reshape(-1)).view(G, v, -1)
        yv = self.y.index_select(0, rows.reshape(-1)).view(G, v).index_select(0, self.group_of)
        z = self._forward(self._grouped_input(xv))[2]  # (K, classes, v)
        loss = data_loss(z, yv, self.loss)
        correct = (predicted(z) == yv).sum(1)
        return loss.double(), correct.double() / v
