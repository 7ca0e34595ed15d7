"""`rtrec consume` and `rtrec serve --follow` as a deployment: a trainer fed by Redis, a replica
that serves it and forwards feedback, /metrics on both; and their bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from functools import partial

import pytest

import rtrec_native as rt
from rtrec_native.cli import main
from rtrec_native.stream import Producer

try:
    import redis
except ImportError:  # the redis_url fixture skips (in CI: fails) and says why
    redis = None
pytest.importorskip("prometheus_client")
pytest.importorskip("fastapi")
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_for as wait_until
from test_serving import Server, _free_port

wait_for = partial(wait_until, timeout=30.0, interval=0.05)  # this file's waits

STREAM = "rtrec:events"


def scrape(port: int) -> dict[str, float]:
    """GET /metrics as {name{labels}: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.slow
def test_trainer_and_replica_with_metrics_end_to_end(redis_url, tmp_path):
    producer = Producer(redis_url, STREAM)
    producer.send_many(list(range(40)), [k % 25 for k in range(40)])
    producer.send_fields([{"user": "1", "item": "2", "weight": "heavy"}])  # a dead letter
    metrics_port = _free_port()
    trainer = subprocess.Popen(
        [sys.executable, "-m", "rtrec_native.cli", "consume", "--redis", redis_url, "--snapshot-dir", str(tmp_path),
         "--dim", "8", "--threads", "1", "--metrics-port", str(metrics_port), "--log-level", "error"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    replica = None
    try:
        def learned(n):
            try:
                return scrape(metrics_port).get("rtrec_events_learned_total") == n
            except OSError:
                return False

        assert wait_for(lambda: learned(40))
        trainer_metrics = scrape(metrics_port)
        assert trainer_metrics["rtrec_dead_letters_total"] == 1
        assert trainer_metrics["rtrec_rows{side=user}"] == 40 and trainer_metrics["rtrec_rows{side=item}"] == 25
        assert trainer_metrics["rtrec_stream_lag_entries"] == 0
        assert trainer_metrics["rtrec_update_seconds_count"] >= 1

        replica = Server("--follow", redis_url, "--snapshot-dir", str(tmp_path))
        status, body = replica.get("/recommend?user=3&k=100")
        assert status == 200 and len(body["items"]) == 24  # 25 items, the one user 3 has seen excluded
        # Feedback is forwarded to the stream (the trainer learns it), then reaches the replica.
        status, body = replica.post("/feedback", {"events": [{"user": 3, "item": 777}]})
        assert (status, body) == (202, {"forwarded": 1})
        assert wait_for(lambda: learned(41))
        assert wait_for(lambda: 777 in replica.get("/recommend?user=5&k=100")[1]["items"])
        replica_metrics = scrape(replica.port)
        assert replica_metrics["rtrec_feedback_forwarded_total"] == 1
        assert replica_metrics["rtrec_recommend_seconds_count"] >= 2
        assert replica_metrics["rtrec_replica_lag_deltas"] == 0
        assert replica.post("/features/items", {"ids": [1], "features": [["a"]]})[0] == 409
        assert replica.stop() == 0
        replica = None
    finally:
        if replica is not None:
            replica.stop()
        trainer.send_signal(signal.SIGTERM)
        out, err = trainer.communicate(timeout=30)
    assert trainer.returncode == 0, err
    assert "learned 41 events (1 dead letters) in this run" in out


def test_serve_has_metrics_of_what_it_learns(tmp_path):
    server = Server()
    try:
        assert server.post("/feedback", {"events": [{"user": 1, "item": 2}, {"user": 3, "item": 4}]})[0] == 200
        assert server.get("/recommend?user=1&k=5")[0] == 200
        metrics = scrape(server.port)
        assert metrics["rtrec_events_learned_total"] == 2
        assert metrics["rtrec_update_seconds_count"] == 1 and metrics["rtrec_recommend_seconds_count"] == 1
        assert metrics["rtrec_rows{side=item}"] == 2
        assert {"rtrec_skipped_updates_total", "rtrec_not_admitted_total"} <= set(metrics)
    finally:
        server.stop()


def test_unreachable_redis_is_one_line_and_exit_1(tmp_path, capsys):
    line = one_line_error(capsys, main(["consume", "--redis", "redis://127.0.0.1:1/0", "--snapshot-dir",
                                        str(tmp_path)]))
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in line
    rt.Publisher(rt.Recommender(model="mf", dim=4).fit([1], [2]), tmp_path, interval=None).close()
    line = one_line_error(capsys, main(["serve", "--follow", "redis://127.0.0.1:1/0", "--snapshot-dir",
                                        str(tmp_path)]))
    assert "cannot reach Redis" in line


def test_bad_streams_groups_and_directories_are_one_line_errors(redis_url, tmp_path, capsys):
    r = redis.Redis.from_url(redis_url)
    r.set("a-string", "x")
    base = ["consume", "--redis", redis_url, "--snapshot-dir", str(tmp_path / "m"), "--idle-exit", "0.2"]
    assert "holds a Redis string, not a stream" in one_line_error(capsys, main([*base, "--stream", "a-string"]))
    assert "dead-letter stream" in one_line_error(capsys, main([*base, "--stream", "rtrec:events:dead"]))
    Producer(redis_url, STREAM).send(1, 2)
    assert main([*base, "--log-level", "error"]) == 0
    capsys.readouterr()
    assert "learned from redis stream rtrec:events, not from redis stream other" in one_line_error(
        capsys, main([*base, "--stream", "other"]))
    assert main(["consume", "--redis", redis_url, "--snapshot-dir", str(tmp_path), "--group", " "]) == 2
    capsys.readouterr()


def test_follow_refuses_a_directory_of_another_lineage(redis_url, tmp_path, capsys):
    Producer(redis_url, STREAM).send(1, 2)
    assert main(["consume", "--redis", redis_url, "--snapshot-dir", str(tmp_path / "trainer"), "--idle-exit", "0.2",
                 "--log-level", "error"]) == 0
    rt.Publisher(rt.Recommender(model="mf", dim=4).fit([1], [2]), tmp_path / "other", interval=None).close()
    capsys.readouterr()
    line = one_line_error(capsys, main(["serve", "--follow", redis_url, "--snapshot-dir", str(tmp_path / "other")]))
    assert "announces lineage" in line and "is of lineage" in line
    assert "--follow needs --snapshot-dir" in one_line_error(capsys, main(["serve", "--follow", redis_url]))


def test_export_both_formats_from_the_command_line(tmp_path, capsys):
    rec = rt.Recommender(model="mf", dim=4, num_threads=1).fit(["u1", "u2", "u3"], ["a", "b", "a"], epochs=1)
    rec.save(tmp_path / "m.rtrec")
    assert main(["export", "--model", str(tmp_path / "m.rtrec"), "--out", str(tmp_path / "v.npz"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == {"item": 2, "user": 3} and summary["files"] == [str(tmp_path / "v.npz")]
    assert main(["export", "--model", str(tmp_path / "m.rtrec"), "--format", "parquet", "--out",
                 str(tmp_path / "pq"), "--side", "item"]) == 0
    assert "wrote 2 items (dim 4)" in capsys.readouterr().out
    assert "model file not found" in one_line_error(capsys, main(["export", "--model", str(tmp_path / "none"),
                                                                 "--out", str(tmp_path / "x")]))
    assert "no snapshot in" in one_line_error(capsys, main(["export", "--snapshot-dir", str(tmp_path / "empty"),
                                                           "--out", str(tmp_path / "x")]))
