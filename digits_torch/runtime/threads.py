"""CPU threads: how many torch uses for a run, set in one place for the run's duration.

One thread is the default (``TrainConfig.threads``), chosen by measurement (docs/speed.md): this
network's operations are so small that a second thread saves little on an idle machine, and on a
busy one every parallel region waits for a thread the OS has descheduled, thousands of times an
epoch. The thread count changes how torch splits its sums, so it changes the last bits of the
results: runs are bit-for-bit repeatable at the same thread count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["cpu_threads"]


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[int]:
    """torch's intra-op thread count set to ``count`` inside the block (0: torch's own, by default
    one per physical core), and what it was restored after. Yields the count in effect."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
