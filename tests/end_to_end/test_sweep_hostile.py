"""Hostile sweeps (issue 23): a second writer, kills at awkward moments, a hand-edited
sweep.json, names too long for the file system, and a full disk.

Each case ends with a result or one ``error:`` line (exit 2), writes nothing outside the sweep,
and a sweep stopped by it resumes. Sweeps here train on 40 digits, one batch an epoch.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from digits_torch.cli import train as cli
from digits_torch.store.checkpoints import LATEST, load_checkpoint
from digits_torch.store.runs import RunLock, read_history
from digits_torch.sweep import sweep
from digits_torch.sweep.train import PROGRESS, SIDE

EPOCHS = 3


def _args(data: Path, logdir: Path, *extra: str) -> list[str]:
    return [
        "--preset", "seed", "--data", str(data), "--device", "cpu", "--logdir", str(logdir),
        "--epochs", str(EPOCHS), "--val-fraction", "0.2", "--quiet", "--no-figures",
        "--save-every", "0", *extra,
    ]  # fmt: skip


GRID = ("--grid", "optimizer=sgd,adam", "--grid", "lr=0.05,0.1")  # 2 stacked, 2 solo networks


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_digits) -> Path:
    """A finished sweep of two stacked and two solo (adam) networks: copy it to change it."""
    return sweep.run_command(_args(small_digits, tmp_path_factory.mktemp("sweeps"), *GRID))


@pytest.fixture
def copied(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "sweeps" / finished.name))


def _networks(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "sweep.json").read_text())["networks"]


def _stacked(sweep_dir: Path) -> Path:
    """The first SGD network's directory, made unfinished (as a kill leaves it)."""
    network = next(n for n in _networks(sweep_dir) if n["values"]["optimizer"] == "sgd")
    (sweep_dir / network["dir"] / "metrics.json").unlink()
    return sweep_dir / network["dir"]


def _files(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def one_error_line(ran, start: str) -> str:
    lines = ran.stderr.splitlines()
    assert ran.code == 2 and len(lines) == 1 and lines[0].startswith(start), ran.stderr
    return lines[0]


# ------------------------------------------------------------------------- one writer


def _resume_while_held(sweep_dir: Path, held: Path, run_entry):
    """Resume the sweep while ``held`` is locked, as another writer would hold it (flock
    refuses a second descriptor even in the same process)."""
    with RunLock(held):
        return run_entry(lambda: sweep.run_command(["--resume", str(sweep_dir)]))


def test_a_second_resume_of_a_sweep_is_refused(copied, run_entry):
    before = _files(copied)
    ran = _resume_while_held(copied, copied, run_entry)
    one_error_line(ran, f"error: {copied}: in use by another process (pid {os.getpid()})")
    assert _files(copied) == before


def test_a_network_that_train_py_is_resuming_is_not_trained_by_the_sweep(copied, run_entry):
    network = _stacked(copied)
    before = _files(network)
    ran = _resume_while_held(copied, network, run_entry)
    one_error_line(ran, f"error: {network}: in use by another process (pid {os.getpid()})")
    assert _files(network) == before
    assert sweep.run_command(["--resume", str(copied)]) == copied  # once it is free
    assert json.loads((network / "metrics.json").read_text())["epochs"] == EPOCHS


def test_a_history_that_skips_epochs_is_refused_as_train_py_refuses_it(copied, run_entry):
    """What two writers at once left: checkpoint.pt at epoch 3, a history without epoch 2."""
    network = _stacked(copied)
    history = network / "history.jsonl"
    lines = history.read_text().splitlines(keepends=True)
    history.write_text(lines[0] + lines[2])
    before = _files(network)
    swept = one_error_line(
        run_entry(lambda: sweep.run_command(["--resume", str(copied)])), f"error: {history}: "
    )
    assert "skip or repeat epochs" in swept and f"{network / LATEST} is at epoch 3" in swept
    assert _files(network) == before
    alone = one_error_line(
        run_entry(lambda: cli.main(["--resume", str(network)])), f"error: {history}: "
    )
    assert swept == alone


# ------------------------------------------------------------------------- kills


def test_networks_killed_before_their_first_checkpoint_resume(copied, small_digits):
    """A kill just after a network's directory was made: it holds a config.json and an event
    file at most, for a solo (adam) network, as for a stacked one."""
    solo = next(n for n in _networks(copied) if n["values"]["optimizer"] == "adam")
    stacked = _stacked(copied)
    for killed in (copied / solo["dir"], stacked):
        shutil.rmtree(killed)
        killed.mkdir()
        (killed / "config.json").write_text("{}\n")
        (killed / "events.out.tfevents.0.killed").write_bytes(b"")
    assert sweep.run_command(["--resume", str(copied)]) == copied
    (again,) = copied.glob(f"*-seed-{solo['name']}")  # the killed one removed, a new one
    for run in (again, stacked):
        assert not (run / "events.out.tfevents.0.killed").exists()
        assert [r["epoch"] for r in read_history(run)] == list(range(1, EPOCHS + 1))
        assert json.loads((run / "metrics.json").read_text())["epochs"] == EPOCHS
    saved = next(n for n in _networks(copied) if n["name"] == solo["name"])
    assert saved["dir"] == again.name and saved["metrics"]["epochs"] == EPOCHS


# ------------------------------------------------------------------------- sweep.json


def _rename(network: dict, name: str) -> None:
    network["name"] = network["config"]["name"] = name


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda n, out: n[0].update(name="../../x"), "network 0: name '../../x' is not a"),
        (lambda n, out: n[0].update(dir=str(out)), "network 0: dir "),
        (lambda n, out: n[2].update(dir="../x"), "network 2: dir "),
        (
            lambda n, out: _rename(n[1], n[0]["name"]),
            "name '0-optimizer=sgd-lr=0.05' is given twice",
        ),
        (lambda n, out: n[0]["config"].update(name="other"), "its config's name 'other'"),
        (lambda n, out: n.clear(), "holds no networks"),
    ],
)
def test_a_hand_edited_sweep_json_writes_nothing_outside_the_sweep(
    copied, tmp_path, run_entry, edit, problem
):
    outside = tmp_path / "outside"
    outside.mkdir()
    saved = json.loads((copied / "sweep.json").read_text())
    for network in saved["networks"]:
        (copied / network["dir"] / "metrics.json").unlink()  # every network to train again
    edit(saved["networks"], outside)
    (copied / "sweep.json").write_text(json.dumps(saved))
    ran = run_entry(lambda: sweep.run_command(["--resume", str(copied)]))
    assert problem in one_error_line(ran, f"error: {copied / 'sweep.json'}: ")
    assert list(outside.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "outside",
        "sweeps",
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [("[1]", "not a JSON object of metrics (a list)"), ('{"val_accuracy": "x"}', "got 'x'")],
)
def test_a_hand_edited_metrics_json_is_one_error_line(copied, run_entry, content, problem):
    network = _networks(copied)[-1]  # a solo one, then a stacked one
    for run in (copied / network["dir"], copied / _networks(copied)[0]["dir"]):
        saved = (run / "metrics.json").read_text()
        (run / "metrics.json").write_text(content)
        ran = run_entry(lambda: sweep.run_command(["--resume", str(copied)]))
        assert problem in one_error_line(ran, f"error: {run / 'metrics.json'}: ")
        (run / "metrics.json").write_text(saved)


