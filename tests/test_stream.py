"""The Redis-fed trainer in one process: learning in stream order, dead letters, resuming after
a crash without losing or repeating an event, and the group and stream checks."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import rtrec_native as rt
from conftest import model_state
from memory_log import logged
from rtrec_native.replication import restore_latest
from rtrec_native.stream import Consumer, EntryParser, Producer, RedisStreamSource

try:
    import redis
except ImportError:  # the redis_url fixture skips (in CI: fails) and says why
    redis = None

STREAM = "rtrec:events"


def produce(url: str, n: int, seed: int = 0, malformed_every: int = 97) -> tuple[list[str], list[str]]:
    """n events of 60 users x 90 items, with a malformed entry after every `malformed_every`
    (missing item, a word for a label, a negative weight, in turn). Returns (all IDs, malformed IDs)."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 60, n), rng.integers(0, 90, n)
    bad = [{"user": "1"}, {"user": "1", "item": "2", "label": "five"}, {"user": "1", "item": "2", "weight": "-1"}]
    entries, malformed_at = [], []
    for k in range(n):
        entries.append({"user": str(users[k]), "item": str(items[k])})
        if malformed_every and k % malformed_every == malformed_every - 1:
            malformed_at.append(len(entries))
            entries.append(bad[len(malformed_at) % len(bad)])
    ids = Producer(url, STREAM).send_fields(entries)
    return ids, [ids[k] for k in malformed_at]


def model(family: str = "mf") -> rt.Recommender:
    return rt.Recommender(model=family, dim=8, num_threads=1, seed=0)


def reference(url: str, family: str = "mf") -> rt.Recommender:
    """The stream learned by hand, entry by entry, as the consumer must."""
    rec = model(family)
    parser = EntryParser(rec.get_params()["loss"], user_kind=lambda: rec.user_id_kind,
                         item_kind=lambda: rec.item_id_kind)
    for entry_id, fields in redis.Redis.from_url(url).xrange(STREAM):
        with contextlib.suppress(ValueError):
            rec.update_one(*parser.parse(entry_id.decode(), fields))
    return rec


def run_to_end(rec, url, directory, group="trainers", **kwargs) -> Consumer:
    consumer = Consumer(rec, RedisStreamSource(url, STREAM, group), directory, **kwargs)
    consumer.run(idle_exit=0.3)
    consumer.source.close()
    return consumer


def test_the_consumer_learns_every_entry_in_order_and_dead_letters_the_malformed(redis_url, tmp_path):
    ids, malformed = produce(redis_url, 2000)
    rec = model()
    consumer = run_to_end(rec, redis_url, tmp_path, batch_size=128)
    assert consumer.learned == 2000 and consumer.dead == len(malformed) == 20
    assert model_state(rec) == model_state(reference(redis_url))
    r = redis.Redis.from_url(redis_url)
    dead = r.xrange(STREAM + ":dead")
    assert [d[0].decode() for d in dead] == malformed  # under their own IDs, each once
    assert {d[1][b"rtrec.reason"] for d in dead} == {b"missing_item", b"bad_label", b"bad_weight"}
    assert r.xpending(STREAM, "trainers")["pending"] == 0  # all acknowledged, after the last delta
    # The directory holds it all, and says up to where.
    restored = restore_latest(tmp_path, num_threads=1)
    assert ids[-1] in restored.source_position and '"learned":2000' in restored.source_position
    assert model_state(restored) == model_state(reference(redis_url))


@pytest.mark.parametrize("family", ["mf", "two_tower"])
def test_after_a_crash_every_event_is_learned_exactly_once(redis_url, tmp_path, family):
    produce(redis_url, 3000, seed=1)
    a = Consumer(model(family), RedisStreamSource(redis_url, STREAM, "trainers"), tmp_path, batch_size=500,
                 interval=3600)
    a.poll()
    a.poll()
    a.flush()  # durable and acknowledged
    a.poll()
    a.publisher.flush()  # durable, but the crash comes before the acknowledgement
    durable = a.state.entry
    a.poll()  # learned, never durable
    a.source.close()  # crash: nothing else runs
    r = redis.Redis.from_url(redis_url)
    assert r.xpending(STREAM, "trainers")["pending"] > 500

    resumed = restore_latest(tmp_path, num_threads=1)
    assert f'"entry":"{durable}"' in resumed.source_position  # the last durable delta's entry
    b = run_to_end(resumed, redis_url, tmp_path)
    uninterrupted = run_to_end(model(family), redis_url, tmp_path / "ref", group="reference")
    assert b.learned == uninterrupted.learned == 3000 and b.dead == uninterrupted.dead == 30
    assert model_state(b.model) == model_state(uninterrupted.model)
    assert r.xlen(STREAM + ":dead") == 30  # dead letters written again after the crash were not copied twice
    assert r.xpending(STREAM, "trainers")["pending"] == 0


