"""`--family two_tower` through every command that builds a model: demo, train (then
recommend), evaluate, serve and consume give a two_tower model with the options asked for."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native.cli import main
from test_cli import TINY, _fake_server, write_ratings

TWO_TOWER = ["--family", "two_tower", "--tower", "16", "--history", "5", "--negatives", "4"]


def assert_two_tower(rec: rt.Recommender) -> None:
    params = rec.get_params()
    assert params["model"] == "two_tower"
    assert (params["tower"], params["history"], params["negatives"]) == ((16,), 5, 4)


def test_demo_replays_the_stream_with_two_tower(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", *TINY, *TWO_TOWER, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    model = report["config"]["model"]
    assert model["model"] == "two_tower" and model["tower"] == [16] and model["history"] == 5
    assert report["stream"]["loss"] == "softmax"  # the family's default loss
    assert set(report["policies"]) == {"realtime", "periodic", "static", "hybrid"}


def test_train_then_recommend_a_two_tower_model(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    model = tmp_path / "m.rtrec"
    assert main(["train", "--data", str(data), "--model-out", str(model), "--dim", "8", *TWO_TOWER,
                 "--json"]) == 0
    capsys.readouterr()
    rec = rt.Recommender.load(model)
    assert_two_tower(rec)
    # The model remembers each user's recent items: the histories were trained and saved.
    assert rec.stats()["n_users"] == 39
    assert main(["recommend", "--model", str(model), "--user", "3", "-k", "5", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    ids, scores = rec.recommend(3, k=5)
    assert printed["items"] == ids.tolist()
    np.testing.assert_allclose(printed["scores"], scores, rtol=1e-6)


def test_evaluate_builds_two_tower_models(tmp_path, capsys):
    assert main(["evaluate", *TINY, *TWO_TOWER, "--policies", "realtime", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["config"]["model"]["model"] == "two_tower"
    assert 0.0 <= printed["policies"]["realtime"]["hitrate@10"] <= 1.0


def test_serve_builds_a_two_tower_model(tmp_path, monkeypatch):
    seen = _fake_server(monkeypatch)
    assert main(["serve", "--port", "0", "--dim", "8", *TWO_TOWER]) == 0
    assert_two_tower(seen["rec"])


@pytest.mark.slow
def test_consume_trains_a_two_tower_model_from_the_stream(redis_url, tmp_path, capsys):
    from rtrec_native.replication import restore_latest
    from rtrec_native.stream import Producer

    Producer(redis_url, "rtrec:events").send_many([k % 10 for k in range(60)], [k % 25 for k in range(60)])
    assert main(["consume", "--redis", redis_url, "--snapshot-dir", str(tmp_path), "--dim", "8", *TWO_TOWER,
                 "--threads", "1", "--idle-exit", "0.5", "--log-level", "error"]) == 0
    rec = restore_latest(tmp_path)
    assert rec is not None
    assert_two_tower(rec)
    assert "learned 60 events (0 dead letters)" in capsys.readouterr().out
    assert rec.n_users == 10 and rec.n_items == 25
    # Sampled softmax learns an event once there is another item to contrast it with: all
    # but the stream's first event moved the model.
    assert rec.stats()["updates"] == 59
