"""The model parameter table (cpp/include/rtrec/model_params.def) drives the constructor's
checks and docs, ``rt.defaults``, the snapshot header and the command line's model options;
these tests fail when one of them stops following it. Files of format 6 (before the header
named its parameters) still load with exactly the values they held."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native.cli.options import build_parser

FORMAT6 = Path(__file__).parent / "data" / "format6"
NAMES = [p["name"] for p in rt.parameters()]


def test_the_constructor_takes_exactly_the_table_parameters():
    signature = inspect.signature(rt.Recommender.__init__)
    own = [name for name in signature.parameters if name not in ("self", "model", "num_threads")]
    assert sorted(own) == sorted(NAMES)
    for name in NAMES:  # None means "the family's default"
        assert signature.parameters[name].default is None


def test_the_table_defaults_are_the_families_defaults():
    for family in ("mf", "two_tower"):
        defaults = rt.defaults(family)
        assert {p["name"]: p["default"][family] for p in rt.parameters()} == {
            name: value for name, value in defaults.items() if name not in ("model", "num_threads")
        }
        rec = rt.Recommender(model=family)
        assert {name: rec._params[name] for name in NAMES} == {name: defaults[name] for name in NAMES}


def test_every_parameter_is_documented_on_the_constructor():
    doc = rt.Recommender.__doc__ or ""
    for spec in rt.parameters():
        assert f"{spec['name']}: " in doc, spec["name"]
        assert spec["doc"].split()[0] in doc


def test_every_parameter_has_a_command_line_option():
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    flags = {flag for action in train._actions for flag in action.option_strings}
    for name in NAMES:
        assert "--" + name.replace("_", "-") in flags, name


@pytest.mark.parametrize("spec", rt.parameters(), ids=lambda s: s["name"])
def test_a_value_of_the_wrong_type_is_a_type_error_naming_the_parameter(spec):
    wrong = 1.5 if spec["kind"] in ("int", "choice", "bool", "widths") else "1"
    with pytest.raises(TypeError, match=spec["name"]):
        rt.Recommender(model="two_tower", **{spec["name"]: wrong})


def test_an_out_of_range_value_is_a_value_error_naming_the_parameter():
    for spec in rt.parameters():
        if spec["kind"] not in ("int", "float") or spec["high"] >= 2**63:
            continue
        too_big = int(spec["high"]) + 1 if spec["kind"] == "int" else spec["high"] * 2 + 1
        if spec["high"] == float("inf"):
            too_big = float("nan") if spec["kind"] == "float" else None
        if too_big is None:
            continue
        with pytest.raises(ValueError, match=spec["name"]):
            rt.Recommender(model="two_tower", loss="softmax", **{spec["name"]: too_big})


def test_every_parameter_survives_a_snapshot(tmp_path):
    # Values other than the defaults, for each family: the header names each parameter.
    for family, given in (
        ("mf", dict(dim=3, loss="huber", optimizer="sgd", learning_rate=0.07, l2=0.002, grad_clip=3.0,
                    init_std=0.02, negatives=5, negative_sampling="popularity", seed=9, min_count=2, ttl=500.0,
                    max_rows=1000, dedup_window=2.0, max_user_rate=50.0, huber_delta=0.5, adaptive_step=True,
                    retrieval="exact")),
        ("two_tower", dict(dim=5, loss="bpr", tower=(7, 6), history=9, recency=0.5, negatives=4)),
    ):
        rec = rt.Recommender(model=family, **given)
        rec.save(tmp_path / family)
        loaded = rt.Recommender.load(tmp_path / family)
        assert {name: loaded._params[name] for name in NAMES} == {name: rec._params[name] for name in NAMES}
        for name, value in given.items():
            assert loaded._params[name] == value, name


@pytest.mark.parametrize("family", ["mf", "two_tower"])
def test_format_6_files_load_with_the_values_they_held(family):
    expected = json.loads((FORMAT6 / "expected.json").read_text())[family]
    rec = rt.Recommender.load(FORMAT6 / f"{family}.snapshot", num_threads=1)
    rec.apply_delta(FORMAT6 / f"{family}.delta")
    assert {name: rec._params[name] for name in expected["params"]} == {
        name: tuple(v) if isinstance(v, list) else v for name, v in expected["params"].items()
    }
    users, items = np.repeat(np.arange(6), 13), np.tile(np.arange(13), 6)
    np.testing.assert_array_equal(rec.predict(users, items), np.asarray(expected["scores"], dtype=np.float32))
    assert [int(x) for x in rec.recommend(0, k=5)[0]] == expected["top"]
    assert [bool(x) for x in rec.hidden([3, 11])] == expected["hidden"]


def test_the_docs_page_shows_the_current_table():
    from rtrec_native._params import markdown_table

    page = (Path(__file__).parents[1] / "docs" / "parameters.md").read_text()
    assert markdown_table() in page
