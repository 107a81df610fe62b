"""Sweeps: every stacked network is its solo run; the command's outputs, errors and resume.

Equivalence is checked network by network against ``fit`` on the same config: in float64 the
weights, momentum and generator state after a few epochs agree to 1e-9 (measured: ~2e-16) and the
epochs, stopping decisions and best epoch are the same; in float32 every epoch's accuracies agree
within two examples' worth and the losses within 1e-4 (measured: the same accuracies).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import write_subset
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tqdm import tqdm

from digits_torch import TrainConfig, UserError, fit, load_digits, load_model, make_config, plots
from digits_torch.cli import train as cli
from digits_torch.errors import Interrupted
from digits_torch.inference import evaluate
from digits_torch.runtime.distributed import SOLO
from digits_torch.runtime.interrupts import StopRequests
from digits_torch.store.checkpoints import BEST, LATEST, load_checkpoint
from digits_torch.store.runs import read_history, read_split
from digits_torch.sweep import report as sweep_report
from digits_torch.sweep import sweep
from digits_torch.sweep.plan import memory_needed, stack_key
from digits_torch.sweep.stack import Stack
from digits_torch.sweep.train import PROGRESS
from digits_torch.train.run_loop import OneNetwork, train_epochs
from digits_torch.train.run_setup import read_digits, set_up

ROOT = Path(__file__).resolve().parents[2]
# what a network's figures/ holds once drawn
PICTURES = {f"{name}.png" for name in ("digits", "hidden_units", "mistakes", "confusion")} | {
    "learning_curves.png"
}


@pytest.fixture(scope="module")
def digits300(tmp_path_factory, digits) -> Path:
    """300 shipped digits (30 of each, Coursera labels): several batches of 50 an epoch."""
    return write_subset(tmp_path_factory.mktemp("data"), digits, 30)


def _configs(data: Path, logdir: Path, dtype: str) -> list:
    base = dict(
        data=str(data), device="cpu", quiet=True, figures=False, logdir=str(logdir), dtype=dtype,
        epochs=6, batch_size=50, val_fraction=0.2, stop_on="val_accuracy", tol=0.0, patience=1,
        image_every=0,
    )  # fmt: skip
    varied = [
        dict(seed=0, lr=0.05, l2=0.0),
        dict(seed=0, lr=0.1, l2=0.5),  # shares seed 0's batches: one wide product
        dict(seed=0, lr=0.1, l2=0.5, label_smoothing=0.1, schedule="cosine"),
        dict(seed=1, lr=0.05, l2=0.1, aug_shift=1.0, aug_rotate=10.0),  # its own batches
        dict(seed=1, lr=0.05, l2=0.1, aug_shift=1.0, aug_rotate=10.0, nesterov=False),
        dict(seed=2, lr=0.2, momentum=0.0, schedule="cosine"),
        dict(seed=0, lr=0.1, hidden=(12, 8)),  # another stack: two hidden layers
        dict(seed=1, lr=0.1, hidden=(12, 8), activation="tanh", schedule="cosine"),
        dict(seed=3, lr=0.5, activation="sigmoid", loss="coursera", init="coursera"),
    ]
    return [make_config("seed", **base, **v) for v in varied]


class _Records:
    """A network's run files, reduced to the records the loop logs."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def log_epoch(self, record: dict) -> None:
        self.records.append(record)

    def pictured(self, epoch: int) -> bool:
        return False


def _stacked(configs, device):
    """The configs' networks, set up for a stack on ``device`` (in order), and the digits."""
    digits = read_digits(configs[0], device)
    trainees = [set_up(c, digits=digits, stacked=True) for c in configs]
    for i, trainee in enumerate(trainees):
        trainee.order = i
    return trainees, digits


def _train_stack(trainees, digits):
    """Train ``trainees`` (one stack key) in the loop a sweep trains them in."""
    stack = Stack(trainees, *digits.on_device)
    train_epochs(stack, None, StopRequests(), tqdm(disable=True))
    stack.sync()


def _train_stacks(configs, data):
    members, digits = _stacked(configs, torch.device("cpu"))
    stacks: dict = {}
    for member in members:
        member.files = _Records()
        stacks.setdefault(stack_key(member.config), []).append(member)
    for group in stacks.values():
        _train_stack(group, digits)
    return members, [m.files.records for m in members], len(stacks)


