"""No command writes over a file a run or a sweep keeps (issue 32, item 1): every file in
:mod:`digits_torch.store.run_contents`'s one list, through every command that writes a file the user
names (``evaluate --json``, ``compare --json``, ``predict --json``, ``export``, ``plots --out``).
Each refusal is one ``error:`` line, exit 2, before any work, and changes no file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from digits_torch import fit, make_config
from digits_torch.cli import compare
from digits_torch.cli import plots as plots_main
from digits_torch.inference import evaluate, export, predict
from digits_torch.store.run_contents import RUN_FILES, SWEEP_FILES, TEACHER, owner_of


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, trained_run, small_digits) -> Path:
    """A finished distilled run (it keeps teacher.pt) on ``small_digits``, taught by
    ``trained_run`` (same data, seed and split)."""
    logdir = tmp_path_factory.mktemp("distilled")
    config = make_config(
        "seed", data=str(small_digits), epochs=2, device="cpu", logdir=str(logdir), quiet=True,
        figures=False, teacher=str(trained_run),
    )  # fmt: skip
    return fit(config).run_dir


@pytest.fixture
def place(distilled, tmp_path) -> Path:
    """A copy of the distilled run, and a sweep directory beside it holding its files."""
    shutil.copytree(distilled, tmp_path / "run")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for name in (*SWEEP_FILES, "progress-rank1.json", "validation_curve_l2.png"):
        (sweep / name).write_text("{}\n")
    return tmp_path


def _files(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "seven.png"
    PIL.Image.fromarray(np.full((20, 20), 128, np.uint8)).save(path)
    return path


OWNED = [f"run/{name}" for name in RUN_FILES] + [
    "run/events.out.tfevents.1.host.1",
    "run/figures/confusion.png",
    *(f"sweep/{name}" for name in SWEEP_FILES),
    "sweep/progress-rank1.json",
    "sweep/validation_curve_l2.png",
]


def test_the_one_list_names_every_file_a_run_keeps(distilled):
    kept = {p.name for p in distilled.iterdir() if p.is_file()}
    assert TEACHER in kept and kept <= set(RUN_FILES) | {p for p in kept if "tfevents" in p}
    for name in kept:
        assert owner_of(distilled / name) == ("run", distilled), name


@pytest.mark.parametrize("owned", OWNED)
@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_no_command_writes_over_a_file_a_run_or_sweep_keeps(command, owned, place, run_entry):
    image = _image(place.parent)
    target, run = place / owned, place / "run"
    before = _files(place)
    argv = {
        "evaluate": lambda: evaluate.main([str(run), "--json", str(target)]),
        "predict": lambda: predict.main([str(run), str(image), "--json", str(target)]),
        "export": lambda: export.main([str(run), "--format", "safetensors", str(target)]),
    }[command]
    ran = run_entry(argv)
    kind, folder = ("run", run) if owned.startswith("run/") else ("sweep", place / "sweep")
    expected = f"error: {target}: is a file of the {kind} {folder}, which it needs; refusing"
    if (command, owned) == ("export", "run/best.pt"):  # the file exported from: said first
        expected = f"error: {target}: is the model being exported; refusing"
    assert ran.code == 2 and ran.stderr.startswith(expected), ran.stderr
    assert len(ran.stderr.splitlines()) == 1
    assert _files(place) == before


@pytest.mark.parametrize("owned", ["run/teacher.pt", "sweep/sweep.json", "sweep/progress.json"])
def test_compare_json_and_a_link_to_an_owned_file_are_refused_too(owned, place, run_entry):
    link = place / "out.json"
    link.symlink_to(place / owned)
    before = _files(place)
    argv = ["--epochs", "2", "--device", "cpu", "--logdir", str(place / "runs")]
    for target in (place / owned, link):
        ran = run_entry(lambda t=target: compare.main([*argv, "--json", str(t)]))
        assert ran.code == 2 and "which it needs; refusing to write over it" in ran.stderr
        assert len(ran.stderr.splitlines()) == 1
    assert _files(place) == before and not (place / "runs").exists()


def test_plots_out_into_another_runs_figures_is_refused(trained_run, place, run_entry):
    before = _files(place)
    out = place / "run" / "figures"
    ran = run_entry(lambda: plots_main.main([str(trained_run), "--out", str(out)]))
    assert ran.code == 2 and "is a file of the run" in ran.stderr, ran.stderr
    assert _files(place) == before


def test_a_file_beside_a_run_is_still_written(place, run_entry):
    out = place / "run" / "notes.json"
    ran = run_entry(lambda: evaluate.main([str(place / "run"), "--json", str(out)]))
    assert ran.code == 0, ran.stderr
    assert json.loads(out.read_text())["n"] == 40


@pytest.mark.parametrize("folder", ["run/figures", "sweep"])
def test_predict_shows_no_pictures_among_a_runs_or_sweeps(folder, place, run_entry):
    image = _image(place.parent)
    before = _files(place)
    show = place / folder
    ran = run_entry(lambda: predict.main([str(place / "run"), str(image), "--show", str(show)]))
    assert ran.code == 2 and len(ran.stderr.splitlines()) == 1, ran.stderr
    assert ran.stderr.startswith(f"error: {show}: holds the pictures of the ")
    assert _files(place) == before
