"""Messages that say what happened and what to do about it: errors said whatever the
environment, a teacher's problem named as the teacher's, refusals before any work is done."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import digits_torch.store.run_log
from digits_torch import fit, make_config
from digits_torch.cli.train import main as cli_main
from digits_torch.errors import UserError, one_line
from digits_torch.inference import evaluate
from digits_torch.store.runs import METRICS, RunLock
from digits_torch.sweep import sweep
from digits_torch.train.teachers import teacher_config


def test_an_exception_is_said_on_one_line_cut_and_named_where_it_has_no_words():
    assert one_line(ValueError("bad\n  header\tat 3")) == "bad header at 3"
    assert one_line(KeyError(101)) == "KeyError 101"  # the type says more than the key
    assert one_line(OSError()) == "OSError"
    cut = one_line(ValueError("x" * 200))
    assert len(cut) == 120 and cut.endswith("x...")
    boilerplate = re.compile("please file", re.IGNORECASE)
    assert one_line(RuntimeError("no key w\nPlease file an issue"), boilerplate) == "no key w"


def test_a_run_lock_is_held_inside_its_with_block_and_free_after(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(UserError, match="in use"):
            RunLock(tmp_path)
    with RunLock(tmp_path):  # free again
        pass


def test_a_stray_rank_without_a_world_size_still_says_its_errors(monkeypatch, run_entry):
    monkeypatch.setenv("RANK", "3")  # left set by a shell; no torchrun job: a process alone
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ran = run_entry(lambda: cli_main(["--lr", "-1"]))
    assert (ran.code, ran.stderr) == (2, "error: lr must be positive\n")
    ran = run_entry(lambda: cli_main(["--ephocs", "3"]))
    assert (ran.code, ran.stderr) == (
        2,
        "error: unrecognized arguments: --ephocs 3 (did you mean --epochs?)\n",
    )


def test_a_teacher_that_cannot_take_the_students_flags_is_named(tmp_path, run_entry):
    argv = ["--val-fraction", "0", "--stop-on", "train_loss", "--logdir", str(tmp_path / "runs")]
    ran = run_entry(lambda: cli_main(argv))
    assert ran.code == 2
    assert ran.stderr == (
        "error: the teacher this run trains first (--teacher-preset teacher): stop on "
        "val_accuracy needs a validation split (--val-fraction > 0)\n"
    )
    assert not (tmp_path / "runs").exists()


def test_a_teacher_preset_that_trains_no_softmax_is_refused_before_training(tmp_path, run_entry):
    argv = ["--teacher-preset", "coursera", "--logdir", str(tmp_path / "runs")]
    ran = run_entry(lambda: cli_main(argv))
    assert ran.code == 2
    assert ran.stderr == (
        "error: --teacher-preset coursera trains with --loss coursera; a teacher must be "
        "trained with --loss softmax (its outputs are softened into the student's targets)\n"
    )
    assert not (tmp_path / "runs").exists()


def test_a_teacher_another_run_is_training_is_named_as_such(small_digits, tmp_path, run_entry):
    logdir = tmp_path / "runs"
    student = ["--data", str(small_digits), "--epochs", "1", "--logdir", str(logdir)]
    student += ["--no-figures", "--device", "cpu"]
    config = make_config(
        "distilled", data=str(small_digits), epochs=1, logdir=str(logdir), quiet=True,
        figures=False, device="cpu",
    )  # fmt: skip
    teacher = fit(teacher_config(config)).run_dir
    (teacher / METRICS).unlink()  # as a teacher still training has no metrics.json yet
    with RunLock(teacher):  # the other run, training it
        ran = run_entry(lambda: cli_main([*student, "--quiet"]))
    assert ran.code == 2
    assert ran.stderr.startswith(f"error: {teacher}: in use (pid ")
    assert ran.stderr.endswith(
        "): another run is training the teacher this run needs (--teacher-preset teacher, on "
        "the same digits and split); wait for it to finish (this run then uses it), or give "
        "this run a teacher of its own: another --logdir, or --teacher RUN\n"
    )
    assert sorted(p.name for p in logdir.iterdir()) == ["teachers"]


def test_a_newline_in_the_logdir_cannot_forge_the_run_line(small_digits, tmp_path, capfd):
    logdir = tmp_path / "a\nrun: /etc"
    result = cli_main(
        ["--preset", "seed", "--data", str(small_digits), "--epochs", "1", "--logdir",
         str(logdir), "--quiet", "--no-figures", "--device", "cpu"]
    )  # fmt: skip
    out = capfd.readouterr().out
    assert result.run_dir.parent == logdir
    assert out.splitlines()[-1] == f"run: {str(result.run_dir)!r}"
    assert "\nrun: /etc" not in out


@pytest.mark.parametrize("source", ["flag", "config file"])
def test_an_empty_data_path_is_named_as_such(source, tmp_path, run_entry):
    (tmp_path / "c.json").write_text('{"data": ""}')
    given = ["--data", ""] if source == "flag" else ["--config", str(tmp_path / "c.json")]
    ran = run_entry(lambda: cli_main([*given, "--logdir", str(tmp_path / "runs")]))
    assert (ran.code, ran.stderr) == (2, "error: data must name a .mat file (or be left out)\n")
    assert not (tmp_path / "runs").exists()


def test_a_text_file_as_a_model_is_not_a_checkpoint(tmp_path, run_entry):
    (tmp_path / "passwd.pt").write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    ran = run_entry(lambda: evaluate.main([str(tmp_path / "passwd.pt"), "--device", "cpu"]))
    assert (ran.code, ran.stderr) == (
        2,
        f"error: {tmp_path / 'passwd.pt'}: not a readable checkpoint (neither torch's zip nor a "
        "pickle nor safetensors)\n",
    )


def test_an_interrupted_sweep_says_one_way_to_resume(small_digits, tmp_path, monkeypatch, capfd):
    """A solo network (Adam trains alone) stopped by Ctrl-C: the sweep's hint, not its own."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(digits_torch.store.run_log.RunLog, "log_hparams", interrupted)
    argv = ["--preset", "seed", "--optimizer", "adam", "--epochs", "2", "--data", str(small_digits)]
    with pytest.raises(SystemExit) as exit_info:
        sweep.main([*argv, "--quiet", "--no-figures", "--device", "cpu", "--logdir", str(tmp_path)])
    assert exit_info.value.code == 130
    (sweep_dir,) = tmp_path.iterdir()
    err = capfd.readouterr().err
    assert err.count("resume with") == 1, err
    assert f"resume with: python -m digits_torch sweep --resume {sweep_dir}" in err