def test_every_stacked_network_is_its_solo_run_in_float64(tmp_path, digits300):
    configs = _configs(digits300, tmp_path, "float64")
    members, records, stacks = _train_stacks(configs, digits300)
    assert stacks == 4  # relu 25, relu 12-8, tanh 12-8, sigmoid 25
    statuses = set()
    for member, mine, config in zip(members, records, configs):
        solo = fit(config)
        latest = load_checkpoint(solo.run_dir / LATEST)
        weights = member.model.state_dict()
        for name, value in latest["model"].items():
            assert (weights[name] - value).abs().max() < 1e-9, (config, name)
        # momentum: the member's own torch SGD holds the stack's buffers
        solo_state = latest["optimizer"]["state"]
        mine_state = member.optimizer.state_dict()["state"]
        assert solo_state.keys() == mine_state.keys()
        for key, value in solo_state.items():
            assert (
                mine_state[key]["momentum_buffer"] - value["momentum_buffer"]
            ).abs().max() < 1e-9
        assert torch.equal(member.rng.get_state(), latest["rng"])
        assert [r["epoch"] for r in mine] == [r["epoch"] for r in solo.history]
        assert member.status == solo.metrics["stopped"]
        assert member.stopping.best_epoch_ == solo.metrics["best_epoch"]
        for a, b in zip(mine, solo.history):
            assert a["val_accuracy"] == b["val_accuracy"]
            assert abs(a["lr"] - b["lr"]) < 1e-12  # cosine as CosineAnnealingLR computes it
            assert abs(a["train_loss"] - b["train_loss"]) < 1e-9
        statuses.add(member.status)
    assert statuses == {"converged", "max_epochs"}  # the test sees both kinds of end


def test_stacked_float32_accuracies_match_the_solo_runs(tmp_path, digits300):
    configs = _configs(digits300, tmp_path, "float32")[:6]
    members, records, _ = _train_stacks(configs, digits300)
    for member, mine, config in zip(members, records, configs):
        solo = fit(config)
        m = len(member.rows[0])
        assert [r["epoch"] for r in mine] == [r["epoch"] for r in solo.history]
        for a, b in zip(mine, solo.history):
            assert abs(a["train_accuracy"] - b["train_accuracy"]) <= 2 / m
            assert abs(a["val_accuracy"] - b["val_accuracy"]) <= 2 / len(member.rows[1])
            assert abs(a["train_loss"] - b["train_loss"]) < 1e-4


@pytest.fixture(scope="module")
def teacher300(tmp_path_factory, digits300) -> Path:
    """A teacher for the distilled networks: a wider network, a few epochs on digits300."""
    logdir = tmp_path_factory.mktemp("teacher")
    config = make_config(
        "seed", data=str(digits300), device="cpu", quiet=True, figures=False, logdir=str(logdir),
        hidden=(60,), lr=0.1, batch_size=50, epochs=8, val_fraction=0.2, image_every=0,
    )  # fmt: skip
    return fit(config).run_dir


def _kill_units(trainee, units=(0, 1, 2)) -> None:
    """Dead on every digit from the start, so that the revival at epoch 5 has work to do."""
    with torch.no_grad():
        trainee.model.layers[0].bias[list(units)] = -1e3


def test_distilled_elastic_and_revived_stacked_networks_are_their_solo_runs(
    tmp_path, digits300, teacher300
):
    base = dict(
        data=str(digits300), device="cpu", quiet=True, figures=False, logdir=str(tmp_path),
        dtype="float64", epochs=10, batch_size=50, val_fraction=0.2, image_every=0, lr=0.1,
        revive_dead_units=True, teacher_any_split=True,  # seed 0's teacher for every seed
    )  # fmt: skip
    teacher = str(teacher300)
    varied = [
        dict(seed=0, teacher=teacher, aug_elastic=(10.0, 2.9), aug_shift=1.0),
        dict(seed=0, teacher=teacher, aug_elastic=(10.0, 2.9), aug_shift=1.0, distill_weight=0.3),
        dict(seed=1, aug_elastic=(8.0, 2.0)),  # no teacher: a group without soft targets
        dict(seed=1, teacher=teacher, distill_temperature=2.0),  # another teacher group
        dict(seed=2, teacher=teacher, revive_dead_units=False),
    ]
    configs = [make_config("seed", **{**base, **v}) for v in varied]
    members, digits = _stacked(configs, torch.device("cpu"))
    assert len({stack_key(c) for c in configs}) == 1
    for member in members:
        member.files = _Records()
        _kill_units(member)
    stack = Stack(members, *digits.on_device)
    assert len(stack.groups) == 4 and stack.distilled
    train_epochs(stack, None, StopRequests(), tqdm(disable=True))
    stack.sync()
    for member, config in zip(members, configs):
        solo = set_up(config)
        solo.files = _Records()
        _kill_units(solo)
        train_epochs(OneNetwork(solo), None, StopRequests(), tqdm(disable=True))
        mine, theirs = member.model.state_dict(), solo.model.state_dict()
        for name, value in theirs.items():
            assert (mine[name] - value).abs().max() < 1e-9, (config, name)
        assert torch.equal(member.rng.get_state(), solo.rng.get_state())
        for a, b in zip(member.files.records, solo.files.records):
            assert a["val_accuracy"] == b["val_accuracy"]
            assert abs(a["train_loss"] - b["train_loss"]) < 1e-9
        revived = (mine["layers.0.bias"][:3] > -1e3).all()
        assert revived == config.revive_dead_units, config  # the test revived units


