"""Messages that say what happened and what to do about it: errors said whatever the
environment, a teacher's problem named as the teacher's, refusals before any work is done."""

from __future__ import annotations

from digits_torch import fit, make_config
from digits_torch.cli import main as cli_main
from digits_torch.runs import METRICS, RunLock
from digits_torch.training import teacher_config


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
    lock = RunLock(teacher)  # the other run, training it
    try:
        ran = run_entry(lambda: cli_main([*student, "--quiet"]))
    finally:
        lock.release()
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