def test_a_network_directory_planted_as_a_link_is_refused(copied, tmp_path, run_entry):
    network = _stacked(copied)
    outside = Path(shutil.move(network, tmp_path / "elsewhere"))
    network.symlink_to(outside)
    before = _files(outside)
    ran = run_entry(lambda: sweep.run_command(["--resume", str(copied)]))
    one_error_line(ran, f"error: {network}: a link, not a network directory of the sweep")
    assert _files(outside) == before


# ------------------------------------------------------------------------- names


# the closing figures' tick labels are these long paths too: they fit as well as they can
@pytest.mark.filterwarnings("ignore:Tight layout not applied")
def test_networks_whose_labels_pass_255_bytes_get_names_that_fit(tmp_path, small_digits):
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    data = Path(shutil.copy(small_digits, deep / "digits.mat"))
    grid = ("--grid", "optimizer=sgd,adam", "--grid", f"data={data},{small_digits}")
    args = _args(small_digits, tmp_path / "runs", *grid, "--epochs", "1")
    sweep_dir = sweep.run_command(args[:2] + args[4:])  # without --data
    networks = _networks(sweep_dir)
    assert len(networks) == 4 and len({n["name"] for n in networks}) == 4
    for network in networks:
        long = network["values"]["data"] == str(data)
        assert network["name"].endswith("-+1") == long, network["name"]  # counted, not shown
        assert len(network["dir"].encode()) <= 255 and network["metrics"]["epochs"] == 1
    assert {n["values"]["data"] for n in networks} == {str(data), str(small_digits)}


# ------------------------------------------------------------------------- a full disk


def _disk_full_at(monkeypatch, name: str, write: int) -> None:
    """The ``write``-th write of a file called ``name`` (its temp file) fails: no space."""
    seen = []

    def full(path, mode="r", *args, **kwargs):  # the open() that files.py sees
        if "w" in mode and name in Path(path).name:
            seen.append(path)
            if len(seen) == write:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr("digits_torch.store.files.open", full, raising=False)


def test_a_full_disk_mid_save_undoes_the_save_and_the_sweep_resumes(
    tmp_path, small_digits, finished, run_entry, monkeypatch
):
    """The second network's side checkpoint of the first save fails, after the first's was
    written: the save is undone (no side file, no commit), and the resumed sweep ends as the
    uninterrupted one."""
    _disk_full_at(monkeypatch, SIDE[LATEST], write=2)
    ran = run_entry(lambda: sweep.run_command(_args(small_digits, tmp_path, *GRID)))
    (sweep_dir,) = tmp_path.iterdir()
    line = one_error_line(ran, f"error: {sweep_dir}/")
    assert line.endswith(f"/{SIDE[LATEST]}: cannot write (No space left on device)"), line
    assert not list(sweep_dir.glob("*/.sweep-*")) and not list(sweep_dir.glob("*/.*.tmp"))
    assert not (sweep_dir / PROGRESS).exists()
    stacked = [n for n in _networks(finished) if n["values"]["optimizer"] == "sgd"]
    for network in stacked:
        assert load_checkpoint(sweep_dir / network["dir"] / LATEST)["epoch"] == 0
    monkeypatch.undo()
    assert sweep.run_command(["--resume", str(sweep_dir)]) == sweep_dir
    for network in stacked:
        mine, theirs = (load_checkpoint(d / network["dir"] / LATEST) for d in (sweep_dir, finished))
        assert [r["epoch"] for r in read_history(sweep_dir / network["dir"])] == [1, 2, 3]
        for key, value in theirs["model"].items():
            assert torch.equal(mine["model"][key], value), (network["name"], key)


def test_a_full_disk_at_sweep_json_leaves_no_sweep(tmp_path, small_digits, run_entry, monkeypatch):
    _disk_full_at(monkeypatch, "sweep.json", write=1)
    ran = run_entry(lambda: sweep.run_command(_args(small_digits, tmp_path / "runs", *GRID)))
    one_error_line(ran, f"error: {tmp_path / 'runs'}/")
    assert "sweep.json: cannot write (No space left on device)" in ran.stderr
    assert list((tmp_path / "runs").iterdir()) == []
