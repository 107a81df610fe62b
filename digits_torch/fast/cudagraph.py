"""One epoch of training as a CUDA graph: captured once, then replayed with one launch an epoch.

On a GPU this network's arithmetic is tiny. An epoch is 25 batches of about 25 kernels, each a
few microseconds of work, and launching a kernel from Python costs more than running it. A CUDA
graph records the epoch's kernels once and replays them all with a single launch.

A replay runs the kernels the eager epoch (:func:`~digits_torch.train.epochs.run_batches`) runs, on
the same tensors, so it computes the same numbers. What a graph cannot capture happens around
it, before each replay:

* the shuffle: drawn on the CPU from the run's generator, as on every device, and copied into
  the index buffer that the graph reads;
* the learning rate: a schedule may change it between epochs, so the graph's SGD step reads it
  from a device tensor, refreshed before each replay;
* the images: copied into the graph's input buffer (with augmentation they change each epoch).

The first epoch runs eagerly: it creates the optimizer's momentum buffers, and warms cuBLAS up
on the stream the capture then uses. The second epoch is captured, then replayed; every later
epoch is replayed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..core.model import MLP
from ..optim.optimizers import optimizer_step

__all__ = ["EpochGraph"]

# batches(step, X, y, order) -> (loss, accuracy): an epoch's batches over X (m, n) and y (m,) in
# the order (m,), each followed by step(); it must never wait for the device.
Batches = Callable[
    [Callable[[], None], torch.Tensor, torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, torch.Tensor],
]


class EpochGraph:
    """:func:`~digits_torch.train.epochs.train_epoch` for SGD on CUDA, as a graph (see above).

    Args:
        model: the network, on a CUDA device.
        optimizer: its ``torch.optim.SGD(..., fused=True)``, with one parameter group.
        X: (m, n) training images on that device; y: (m,) their labels.
        batches: what an epoch runs (:data:`Batches`), e.g. ``run_batches`` bound to the model
            and the run's recipe.
    """

    def __init__(
        self,
        model: MLP,
        optimizer: torch.optim.SGD,
        X: torch.Tensor,
        y: torch.Tensor,
        batches: Batches,
    ) -> None:
        if X.device.type != "cuda":
            raise ValueError(f"a CUDA graph needs CUDA tensors, got {X.device}")
        self.model, self.optimizer, self.batches = model, optimizer, batches
        # The graph reads these addresses on every replay: they are filled, never replaced.
        self.X, self.y = torch.empty_like(X), y  # (m, n), (m,)
        self.order = torch.empty(X.shape[0], dtype=torch.long, device=X.device)  # (m,)
        self.lr = torch.empty((), dtype=torch.float32, device=X.device)
        self.stream = torch.cuda.Stream(X.device)
        self.warmed_up = False
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple[torch.Tensor, torch.Tensor] = ()  # the graph's, once captured

    def __call__(
        self, X: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch on X (the training images, or this epoch's distorted copy of them).

        Returns what ``train_epoch`` returns: the epoch's mean objective and its accuracy.
        """
        self.model.train()
        self.order.copy_(torch.randperm(len(self.order), generator=generator))
        self.X.copy_(X)
        self.lr.fill_(self.optimizer.param_groups[0]["lr"])
        if not self.warmed_up:  # the first epoch: eager, on the stream the capture will use
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                step = optimizer_step(self.optimizer)
                result = self.batches(step, self.X, self.y, self.order)
            torch.cuda.current_stream().wait_stream(self.stream)
            self.warmed_up = True
            return result
        if self.graph is None:  # the second: capture (which runs nothing), then replay below
            step = optimizer_step(self.optimizer, lr=self.lr)
            if step == self.optimizer.step:
                raise ValueError("a CUDA graph needs a fused SGD whose first step is taken")
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=self.stream):
                self.outputs = self.batches(step, self.X, self.y, self.order)
        self.graph.replay()
        loss, accuracy = self.outputs
        return loss.clone(), accuracy.clone()  # the next replay overwrites the outputs
