"""``rtrec recommend --diversity / --explain`` and the demo's beyond-accuracy columns."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native.cli import main
from test_cli import TINY, assert_one_line_error, write_ratings


@pytest.fixture
def model_file(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    model = tmp_path / "m.rtrec"
    assert main(["train", "--data", str(data), "--model-out", str(model), "--dim", "8"]) == 0
    capsys.readouterr()
    return model


def test_recommend_with_diversity_and_explanations(model_file, capsys):
    argv = ["recommend", "--model", str(model_file), "--user", "3", "-k", "5", "--diversity", "0.4"]
    assert main([*argv, "--explain", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    rec = rt.Recommender.load(model_file)
    ids, scores = rec.recommend(3, k=5, diversity=0.4)
    assert printed["items"] == ids.tolist()
    assert printed["diversity"] == 0.4
    np.testing.assert_allclose(printed["scores"], scores, rtol=1e-6)
    assert printed["explanations"] == [
        [{**r, "weight": pytest.approx(r["weight"])} for r in rec.explain(3, item)] for item in ids.tolist()
    ]
    assert main([*argv, "--explain"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 12 and lines[1].split() == ["rank", "item", "name", "score"]  # a title, a heading, 5 rows
    assert all("because: item " in line for line in lines[3::2])


def test_explain_for_an_unknown_user_says_so(model_file, capsys):
    assert main(["recommend", "--model", str(model_file), "--user", "987654", "-k", "2", "--explain"]) == 0
    assert "unknown user" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "x"])
def test_bad_diversity_exits_2(model_file, capsys, value):
    code = main(["recommend", "--model", str(model_file), "--user", "3", "--diversity", value])
    assert "--diversity" in assert_one_line_error(capsys, code, 2)


def test_demo_prints_diversity_and_novelty(tmp_path, capsys):
    assert main(["demo", *TINY, "--out", str(tmp_path)]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("policy"))
    assert "HitRate@10" in header and "ILD@10" in header and "novelty" in header and "coverage" in header
