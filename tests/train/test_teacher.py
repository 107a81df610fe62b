"""A distilled run's teacher: named, or trained first on the same split; kept for its resume."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import sys

import pytest
import torch

import digits_torch.train.epochs
from digits_torch import fit, load_model, make_config, resume
from digits_torch.cli import train as cli
from digits_torch.inference.loading import load_trained
from digits_torch.store.checkpoints import LATEST, load_checkpoint
from digits_torch.store.runs import read_history
from digits_torch.train.run_setup import TEACHER
from digits_torch.train.teachers import TEACHERS


def _config(data, logdir, **changes):
    base = dict(
        data=str(data), device="cpu", quiet=True, figures=False, logdir=str(logdir),
        batch_size=10, val_fraction=0.25, image_every=0,
    )  # fmt: skip
    return make_config("seed", **{**base, **changes})


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, small_digits):
    logdir = tmp_path_factory.mktemp("teachers")
    return fit(_config(small_digits, logdir, hidden=(50,), lr=0.1, epochs=5)).run_dir


def test_a_resume_distils_from_its_own_copy_of_the_teacher(tmp_path, small_digits, teacher):
    mine = tmp_path / "teacher"
    shutil.copytree(teacher, mine)
    config = _config(small_digits, tmp_path / "runs", teacher=str(mine), epochs=6, lr=0.05)
    whole = fit(config)
    part = fit(dataclasses.replace(config, epochs=3))
    assert torch.equal(load_trained(part.run_dir / TEACHER).model.layers[0].weight.cpu(),
                       load_model(mine).layers[0].weight)  # fmt: skip
    # the teacher's run is replaced by another network; the resume does not see it
    other = fit(_config(small_digits, tmp_path / "other", hidden=(50,), seed=1, epochs=1))
    shutil.rmtree(mine)
    shutil.copytree(other.run_dir, mine)
    assert not torch.equal(load_model(mine).layers[0].weight, load_model(teacher).layers[0].weight)
    resumed = resume(part.run_dir, epochs=6, quiet=True)
    a, b = load_checkpoint(resumed.run_dir / LATEST), load_checkpoint(whole.run_dir / LATEST)
    for name, value in b["model"].items():
        assert torch.equal(a["model"][name], value), name
    assert json.loads((part.run_dir / "config.json").read_text())["teacher"] == str(mine)


def test_distillation_changes_what_is_learned(tmp_path, small_digits, teacher):
    plain = fit(_config(small_digits, tmp_path, epochs=3, lr=0.05))
    taught = fit(_config(small_digits, tmp_path, epochs=3, lr=0.05, teacher=str(teacher)))
    assert plain.history[-1]["train_loss"] != taught.history[-1]["train_loss"]
    assert (taught.run_dir / TEACHER).exists() and not (plain.run_dir / TEACHER).exists()


def test_a_teacher_preset_trains_on_the_students_split_once(tmp_path, small_digits, capsys):
    config = _config(small_digits, tmp_path, teacher_preset="teacher", epochs=2)
    first = fit(config)
    (teacher,) = (tmp_path / TEACHERS).iterdir()
    assert first.config.teacher == str(teacher) and "-teacher" in teacher.name
    split = json.loads((teacher / "split.json").read_text())
    student = json.loads((first.run_dir / "split.json").read_text())
    assert split == {k: student[k] for k in ("train", "val", "data_sha256")}  # the same digits
    taught = json.loads((teacher / "config.json").read_text())
    assert (taught["seed"], taught["hidden"], taught["aug_elastic"]) == (0, [400], [10.0, 2.9])
    assert "teacher=" not in first.run_dir.name  # named by its preset, not by its path
    second = fit(config)
    assert second.config.teacher == str(teacher)
    assert len(list((tmp_path / TEACHERS).iterdir())) == 1
    other_seed = fit(dataclasses.replace(config, seed=1))
    assert other_seed.config.teacher != str(teacher)  # another split, another teacher


def _stop_in_epoch_3(monkeypatch) -> None:
    """Ctrl-C in the teacher's 3rd epoch (its augmentation is the first thing an epoch does)."""
    calls, real = [], digits_torch.train.epochs.random_affine

    def stop_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(digits_torch.train.epochs, "random_affine", stop_in_epoch_3)