# ----------------------------------------------------------------------------- the command


def _saved_config(run: Path, **changes) -> TrainConfig:
    """The config a sweep saved for a network, changed."""
    return TrainConfig.from_dict({**json.loads((run / "config.json").read_text()), **changes})


def _sweep_args(data: Path, logdir: Path, *extra: str) -> list[str]:
    return [
        "--preset", "seed", "--data", str(data), "--device", "cpu", "--logdir", str(logdir),
        "--batch-size", "50", "--quiet", "--image-every", "2", *extra,
    ]  # fmt: skip


def test_the_command_writes_a_sweep_and_train_py_runs_in_it(tmp_path, digits300, capsys):
    args = _sweep_args(digits300, tmp_path, "--grid", "l2=0,0.1", "--grid", "lr=0.05,0.1")
    args += ["--epochs", "3", "--val-fraction", "0.2", "--name", "demo"]
    sweep_dir = sweep.run_command(args)
    out = capsys.readouterr().out
    assert "4 network(s)" in out and "1 batch group(s)" in out and "MiB" in out
    assert sweep_dir.name.endswith("-sweep-demo")
    saved = json.loads((sweep_dir / "sweep.json").read_text())
    assert saved["grid"] == {"l2": [0.0, 0.1], "lr": [0.05, 0.1]}
    assert len(saved["networks"]) == 4
    lines = (sweep_dir / "results.csv").read_text().splitlines()
    assert lines[0].startswith("name,dir,l2,lr,train_accuracy,val_accuracy")
    assert len(lines) == 5
    for name in ("validation_curve_l2.png", "validation_curve_lr.png", "heatmap_l2_lr.png"):
        assert (sweep_dir / name).stat().st_size > 1000
    best = max(saved["networks"], key=lambda n: n["metrics"]["val_accuracy"])
    assert "best run: " in out
    # by default the pictures of the best configuration's networks only (one seed: one)
    assert saved["figures"] == "best"
    said = "pictures: the best configuration's 1 network(s), in <network>/figures/"
    assert f"{said} ({best['dir']})" in out
    for network in saved["networks"]:
        run = sweep_dir / network["dir"]
        for name in ("config.json", "history.jsonl", "split.json", "metrics.json", LATEST, BEST):
            assert (run / name).exists(), (run, name)
        drawn = {p.name for p in run.glob("figures/*.png")}
        assert drawn == (PICTURES if network is best else set()), network["dir"]
        events = b"".join(p.read_bytes() for p in run.glob("events.out.tfevents.*"))
        assert b"hparams" in events and b"hidden_units" in events
        assert [r["epoch"] for r in read_history(run)] == [1, 2, 3]
        assert network["metrics"] == json.loads((run / "metrics.json").read_text())
        config = json.loads((run / "config.json").read_text())
        assert (config["l2"], config["lr"]) == tuple(network["values"].values())
    run = sweep_dir / best["dir"]
    scored = evaluate.evaluate(run, str(digits300), "cpu")
    assert 0 < scored["accuracy"] <= 1
    assert load_model(run).hidden_sizes == (25,)
    # train.py --resume on a network of the sweep: the same as its solo run trained longer
    config = _saved_config(run, epochs=5, logdir=str(tmp_path / "solo"))
    cli.main(["--resume", str(run), "--epochs", "5", "--quiet"])
    solo = fit(config)
    mine, theirs = load_checkpoint(run / LATEST), load_checkpoint(solo.run_dir / LATEST)
    for name, value in theirs["model"].items():
        assert (mine["model"][name] - value).abs().max() < 1e-6  # float32
    assert torch.equal(mine["rng"], theirs["rng"])
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3, 4, 5]
    # what TensorBoard shows of a sweep's network is what it shows of a train.py run
    assert _tags(run) == _tags(solo.run_dir)
    assert {"figures/confusion", "figures/mistakes", "hidden_units"} <= _tags(run)["images"]


