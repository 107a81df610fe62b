"""A teacher is what it claims, and a run trains on what it started on (issue 32, items 2 to 5):
a teacher trained on the student's own split (or the user says it need not be), the data file
recorded by its SHA-256 and a changed one refused on resume, a teacher's best.pt that is its
run's own model, a teacher.pt as recorded, a teacher not still training, and a split.json whose
rows are rows. Each refusal is one ``error:`` line, exit 2, and writes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import one_error

from digits_torch import fit, make_config, resume
from digits_torch.cli import plots as plots_main
from digits_torch.cli import train as cli
from digits_torch.inference import evaluate
from digits_torch.inference.export import export_model
from digits_torch.store.checkpoints import BEST, load_checkpoint, save_checkpoint
from digits_torch.store.run_contents import SPLIT, TEACHER
from digits_torch.store.runs import RunLock
from digits_torch.train.teachers import TEACHERS


def _config(data, logdir, **changes):
    base = dict(
        data=str(data), device="cpu", quiet=True, figures=False, logdir=str(logdir),
        batch_size=10, val_fraction=0.25, image_every=0, epochs=2,
    )  # fmt: skip
    return make_config("seed", **{**base, **changes})


def _files(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory, small_digits) -> Path:
    """A copy of ``small_digits`` of this module's own (tests replace it in place)."""
    return Path(shutil.copy(small_digits, tmp_path_factory.mktemp("data") / "digits.mat"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, data) -> Path:
    """A finished seed-0 teacher run on ``data`` (val fraction 0.25)."""
    logdir = tmp_path_factory.mktemp("teachers")
    return fit(_config(data, logdir, hidden=(30,), lr=0.1, epochs=3)).run_dir


def _student_argv(data, logdir, *more) -> list[str]:
    return [
        "--preset", "seed", "--data", str(data), "--logdir", str(logdir), "--device", "cpu",
        "--quiet", "--no-figures", "--epochs", "1", "--val-fraction", "0.25", "--batch-size",
        "10", *more,
    ]  # fmt: skip


# ----------------------------------------------------------------- item 2: the student's split


def test_a_teacher_of_another_seed_is_refused_unless_the_user_says(
    tmp_path, data, teacher, run_entry
):
    argv = _student_argv(data, tmp_path / "runs", "--teacher", str(teacher), "--seed", "3")
    line = one_error(run_entry(lambda: cli.main(argv)), f"error: {teacher}: it trained on ")
    assert "validation digits" in line and "--teacher-any-split" in line
    assert not (tmp_path / "runs").exists()
    ran = run_entry(lambda: cli.main([*argv, "--teacher-any-split"]))
    assert ran.code == 0 and ran.value.config.teacher == str(teacher), ran.stderr
    same = run_entry(
        lambda: cli.main(_student_argv(data, tmp_path / "b", "--teacher", str(teacher)))
    )
    assert same.code == 0, same.stderr  # its own split: taught


def test_a_model_file_or_other_data_teaches_only_where_the_user_says(
    tmp_path, data, small_digits, teacher, run_entry, digits
):
    model = tmp_path / "t.safetensors"
    export_model(teacher, "safetensors", model)
    argv = _student_argv(data, tmp_path / "runs", "--teacher", str(model))
    one_error(run_entry(lambda: cli.main(argv)), f"{model}: a model file, not a run")
    assert run_entry(lambda: cli.main([*argv, "--teacher-any-split"])).code == 0
    whole = _student_argv(data, tmp_path / "all", "--teacher", str(model), "--val-fraction", "0")
    assert run_entry(lambda: cli.main(whole)).code == 0  # no validation digits to flatter
    other = tmp_path / "other.mat"  # the same digits, another file: another SHA-256
    X, y = scipy.io.loadmat(data)["X"], scipy.io.loadmat(data)["y"]
    scipy.io.savemat(other, {"X": X * 0.5, "y": y})
    argv = _student_argv(other, tmp_path / "runs", "--teacher", str(teacher))
    one_error(run_entry(lambda: cli.main(argv)), "another data file than this run's")


def test_a_distilled_runs_config_with_another_seed_trains_that_seeds_teacher(
    tmp_path, data, run_entry
):
    """The README's recipe: ``--config RUN/config.json --seed 3`` re-runs RUN with seed 3, its
    teacher too (not seed 0's, which trained on most of seed 3's validation digits)."""
    first = fit(_config(data, tmp_path, teacher_preset="teacher"))
    argv = ["--config", str(first.run_dir / "config.json"), "--seed", "3"]
    ran = run_entry(lambda: cli.main(argv))
    assert ran.code == 0, ran.stderr
    taught = Path(ran.value.config.teacher)
    assert taught != Path(first.config.teacher) and taught.parent == tmp_path / TEACHERS
    assert json.loads((taught / "config.json").read_text())["seed"] == 3
    student, its = (json.loads((d / SPLIT).read_text()) for d in (ran.value.run_dir, taught))
    assert not set(its["train"]) & set(student["val"])
    again = run_entry(lambda: cli.main(argv))  # found, not trained again
    assert again.value.config.teacher == str(taught) and len(list(taught.parent.iterdir())) == 2
    explicit = run_entry(lambda: cli.main([*argv, "--teacher-any-split"]))  # as the file says
    assert explicit.value.config.teacher == first.config.teacher


# ----------------------------------------------------------------- item 3: what the data was


def test_a_resume_on_a_data_file_changed_in_place_is_refused(tmp_path, data, run_entry):
    mine = Path(shutil.copy(data, tmp_path / "digits.mat"))
    run = fit(_config(mine, tmp_path / "runs", epochs=1)).run_dir
    recorded = json.loads((run / SPLIT).read_text())["data_sha256"]
    assert recorded == hashlib.sha256(mine.read_bytes()).hexdigest()
    contents = scipy.io.loadmat(mine)
    scipy.io.savemat(mine, {"X": contents["X"][::-1], "y": contents["y"][::-1]})
    before = _files(run)
    ran = run_entry(lambda: resume(run, epochs=3))
    one_error(ran, f"error: {mine}: changed since the run started", "put that file back")
    assert _files(run) == before


def test_teachers_are_found_by_their_data_not_its_path(tmp_path, data):
    mine = Path(shutil.copy(data, tmp_path / "digits.mat"))
    config = _config(mine, tmp_path, teacher_preset="teacher", epochs=1)
    first = fit(config)
    contents = scipy.io.loadmat(mine)
    scipy.io.savemat(mine, {"X": contents["X"] * 0.5, "y": contents["y"]})
    second = fit(config)
    assert second.config.teacher != first.config.teacher
    assert len(list((tmp_path / TEACHERS).iterdir())) == 2


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_data_that_is_no_regular_file_is_refused_before_it_is_hashed(kind, tmp_path, run_entry):
    """The default preset looks for its teacher by the data's SHA-256 first: a FIFO or
    /dev/zero is refused, not read for ever."""
    if kind == "fifo":
        os.mkfifo(tmp_path / "digits.mat")
    source = tmp_path / "digits.mat" if kind == "fifo" else Path("/dev/zero")
    ran = run_entry(lambda: cli.main(["--data", str(source), "--logdir", str(tmp_path / "runs")]))
    one_error(ran, f"error: {source}: ")
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------- item 4: the teacher itself


@pytest.mark.parametrize("how", ["replaced", "linked"])
@pytest.mark.parametrize("other", [dict(activation="relu"), dict(activation="sigmoid")])
def test_a_teachers_best_pt_that_is_not_its_runs_model_is_refused(
    how, other, tmp_path, data, teacher, run_entry
):
    mine = Path(shutil.copytree(teacher, tmp_path / "teacher"))
    stranger = fit(_config(data, tmp_path / "s", hidden=(25,), epochs=1, **other)).run_dir
    (mine / BEST).unlink()
    if how == "linked":
        (mine / BEST).symlink_to(stranger / BEST)
    else:
        shutil.copy(stranger / BEST, mine / BEST)
    argv = _student_argv(data, tmp_path / "runs", "--teacher", str(mine))
    line = one_error(run_entry(lambda: cli.main(argv)), f"error: {mine / BEST}: holds a 400-25-10")
    assert "config.json builds a 400-30-10" in line and "not the run's own model" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("how", ["replaced", "linked"])
def test_a_runs_teacher_pt_replaced_or_linked_is_refused_on_resume(
    how, tmp_path, data, teacher, run_entry
):
    run = fit(_config(data, tmp_path / "runs", teacher=str(teacher), epochs=1)).run_dir
    copy = tmp_path / "copy.pt"
    shutil.copy(run / TEACHER, copy)
    if how == "linked":  # the very same bytes, but a link: what it names may change
        (run / TEACHER).unlink()
        (run / TEACHER).symlink_to(copy)
        problem = "a link, not the run's own copy of its teacher"
    else:
        state = load_checkpoint(copy)
        state["model"] = {k: v * 2 for k, v in state["model"].items()}
        save_checkpoint(state, run / TEACHER)
        problem = "not the teacher the run started with"
    before = _files(run)
    ran = run_entry(lambda: resume(run, epochs=3))
    one_error(ran, f"error: {run / TEACHER}: {problem}")
    assert _files(run) == before


def test_a_teacher_still_training_is_refused(tmp_path, data, teacher, run_entry):
    mine = Path(shutil.copytree(teacher, tmp_path / "teacher"))
    with RunLock(mine):  # as the process training it holds it
        argv = _student_argv(data, tmp_path / "runs", "--teacher", str(mine))
        line = one_error(run_entry(lambda: cli.main(argv)), f"error: {mine}: still training (pid")
        assert "wait for it to end" in line
    assert not (tmp_path / "runs").exists()
    assert run_entry(lambda: cli.main(argv)).code == 0  # once it has stopped


# ----------------------------------------------------------------- item 5: split.json's rows


@pytest.mark.parametrize(
    "rows, problem",
    [
        ([-1, 2], "val rows must be whole numbers >= 0, got -1"),
        ([1.0, 2], "val rows must be whole numbers >= 0, got 1.0"),
        ([True, 2], "val rows must be whole numbers >= 0, got True"),
        ([2, 2], "a row is named twice"),
        ("1,2", "val must be a list of rows, got str"),
    ],
)
def test_hand_edited_split_rows_are_refused(rows, problem, tmp_path, teacher, run_entry):
    run = Path(shutil.copytree(teacher, tmp_path / "run"))
    split = json.loads((run / SPLIT).read_text())
    (run / SPLIT).write_text(json.dumps({**split, "val": rows}))
    before = _files(run)
    for call in (
        lambda: evaluate.main([str(run)]),
        lambda: plots_main.main([str(run), "--out", str(tmp_path / "pictures")]),
        lambda: resume(run, epochs=4),
    ):
        one_error(run_entry(call), f"error: {run / SPLIT}: {problem}")
    assert _files(run) == before and not (tmp_path / "pictures").exists()


def test_a_split_json_with_rows_of_another_run_is_refused_on_resume(tmp_path, teacher, run_entry):
    run = Path(shutil.copytree(teacher, tmp_path / "run"))
    split = json.loads((run / SPLIT).read_text())
    moved = {**split, "train": split["train"][1:], "val": [*split["val"], split["train"][0]]}
    (run / SPLIT).write_text(json.dumps(moved))
    ran = run_entry(lambda: resume(run, epochs=4))
    one_error(ran, f"error: {run / SPLIT}: its rows are not those the run's config picks")


def test_every_run_records_its_data_and_teacher(tmp_path, data, teacher):
    run = fit(_config(data, tmp_path, teacher=str(teacher), epochs=1)).run_dir
    split = json.loads((run / SPLIT).read_text())
    assert split["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert split["teacher_sha256"] == hashlib.sha256((run / TEACHER).read_bytes()).hexdigest()
    assert np.array_equal(sorted(split["train"] + split["val"]), np.arange(40))
    assert not os.path.islink(run / TEACHER)
