"""The commands as a new user meets them: --config, resume by name, the closing table, evaluate's
splits, run names, "did you mean", Ctrl-C at start-up, and ``python -m`` forms."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

import digits_torch.train.run_setup
from digits_torch import TrainConfig, make_config
from digits_torch import __main__ as commands
from digits_torch.cli import compare
from digits_torch.cli import train as cli
from digits_torch.config import arguments
from digits_torch.config.presets import PRESET_WORDS, PRESETS
from digits_torch.errors import redraw_interval
from digits_torch.inference.evaluate import evaluate
from digits_torch.inference.evaluate import main as evaluate_main
from digits_torch.store.runs import read_split, run_label
from digits_torch.sweep import sweep
from digits_torch.train.training import FitResult


@pytest.fixture
def base(tmp_path, small_digits) -> list[str]:
    """Flags for a quick, quiet run on the small digits in tmp_path/runs."""
    return ["--data", str(small_digits), "--device", "cpu", "--quiet", "--no-figures",
            "--logdir", str(tmp_path / "runs")]  # fmt: skip


def _write(path: Path, values: dict) -> Path:
    path.write_text(json.dumps(values))
    return path


# ------------------------------------------------------------------ --config


def test_config_file_sits_between_the_preset_and_the_flags(tmp_path, base):
    file = _write(tmp_path / "c.json", {"preset": "seed", "lr": 0.05, "epochs": 3, "hidden": [7]})
    result = cli.main([*base, "--config", str(file), "--epochs", "2"])
    seed = make_config("seed")
    assert result.config.preset == "seed" and result.config.patience == seed.patience  # preset
    assert (result.config.lr, result.config.hidden) == (0.05, (7,))  # the file over the preset
    assert result.config.epochs == 2  # the flag over the file
    flag_preset = cli.main([*base, "--config", str(file), "--preset", "coursera"]).config
    assert flag_preset.preset == "coursera" and flag_preset.loss == "coursera"
    assert (flag_preset.lr, flag_preset.epochs) == (0.05, 3)


def test_a_runs_own_config_json_reruns_it_with_another_seed(trained_run, tmp_path):
    saved = TrainConfig.from_dict(json.loads((trained_run / "config.json").read_text()))
    logdir = str(tmp_path / "again")
    again = cli.main(["--config", str(trained_run / "config.json"), "--seed", "3",
                      "--logdir", logdir])  # fmt: skip
    assert again.config == dataclasses.replace(saved, seed=3, logdir=logdir)


def test_a_toml_config_file(tmp_path, base):
    file = tmp_path / "c.toml"
    file.write_text('preset = "seed"\nepochs = 2\nhidden = [5, 4]\nnesterov = false\n')
    config = cli.main([*base, "--config", str(file)]).config
    assert (config.epochs, config.hidden, config.nesterov) == (2, (5, 4), False)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"epochs": 2, "learning_rate": 0.1}, r"unknown key 'learning_rate'"),
        ({"epoch": 2}, r"unknown key 'epoch' \(did you mean 'epochs'\?\)"),
        ({"epochs": "2"}, r"epochs must be an integer, got '2'"),
        ({"hidden": 25}, r"hidden must be a sequence of integers, got 25"),
        ({"nesterov": 1}, r"nesterov must be true or false, got 1"),
        ({"lr": -1.0}, r"lr must be positive"),
        ([1, 2], r"a config file holds one table of field = value"),
        ("{not json", r"not a valid config file"),
    ],
)
def test_config_file_errors_name_the_key(tmp_path, base, run_entry, content, problem):
    file = tmp_path / "c.json"
    file.write_text(content if isinstance(content, str) else json.dumps(content))
    ran = run_entry(lambda: cli.main([*base, "--config", str(file)]))
    assert ran.code == 2 and len(ran.stderr.splitlines()) == 1
    assert ran.stderr.startswith("error: ")
    assert re.search(problem, ran.stderr), ran.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-made


def test_config_file_that_is_missing_or_given_with_resume(tmp_path, trained_run, run_entry):
    ran = run_entry(lambda: cli.main(["--config", str(tmp_path / "none.json")]))
    assert ran.stderr == f"error: {tmp_path / 'none.json'}: no such file or directory\n"
    assert ran.code == 2
    with_resume = ["--resume", str(trained_run), "--config", str(trained_run / "config.json")]
    ran = run_entry(lambda: cli.main(with_resume))
    assert ran.code == 2 and "a resumed run keeps its saved config" in ran.stderr


# ------------------------------------------------------------------ resume


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    """A copy of the finished 3-epoch seed run, in tmp_path/runs."""
    return Path(shutil.copytree(trained_run, tmp_path / "runs" / trained_run.name))


def test_resume_by_name_under_the_logdir_with_flags_equal_to_the_saved_ones(
    run_copy, tmp_path, run_entry
):
    saved = json.loads((run_copy / "config.json").read_text())
    same = ["--lr", str(saved["lr"]), "--hidden", *map(str, saved["hidden"])]
    argv = ["--resume", run_copy.name, "--logdir", str(tmp_path / "runs"), "--epochs", "4",
            *same, "--quiet"]  # fmt: skip
    ran = run_entry(lambda: cli.main(argv))
    assert ran.code == 0, ran.stderr
    assert ran.value.run_dir == run_copy and ran.value.metrics["epochs"] == 4
    changed = run_entry(lambda: cli.main(["--resume", str(run_copy), "--lr", "0.5"]))
    assert changed.code == 2 and "cannot change lr" in changed.stderr
    elsewhere = ["--resume", str(run_copy), "--logdir", str(tmp_path / "other")]
    moved = run_entry(lambda: cli.main(elsewhere))
    assert moved.code == 2 and "cannot change logdir" in moved.stderr


def test_resuming_a_finished_run_says_so_on_a_line_of_its_own(run_copy, run_entry):
    ran = run_entry(lambda: cli.main(["--resume", str(run_copy), "--no-quiet"]))  # with a bar
    assert ran.code == 0
    assert "epoch 3 of 3 done; pass --epochs N to train longer" in ran.stderr.splitlines()


def test_resume_of_a_directory_of_runs_names_its_latest(run_copy, run_entry):
    ran = run_entry(lambda: cli.main(["--resume", str(run_copy.parent)]))
    assert ran.code == 2
    assert (
        ran.stderr
        == f"error: {run_copy.parent}: a directory of runs, not a run (latest: {run_copy})\n"
    )


# ------------------------------------------------------------------ the closing table


def test_the_closing_table_labels_its_figures_and_says_what_next(tmp_path, small_digits, capsys):
    argv = ["--data", str(small_digits), "--device", "cpu", "--epochs", "3", "--no-figures",
            "--logdir", str(tmp_path)]  # fmt: skip
    result = cli.main(argv)
    out = capsys.readouterr().out
    run, m = result.run_dir, result.metrics
    assert f"best.pt, from epoch {m['best_epoch']} (by val_accuracy)" in out
    val, train = evaluate(run), evaluate(run, split="train")  # best.pt on the same digits
    assert (m["val_loss"], m["val_accuracy"]) == (val["loss"], val["accuracy"])
    assert (m["train_loss"], m["train_accuracy"]) == (train["loss"], train["accuracy"])
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["training"][:2] == [f"{train['loss']:.4f}", f"{train['accuracy']:.4f}"]
    assert rows["validation"][:2] == [f"{val['loss']:.4f}", f"{val['accuracy']:.4f}"]
    assert rows["last"][1] == f"{result.history[-1]['train_loss']:.4f}"  # labelled objective
    lines = out.strip().splitlines()
    assert lines[-3:-1] == [  # distilled: cosine, cannot train longer: no --resume
        f"  tensorboard --logdir {tmp_path}",
        f"  python -m digits_torch evaluate {run}",
    ]
    assert lines[-4] == f"metrics: {run / 'metrics.json'}"  # --no-figures: no figures row
    assert "--resume" not in out
    (seconds,) = (line.split()[1:] for line in lines if line.split()[0] == "seconds")
    assert seconds[:2] == [f"{m['seconds']:.2f}", "training;"]  # and the whole command's:
    assert float(seconds[2]) > m["seconds"] and seconds[3:] == ["the", "whole", "command"]
    assert "figures:" not in out
    assert "(augmented digits, distilled, with L2; training accuracy during" in out  # distilled


@pytest.mark.parametrize(
    ("preset", "flags", "words"),
    [
        ("tuned", {}, ("epochs", "training objective (augmented digits, with L2;")),
        ("distilled", {}, ("epochs", "training objective (augmented digits, distilled, with L2;")),
        ("seed", {"l2": 0.0}, ("epochs", "training objective (training digits, no L2 term)")),
        ("coursera", {}, ("iterations", "training objective (training digits, with L2)")),
    ],
)
def test_the_closing_table_says_what_its_run_computed(tmp_path, preset, flags, words):
    config = make_config(preset, logdir=str(tmp_path), **flags)
    metrics = {"preset": preset, "device": "cpu", "ranks": 1, "epochs": 2, "stopped": "done",
               "best_epoch": 2, "train_loss": 0.5, "train_accuracy": 0.9, "val_loss": None,
               "val_accuracy": None, "last_epoch_objective": 0.6, "seconds": 1.0}  # fmt: skip
    run = tmp_path / "run"
    out = cli.summary(FitResult(model=None, config=config, run_dir=run, metrics=metrics))
    steps, objective = words
    assert f"{steps:>12}  2 of {config.epochs} (done)" in out
    step = steps.removesuffix("s")
    assert f"best.pt, from {step} 2" in out and f"last {step}" in out
    assert objective in out
    assert f"metrics: {run / 'metrics.json'}\nfigures: {run / 'figures'}\n" in out
    # every name ends in one column, "last iteration" (wider than the others) too
    names = ("preset", steps, "model", f"last {step}", "seconds")
    lines = out.splitlines()
    ends = {line.index(name) + len(name) for name in names for line in lines if f"{name}  " in line}
    assert len(ends) == 1, ends


# ------------------------------------------------------------------ evaluate's splits


def test_evaluate_scores_the_runs_validation_digits_by_default(tmp_path, small_digits, capsys):
    argv = ["--data", str(small_digits), "--epochs", "1", "--val-fraction", "0.25", "--quiet",
            "--no-figures", "--device", "cpu", "--logdir", str(tmp_path / "runs")]  # fmt: skip
    run = cli.main(argv).run_dir
    train_rows, val_rows = read_split(run)
    capsys.readouterr()
    for flags, used, n in [([], "val", len(val_rows)), (["--split", "val"], "val", len(val_rows)),
                           (["--split", "train"], "train", len(train_rows)),
                           (["--split", "all"], "all", 40)]:  # fmt: skip
        result = evaluate_main([str(run), "--device", "cpu", *flags])
        assert (result["split"], result["n"]) == (used, n)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"on the run's {len(val_rows)} validation digits of {small_digits}")
    assert out[2].endswith(f"on the run's {len(train_rows)} training digits of {small_digits}")
    (run / "split.json").unlink()  # a run made before runs kept one
    old = evaluate(run, device="cpu")
    assert old["n"] == 40 and "has no split.json" in old["digits"]


def test_evaluate_split_errors(trained_run, small_digits, run_entry):
    ran = run_entry(lambda: evaluate_main([str(trained_run), "--split", "val"]))
    assert ran.code == 2 and "held out no validation digits" in ran.stderr
    data = ["--data", str(small_digits), "--split", "train"]
    ran = run_entry(lambda: evaluate_main([str(trained_run), *data]))
    assert ran.code == 2 and "needs a run directory's own data" in ran.stderr


# ------------------------------------------------------------------ run names


def test_run_names_tell_apart_what_runs_changed(tmp_path, base):
    changed = cli.main([*base, "--preset", "seed", "--epochs", "1", "--l2", "0.1"]).run_dir
    assert changed.name.endswith(f"-seed-data={Path(base[1]).stem}-epochs=1-l2=0.1")
    named = cli.main([*base, "--preset", "seed", "--epochs", "1", "--name", "mine"]).run_dir
    assert named.name.endswith("-seed-mine")


def test_run_label_is_short_and_sanitised():
    assert run_label({}) == ""
    assert run_label({"l2": 0.1, "hidden": [100, 50]}) == "l2=0.1-hidden=100x50"
    assert run_label({"data": "/some where/my digits.mat"}) == "data=my_digits"
    long = run_label({f"field{i}": 0.123456 for i in range(20)})
    assert long == "field0=0.123456-field1=0.123456-+18"  # at most 48, its count included


# ------------------------------------------------------------------ errors and start-up


def test_a_mistyped_flag_gets_a_suggestion(run_entry):
    ran = run_entry(lambda: cli.main(["--epoks", "3"]))
    assert ran.code == 2
    assert ran.stderr == "error: unrecognized arguments: --epoks 3 (did you mean --epochs?)\n"
    ran = run_entry(lambda: cli.main(["--zzzz"]))
    assert ran.stderr == "error: unrecognized arguments: --zzzz\n"  # no wild guess


def test_ctrl_c_during_start_up_exits_130_without_a_traceback(tmp_path, base, monkeypatch, capfd):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(digits_torch.train.run_setup, "load_digits", interrupted)
    with pytest.raises(SystemExit) as exit_:
        cli.main(base)
    assert exit_.value.code == 130
    assert "Traceback" not in capfd.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("schedule", "stopped", "resume"),
    [("constant", "max_epochs", True), ("constant", "converged", False),
     ("cosine", "max_epochs", False)],
)  # fmt: skip
def test_the_closing_table_suggests_resume_only_where_it_trains_longer(
    tmp_path, schedule, stopped, resume
):
    """Resuming a finished cosine run, or one that stopped early, would train nothing."""
    config = make_config("seed", logdir=str(tmp_path), schedule=schedule)
    metrics = {"preset": "seed", "device": "cpu", "ranks": 1, "epochs": 2, "stopped": stopped,
               "best_epoch": 2, "train_loss": 0.5, "train_accuracy": 0.9, "val_loss": None,
               "val_accuracy": None, "last_epoch_objective": 0.6, "seconds": 1.0}  # fmt: skip
    run = tmp_path / "run"
    out = cli.summary(FitResult(model=None, config=config, run_dir=run, metrics=metrics))
    wanted = f"  digits-train --resume {run} --epochs N   (to train longer)"
    assert (out.splitlines()[-1] == wanted) == resume and ("--resume" in out) == resume


def test_help_groups_every_flag_and_wraps_the_presets(capsys, monkeypatch):
    """Every field is in one --help group (a new field must be placed); the presets block fits
    100 columns and says what each preset is; the sweep's own flags come first."""
    grouped = [name for names in arguments.GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(f.name for f in dataclasses.fields(TrainConfig))
    assert len(grouped) == len(set(grouped))
    assert set(PRESET_WORDS) == set(PRESETS)
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    titles = [line[:-1] for line in out.splitlines() if line and line[0] != " " and line[-1] == ":"]
    assert titles[1:-1] == list(arguments.GROUPS)  # after "options:", before "presets (...):"
    assert "the article's MLPClassifier recipe" in out.split("\n  seed")[1].split("\n  ")[0]
    with pytest.raises(SystemExit):
        sweep.run_command(["--help"])
    out = capsys.readouterr().out
    titles = [line[:-1] for line in out.splitlines() if line and line[0] != " " and line[-1] == ":"]
    assert titles[1:3] == ["sweep", "run"] and out.count("--checkpoint-every SECONDS") == 1
    assert "--checkpoint-every SECONDS, --save-every SECONDS" in out  # one flag, its old name


def test_help_names_the_command_as_it_was_started(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/digits-train"])
    assert cli.build_parser().prog == "digits-train"
    monkeypatch.setattr(sys, "argv", ["/checkout/train.py"])
    assert cli.build_parser().prog == "train.py"
    monkeypatch.setattr(sys, "argv", ["/checkout/digits_torch/__main__.py", "train"])
    assert cli.build_parser().prog == "python -m digits_torch train"


def test_evaluates_help_is_plain_text_and_compares_shows_its_defaults(capsys):
    for main in (evaluate_main, compare.main):
        with pytest.raises(SystemExit):
            main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines to the terminal
    evaluate_help, compare_help = out.split("usage: ")[1:]
    assert "`" not in evaluate_help and "--split train scores its training digits" in evaluate_help
    assert "(default: relu,logistic)" in compare_help and "(default: comparisons;" in compare_help
    assert "(default: auto)" in compare_help and "(default: 1000)" in compare_help
    assert compare.LOGDIR != TrainConfig.logdir  # a comparison's runs are not among the user's


def test_python_m_digits_torch_lists_the_commands_and_runs_one(capsys, trained_run):
    # (python -m digits_torch train trains in test_tensorboard.py; the wheel's listing runs in
    # test_package.py: here in-process, without starting another interpreter.)
    assert commands.main([]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed[1:-1]] == [n for n, _, _ in commands.available()]
    assert commands.main(["evaluate", str(trained_run), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("accuracy ")
    assert commands.main(["nonesuch"]) == 2
    assert "no command 'nonesuch'" in capsys.readouterr().err


def test_progress_bars_redraw_rarely_off_a_terminal(monkeypatch):
    """A log (cron, CI, torchrun's captured output) keeps every redraw of a bar as a line."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stderr, interval in ((Terminal(), 0.25), (io.StringIO(), 30.0), (None, 30.0)):
        monkeypatch.setattr("sys.stderr", stderr)
        assert redraw_interval() == interval