def test_figures_draws_every_networks_pictures_once_the_sweep_has_trained(
    tmp_path, digits300, capsys
):
    args = _sweep_args(digits300, tmp_path, "--grid", "l2=0,0.1", "--seeds", "0-1")
    sweep_dir = sweep.run_command([*args, "--epochs", "2", "--val-fraction", "0.2", "--figures"])
    out = capsys.readouterr().out
    saved = json.loads((sweep_dir / "sweep.json").read_text())
    assert saved["figures"] == "every" and "pictures: every network's" in out
    for network in saved["networks"]:
        run = sweep_dir / network["dir"]
        assert {p.name for p in run.glob("figures/*.png")} == PICTURES
        assert {"figures/confusion", "figures/mistakes"} <= _tags(run)["images"]
        # drawn after training, as the run would have drawn them: its best.pt on its split
        X, y = load_digits(str(digits300))
        _, val = read_split(run)
        picture = plots.render(
            plots.confusion(load_model(run), X[val], y[val], digits="validation digits")
        )
        png = np.asarray(PIL.Image.open(run / "figures" / "confusion.png"))
        np.testing.assert_array_equal(png, picture)
    # the default, with two seeds: both networks of the best configuration
    sweep_dir = sweep.run_command([*args, "--epochs", "1"])
    saved = json.loads((sweep_dir / "sweep.json").read_text())
    drawn = {n["dir"] for n in saved["networks"] if (sweep_dir / n["dir"] / "figures").exists()}
    l2s = {n["values"]["l2"] for n in saved["networks"] if n["dir"] in drawn}
    assert len(drawn) == 2 and len(l2s) == 1
    sweep_dir = sweep.run_command([*args, "--epochs", "1", "--no-figures"])
    assert not list(sweep_dir.glob("*/figures"))
    assert "pictures: none (--no-figures)" in capsys.readouterr().out


def test_a_sweep_trains_each_seeds_teacher_first_and_stacks_the_students(tmp_path, digits300):
    args = _sweep_args(digits300, tmp_path, "--teacher-preset", "teacher", "--seeds", "0-1")
    args += ["--epochs", "2", "--val-fraction", "0.2", "--no-figures", "--lr", "0.05"]
    sweep_dir = sweep.run_command(args)
    teachers = sorted((sweep_dir / "teachers").iterdir())
    assert len(teachers) == 2
    saved = json.loads((sweep_dir / "sweep.json").read_text())
    for network in saved["networks"]:
        run = sweep_dir / network["dir"]
        config = json.loads((run / "config.json").read_text())
        teacher = Path(config["teacher"])
        assert teacher in teachers and (run / "teacher.pt").exists()
        assert json.loads((teacher / "config.json").read_text())["seed"] == config["seed"]
        split, own = (json.loads((d / "split.json").read_text()) for d in (teacher, run))
        assert split == {k: own[k] for k in ("train", "val", "data_sha256")}
    assert len({json.loads((sweep_dir / n["dir"] / "config.json").read_text())["teacher"]
                for n in saved["networks"]}) == 2  # fmt: skip


def _tags(run_dir: Path) -> dict[str, set[str]]:
    """The tags of each kind (scalars, images, tensors...) in a run's TensorBoard events."""
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    return {kind: set(tags) for kind, tags in events.Tags().items() if isinstance(tags, list)}


