"""A sweep's grid (digits_torch.sweep.grid): each --grid value read as its field's type, --seeds
as ranges counted before they are made, and the grid expanded into every combination, in order,
each network named by its index and values within a name's bytes.

The command's own errors, the threads a stack takes and names counted past 255 bytes are tested
through the command (tests/sweep/test_sweep.py, tests/end_to_end/test_sweep_hostile.py)."""

from __future__ import annotations

import itertools
import re

import pytest

from digits_torch import UserError
from digits_torch.sweep.grid import MAX_NETWORKS, NAME_BYTES, expand, parse_grid, parse_seeds


@pytest.mark.parametrize(
    ("spec", "values"),
    [
        ("val-fraction=0.1, 0.2", [0.1, 0.2]),  # a flag's dashes, spaces around the values
        ("nesterov=True, FALSE", [True, False]),
        ("aug_elastic=10x2.9,0x0", [(10.0, 2.9), (0.0, 0.0)]),  # ALPHAxSIGMA
        ("teacher_preset=tuned,None", ["tuned", None]),  # none: a field that may be None
        ("activation=none", ["none"]),  # a field that is always a string keeps the word
    ],
)
def test_each_value_is_read_as_its_fields_type(spec, values):
    ((field, read),) = parse_grid([spec]).items()
    assert field == spec.partition("=")[0].replace("-", "_")
    assert read == values
    assert [type(v) for v in read] == [type(v) for v in values]  # 0.0 is no 0, True no 1


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("l2", "give FIELD=V1,V2,..."),
        ("l2= ", "give FIELD=V1,V2,..."),
        ("nesterov=true,yes", "'yes' is not true or false"),
        ("aug_elastic=10", "'10' is not 2 numbers like 10x2.9"),
        ("aug_elastic=1x2x3", "'1x2x3' is not 2 numbers like 10x2.9"),
        ("aug_elastic=ax2", "'ax2' is not 2 numbers like 10x2.9"),
        # values whose texts differ but which read the same
        ("l2=0,0.0", "a value is given twice"),
        ("lr=1e-1,0.1", "a value is given twice"),
        ("hidden=25,025", "a value is given twice"),
        ("nesterov=true,TRUE", "a value is given twice"),
    ],
)
def test_a_value_its_field_cannot_take_is_one_line_naming_the_spec(spec, problem):
    with pytest.raises(UserError) as err:
        parse_grid([spec])
    assert str(err.value) == f"--grid {spec}: {problem}"


def test_seeds_are_ranges_and_single_seeds_in_the_order_given():
    assert parse_seeds("0-4") == list(range(5))
    assert parse_seeds(" 7 , 0 - 1,3") == [7, 0, 1, 3]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0-2,2", "give each seed once"),
        ("3-1", "give each seed once"),  # a range that holds no seed
        ("", "give seeds like 0-4 or 0,3,7"),
        ("1,,2", "give seeds like 0-4 or 0,3,7"),
    ],
)
def test_seeds_given_twice_or_not_at_all_are_refused(text, problem):
    with pytest.raises(UserError) as err:
        parse_seeds(text)
    assert str(err.value) == f"--seeds {text}: {problem}"


def test_a_sweep_takes_up_to_its_most_networks_of_seeds_counted_over_all_the_ranges():
    assert len(parse_seeds(f"0-{MAX_NETWORKS - 1}")) == MAX_NETWORKS
    half = MAX_NETWORKS // 2
    for text in (f"0-{MAX_NETWORKS}", f"0-{half - 1},{half}-{MAX_NETWORKS}"):
        with pytest.raises(UserError, match=f"{MAX_NETWORKS + 1:,} seeds, but a sweep trains"):
            parse_seeds(text)


def test_the_grid_expands_to_every_combination_first_field_outermost(tmp_path):
    grid = {"l2": [0.0, 0.1], "hidden": [(25,), (5, 5)], "seed": [0, 1, 2]}
    networks = expand("seed", {"epochs": 3}, grid, tmp_path)
    combos = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    assert [n.values for n in networks] == combos
    for network in networks:
        config = network.config
        assert {f: getattr(config, f) for f in grid} == network.values
        assert (config.name, config.logdir, config.epochs) == (network.name, str(tmp_path), 3)
    assert networks[0].name == "00-l2=0.0-hidden=25-seed=0"
    assert networks[-1].name == "11-l2=0.1-hidden=5x5-seed=2"


@pytest.mark.parametrize("count", [10, 11])
def test_the_index_is_padded_so_that_names_sort_in_the_grids_order(count, tmp_path):
    networks = expand("seed", {}, {"seed": list(range(count))}, tmp_path)
    indices = [n.name.partition("-")[0] for n in networks]
    assert indices == [str(i).zfill(len(str(count - 1))) for i in range(count)]
    assert sorted(n.name for n in networks) == [n.name for n in networks]


def test_an_empty_grid_is_one_network_named_base(tmp_path):
    (network,) = expand("seed", {"epochs": 2}, {}, tmp_path)
    assert (network.name, network.values) == ("0-base", {})
    assert (network.config.name, network.config.epochs) == ("0-base", 2)


def test_a_name_holds_safe_characters_and_fits_in_bytes_not_characters(tmp_path):
    wide = "é" * (NAME_BYTES // 2)  # within NAME_BYTES characters, past NAME_BYTES bytes
    networks = expand("seed", {}, {"data": ["a b/c.mat", wide]}, tmp_path)
    safe, counted = (n.name for n in networks)
    assert safe == "0-data=a_b_c.mat"
    assert counted == "1-+1"  # its one value counted, not shown
    assert all(re.fullmatch(r"[\w.+=-]+", n.name) for n in networks)
    assert [n.values["data"] for n in networks] == ["a b/c.mat", wide]  # the values kept whole
