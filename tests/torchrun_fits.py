"""Trains several runs in one torchrun job, for test_torchrun.py: a job of three processes (the
launcher and two ranks) instead of one per run, since each process spends seconds importing torch.

    torchrun --standalone --nproc_per_node=2 tests/torchrun_fits.py CASES.json

CASES.json: a list of ``make_config`` keyword arguments, each a run of the ``seed`` preset. The
job's process group is made here, once; ``fit`` then trains across the group its caller made, as
its docstring allows, rather than making and ending one per run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from digits_torch import fit, make_config


def main(cases_file: str) -> None:
    cases = json.loads(Path(cases_file).read_text())
    dist.init_process_group("gloo")
    try:
        for fields in cases:
            fit(make_config("seed", **fields))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