def test_a_resumed_network_continues_exactly_as_its_solo_run_in_float64(tmp_path, digits300):
    args = _sweep_args(digits300, tmp_path, "--grid", "lr=0.05,0.1", "--epochs", "3")
    args += ["--dtype", "float64", "--no-figures", "--schedule", "constant"]
    sweep_dir = sweep.run_command(args)
    run = next(p for p in sorted(sweep_dir.iterdir()) if p.name.startswith("1-"))
    cli.main(["--resume", str(run), "--epochs", "6", "--quiet"])
    solo = fit(_saved_config(run, epochs=6, logdir=str(tmp_path / "solo")))
    mine, theirs = load_checkpoint(run / LATEST), load_checkpoint(solo.run_dir / LATEST)
    for name, value in theirs["model"].items():
        assert (mine["model"][name] - value).abs().max() < 1e-9
    assert torch.equal(mine["rng"], theirs["rng"])


def test_a_network_whose_loss_diverges_stops_alone(tmp_path, digits300, capsys):
    args = _sweep_args(digits300, tmp_path, "--grid", "lr=0.05,1e200", "--epochs", "4")
    args += ["--no-figures", "--dtype", "float64"]
    sweep_dir = sweep.run_command(args)
    saved = {n["values"]["lr"]: n for n in json.loads((sweep_dir / "sweep.json").read_text())[
        "networks"]}  # fmt: skip
    bad, good = saved[1e200], saved[0.05]
    assert bad["metrics"]["stopped"] == "diverged"
    assert good["metrics"]["stopped"] == "max_epochs" and good["metrics"]["epochs"] == 4
    bad_dir = sweep_dir / bad["dir"]
    kept = len(read_history(bad_dir))
    assert kept < 4 and load_checkpoint(bad_dir / LATEST)["epoch"] == kept
    # the solo run of the same config fails at the next epoch and keeps the same checkpoint
    config = TrainConfig.from_dict({**bad["config"], "logdir": str(tmp_path / "solo")})
    with pytest.raises(UserError, match=f"at epoch {kept + 1}"):
        fit(config)
    solo_dir = next((tmp_path / "solo").iterdir())
    mine, theirs = load_checkpoint(bad_dir / LATEST), load_checkpoint(solo_dir / LATEST)
    for name, value in theirs["model"].items():
        assert (mine["model"][name] - value).abs().max() < 1e-9
    # the other network is its solo run, unaffected
    config = TrainConfig.from_dict({**good["config"], "logdir": str(tmp_path / "solo2")})
    theirs = load_checkpoint(fit(config).run_dir / LATEST)
    mine = load_checkpoint(sweep_dir / good["dir"] / LATEST)
    for name, value in theirs["model"].items():
        assert (mine["model"][name] - value).abs().max() < 1e-9


def test_adam_and_lbfgs_run_one_after_another_and_say_so(tmp_path, digits300, capsys):
    args = _sweep_args(digits300, tmp_path, "--grid", "optimizer=sgd,adam,lbfgs")
    sweep_dir = sweep.run_command([*args, "--epochs", "2", "--no-figures"])
    out = capsys.readouterr().out
    assert "stack 1: 1 SGD networks" in out
    assert "1-optimizer=adam: adam, one after another through fit" in out
    assert "2-optimizer=lbfgs: lbfgs, one after another through fit" in out
    networks = json.loads((sweep_dir / "sweep.json").read_text())["networks"]
    assert [n["metrics"]["epochs"] for n in networks] == [2, 2, 2]
    assert all((sweep_dir / n["dir"] / BEST).exists() for n in networks)


