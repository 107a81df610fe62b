"""A sweep's results as people look at them: results.csv, the closing table, the pictures.

* ``results.csv``: one row per network: its swept values and final metrics;
* ``validation_curve_<field>.png`` for each swept numeric field: training and validation accuracy
  (in two colours) against the field's value, mean and spread (one standard deviation) over
  seeds, a log axis for l2 and lr (symmetric-log where 0 is one of the values, which the axis
  label says): ex5's validation curve;
* ``heatmap_<a>_<b>.png`` where two fields are swept: mean validation accuracy over seeds;
* the closing table: configurations (all swept values but the seed) ranked by mean validation
  accuracy (training accuracy without a validation split), and the best network's directory.
  A configuration of one network (one seed) shows its value alone: one seed has no spread.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import plots
from ..plots.drawing import DPI
from ..store.files import write_atomically
from ..store.run_contents import RESULTS
from ..store.runs import value_text

if TYPE_CHECKING:  # matplotlib is imported where a picture is drawn: a sweep without one never pays
    from matplotlib.figure import Figure

__all__ = ["ranked_configurations", "report", "write_results"]

RESULT_COLUMNS = (  # of results.csv, from each network's metrics.json
    "train_accuracy",
    "val_accuracy",
    "val_loss",
    "train_loss",
    "epochs",
    "best_epoch",
)
LOG_AXIS = ("l2", "lr")


def write_results(sweep_dir: Path, grid: dict, networks: list) -> list[dict]:
    """results.csv; returns its rows (dicts: name, dir, the swept values, the metrics)."""
    rows = []
    for n in networks:
        metrics = n.metrics or {}
        row = {"name": n.name, "dir": n.dir.name if n.dir else ""}
        row.update({field: n.values[field] for field in grid})
        row.update({key: metrics.get(key) for key in RESULT_COLUMNS})
        row["stopped"] = metrics.get("stopped")
        rows.append(row)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {k: value_text(v) if isinstance(v, tuple) else v for k, v in r.items()} for r in rows
    )
    write_atomically(sweep_dir / RESULTS, text.getvalue().encode())
    return rows


def _score_key(rows: list[dict]) -> str:
    return "val_accuracy" if any(r["val_accuracy"] is not None for r in rows) else "train_accuracy"


def _mean_sd(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_sd_text(values: list[float | None]) -> str:
    """Percent "mean +- sd" of fractions; one value alone, without a spread it does not have."""
    mean, sd = _mean_sd(values)
    if mean != mean:
        return "-"
    return f"{100 * mean:.2f}" + (f" +- {100 * sd:.2f}" if _count(values) > 1 else "")


def _count(values: list[float | None]) -> int:
    return sum(v is not None for v in values)


def _configurations(grid: dict, rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows by their swept values other than the seed."""
    fields = [f for f in grid if f != "seed"]
    out: dict[tuple, list[dict]] = {}
    for row in rows:
        out.setdefault(tuple(row[f] for f in fields), []).append(row)
    return out