def test_a_stopped_teacher_is_resumed_not_trained_again(tmp_path, small_digits, monkeypatch):
    config = _config(small_digits, tmp_path, teacher_preset="teacher", epochs=2)
    _stop_in_epoch_3(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        fit(dataclasses.replace(config, checkpoint_every=0))
    monkeypatch.undo()
    (teacher,) = (tmp_path / TEACHERS).iterdir()
    assert load_checkpoint(teacher / LATEST)["epoch"] == 2
    student = fit(config)
    assert (
        student.config.teacher == str(teacher) and len(list((tmp_path / TEACHERS).iterdir())) == 1
    )
    assert [r["epoch"] for r in read_history(teacher)] == list(range(1, 101))


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda d, t: str(d / "nowhere.pt"), r"nowhere\.pt: no such file or directory"),
        (lambda d, t: str(t / "split.json"), r"split\.json: "),
    ],
)
def test_a_teacher_that_is_no_model_is_one_error_line(
    make, problem, tmp_path, small_digits, teacher, run_entry
):
    argv = ["--preset", "seed", "--data", str(small_digits), "--logdir", str(tmp_path / "runs")]
    ran = run_entry(lambda: cli.main([*argv, "--teacher", make(tmp_path, teacher)]))
    (line,) = ran.stderr.splitlines()
    assert ran.code == 2 and line.startswith("error: ")
    assert re.search(problem, line), line
    assert not (tmp_path / "runs").exists()


def test_a_teacher_trained_on_ex4s_cost_or_other_pixels_is_refused(
    tmp_path, small_digits, run_entry
):
    coursera = fit(_config(small_digits, tmp_path / "t", loss="coursera", epochs=1)).run_dir
    argv = ["--preset", "seed", "--data", str(small_digits), "--logdir", str(tmp_path / "runs")]
    ran = run_entry(lambda: cli.main([*argv, "--teacher", str(coursera)]))
    assert ran.code == 2 and "a teacher must be trained with --loss softmax" in ran.stderr
    assert not (tmp_path / "runs").exists()


def test_a_run_with_a_teacher_says_its_plan_and_ctrl_c_resumes_the_whole_command(
    tmp_path, small_digits, monkeypatch, run_entry
):
    """The plan at the start (both networks, in order, the flag without a teacher); Ctrl-C in
    the teacher prints a command that finishes it and then trains the student too."""
    argv = ["--preset", "distilled", "--data", str(small_digits), "--device", "cpu",
            "--epochs", "2", "--no-figures", "--image-every", "0", "--checkpoint-every", "0",
            "--logdir", str(tmp_path / "my runs")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    _stop_in_epoch_3(monkeypatch)
    ran = run_entry(lambda: cli.main(argv))
    monkeypatch.undo()
    assert ran.code == 130
    plan = ran.stderr.split("\n\n")[0].splitlines()
    assert plan[0].startswith("plan: 1. train a teacher, 400-400-10 (teacher preset, 100 epochs")
    assert plan[1] == f"         into {tmp_path / 'my runs' / TEACHERS}/"
    assert plan[2].startswith("      2. train 400-25-10 from the teacher's outputs (distilled")
    assert plan[3].startswith("      --preset tuned trains 400-25-10 alone, without a teacher")
    (teacher,) = (tmp_path / "my runs" / TEACHERS).iterdir()
    said = ran.stderr.strip().splitlines()[-1]
    assert said.startswith("resume with: python train.py ") and said.endswith(
        "(the same command: it finishes this teacher, then trains its student)"
    )
    again = shlex.split(said.removeprefix("resume with: ").split("   (")[0])
    assert again == ["python", "train.py", *argv]  # the path with a space survives the shell
    monkeypatch.setattr(sys, "argv", again[1:])
    ran = run_entry(lambda: cli.main(again[2:]))
    assert ran.code == 0, ran.stderr
    assert f"plan: 1. finish the stopped teacher in {teacher}\n" in ran.stderr
    done = (
        r"teacher: done, 100 epochs in [\d.]+ s; accuracy training 0\.\d{4}, validation 0\.\d{4}; "
    )
    assert re.search(done + re.escape(str(teacher)) + "$", ran.stderr, re.M)
    assert [r["epoch"] for r in read_history(teacher)] == list(range(1, 101))
    (student,) = (p for p in (tmp_path / "my runs").iterdir() if p.name != TEACHERS)
    assert (student / "metrics.json").exists() and ran.value.run_dir == student
    ran = run_entry(lambda: cli.main(again[2:]))  # a third time: the teacher is only used
    assert f"plan: 1. use the teacher that finished in {teacher}\n" in ran.stderr
    assert "teacher: done" not in ran.stderr