def test_a_stack_trains_at_the_sweeps_threads_by_default_torchs_and_its_configs_say_so(
    tmp_path, digits300, monkeypatch
):
    seen, real = [], Stack.train_epoch
    monkeypatch.setattr(
        Stack, "train_epoch", lambda self: seen.append(torch.get_num_threads()) or real(self)
    )
    caller = torch.get_num_threads()
    for given, stacked, solo in (([], 0, 1), (["--threads", "3"], 3, 3)):
        seen.clear()
        args = _sweep_args(digits300, tmp_path / str(stacked), "--grid", "optimizer=sgd,adam")
        sweep_dir = sweep.run_command([*args, "--epochs", "2", "--no-figures", *given])
        networks = json.loads((sweep_dir / "sweep.json").read_text())["networks"]
        threads = [
            json.loads((sweep_dir / n["dir"] / "config.json").read_text())["threads"]
            for n in networks
        ]
        assert threads == [stacked, solo]  # sgd stacked; adam through fit, one thread a network
        assert seen == [stacked or caller] * 2
        assert torch.get_num_threads() == caller  # the caller's count, back


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "bogus=1,2"], "error: --grid bogus=1,2: unknown field 'bogus'\n"),
        (["--grid", "l2=0,x"], "error: --grid l2=0,x: 'x' is not a number\n"),
        (["--grid", "l2=0", "--grid", "l2=1"], "error: --grid l2=1: l2 is swept twice\n"),
        (["--grid", "l2=0,0"], "error: --grid l2=0,0: a value is given twice\n"),
        (["--grid", "l2="], "error: --grid l2=: give FIELD=V1,V2,...\n"),
        (
            ["--grid", "hidden=25,a"],
            "error: --grid hidden=25,a: 'a' is not hidden sizes like 25 or 50x50\n",
        ),
        (["--grid", "epochs=1,2.5"], "error: --grid epochs=1,2.5: '2.5' is not an integer\n"),
        (
            ["--grid", "device=cpu,cuda"],
            "error: --grid device=cpu,cuda: device is the same for the whole sweep; set it once\n",
        ),
        (
            ["--grid", "l2=0,-1", "--seeds", "0-1"],
            "error: network l2=-1.0, seed=0: l2 must be >= 0\n",
        ),
        (
            ["--grid", "val_fraction=0,0.2", "--stop-on", "val_loss"],
            "error: network val_fraction=0.0: stop on val_loss needs a validation split "
            "(--val-fraction > 0)\n",
        ),
        (["--seeds", "0-x"], "error: --seeds 0-x: give seeds like 0-4 or 0,3,7\n"),
        (
            ["--seeds", "1", "--grid", "seed=1,2"],
            "error: sweep seeds with --seeds or --grid seed=..., not both\n",
        ),  # fmt: skip
        # issue 23: grids that would train duplicates, flags the grid ignores, huge sweeps
        *[
            (
                ["--grid", f"{field}={values}"],
                f"error: --grid {field}={values}: {field} changes "
                "nothing a network learns; set it once for the whole sweep\n",
            )
            for field, values in [
                ("figures", "true,false"),
                ("checkpoint_every", "0,5"),
                ("threads", "1,2"),
            ]
        ],
        (
            ["--grid", "activation=logistic,sigmoid", "--grid", "l2=0,1"],
            "error: --grid: activation=logistic and activation=sigmoid train the same network; "
            "keep one\n",
        ),
        (
            ["--grid", "lr=0.1", "--lr", "0.5"],
            "error: --lr and --grid lr=... both set lr; give one\n",
        ),
        (["--seeds", "0-2", "--seed", "4"], "error: --seed and --seeds both set seed; give one\n"),
        *[
            (
                ["--seeds", f"0-{high}"],
                f"error: --seeds 0-{high}: {high + 1:,} seeds, but a sweep "
                "trains at most 10,000 networks; split it into several sweeps\n",
            )
            for high in (200_000, 10**12)
        ],
        (
            ["--grid", "l2=" + ",".join(str(i) for i in range(101)), "--seeds", "0-99"],
            "error: the grid makes 10,100 networks, but a sweep trains at most 10,000; split it "
            "into several sweeps\n",
        ),
        # issue 22: hints
        (
            ["--seed", "0-2"],
            "error: argument --seed: invalid int value: '0-2' (did you mean --seeds?)\n",
        ),
        (
            ["--grid", "lambda=0,1"],
            "error: --grid lambda=0,1: unknown field 'lambda' (lambda is l2 here)\n",
        ),
        (
            ["--grid", "learning_rate_init=0.1"],
            "error: --grid learning_rate_init=0.1: unknown field 'learning_rate_init' "
            "(learning_rate_init is lr here)\n",
        ),
        (
            ["--grid", "epoch=1,2"],
            "error: --grid epoch=1,2: unknown field 'epoch' (did you mean 'epochs'?)\n",
        ),
    ],
)
def test_a_bad_grid_is_one_error_line_and_nothing_written(
    tmp_path, digits300, run_entry, extra, message
):
    ran = run_entry(lambda: sweep.run_command(_sweep_args(digits300, tmp_path / "runs", *extra)))
    assert (ran.code, ran.stderr) == (2, message)
    assert not (tmp_path / "runs").exists()


