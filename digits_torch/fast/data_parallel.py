"""One network trained by every rank of a torchrun job: :class:`DataParallel`.

Every rank holds the whole dataset, the same initial model and the same random draws, so every
rank shuffles (and distorts) the same batches. Each computes the gradients of its share of each
batch (:meth:`~digits_torch.runtime.distributed.Ranks.share`); the shares' gradients are summed over
the ranks, and every rank takes the same step. The run trains the network that one process trains,
with the same global batch, up to the order in which float sums are taken.

For the sum to be the batch's gradient, a share counts as its part of the whole batch of b: its
data loss is divided by b, not by the share's size, and each of the ``world`` ranks adds
``1 / world`` of the L2 term, so that summed over the ranks

    objective = (sum of the batch's data losses) / b + l2 / (2 b) * (sum of squared weights)

which is the one-process objective (:func:`digits_torch.fast.backprop.loss_and_gradients`).

* explicit backprop: every ``p.grad`` is a view into one flat buffer, with two more slots for
  the batch's objective and its count of correct examples, so a batch takes one all-reduce;
* autograd: the model is wrapped in ``DistributedDataParallel``, whose backward averages the
  gradients over the ranks as it goes (so each rank's objective is scaled by the world size
  before it); the objective and the count take one more all-reduce.
"""

from __future__ import annotations

import torch
from torch.nn.parallel import DistributedDataParallel

from ..config.plan import Objective
from ..core.losses import data_loss, smoothed_targets
from ..core.model import MLP
from ..recipes.distillation import Soft, distillation_loss
from ..runtime.distributed import Ranks, collective, sum_over_ranks
from .backprop import loss_and_gradients

__all__ = ["DataParallel"]


class DataParallel:
    """The gradients of a batch, computed by the ranks of a job together (see above).

    Args:
        model: this rank's copy of the network (the same on every rank).
        objective: the run's loss, L2, label smoothing and soft targets' terms.
        backprop: the :data:`~digits_torch.fast.backprop.GRADIENTS` entry the run uses
            (:func:`~digits_torch.fast.backprop.effective_backprop`'s).
        ranks: this process's place in the job (a process group is up).
    """

    def __init__(self, model: MLP, objective: Objective, backprop: str, ranks: Ranks) -> None:
        self.model, self.objective, self.ranks = model, objective, ranks
        self.l2 = objective.l2 / ranks.world  # each rank adds its part of the penalty
        params = list(model.parameters())
        sizes = [p.numel() for p in params]
        self.ddp = None
        if backprop == "explicit":
            # (all gradients, objective, correct): one buffer, one all-reduce per batch
            self.flat = torch.zeros(sum(sizes) + 2, dtype=params[0].dtype, device=params[0].device)
            for p, grad in zip(params, self.flat[:-2].split(sizes)):
                p.grad = grad.view_as(p)
        else:
            self.flat = torch.zeros(2, dtype=params[0].dtype, device=params[0].device)
            with collective(ranks):  # DDP checks the ranks' models agree
                self.ddp = DistributedDataParallel(model, broadcast_buffers=False)

    def __call__(
        self, model: MLP, X: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch X (b, n), y (b,), as :data:`~digits_torch.core.loop.Gradients` (``model``
        is this rank's, given at construction): its objective and count of correct examples as
        0-dim tensors, its gradient in ``p.grad``, each summed over the ranks (the same bits on
        every rank). ``soft``: (b, classes) a teacher's soft targets of X, to distil from."""
        b = X.shape[0]
        lo, hi = self.ranks.share(b)
        xs, ys = X[lo:hi], y[lo:hi]  # (share, n), (share,)
        soft = None if soft is None else soft[lo:hi]
        c = self.objective
        share_soft = None if soft is None else Soft(soft, c.temperature, c.soft_weight)
        with collective(self.ranks):
            if self.ddp is None:
                objective, correct = loss_and_gradients(
                    self.model, xs, ys, c.loss, self.l2, c.label_smoothing, b, share_soft
                )
            else:
                objective, correct = self._autograd(xs, ys, b, share_soft)
            self.flat[-2].copy_(objective)
            self.flat[-1].copy_(correct)
            sum_over_ranks(self.flat)
        objective, correct = self.flat[-2:].clone()  # the next batch overwrites the buffer
        return objective, correct.long()  # a count, as one process counts it

    def _autograd(
        self, xs: torch.Tensor, ys: torch.Tensor, b: int, soft: Soft | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A share's part of the objective, and its count; DDP sums the gradients."""
        c, model = self.objective, self.model
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            logits = self.ddp(xs)  # through DDP, so that its backward reduces the gradients
            if soft is None:
                loss = data_loss(logits, ys, c.loss, c.label_smoothing, reduction="sum")
            else:  # the share's mean times its size: its part of the batch's sum
                targets = smoothed_targets(ys, logits.shape[1], c.label_smoothing, logits.dtype)
                loss = distillation_loss(logits, soft, targets) * len(ys) if len(ys) else 0.0
            objective = loss / b + self.l2 / (2 * b) * model.squared_weights()
            (objective * self.ranks.world).backward()  # DDP averages: undo its 1 / world
        return objective.detach(), (logits.argmax(dim=1) == ys).sum()