def _left(folder: Path, trained_run: Path, *extra: str) -> Path:
    """A run directory as a kill before its first checkpoint leaves it."""
    folder.mkdir(parents=True)
    for name in ("config.json", "split.json", *extra):
        (folder / name).write_bytes((trained_run / name).read_bytes())
    (folder / ".lock").touch()
    return folder


def test_a_run_killed_before_its_first_checkpoint_is_a_leftover_the_next_run_removes(
    trained_run, small_digits, tmp_path, run_entry
):
    logdir = tmp_path / "runs"
    left = _left(logdir / "20260101-000000-seed", trained_run)
    live = _left(logdir / "20260101-000001-seed", trained_run)
    mine = _left(logdir / "20260101-000002-seed", trained_run, "metrics.json")  # not a run's
    (logdir / "empty").mkdir()  # no lock file: not known to be a run
    (logdir / "starting").mkdir()  # a run between creating its lock file and locking it
    (logdir / "starting" / ".lock").touch()
    ran = run_entry(lambda: cli_main(["--resume", str(left)]))
    assert (ran.code, ran.stderr) == (
        2,
        f"error: {left}: stopped before its first checkpoint: nothing in it to resume (no "
        "checkpoint.pt); start the run again (the next run in its logdir removes this "
        "directory)\n",
    )
    with RunLock(live):  # a run still starting up
        run = fit(
            make_config(
                "seed", data=str(small_digits), epochs=1, logdir=str(logdir), quiet=True,
                figures=False, device="cpu",
            )
        ).run_dir  # fmt: skip
    assert sorted(p.name for p in logdir.iterdir()) == sorted(
        [live.name, mine.name, "empty", "starting", run.name]
    )


def test_a_bad_teacher_in_a_sweep_leaves_nothing(small_digits, tmp_path, run_entry):
    (tmp_path / "teacher.pt").write_text("not a model\n" * 20)
    argv = ["--preset", "tuned", "--teacher", str(tmp_path / "teacher.pt"), "--seeds", "0-1"]
    argv += ["--data", str(small_digits), "--logdir", str(tmp_path / "runs"), "--quiet"]
    ran = run_entry(lambda: sweep.main(argv))
    assert ran.code == 2
    assert ran.stderr.endswith(
        f"error: {tmp_path / 'teacher.pt'}: not a readable checkpoint (neither torch's zip nor "
        "a pickle nor safetensors)\n"
    )
    assert ran.stderr.count("error:") == 1
    assert not (tmp_path / "runs").exists()