def test_a_sweep_that_does_not_fit_in_memory_is_refused(
    tmp_path, digits300, run_entry, monkeypatch
):
    monkeypatch.setattr(sweep, "available_memory", lambda device: 2**20)
    ran = run_entry(
        lambda: sweep.run_command(_sweep_args(digits300, tmp_path / "runs", "--seeds", "0-9"))
    )
    assert ran.code == 2
    assert ran.stderr.startswith("error: the sweep needs about ") and ran.stderr.count("\n") == 1
    assert "but only 1 MiB are available" in ran.stderr
    assert not (tmp_path / "runs").exists()


def test_memory_grows_linearly_and_256_article_networks_fit_in_2_gib():
    def need(k: int) -> int:
        return memory_needed([make_config("seed", seed=i % 2) for i in range(k)], 5000, 400)

    assert need(256) - need(128) == 2 * (need(128) - need(64))
    assert need(256) < 2 * 2**30


def test_a_config_file_is_the_base_the_flags_and_the_grid_override(tmp_path, small_digits):
    """As train.py's --config: a file under the flags (a traceback before issue 23)."""
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"preset": "seed", "lr": 0.05, "l2": 0.5, "epochs": 7}))
    args = ["--config", str(path), "--grid", "l2=0,0.1", "--epochs", "1", "--data"]
    args += [str(small_digits), "--device", "cpu", "--quiet", "--no-figures"]
    sweep_dir = sweep.run_command([*args, "--logdir", str(tmp_path / "runs")])
    networks = json.loads((sweep_dir / "sweep.json").read_text())["networks"]
    got = [tuple(n["config"][k] for k in ("preset", "lr", "l2", "epochs")) for n in networks]
    assert got == [("seed", 0.05, 0.0, 1), ("seed", 0.05, 0.1, 1)]


def test_parse_grid_and_seeds():
    grid = sweep.parse_grid(["l2=0,1e-2", "hidden=25,50x50", "nesterov=true,false", "init=glorot"])
    assert grid == {
        "l2": [0.0, 0.01],
        "hidden": [(25,), (50, 50)],
        "nesterov": [True, False],
        "init": ["glorot"],
    }
    assert sweep.parse_seeds("0-2,7") == [0, 1, 2, 7]


# ----------------------------------------------------------------------------- kills


