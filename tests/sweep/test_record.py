"""sweep.json (digits_torch.sweep.record) written and read back on its own: the grid, the networks
(tuples again, directories inside the sweep), the plan's lines and whose pictures; read under
the sweep's lock; and the directory names it refuses or takes, to the byte.
The hand edits run end to end (a path out, a name twice, no networks, another config name) are
tests/end_to_end/test_sweep_hostile.py's."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from digits_torch.config.config import make_config
from digits_torch.errors import UserError
from digits_torch.store.runs import RunLock
from digits_torch.sweep.record import SWEEP, read_sweep, write_sweep_json
from digits_torch.sweep.train import Network


def _network(name, lr, sweep_dir=None, hidden=(25,)):
    values = {"lr": lr, "hidden": hidden}
    config = make_config("seed", name=name, lr=lr, hidden=hidden)
    return Network(name, values, config, None if sweep_dir is None else sweep_dir / name)


def _read(sweep_dir):
    with ExitStack() as locks:
        return read_sweep(sweep_dir, locks)


def test_what_is_written_reads_back(tmp_path):
    grid = {"lr": [0.1, 0.2], "hidden": [(25,), (5, 5)]}
    networks = [_network("0-lr=0.1", 0.1, tmp_path), _network("1-lr=0.2", 0.2, hidden=(5, 5))]
    networks[0].metrics = {"val_accuracy": 0.5}
    write_sweep_json(tmp_path, grid, networks, "line one\nline two", "every")
    saved = json.loads((tmp_path / SWEEP).read_text())
    assert saved["plan"] == ["line one", "line two"] and saved["format"] == 1
    assert [n["metrics"] for n in saved["networks"]] == [{"val_accuracy": 0.5}, None]
    assert [n["dir"] for n in saved["networks"]] == ["0-lr=0.1", None]
    read_grid, read_networks, figures = _read(tmp_path)
    assert read_grid == grid and figures == "every"  # hidden's lists are tuples again
    for mine, theirs in zip(read_networks, networks, strict=True):
        assert (mine.name, mine.values, mine.config, mine.dir) == (
            theirs.name, theirs.values, theirs.config, theirs.dir)  # fmt: skip


def test_it_is_read_holding_the_sweeps_lock(tmp_path):
    write_sweep_json(tmp_path, {}, [_network("a", 0.1)], "", "best")
    with ExitStack() as locks:
        read_sweep(tmp_path, locks)
        with pytest.raises(UserError):
            RunLock(tmp_path)  # held until the caller's stack closes
    RunLock(tmp_path).release()


def test_a_sweep_json_from_before_figures_draws_the_best(tmp_path):
    write_sweep_json(tmp_path, {}, [_network("a", 0.1)], "", "none")
    saved = json.loads((tmp_path / SWEEP).read_text())
    del saved["figures"]
    (tmp_path / SWEEP).write_text(json.dumps(saved))
    assert _read(tmp_path)[2] == "best"
    saved["figures"] = "all"
    (tmp_path / SWEEP).write_text(json.dumps(saved))
    with pytest.raises(UserError, match=r"unreadable \(figures 'all' is not one of best, every"):
        _read(tmp_path)


def test_no_sweep_json_is_not_a_sweep_to_resume(tmp_path):
    with pytest.raises(UserError) as err:
        _read(tmp_path)
    assert str(err.value) == f"{tmp_path}: not a sweep directory to resume (no {SWEEP})"


def _with_dir(sweep_dir, dir_name):
    """A sweep.json whose second network's directory is hand-edited to ``dir_name``."""
    write_sweep_json(sweep_dir, {}, [_network("a", 0.1), _network("b", 0.1)], "", "best")
    saved = json.loads((sweep_dir / SWEEP).read_text())
    saved["networks"][1]["dir"] = dir_name
    (sweep_dir / SWEEP).write_text(json.dumps(saved))


@pytest.mark.parametrize("dir_name", [".hidden", "a b", "x" * 256, "é" * 128, "-\n"])
def test_a_dir_that_is_no_plain_directory_name_is_refused(dir_name, tmp_path):
    _with_dir(tmp_path, dir_name)
    with pytest.raises(UserError) as err:
        _read(tmp_path)
    assert f"network 1: dir {dir_name!r} is not a directory name in the sweep" in str(err.value)


@pytest.mark.parametrize("dir_name", ["b", "x" * 255, "0-l2=0.1+b_c.d", "é" * 127])
def test_a_plain_dir_name_up_to_255_bytes_is_taken(dir_name, tmp_path):
    _with_dir(tmp_path, dir_name)
    assert _read(tmp_path)[1][1].dir == tmp_path / dir_name
