"""``rtrec recommend`` with filters and --history, and ``rtrec similar``, on a saved model."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native.cli import main


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    rec = rt.Recommender(model="mf",
                         dim=8, num_threads=1, seed=0).fit(rng.integers(0, 50, 2000), rng.integers(0, 100, 2000),
                                                             epochs=3)
    rec.set_item_features(list(range(0, 100, 2)), [["genre=Comedy"]] * 50)
    path = tmp_path_factory.mktemp("m") / "m.rtrec"
    rec.save(path)
    return str(path)


def run_json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_recommend_with_filters_equals_the_python_call(capsys, model_path):
    rec = rt.Recommender.load(model_path)
    doc = run_json(capsys, "recommend", "--model", model_path, "--user", "3", "-k", "4",
                   "--items", "1,2,3,4,5,6,7,8", "--exclude", "2", "--tags", "genre=Comedy")
    want, _ = rec.recommend(3, k=4, items=[1, 2, 3, 4, 5, 6, 7, 8], exclude=[2], tags=["genre=Comedy"])
    assert doc["items"] == want.tolist() and "fallback" not in doc


def test_recommend_says_when_the_user_is_unknown(capsys, model_path):
    doc = run_json(capsys, "recommend", "--model", model_path, "--user", "424242", "-k", "3")
    assert doc["fallback"] == "popular"
    assert main(["recommend", "--model", model_path, "--user", "424242", "-k", "3"]) == 0
    assert "unknown user" in capsys.readouterr().out


def test_recommend_for_an_anonymous_history(capsys, model_path):
    rec = rt.Recommender.load(model_path)
    doc = run_json(capsys, "recommend", "--model", model_path, "--history", "1,2,3", "-k", "5")
    assert doc["items"] == rec.recommend_for_history([1, 2, 3], k=5)[0].tolist()


def test_similar(capsys, model_path):
    rec = rt.Recommender.load(model_path)
    doc = run_json(capsys, "similar", "--model", model_path, "--item", "4", "-k", "3", "--tags", "genre=Comedy")
    assert doc["items"] == rec.similar_items(4, k=3, tags=["genre=Comedy"])[0].tolist()


@pytest.mark.parametrize("argv", [
    ["similar", "--item", "4000"],
    ["recommend", "--user", "1", "--tags", "nope"],
    ["recommend", "--user", "1", "--items", "a,b"],
    ["recommend", "--history", "x"],
])
def test_bad_input_is_one_line_and_exit_1(capsys, model_path, argv):
    assert main([argv[0], "--model", model_path, *argv[1:]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rtrec ")


def test_user_and_history_are_exclusive(capsys, model_path):
    assert main(["recommend", "--model", model_path, "--user", "1", "--history", "1"]) != 0
    assert "not allowed with" in capsys.readouterr().err