def ranked_configurations(grid: dict, rows: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """(swept values but the seed, their rows) by mean validation accuracy over seeds (training
    accuracy without a validation split), best first: the closing table's order."""
    key = _score_key(rows)
    return sorted(
        _configurations(grid, rows).items(),
        key=lambda item: -np.nan_to_num(_mean_sd([r[key] for r in item[1]])[0], nan=-1.0),
    )


def report(sweep_dir: Path, grid: dict, rows: list[dict]) -> str:
    """Draw the pictures into ``sweep_dir``; return the closing table."""
    draw_figures(sweep_dir, grid, rows)
    key = _score_key(rows)
    fields = [f for f in grid if f != "seed"]
    ranked = ranked_configurations(grid, rows)
    seeds = len(grid.get("seed", [0]))
    seeds = f" (mean +- sd over {seeds} seeds)" if seeds > 1 else " (one seed: no spread)"
    lines = [f"ranked by {key.replace('_', ' ')}{seeds}:"]
    head = ["#", *fields, "val acc %", "train acc %", "epochs"]
    table = [head]
    for rank, (values, members) in enumerate(ranked, 1):
        cells = [str(rank), *map(value_text, values)]
        for metric in ("val_accuracy", "train_accuracy"):
            cells.append(_mean_sd_text([r[metric] for r in members]))
        cells.append(f"{_mean_sd([r['epochs'] for r in members])[0]:.0f}")
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in table]
    best_members = ranked[0][1]
    best = max(best_members, key=lambda r: -1.0 if r[key] is None else r[key])
    lines.append(f"best run: {sweep_dir / best['dir']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- pictures


def _numeric(grid: dict, field: str) -> list[float] | None:
    values = grid[field]
    if field == "hidden" and all(len(v) == 1 for v in values):
        return [float(v[0]) for v in values]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    return None


def _log_axis(ax, values: list[float], axis: str = "x") -> str:
    """A log axis for ``values``; returns what its label must add ("log scale", and how 0 is
    placed where it is one of the values), or "" where the axis stays linear."""
    positive = [v for v in values if v > 0]
    set_scale = ax.set_xscale if axis == "x" else ax.set_yscale
    if not positive:
        return ""
    note = "log scale"
    if min(values) > 0:
        set_scale("log")
    else:  # 0 is one of the values: linear near 0, logarithmic beyond the smallest one
        set_scale("symlog", linthresh=min(positive))
        note += f"; 0 has no place on it: drawn one decade left of {min(positive):g}"
    (ax.set_xticks if axis == "x" else ax.set_yticks)(values, [f"{v:g}" for v in values])
    return note


def draw_figures(sweep_dir: Path, grid: dict, rows: list[dict]) -> list[Path]:
    """The validation curves and the heat map (see the module docstring); returns their paths."""
    fields = [f for f in grid if f != "seed"]
    paths = []
    for field in fields:
        xs = _numeric(grid, field)
        if xs is not None and len(xs) > 1:
            paths.append(_validation_curve(sweep_dir, grid, rows, field, xs))
    if len(fields) >= 2:
        paths.append(_heatmap(sweep_dir, grid, rows, fields[0], fields[1]))
    return paths


def _validation_curve(sweep_dir, grid, rows, field, xs) -> Path:
    path = sweep_dir / f"validation_curve_{field}.png"
    plots.save_png(plots.render(validation_curve(grid, rows, field, xs)), path)
    return path


def validation_curve(grid: dict, rows: list[dict], field: str, xs: list[float]) -> Figure:
    """Training and validation accuracy (%) against ``field``'s values ``xs`` (one per value of
    ``grid[field]``), a line pair per combination of the other swept fields; ``rows`` as
    :func:`write_results` returns them."""
    from matplotlib.figure import Figure

    others = [f for f in grid if f not in (field, "seed")]
    figure = Figure(figsize=(6.4, 4.4), dpi=DPI)
    ax = figure.add_subplot()
    lines: dict[tuple, list[dict]] = {}
    for row in rows:
        lines.setdefault(tuple(row[f] for f in others), []).append(row)
    order = np.argsort(xs)
    for i, (values, members) in enumerate(lines.items()):
        label = ", ".join(f"{f}={value_text(v)}" for f, v in zip(others, values))
        # a colour each, as the learning curves have them: training blue, validation orange
        for metric, style, name, colour in (
            ("train_accuracy", "--", "training", f"C{(2 * i) % 10}"),
            ("val_accuracy", "-", "validation", f"C{(2 * i + 1) % 10}"),
        ):
            stats = [
                _mean_sd([r[metric] for r in members if r[field] == grid[field][j]]) for j in order
            ]
            mean = np.array([s[0] for s in stats]) * 100
            sd = np.array([s[1] for s in stats]) * 100
            if np.all(np.isnan(mean)):
                continue
            x = np.array(xs)[order]
            ax.plot(x, mean, style, color=colour, marker="o", label=f"{name} {label}".strip())
            ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.15, linewidth=0)
    note = _log_axis(ax, xs) if field in LOG_AXIS else ""
    seeds = len(grid.get("seed", [0]))
    ax.set_xlabel(field + (f" ({note})" if note else ""))
    ax.set_ylabel("accuracy %")
    spread = f"mean ± sd over {seeds} seeds" if seeds > 1 else "one seed"
    ax.set_title(f"accuracy against {field}: {spread}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9, framealpha=0.9)
    figure.tight_layout()
    return figure


def _heatmap(sweep_dir, grid, rows, a, b) -> Path:
    from matplotlib.figure import Figure

    key = _score_key(rows)
    table = np.full((len(grid[a]), len(grid[b])), np.nan)
    for i, va in enumerate(grid[a]):
        for j, vb in enumerate(grid[b]):
            table[i, j] = _mean_sd([r[key] for r in rows if r[a] == va and r[b] == vb])[0] * 100
    figure = Figure(figsize=(1.2 * len(grid[b]) + 2.5, 0.7 * len(grid[a]) + 2), dpi=DPI)
    ax = figure.add_subplot()
    image = ax.imshow(table, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(grid[b])), [value_text(v) for v in grid[b]])
    ax.set_yticks(range(len(grid[a])), [value_text(v) for v in grid[a]])
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    low, high = np.nanmin(table), np.nanmax(table)
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            dark = table[i, j] < (low + high) / 2
            ax.text(
                j,
                i,
                f"{table[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if dark else "black",
                fontsize=8,
            )
    figure.colorbar(image, ax=ax, label=f"mean {key.replace('_', ' ')} %")
    figure.tight_layout()
    path = sweep_dir / f"heatmap_{a}_{b}.png"
    plots.save_png(plots.render(figure), path)
    return path
