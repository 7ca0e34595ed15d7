"""Hiding items through the log: a replica's POST /hide becomes a control entry that the
trainer applies in order with the events around it; its next delta carries the hidden set."""

from __future__ import annotations

import pytest

import rtrec_native as rt
from rtrec_native.stream import Consumer, Producer, RedisStreamSource

try:
    import redis
except ImportError:  # the redis_url fixture skips (in CI: fails) and says why
    redis = None

STREAM = "rtrec:events"


def test_hide_and_unhide_entries_apply_in_log_order(redis_url, tmp_path):
    producer = Producer(redis_url, STREAM)
    producer.send_many([1, 2, 3, 1], [10, 11, 12, 13])
    producer.send_hide([10, 12, 999])       # 999: unknown, a no-op
    producer.send_many([4], [14])
    producer.send_hide([12], hidden=False)
    producer.send_fields([{"op": "hide", "items": "not json"}, {"op": "explode", "items": "[1]"}])
    producer.send_many([5], [15])
    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0)
    consumer = Consumer(rec, RedisStreamSource(redis_url, STREAM, "g"), tmp_path, batch_size=64)
    consumer.run(idle_exit=0.3)
    assert consumer.learned == 6 and consumer.dead == 2
    assert rec.hidden([10, 11, 12, 13, 14, 15]).tolist() == [True, False, False, False, False, False]
    reasons = {copy[b"rtrec.reason"] for _, copy in redis.Redis.from_url(redis_url).xrange(STREAM + ":dead")}
    assert reasons == {b"bad_control"}
    # The trainer's snapshot directory holds the hidden set: a replica started from it hides 10.
    with rt.Replica(tmp_path) as replica:
        assert replica.hidden([10, 12]).tolist() == [True, False]


def test_a_control_entry_refuses_bad_ids_before_writing():
    with pytest.raises(TypeError, match="items"):
        Producer.__new__(Producer).send_hide([1.5])
