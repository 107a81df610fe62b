"""A sweep's networks' pictures, drawn once every network has trained: drawing never holds up
a stack.

Which networks (``python -m digits_torch sweep``):

* by default, the best configuration's: the networks of the closing table's first row (each of
  its seeds; one network in a one-seed sweep). Those are the pictures a sweep is run to find;
  every network's cost about half a CPU second each (2-core machine, busy, 2026-12-07), three
  times what a network of the article's recipe takes to train for 60 epochs in a stack of 64;
* ``--figures``: every network's;
* ``--no-figures``: none.

A network's pictures are those ``train.py`` draws at the end of a run (``figures/`` and
TensorBoard's ``figures/*`` images at its last epoch), of its best.pt on its own split; any
other network's can be drawn later with ``python -m digits_torch plots <network dir>``.
"""

from __future__ import annotations

from pathlib import Path

from .. import plots
from ..config.config import TrainConfig
from ..config.plan import make_plan
from ..core.data import load_digits
from ..inference.loading import load_model
from ..store.events import EventFile
from ..store.run_log import image_summary
from ..store.runs import RunLock, read_config, read_metrics, read_split
from .report import ranked_configurations

__all__ = ["MODES", "draw_network", "figures_mode", "pictured"]

MODES = ("best", "every", "none")  # whose pictures a sweep draws: the best networks' by default


def figures_mode(given: dict) -> str:
    """The mode from the flags (``figures``: True for ``--figures``, False for
    ``--no-figures``, absent for neither)."""
    figures = given.get("figures")
    return "best" if figures is None else "every" if figures else "none"


def pictured(mode: str, grid: dict, rows: list[dict]) -> list[dict]:
    """The rows (of results.csv, with their ``dir``) of the networks whose pictures are drawn."""
    if mode == "none":
        return []
    if mode == "every":
        return [row for row in rows if row["dir"]]
    best = ranked_configurations(grid, rows)[0][1]
    return [row for row in best if row["dir"]]


def draw_network(run_dir: Path) -> None:
    """A finished network's pictures, as its run would have drawn them at its end, holding its
    lock: the PNGs into figures/ and the mistakes and confusion in TensorBoard."""
    with RunLock(run_dir):
        recipe = make_plan(TrainConfig.from_dict(read_config(run_dir))).recipe
        model = load_model(run_dir)
        X, y = load_digits(recipe.data)
        train, val = read_split(run_dir)
        held_out = (X[val], y[val]) if len(val) else None
        data = (X, y)
        images = plots.write_run_figures(model, (X[train], y[train]), held_out, run_dir, data)
        epoch = read_metrics(run_dir)["epochs"]
        events = EventFile(run_dir)
        try:
            for name in plots.TENSORBOARD_FIGURES:
                events.add_summary(image_summary(f"figures/{name}", images[name]), epoch)
        finally:
            events.close()
