"""Imported at start-up by every Python process that has this folder on its PYTHONPATH (the
torchrun jobs of test_torchrun.py and test_sweep_ranks.py): at exit, each rank of a job says
on stderr which of gloo's threads are still running.

None should be: the process group is over by then, and a backend's threads that outlive it run
on into the interpreter's teardown, where a peer rank closing its sockets can abort the process
("terminate called without an active exception").
"""

from __future__ import annotations

import atexit
import os
import sys

TASKS = "/proc/self/task"  # one folder per thread of this process (Linux)


def gloo_threads() -> list[str]:
    """The names of this process's threads that belong to gloo (its TCP loop, its workers)."""
    names = []
    for task in os.listdir(TASKS):
        try:
            with open(os.path.join(TASKS, task, "comm")) as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:  # a thread that ended since the listing: not running
            continue
    return sorted(name for name in names if "gloo" in name)


def _say() -> None:
    # one write, newline and all: another rank's line cannot land inside it
    line = f"rank {os.environ['RANK']}: gloo threads at exit: {gloo_threads()}\n"
    sys.stderr.flush()
    os.write(sys.stderr.fileno(), line.encode())


if "RANK" in os.environ:  # a rank torchrun started, not torchrun itself
    atexit.register(_say)  # registered first, so it runs after every other exit handler