def _sweep_process(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digits_torch", "sweep", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epochs(process, sweep_root: Path, epochs: int) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        for progress in sweep_root.glob(f"*/{PROGRESS}"):
            try:
                done = json.loads(progress.read_text())["epochs"]
            except (OSError, ValueError):
                continue
            if done and min(done.values()) >= epochs:
                return progress.parent
        time.sleep(0.02)
    raise AssertionError("the sweep did not get going")


def test_a_killed_sweep_resumes_to_exactly_the_uninterrupted_one(tmp_path, digits300):
    extra = ["--grid", "lr=0.05,0.1", "--seeds", "0-1", "--epochs", "12", "--val-fraction", "0.2"]
    extra += ["--stop-on", "val_accuracy", "--patience", "3", "--tol", "0", "--no-figures"]
    extra += ["--schedule", "cosine", "--aug-shift", "1"]
    reference = sweep.run_command(_sweep_args(digits300, tmp_path / "reference", *extra))
    args = _sweep_args(digits300, tmp_path / "killed", *extra, "--save-every", "0")
    process = _sweep_process(args)
    sweep_dir = _wait_for_epochs(process, tmp_path / "killed", 2)
    process.send_signal(signal.SIGTERM)  # stops at the end of the epoch, its files saved
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and f"--resume {sweep_dir}" in stderr, stderr
    process = _sweep_process(["--resume", str(sweep_dir), "--quiet"])
    _wait_for_epochs(process, tmp_path / "killed", 4)
    process.kill()  # anywhere: mid-epoch or mid-save
    process.communicate(timeout=60)
    assert sweep.run_command(["--resume", str(sweep_dir), "--quiet"]) == sweep_dir
    networks = json.loads((reference / "sweep.json").read_text())["networks"]
    for network in networks:
        mine_dir, their_dir = sweep_dir / network["dir"], reference / network["dir"]
        assert [r["epoch"] for r in read_history(mine_dir)] == [
            r["epoch"] for r in read_history(their_dir)
        ]
        for name in (LATEST, BEST):
            mine, theirs = load_checkpoint(mine_dir / name), load_checkpoint(their_dir / name)
            assert mine["epoch"] == theirs["epoch"]
            for key, value in theirs["model"].items():
                assert torch.equal(mine["model"][key], value), (network["name"], name, key)
        assert json.loads((mine_dir / "metrics.json").read_text())["stopped"] == network[
            "metrics"]["stopped"]  # fmt: skip
    assert not list(sweep_dir.glob("*/.sweep-*"))
    assert os.path.exists(sweep_dir / "results.csv")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_stack_on_cuda_trains_as_on_the_cpu(tmp_path, digits300):
    configs = _configs(digits300, tmp_path, "float64")[:6]
    cpu, _, _ = _train_stacks(configs, digits300)
    cuda_configs = [TrainConfig.from_dict({**c.to_dict(), "device": "cuda"}) for c in configs]
    members, digits = _stacked(cuda_configs, torch.device("cuda"))
    _train_stack(members, digits)
    for a, b in zip(cpu, members):
        assert a.status == b.status and a.epoch == b.epoch
        for name, value in a.model.state_dict().items():
            assert (b.model.state_dict()[name].cpu() - value).abs().max() < 1e-9


# ----------------------------------------------------------------------------- the report's words


def _rows(l2s, seeds):
    """Rows of results.csv for a grid of l2 by seed, accuracies made up but all different."""
    return [
        {"l2": l2, "seed": seed, "dir": f"n{i}-{seed}", "epochs": 3,
         "train_accuracy": 0.9 + 0.01 * i + 0.001 * seed,
         "val_accuracy": 0.8 + 0.02 * i + 0.003 * seed}
        for i, l2 in enumerate(l2s) for seed in seeds
    ]  # fmt: skip


def test_a_one_seed_sweep_shows_values_without_a_spread(tmp_path):
    grid = {"l2": [0.0, 0.01, 0.1], "seed": [0]}
    table = sweep_report.report(tmp_path, grid, _rows(grid["l2"], [0]))
    assert "+-" not in table and "(one seed: no spread)" in table
    assert " 84.00  " in table  # l2=0.1's val accuracy alone
    many = sweep_report.report(tmp_path, {**grid, "seed": [0, 1]}, _rows(grid["l2"], [0, 1]))
    assert "(mean +- sd over 2 seeds)" in many and "84.15 +- 0.21" in many


def test_the_validation_curve_tells_its_lines_and_its_zero_apart():
    grid = {"l2": [0.0, 0.01, 0.1], "seed": [0, 1]}
    ax = sweep_report.validation_curve(grid, _rows(grid["l2"], [0, 1]), "l2", grid["l2"]).axes[0]
    train, val = ax.lines
    assert (train.get_color(), val.get_color()) == ("C0", "C1")  # the learning curves' colours
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert (
        texts == ["training", "validation"] and ax.get_legend().get_texts()[0].get_fontsize() >= 9
    )
    assert ax.get_xlabel() == "l2 (log scale; 0 has no place on it: drawn one decade left of 0.01)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.01", "0.1"]
    assert ax.get_title() == "accuracy against l2: mean ± sd over 2 seeds"
    positive = {"l2": [0.01, 0.1], "seed": [0]}
    ax = sweep_report.validation_curve(positive, _rows([0.01, 0.1], [0]), "l2", [0.01, 0.1]).axes[0]
    assert ax.get_xlabel() == "l2 (log scale)" and ax.get_title().endswith(": one seed")


@pytest.mark.parametrize("failed", [False, True])
def test_a_share_cut_short_by_a_signal_says_the_error_it_was_leaving_with(
    tmp_path, monkeypatch, failed
):
    """A signal as a rank's share cleans up after an error does not turn the error into an
    interrupted sweep (which would say how to resume it); a signal alone still does."""

    def trained(*args, **kwargs):
        try:
            if failed:
                raise UserError("no space left on device", tmp_path)
        finally:
            raise Interrupted(signal.SIGTERM)  # as sigterm_interrupts' handler would raise

    monkeypatch.setattr(sweep, "name_teachers", lambda *args: None)
    monkeypatch.setattr(sweep, "run_sweep", trained)
    network = SimpleNamespace(config=make_config("seed", quiet=True))
    planned = SimpleNamespace(dir=tmp_path, networks=[network], diverged=set())
    if failed:
        with pytest.raises(UserError, match="no space left on device"):
            sweep._train_share(planned, [network], 60.0, SOLO)
    else:
        assert sweep._train_share(planned, [network], 60.0, SOLO) is True  # interrupted
