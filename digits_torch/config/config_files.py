"""Config files: the fields a JSON or TOML file sets (:func:`read_config_file`), each key a field
and each value of its type; and a hint at the field a mistyped name meant (:func:`close_field`)."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from ..core.read_files import parse_json, parse_toml, read_bytes
from ..errors import UserError
from .config import TrainConfig, from_json, type_problem

__all__ = ["close_field", "read_config_file"]

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


def read_config_file(path: str | Path) -> dict:
    """The fields a config file sets: JSON, or TOML (``.toml``, Python 3.11+), one table of
    ``field = value`` as config.json holds them (a run's own config.json is one).

    Each key must be a field and each value of its type (a UserError naming the file and the
    key); the bounds are checked once the file's values meet the preset's and the flags'.
    """
    path = Path(path)
    text = read_bytes(path, what="a config file")
    try:
        if path.suffix.lower() == ".toml":  # a byte-order mark accepted, as JSON's reader does
            values = parse_toml(text.decode("utf-8-sig"))
        else:
            values = parse_json(text, object_pairs_hook=_once_each)
    except ImportError:  # tomllib is Python 3.11+
        raise UserError("TOML config files need Python 3.11+; use JSON", path) from None
    except ValueError as err:  # JSONDecodeError, TOMLDecodeError and UnicodeDecodeError are
        raise UserError(f"not a valid config file ({err})", path) from None
    if not isinstance(values, dict):
        raise UserError("a config file holds one table of field = value", path)
    for key, value in values.items():
        if key not in FIELDS:
            raise UserError(f"unknown key {key!r}{close_field(key)}", path)
        problem = type_problem(key, value)
        if problem:
            raise UserError(problem, path)
    return {k: from_json(k, v) for k, v in values.items()}


def _once_each(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are each set once, as TOML requires: a field set twice is a
    mistake to say, not the last value to keep silently."""
    values: dict = {}
    for key, value in pairs:
        if key in values:
            raise ValueError(f"{key!r} is set twice")
        values[key] = value
    return values


def close_field(name: str) -> str:
    """`` (did you mean 'epochs'?)`` for the config field most like ``name`` (a mistyped field
    name), or '' when none is close."""
    close = difflib.get_close_matches(name, FIELDS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
