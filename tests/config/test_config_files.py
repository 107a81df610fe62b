"""Config files (digits_torch.config.config_files): JSON, or TOML by its suffix, read into the
fields they set and no others, lists as the tuples the fields hold, bounds left to the config;
anything else refused as one UserError naming the file.

Through train.py's --config (tests/cli/test_cli.py): a JSON file's wrong keys and types, a TOML
file that trains, and a missing file."""

from __future__ import annotations

import re
import sys

import pytest

from digits_torch import UserError, make_config
from digits_torch.config.config_files import read_config_file

JSON = '{"preset": "seed", "epochs": 2, "hidden": [5, 4], "aug_elastic": [10.0, 2.9],\n'
JSON += '"nesterov": false, "lr": 0.05, "data": null}\n'
TOML = 'preset = "seed"\nepochs = 2\nhidden = [5, 4]\naug_elastic = [10.0, 2.9]\n'
TOML += "nesterov = false\nlr = 0.05\n"  # TOML has no null: a field left out is its default's
VALUES = dict(preset="seed", epochs=2, hidden=(5, 4), aug_elastic=(10.0, 2.9), nesterov=False)
VALUES["lr"] = 0.05
UNPARSED = r"not a valid config file \(.+\)"  # the parser's own reason in brackets


@pytest.mark.parametrize(
    ("name", "text", "values"),
    [
        ("c.json", JSON, {**VALUES, "data": None}),
        ("c.toml", TOML, VALUES),
        ("C.TOML", TOML, VALUES),  # the suffix in any case
        ("c.cfg", JSON, {**VALUES, "data": None}),  # any other suffix, or none: JSON
        ("config", JSON, {**VALUES, "data": None}),
    ],
    ids=["json", "toml", "TOML", "cfg", "no-suffix"],
)
def test_a_file_gives_the_fields_it_sets_and_no_others(tmp_path, name, text, values):
    (tmp_path / name).write_text(text)
    read = read_config_file(tmp_path / name)
    assert read == values
    assert [type(v) for v in read.values()] == [type(v) for v in values.values()]


@pytest.mark.parametrize("name", ["c.json", "c.toml"])
def test_a_byte_order_mark_is_read_past_in_either_format(tmp_path, name):
    """Windows' Notepad may start a UTF-8 file with one."""
    text = '{"epochs": 2}' if name == "c.json" else "epochs = 2\n"
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_config_file(tmp_path / name) == {"epochs": 2}


def test_the_bounds_are_left_to_the_config(tmp_path):
    """A value's bounds may hang on others (the preset's, the flags'): checked once all meet."""
    (tmp_path / "c.json").write_text('{"lr": -1.0, "epochs": 0}')
    read = read_config_file(tmp_path / "c.json")
    assert read == {"lr": -1.0, "epochs": 0}
    with pytest.raises(UserError, match="must be"):
        make_config(**read)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("c.json", b"null", "a config file holds one table of field = value"),
        ("c.json", b'"seed"', "a config file holds one table of field = value"),
        ("c.json", TOML.encode(), UNPARSED),  # TOML, not named .toml
        ("c.json", b'{"name": "\xff"}', UNPARSED),  # not UTF-8
        ("c.toml", b'name = "\xff"\n', UNPARSED),
        ("c.toml", b"epochs = \n", UNPARSED),
        ("c.toml", b"epochs = 2\nepochs = 3\n", UNPARSED),  # a key set twice
        (
            "c.json",
            b'{"lr": 0.1, "epochs": 2, "lr": 0.2}',
            r"not a valid config file \('lr' is set twice\)",
        ),
        ("c.toml", b"[train]\nepochs = 2\n", "unknown key 'train'"),  # one table, not several
        ("c.toml", b"epochs = 2.0\n", r"epochs must be an integer, got 2\.0"),
        (
            "c.toml",
            b"hidden = [5, true]\n",
            r"hidden must be a sequence of integers, got \[5, True\]",
        ),
        ("c.toml", b"aug_elastic = [10]\n", r"aug_elastic must be 2 numbers, got \[10\]"),
        # a type JSON lacks
        ("c.toml", b"data = 1979-05-27\n", r"data must be a string or None, got datetime\.date\("),
    ],
)
def test_what_is_not_one_table_of_fields_is_one_line_naming_the_file(
    tmp_path, name, content, problem
):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=f"^{re.escape(str(path))}: {problem}") as err:
        read_config_file(path)
    assert err.value.path == str(path) and "\n" not in str(err.value)


def test_toml_without_pythons_toml_reader_says_to_use_json(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10: import fails
    (tmp_path / "c.toml").write_text(TOML)
    with pytest.raises(UserError) as err:
        read_config_file(tmp_path / "c.toml")
    assert str(err.value) == f"{tmp_path / 'c.toml'}: TOML config files need Python 3.11+; use JSON"