def test_an_existing_group_is_used_as_it_is(redis_url, tmp_path):
    produce(redis_url, 100, malformed_every=0)
    redis.Redis.from_url(redis_url).xgroup_create(STREAM, "late", id="$")  # someone starts at the end
    produce(redis_url, 50, seed=2, malformed_every=0)
    assert run_to_end(model(), redis_url, tmp_path, group="late").learned == 50


def test_a_group_that_another_reader_acknowledged_is_refused(redis_url, tmp_path):
    produce(redis_url, 100, malformed_every=0)
    run_to_end(model(), redis_url, tmp_path)
    produce(redis_url, 10, seed=3, malformed_every=0)
    r = redis.Redis.from_url(redis_url)
    taken = r.xreadgroup("trainers", "someone-else", {STREAM: ">"}, count=5)[0][1]
    r.xack(STREAM, "trainers", *[entry_id for entry_id, _ in taken])
    with pytest.raises(ValueError, match="another reader uses this group"):
        Consumer(restore_latest(tmp_path), RedisStreamSource(redis_url, STREAM, "trainers"), tmp_path)


def test_another_stream_or_a_non_stream_key_is_refused_and_a_deleted_stream_is_said(redis_url, tmp_path):
    produce(redis_url, 20, malformed_every=0)
    run_to_end(model(), redis_url, tmp_path)
    r = redis.Redis.from_url(redis_url)
    r.set("not-a-stream", "x")
    with pytest.raises(ValueError, match="holds a Redis string, not a stream"):
        RedisStreamSource(redis_url, "not-a-stream", "g").open(None)
    with pytest.raises(ValueError, match="learned from redis stream rtrec:events, not from redis stream other"):
        Consumer(restore_latest(tmp_path), RedisStreamSource(redis_url, "other", "trainers"), tmp_path)
    # Deleted (as a Redis without persistence comes back): said, and nothing is learned twice.
    r.delete(STREAM)
    with logged("rtrec_native.stream") as lines:
        resumed = Consumer(restore_latest(tmp_path), RedisStreamSource(redis_url, STREAM, "trainers"), tmp_path)
    assert any("the model keeps what it learned" in line for line in lines), lines
    produce(redis_url, 7, seed=4, malformed_every=0)
    resumed.run(idle_exit=0.3)
    assert resumed.learned == 27
    with pytest.raises(ValueError, match="dead-letter stream"):
        RedisStreamSource(redis_url, STREAM + ":dead", "g")
    with pytest.raises(ValueError, match="group"):
        RedisStreamSource(redis_url, STREAM, "")


def test_the_producer_checks_everything_before_sending_anything(redis_url):
    producer = Producer(redis_url, STREAM)
    with pytest.raises(ValueError, match=r"event 2: weight: expected a finite number >= 0"):
        producer.send_many([1, 2, 3], [4, 5, 6], weights=[1.0, 1.0, -2.0])
    with pytest.raises(TypeError, match="event 0: user: expected an int or str ID, got float"):
        producer.send_many([1.5], [4])
    with pytest.raises(ValueError, match="label"):
        producer.send(1, 2, label=float("nan"))
    r = redis.Redis.from_url(redis_url)
    assert r.exists(STREAM) == 0
    entry = producer.send("alice", 7, label=1, weight=0.5, ts=1700000000.25, type="view")
    assert r.xrange(STREAM)[0] == (entry.encode(), {b"user": b"alice", b"item": b"7", b"label": b"1",
                                                    b"weight": b"0.5", b"ts": b"1700000000.25", b"type": b"view"})


def test_an_unreachable_redis_is_one_clear_error():
    from rtrec_native.stream._redis import RedisUnavailable

    with pytest.raises(RedisUnavailable, match=r"cannot reach Redis at redis://127.0.0.1:1/0"):
        Producer("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="not a Redis URL"):
        Producer("http://127.0.0.1/")
