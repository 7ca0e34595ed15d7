"""Deltas fanned out through Redis: replicas that follow the trainer's announcements, start
late, catch up after missing some, and refuse a directory of another lineage."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import rtrec_native as rt
from conftest import wait_for as wait_until
from rtrec_native.stream import RedisAnnouncer

wait_for = partial(wait_until, timeout=10.0, interval=0.005)  # this file's waits

try:
    import redis
except ImportError:  # the redis_url fixture skips (in CI: fails) and says why
    redis = None
DELTAS = "rtrec:events:deltas"


def trainer() -> rt.Recommender:
    rng = np.random.default_rng(0)
    return rt.Recommender(model="mf", dim=8, loss="squared", num_threads=1, seed=1).fit(
        rng.integers(0, 50, 500), rng.integers(0, 80, 500), rng.uniform(1, 5, 500), epochs=1)


def test_a_replica_follows_announced_deltas_without_polling(redis_url, tmp_path):
    rec = trainer()
    pub = rt.Publisher(rec, tmp_path, interval=None, announce=RedisAnnouncer(redis_url, DELTAS))
    # poll_interval of an hour: anything it sees came through Redis.
    with rt.Replica(tmp_path, poll_interval=3600, redis=redis_url, deltas_stream=DELTAS) as rep:
        for k in range(5):
            rec.update_one(1000 + k, 2000 + k, 4.0)
            pub.flush()
            assert wait_for(lambda: rep.position == rec.snapshot_position)
        assert rep.predict([1004], [2004])[0] == rec.predict([1004], [2004])[0]
        assert rep.deltas_applied == 5 and rep.snapshots_loaded == 1
        assert rep.lag() == (0, 0.0)
        entries = redis.Redis.from_url(redis_url).xrange(DELTAS)
        assert [e[1][b"kind"] for e in entries] == [b"snapshot"] + [b"delta"] * 5
        assert all(b"data" in e[1] for e in entries[1:])  # small deltas travel inline
        assert entries[-1][1][b"lineage"] == str(rec.snapshot_position[0]).encode()
    pub.close()


def test_big_deltas_come_from_the_files_and_missed_announcements_are_caught_up(redis_url, tmp_path):
    rec = trainer()
    pub = rt.Publisher(rec, tmp_path, interval=None,
                       announce=RedisAnnouncer(redis_url, DELTAS, maxlen=1, max_inline_bytes=0))
    with rt.Replica(tmp_path, poll_interval=3600, redis=redis_url, deltas_stream=DELTAS) as rep:
        rec.update_one(1, 2, 5.0)
        pub.flush()
        assert wait_for(lambda: rep.position == rec.snapshot_position)
        # Deltas published while Redis did not hear of them (announcements lost): the next
        # announcement shows a gap, and the replica takes the missing files from the directory.
        pub._announce = None
        for k in range(3):
            rec.update_one(10 + k, 20 + k, 3.0)
            pub.flush()
        pub._announce = RedisAnnouncer(redis_url, DELTAS, maxlen=1, max_inline_bytes=0)
        rec.update_one(99, 98, 1.0)
        pub.flush()
        assert wait_for(lambda: rep.position == rec.snapshot_position)
        np.testing.assert_array_equal(rep.predict([10, 11, 12, 99], [20, 21, 22, 98]),
                                      rec.predict([10, 11, 12, 99], [20, 21, 22, 98]))
    pub.close()


def test_a_late_replica_starts_from_the_newest_snapshot_plus_deltas(redis_url, tmp_path):
    rec = trainer()
    pub = rt.Publisher(rec, tmp_path, interval=None, compact_every=3, announce=RedisAnnouncer(redis_url, DELTAS))
    for k in range(7):
        rec.update_one(k, 500 + k, 2.0)
        pub.flush()
    with rt.Replica(tmp_path, redis=redis_url, deltas_stream=DELTAS) as rep:
        assert rep.position == rec.snapshot_position
        assert rep.snapshots_loaded == 1 and rep.deltas_applied == 1  # snapshot 6, then delta 7
        rec.update_one(42, 43, 5.0)
        pub.flush()
        assert wait_for(lambda: rep.predict([42], [43])[0] == rec.predict([42], [43])[0])
    pub.close()


def test_a_directory_of_another_lineage_is_refused(redis_url, tmp_path):
    rec = trainer()
    pub = rt.Publisher(rec, tmp_path / "trainer", interval=None, announce=RedisAnnouncer(redis_url, DELTAS))
    other = trainer()
    rt.Publisher(other, tmp_path / "other", interval=None).close()
    with pytest.raises(ValueError, match=r"announces lineage \d+ .* but the newest snapshot in .*other.* is of "
                                         r"lineage \d+"):
        rt.Replica(tmp_path / "other", redis=redis_url, deltas_stream=DELTAS)
    pub.close()


def test_a_new_model_taking_over_is_followed(redis_url, tmp_path):
    rec = trainer()
    announce = RedisAnnouncer(redis_url, DELTAS)
    with rt.Publisher(rec, tmp_path, interval=None, announce=announce), \
            rt.Replica(tmp_path, poll_interval=3600, redis=redis_url, deltas_stream=DELTAS) as rep:
        new = rt.Recommender(model="mf", dim=8, loss="squared", num_threads=1, seed=7).fit([5], [6], [3.0], epochs=1)
        with rt.Publisher(new, tmp_path, interval=None, announce=announce) as pub:
            new.update_one(5, 7, 4.0)
            pub.flush()
            assert wait_for(lambda: rep.position == new.snapshot_position)
            assert rep.predict([5], [7])[0] == new.predict([5], [7])[0]
