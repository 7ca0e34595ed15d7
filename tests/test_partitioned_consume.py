"""User-partitioned trainers over Redis: each learns its own users' events and they exchange
the shared rows as increments, each added exactly once, also across a crash."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native.replication import restore_latest
from rtrec_native.stream import Consumer, Producer, RedisStreamSource, SharedExchange, partition_of

STREAM = "ev"


def _produce(url: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 200, n), rng.integers(0, 60, n)
    producer = Producer(url, STREAM, partitions=2)
    producer.send_many(users.tolist(), items.tolist())
    producer.close()
    return users, items


def _trainer(url: str, directory, partition: int, batch_size: int = 1000) -> Consumer:
    rec = restore_latest(directory, num_threads=1) or rt.Recommender(model="mf", dim=8, num_threads=1, seed=4)
    source = RedisStreamSource(url, f"{STREAM}:{partition}", "trainers")
    return Consumer(rec, source, directory, interval=0.05, batch_size=batch_size,
                    shared=SharedExchange(url, STREAM, 2, partition))


def _shared(rec: rt.Recommender) -> tuple[np.ndarray, np.ndarray]:
    s = rec._model.shared_rows()
    order = np.argsort(s["item_keys"])
    return s["item_keys"][order], s["items"][order]


def _settle(trainers: list[Consumer]) -> None:
    """Rounds of deltas until every trainer has added every peer increment."""
    for _ in range(3):
        for t in trainers:
            t.flush()


def test_two_partitions_learn_their_own_users_and_end_with_the_same_shared_rows(redis_url, tmp_path):
    users, _ = _produce(redis_url, 2_000)
    trainers = [_trainer(redis_url, tmp_path / f"p{p}", p) for p in range(2)]
    for t in trainers:
        t.run(idle_exit=0.3)
    steps = [t.model.stats()["updates"] for t in trainers]
    _settle(trainers)
    owned = np.bincount(partition_of(users.tolist(), 2), minlength=2)
    for p, t in enumerate(trainers):
        assert t.learned == owned[p]
        assert t.model.stats()["updates"] == steps[p]  # added increments are not learned events
        assert not any(t.model.knows_user(int(u)) for u in users[partition_of(users.tolist(), 2) != p][:50])
    keys0, rows0 = _shared(trainers[0].model)
    keys1, rows1 = _shared(trainers[1].model)
    np.testing.assert_array_equal(keys0, keys1)
    np.testing.assert_allclose(rows0, rows1, rtol=1e-4, atol=1e-5)
    for t in trainers:
        t.close()


def test_a_crash_after_publishing_neither_loses_nor_repeats_an_increment(redis_url, tmp_path, monkeypatch):
    _produce(redis_url, 2_000, seed=1)
    peer = _trainer(redis_url, tmp_path / "p1", 1)
    peer.run(idle_exit=0.3)
    crashing = _trainer(redis_url, tmp_path / "p0", 0, batch_size=300)
    crashing.poll(timeout=0.5)
    crashing.flush()  # one durable delta with increment 1 published
    crashing.poll(timeout=0.5)

    def fail() -> None:
        raise OSError("disk full")

    monkeypatch.setattr(crashing.publisher, "flush", fail)
    with pytest.raises(OSError):
        crashing.flush()  # increment 2 is in Redis, the delta that records it is not
    published = crashing.state.published
    assert published == 2
    monkeypatch.undo()
    # The process dies here; a new one restores the last durable delta (which says 1).
    restarted = _trainer(redis_url, tmp_path / "p0", 0)
    assert restarted.state.published == published  # increment 2 found again and adopted
    restarted.run(idle_exit=0.3)
    _settle([restarted, peer])
    crashing.source.close()  # the crashed process's connections
    crashing.shared.close()
    client = __import__("redis").Redis.from_url(redis_url)
    for p, t in ((0, restarted), (1, peer)):
        ids = [int(e[0].decode().split("-")[1]) for e in client.xrange(f"{STREAM}:shared:{p}")]
        assert ids == list(range(1, t.state.published + 1))  # each number once, none skipped
    assert restarted.learned + peer.learned == 2_000
    keys0, rows0 = _shared(restarted.model)
    keys1, rows1 = _shared(peer.model)
    np.testing.assert_array_equal(keys0, keys1)
    np.testing.assert_allclose(rows0, rows1, rtol=1e-4, atol=1e-5)
    for t in (restarted, peer):
        t.close()
    client.close()


def test_a_model_of_another_partition_count_is_refused(redis_url, tmp_path):
    _produce(redis_url, 100)
    first = _trainer(redis_url, tmp_path / "p0", 0)
    first.close()
    rec = restore_latest(tmp_path / "p0", num_threads=1)
    source = RedisStreamSource(redis_url, f"{STREAM}:0", "trainers")
    shared = SharedExchange(redis_url, STREAM, 3, 0)
    with pytest.raises(ValueError, match="2 partitions, not 3"):
        Consumer(rec, source, tmp_path / "p0", shared=shared)
    source.close()
    shared.close()


@pytest.mark.parametrize(("options", "message"), [
    (["--partitions", "2"], "--partitions 2 needs --partition P, 0 to 1"),
    (["--partitions", "2", "--partition", "2"], "--partition 2: out of range for --partitions 2 (0 to 1)"),
    (["--partition", "1"], "--partition 1: out of range for --partitions 1"),
    (["--partitions", "5000", "--partition", "0"], "--partitions 5000: at most 4096"),
])
def test_bad_partition_options_are_one_line(tmp_path, monkeypatch, capsys, options, message):
    from rtrec_native.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["consume", "--redis", "redis://127.0.0.1:1/0", "--snapshot-dir", "snap", *options])
    err = capsys.readouterr().err
    assert code != 0 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "snap").exists()  # nothing was created


def test_the_command_line_runs_two_partition_trainers(redis_url, tmp_path):
    from rtrec_native.cli import main

    users, _ = _produce(redis_url, 600, seed=3)
    for p in (0, 1, 0):  # the first trainer again: it adds what the second published
        assert main(["consume", "--redis", redis_url, "--stream", STREAM, "--partitions", "2", "--partition", str(p),
                     "--snapshot-dir", str(tmp_path), "--family", "mf", "--dim", "8", "--threads", "1",
                     "--idle-exit", "0.3"]) == 0
    owned = np.bincount(partition_of(users.tolist(), 2), minlength=2)
    for p in (0, 1):
        rec = restore_latest(tmp_path / f"partition-{p}", num_threads=1)
        assert f'"learned":{owned[p]},' in rec.source_position and '"partitions":2' in rec.source_position
    # The second trainer added the first's increments, the first (run again) the second's.
    keys0, rows0 = _shared(restore_latest(tmp_path / "partition-0", num_threads=1))
    keys1, rows1 = _shared(restore_latest(tmp_path / "partition-1", num_threads=1))
    np.testing.assert_array_equal(keys0, keys1)
    np.testing.assert_allclose(rows0, rows1, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_partition_trainers_killed_with_sigkill_learn_and_exchange_everything_once(redis_url, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import redis

    users, _ = _produce(redis_url, 6_000, seed=5)

    log = tmp_path / "trainers.log"

    def start(p: int) -> subprocess.Popen:
        with open(log, "a") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "rtrec_native.cli", "consume", "--redis", redis_url, "--stream", STREAM,
                 "--partitions", "2", "--partition", str(p), "--snapshot-dir", str(tmp_path), "--snapshot-interval",
                 "0.02", "--batch-size", "50", "--family", "mf", "--dim", "8", "--threads", "1", "--idle-exit", "1"],
                stdout=subprocess.DEVNULL, stderr=err)

    for delay in (0.8, 1.1, 0.6):  # both trainers killed mid-stream, three times
        procs = [start(0), start(1)]
        time.sleep(delay)
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    for _ in range(2):  # then run to the end, twice, so that each adds the other's last increments
        procs = [start(0), start(1)]
        for proc in procs:
            assert proc.wait(120) == 0, log.read_text()
    owned = np.bincount(partition_of(users.tolist(), 2), minlength=2)
    client = redis.Redis.from_url(redis_url)
    models = []
    for p in (0, 1):
        rec = restore_latest(tmp_path / f"partition-{p}", num_threads=1)
        state = __import__("json").loads(rec.source_position)
        assert state["learned"] == owned[p]  # every event of the partition once
        ids = [int(e[0].decode().split("-")[1]) for e in client.xrange(f"{STREAM}:shared:{p}")]
        assert ids == list(range(1, state["published"] + 1))  # published once each, in order
        assert state["applied"][str(1 - p)] <= client.xlen(f"{STREAM}:shared:{1 - p}")
        models.append(rec)
    client.close()
    # Every user lives in its owner's model only.
    routes = partition_of(users.tolist(), 2)
    for p, rec in enumerate(models):
        assert all(rec.knows_user(int(u)) for u in users[routes == p][:100])
        assert not any(rec.knows_user(int(u)) for u in users[routes != p][:100])
    keys0, rows0 = _shared(models[0])
    keys1, rows1 = _shared(models[1])
    np.testing.assert_array_equal(keys0, keys1)
    np.testing.assert_allclose(rows0, rows1, rtol=1e-3, atol=1e-4)


def test_a_partition_replica_answers_421_for_another_partitions_user(redis_url, tmp_path):
    import json

    from asgi_client import Asgi
    from rtrec_native.replication import Replica
    from rtrec_native.serving import create_app

    users, _ = _produce(redis_url, 400, seed=6)
    trainer = _trainer(redis_url, tmp_path / "p0", 0)
    trainer.run(idle_exit=0.3)
    trainer.close()
    replica = Replica(tmp_path / "p0", num_threads=1)
    forward = Producer(redis_url, STREAM, partitions=2)
    client = Asgi(create_app(replica, forward=forward, partition=(2, 0)))
    try:
        routes = partition_of(users.tolist(), 2)
        mine, other = int(users[routes == 0][0]), int(users[routes == 1][0])
        status, _, body = client.request("GET", "/recommend", query=f"user={mine}&k=3".encode())
        assert status == 200 and "fallback" not in json.loads(body)
        status, _, body = client.request("GET", "/recommend", query=f"user={other}&k=3".encode())
        assert status == 421 and "partition 1 of 2" in json.loads(body)["detail"]
        status, _, body = client.request("POST", "/recommend", body=json.dumps({"users": [mine, other]}).encode())
        assert status == 421 and "partition 1" in json.loads(body)["detail"]
        status, _, _ = client.request("POST", "/feedback",
                                      body=json.dumps({"events": [{"user": other, "item": 7}]}).encode())
        assert status in (200, 202)
        import redis

        reader = redis.Redis.from_url(redis_url)
        last = reader.xrevrange(f"{STREAM}:1", count=1)[0][1]
        reader.close()
        assert int(last[b"user"]) == other  # the feedback went to its user's partition stream
    finally:
        client.close()
        replica.close()
        forward.close()


def test_serve_takes_partitions_only_with_follow(tmp_path, capsys):
    from rtrec_native.cli import main

    code = main(["serve", "--partitions", "2", "--partition", "0", "--port", "0"])
    err = capsys.readouterr().err
    assert code != 0 and "--partitions and --partition go with --follow" in err and err.count("\n") == 1, err


def test_a_malformed_or_foreign_increment_is_dead_lettered_and_never_applied(redis_url, tmp_path):
    import redis

    from rtrec_native.stream.shared import encode_increment

    client = redis.Redis.from_url(redis_url)
    client.xadd(f"{STREAM}:shared:1", {"header": "not json"}, id="0-1")
    other = rt.Recommender(model="mf", dim=4, num_threads=1)
    other._model.reset_shared_base()
    other.update([1, 1, 2], [5, 6, 7])
    client.xadd(f"{STREAM}:shared:1", encode_increment(other._model.take_shared_increment()), id="0-2")
    trainer = _trainer(redis_url, tmp_path / "p0", 0)
    before = trainer.model._model.shared_rows()
    trainer.flush()
    assert trainer.shared.dead == 2 and trainer.state.applied == {"1": 2}
    assert client.xlen(f"{STREAM}:shared:dead") == 2
    after = trainer.model._model.shared_rows()
    assert after["item_keys"].size == before["item_keys"].size == 0  # nothing of them was added
    trainer.close()
    client.close()


def test_one_partition_is_todays_path_bit_for_bit(redis_url, tmp_path):
    from conftest import model_state
    from rtrec_native.cli import main

    rng = np.random.default_rng(8)
    users, items = rng.integers(0, 50, 500).tolist(), rng.integers(0, 30, 500).tolist()
    for stream in ("plain", "one"):  # event times given: without them each run stamps its own clock
        producer = Producer(redis_url, stream)
        producer.send_many(users, items, timestamps=[1e6 + k for k in range(500)])
        producer.close()
    common = ["--family", "mf", "--dim", "8", "--threads", "1", "--idle-exit", "0.3"]
    assert main(["consume", "--redis", redis_url, "--stream", "plain", "--snapshot-dir", str(tmp_path / "a"),
                 *common]) == 0
    assert main(["consume", "--redis", redis_url, "--stream", "one", "--partitions", "1", "--partition", "0",
                 "--snapshot-dir", str(tmp_path / "b"), *common]) == 0
    a, b = (restore_latest(tmp_path / d, num_threads=1) for d in ("a", "b"))
    import json

    pa, pb = json.loads(a.source_position), json.loads(b.source_position)
    assert set(pa) == set(pb) == {"source", "entry", "learned", "dead"}  # no partition fields
    assert pa["learned"] == pb["learned"] == 500
    assert model_state(a) == model_state(b)
