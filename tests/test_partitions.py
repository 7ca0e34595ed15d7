"""The building blocks of user-partitioned training: the partition rule every producer shares,
and the shared rows (items, item features, the tower, the label sums) that trainers take as
increments and add to each other."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native.stream.partitions import MAX_PARTITIONS, partition_of
from snapshot_bytes import M64
from snapshot_bytes import mix64 as _mix64


def _string_key(s: str) -> int:
    h = 0xCBF29CE484222325
    data = s.encode()
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & M64
    return _mix64(h ^ len(data))


def test_the_partition_rule_is_the_documented_one():
    # Written again here from docs/streaming.md's words, as a producer in another language would.
    ints = [0, 1, 2, 12345, -7, 2**62]
    expected = [_mix64(u & M64) % 5 for u in ints]
    assert partition_of(ints, 5).tolist() == expected
    strs = ["alice", "bob", "", "ünïcode"]
    assert partition_of(strs, 3).tolist() == [_mix64(_string_key(s)) % 3 for s in strs]
    assert partition_of(7, 4).tolist() == [_mix64(7) % 4]


def test_partitions_are_balanced_and_one_partition_is_everyone():
    counts = np.bincount(partition_of(np.arange(40_000), 4), minlength=4)
    assert counts.min() > 9_500
    assert set(partition_of(np.arange(100), 1).tolist()) == {0}


def test_bad_partition_counts_and_ids_are_refused():
    with pytest.raises(ValueError, match="partitions"):
        partition_of([1, 2], 0)
    with pytest.raises(ValueError, match="partitions"):
        partition_of([1, 2], MAX_PARTITIONS + 1)
    with pytest.raises(TypeError, match="all int or all str"):
        partition_of([1, "a"], 2)
    with pytest.raises(ValueError, match="whole numbers"):
        partition_of([1.5], 2)


def _events(seed: int, users: range, n: int = 300):
    rng = np.random.default_rng(seed)
    return rng.choice(list(users), n), rng.integers(0, 40, n)


def _sorted_shared(rec: rt.Recommender) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = rec._model.shared_rows()
    order = np.argsort(s["item_keys"])
    return s["item_keys"][order], s["items"][order], s["tower"]


@pytest.mark.parametrize("family", ["mf", "two_tower"])
def test_trainers_that_add_each_others_increments_end_with_the_same_shared_rows(family):
    trainers = [rt.Recommender(model=family, dim=8, num_threads=1, seed=3) for _ in range(3)]
    bases = [t._model.shared_rows() for t in trainers]
    for k, t in enumerate(trainers):  # each learns its own users only
        users, items = _events(k, range(100 * k, 100 * k + 50))
        t.update(users, items)
    increments = [t._model.shared_increment(b) for t, b in zip(trainers, bases, strict=True)]
    # In different orders: trainer 0 adds 1 then 2, trainer 1 adds 2 then 0, trainer 2 adds 0 then 1.
    for k, t in enumerate(trainers):
        for other in ((k + 1) % 3, (k + 2) % 3):
            t._model.add_shared(increments[other])
    keys0, items0, tower0 = _sorted_shared(trainers[0])
    for t in trainers[1:]:
        keys, values, tower = _sorted_shared(t)
        np.testing.assert_array_equal(keys, keys0)
        np.testing.assert_allclose(values, items0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(tower, tower0, rtol=1e-5, atol=1e-6)
    # Users stay with their own trainer: trainer 0 never saw trainer 1's users.
    assert not trainers[0].knows_user(100)
    assert trainers[1].knows_user(int(_events(1, range(100, 150))[0][0]))


def test_an_item_only_a_peer_has_arrives_with_the_peers_values():
    a = rt.Recommender(model="mf", dim=4, num_threads=1, seed=1)
    b = rt.Recommender(model="mf", dim=4, num_threads=1, seed=1)
    base = a._model.shared_rows()
    a.update([1, 2, 1], [500, 501, 501])
    b._model.add_shared(a._model.shared_increment(base))
    assert b.n_items == 2
    np.testing.assert_allclose(b.predict([9, 9], [500, 501]), a.predict([9, 9], [500, 501]), rtol=1e-6)


def test_an_increment_carries_only_the_rows_that_moved():
    rec = rt.Recommender(model="mf", loss="squared", dim=4, num_threads=1)
    rec.update([1, 2, 3], [10, 11, 12], [4.0, 3.0, 5.0])
    base = rec._model.shared_rows()
    inc = rec._model.shared_increment(base)
    assert inc["item_keys"].size == 0 and inc["items"].shape == (0, base["items"].shape[1])
    assert inc["label_sum"] == 0.0 and inc["weight_sum"] == 0.0
    rec.update([1], [11], [2.0])
    inc = rec._model.shared_increment(base)
    assert inc["item_keys"].tolist() == [11] and inc["items"].any()
    assert inc["label_sum"] == 2.0 and inc["weight_sum"] == 1.0


def test_an_increment_of_another_shape_is_refused_and_changes_nothing():
    small = rt.Recommender(model="mf", dim=4, num_threads=1)
    other = rt.Recommender(model="mf", dim=8, num_threads=1)
    base = other._model.shared_rows()
    other.update([1, 1, 2, 2], [2, 3, 4, 5])
    before = small._model.shared_rows()
    with pytest.raises(ValueError, match="shape"):
        small._model.add_shared(other._model.shared_increment(base))
    after = small._model.shared_rows()
    assert after["item_keys"].size == before["item_keys"].size == 0
    with pytest.raises(KeyError, match="item_names"):
        small._model.add_shared({"item_keys": np.zeros(0, np.uint64)})


def test_a_partitioned_producer_sends_each_event_to_its_users_stream(redis_url):
    import redis

    from rtrec_native.stream import Producer

    client = redis.Redis.from_url(redis_url)
    producer = Producer(redis_url, "ev", partitions=3)
    users = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1]
    producer.send_many(users, [10 + k for k in range(10)], labels=[1.0] * 10)
    producer.send(2, 99)
    producer.send_hide([10])
    expected = partition_of(users + [2], 3)
    seen = {}
    for p in range(3):
        entries = client.xrange(f"ev:{p}")
        events = [(int(f[b"user"]), int(f[b"item"])) for _, f in entries if b"user" in f]
        seen[p] = events
        assert sum(1 for _, f in entries if b"user" not in f) == 1  # the hide reached every partition
    for k, user in enumerate(users + [2]):
        item = 99 if k == len(users) else 10 + k
        assert (user, item) in seen[int(expected[k])]
    # Each partition keeps its events in the order they were sent.
    assert seen[int(expected[0])][0] == (1, 10)
    assert sum(len(v) for v in seen.values()) == 11
    assert not client.exists("ev")
    client.close()
    producer.close()


def test_a_partitioned_producer_checks_every_event_before_sending_any(redis_url):
    import redis

    from rtrec_native.stream import Producer

    producer = Producer(redis_url, "ev", partitions=2)
    with pytest.raises(ValueError, match="event 3"):
        producer.send_many([1, 2, 3, 4], [1, 2, 3, 4], labels=[1.0, 1.0, 1.0, float("nan")])
    client = redis.Redis.from_url(redis_url)
    assert not client.exists("ev:0") and not client.exists("ev:1")
    client.close()
    producer.close()
    with pytest.raises(ValueError, match="partitions"):
        Producer(redis_url, "ev", partitions=0)
    one = Producer(redis_url, "ev", partitions=1)
    assert one.stream_of(5) == "ev"  # one partition: today's stream
    one.close()


def _equal_shared(a: rt.Recommender, b: rt.Recommender) -> None:
    ka, va, ta = _sorted_shared(a)
    kb, vb, tb = _sorted_shared(b)
    np.testing.assert_array_equal(ka, kb)
    np.testing.assert_allclose(va, vb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ta, tb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["mf", "two_tower"])
def test_a_kept_base_takes_only_the_trainers_own_learning(family):
    a, b = (rt.Recommender(model=family, dim=8, num_threads=1, seed=2) for _ in range(2))
    for t in (a, b):
        t._model.reset_shared_base()
    for step in range(3):  # rounds of learning and merging in both directions
        a.update(*_events(10 + step, range(0, 50)))
        b._model.add_shared(a._model.take_shared_increment())  # moves b's base too
        b.update(*_events(20 + step, range(50, 100)))
        a._model.add_shared(b._model.take_shared_increment())  # b's increment holds none of a's
    _equal_shared(a, b)


def test_an_increment_published_before_a_crash_joins_the_restored_base(tmp_path):
    a, b = (rt.Recommender(model="two_tower", dim=8, num_threads=1, seed=2) for _ in range(2))
    for t in (a, b):
        t._model.reset_shared_base()
    a.save(tmp_path / "a")  # the last durable state of trainer a (its base is its rows then)
    users, items = _events(1, range(0, 50))
    a.update(users, items)
    published = a._model.take_shared_increment()
    b._model.add_shared(published)  # b saw it; then a crashed before saving
    restored = rt.Recommender.load(tmp_path / "a", num_threads=1)
    restored._model.reset_shared_base()
    restored._model.add_to_shared_base(published)  # found again in its own increments stream
    restored.update(users, items)  # the same events, learned again from the log
    again = restored._model.take_shared_increment()
    assert np.abs(again["items"]).max() < 1e-5  # its learning was all in what b already has
    b._model.add_shared(again)
    _equal_shared(restored, b)
    with pytest.raises(Exception, match="base"):
        rt.Recommender(model="mf", dim=4)._model.take_shared_increment()


def test_a_producer_routes_a_user_as_the_trainer_reads_it(redis_url):
    from rtrec_native.stream import Producer

    producer = Producer(redis_url, "ev", partitions=4)
    # The text "123" is the integer ID 123 to a trainer reading IDs as auto (the default).
    assert producer.stream_of("123") == producer.stream_of(123) == f"ev:{partition_of([123], 4)[0]}"
    assert producer.stream_of("alice") == f"ev:{partition_of(['alice'], 4)[0]}"
    producer.close()
