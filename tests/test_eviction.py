"""Expiry and eviction: evict(older_than), ttl, max_rows; rows reused, memory bounded, safe
under concurrent use, evicted IDs carried to replicas."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import rtrec_native as rt
from conftest import fingerprint


def stream(rec: rt.Recommender, users, items, times) -> None:
    rec.update(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64),
               timestamps=np.asarray(times, dtype=np.float64))


def test_evict_removes_rows_not_updated_recently_and_returns_the_count(family):
    rec = rt.Recommender(model=family, dim=4, num_threads=1, seed=0)
    stream(rec, [1, 2, 3], [10, 11, 12], [100.0, 100.0, 100.0])  # old
    stream(rec, [4, 5], [13, 10], [200.0, 200.0])                  # recent; item 10 refreshed
    assert rec.stats()["clock"] == 200.0
    evicted = rec.evict(older_than=50)  # before t=150 on the model's clock
    assert evicted == 3 + 2  # users 1, 2, 3 and items 11, 12
    assert rec.n_users == 2 and rec.n_items == 2
    stats = rec.stats()
    assert stats["evicted_users"] == 3 and stats["evicted_items"] == 2
    # Evicted IDs are unknown at once: they score as unknown and are never recommended.
    unknown = rec.predict([999], [998])[0]
    assert rec.predict([1], [11])[0] == unknown
    assert set(rec.recommend(4, k=10, exclude_seen=False)[0]) == {10, 13}
    assert rec.evict(older_than=50) == 0  # nothing left that old


def test_evict_with_an_explicit_clock_and_bad_arguments_change_nothing(family):
    rec = rt.Recommender(model=family, dim=4, num_threads=1, seed=0)
    stream(rec, [1, 2], [10, 11], [100.0, 300.0])
    before = fingerprint(rec, [1, 2], [10, 11])
    for bad, error in [(-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("1", TypeError),
                       (None, TypeError)]:
        with pytest.raises(error, match="older_than"):
            rec.evict(older_than=bad)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="now must be a finite number"):
            rec.evict(older_than=1, now=bad)
    with pytest.raises(TypeError, match="now"):
        rec.evict(older_than=1, now="today")
    assert fingerprint(rec, [1, 2], [10, 11]) == before
    assert rec.evict(older_than=0, now=200.0) == 2  # user 1 and item 10 (t=100 < 200)
    assert rec.n_users == 1 and rec.n_items == 1


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-5, ValueError), (1.5, TypeError), ("10", TypeError),
                                        (True, TypeError)])
def test_bad_max_rows_is_refused(bad, error):
    with pytest.raises(error, match="max_rows"):
        rt.Recommender(model="mf", max_rows=bad)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                        (float("inf"), ValueError), ("1h", TypeError)])
def test_bad_ttl_is_refused(bad, error):
    with pytest.raises(error, match="ttl"):
        rt.Recommender(model="mf", ttl=bad)


def test_max_rows_keeps_each_table_under_the_cap_evicting_the_least_recently_updated(family):
    cap = 64
    rec = rt.Recommender(model=family, dim=4, num_threads=1, max_rows=cap, seed=0)
    t = 0.0
    for start in range(0, 1000, 10):
        users = np.arange(start, start + 10)
        t += 1.0
        stream(rec, users, users % 7, np.full(10, t))
        assert rec.n_users <= cap
    stats = rec.stats()
    assert stats["evicted_users"] == 1000 - rec.n_users
    # The survivors are the most recent IDs: all of the last batch, none of the first.
    last = np.arange(990, 1000)
    unknown = rec.predict([10**9], [0])[0]
    assert np.all(rec.predict(last, np.zeros(10, dtype=np.int64)) != unknown)
    item = np.zeros(10, dtype=np.int64)
    assert np.all(rec.predict(np.arange(10), item) == rec.predict(np.full(10, 10**9), item))
    assert rec.n_items == 7  # well under the cap: nothing evicted there
    assert stats["evicted_items"] == 0


def test_freed_rows_are_reused_so_memory_stays_bounded(family):
    rec = rt.Recommender(model=family, dim=16, num_threads=1, max_rows=2000, seed=0)
    t = 0.0
    memory = []
    for start in range(0, 60_000, 1000):
        t += 1.0
        users = np.arange(start, start + 1000)
        stream(rec, users, users % 50, np.full(1000, t))
        memory.append(rec.stats()["memory_bytes"])
    assert rec.stats()["evicted_users"] >= 58_000
    # Flat after warm-up: the table, index and seen sets stop growing (it wobbles a little
    # while replaced index arrays and seen sets wait to be freed). Unbounded it would grow 6x.
    assert max(memory[30:]) <= 1.1 * max(memory[5:30])


def test_ttl_evicts_automatically_on_the_model_clock(family):
    rec = rt.Recommender(model=family, dim=4, num_threads=1, ttl=100.0, seed=0)
    stream(rec, [1], [10], [0.0])
    stream(rec, [2], [11], [50.0])
    assert rec.n_users == 2
    stream(rec, [3], [12], [120.0])  # user 1 / item 10 are now 120 s old, user 2 only 70
    assert rec.n_users == 2 and rec.n_items == 2
    assert rec.stats()["evicted_users"] == 1 and rec.stats()["evicted_items"] == 1
    stream(rec, [3], [12], [1000.0])
    assert rec.n_users == 1 and rec.n_items == 1  # only what was just updated survives


def test_a_recycled_row_starts_clean_no_seen_items_of_its_previous_owner(family):
    rec = rt.Recommender(model=family, dim=4, num_threads=1, seed=0)
    stream(rec, [1, 1, 2], [10, 11, 12], [0.0, 0.0, 100.0])
    rec.evict(older_than=50)  # user 1 and items 10, 11 go
    # New IDs take the freed rows: the new user must not inherit user 1's seen items, and
    # a new item reusing item 10's row must not be excluded for anyone.
    stream(rec, [3, 2], [20, 21], [101.0, 101.0])
    assert rec.stats()["seen_pairs"] == 3  # (2, 12), (3, 20), (2, 21)
    ids, _ = rec.recommend(3, k=10, exclude_seen=True)
    assert set(ids) == {12, 21}
    ids, _ = rec.recommend(2, k=10, exclude_seen=True)
    assert set(ids) == {20}


def test_string_ids_are_evicted_and_their_names_reused_safely(family):
    rec = rt.Recommender(model=family, dim=4, num_threads=1, max_rows=50, seed=0)
    for step in range(20):
        names = [f"user-{step}-{j}" for j in range(10)]
        rec.update(names, [f"item-{j}" for j in range(10)], timestamps=np.full(10, float(step)))
    assert rec.n_users <= 50
    ids, _ = rec.recommend("user-19-0", k=3)
    assert all(isinstance(i, str) and i.startswith("item-") for i in ids)
    rec.update(["user-0-0"], ["item-new"], timestamps=[100.0])  # an evicted name comes back
    assert "item-new" in rec.recommend("someone", k=20, exclude_seen=False)[0]


def test_snapshots_hold_live_rows_only_and_round_trip(family, tmp_path):
    rec = rt.Recommender(model=family, dim=4, num_threads=1, seed=0, max_rows=40)
    for step in range(10):
        users = np.arange(step * 10, step * 10 + 10)
        stream(rec, users, users % 13, np.full(10, float(step)))
    rec.save(tmp_path / "m")
    copy = rt.Recommender.load(tmp_path / "m")
    assert copy.get_params()["max_rows"] == 40
    live = np.arange(60, 100)
    items = np.arange(13)
    assert fingerprint(copy, live, items)[1:] == fingerprint(rec, live, items)[1:]
    assert copy.n_users == rec.n_users and copy.stats()["evicted_users"] == rec.stats()["evicted_users"]
    assert copy.stats()["clock"] == rec.stats()["clock"]


def test_deltas_carry_evictions_so_replicas_drop_the_same_ids(family, tmp_path):
    trainer = rt.Recommender(model=family, dim=4, num_threads=1, seed=0)
    stream(trainer, [1, 2, 3], [10, 11, 12], [0.0, 0.0, 0.0])
    trainer.save(tmp_path / "base")
    replica = rt.Recommender.load(tmp_path / "base")
    stream(trainer, [2], [11], [100.0])
    assert trainer.evict(older_than=50) == 4  # users 1, 3; items 10, 12
    stream(trainer, [1], [13], [101.0])        # user 1 comes back (a fresh row)
    trainer.save_delta(tmp_path / "d1")
    replica.apply_delta(tmp_path / "d1")
    assert replica.n_users == trainer.n_users == 2
    assert replica.n_items == trainer.n_items == 2
    assert replica.stats()["evicted_users"] == 2
    users, items = [1, 2, 3], [10, 11, 12, 13]
    assert fingerprint(replica, users, items)[1:] == fingerprint(trainer, users, items)[1:]


def test_a_replica_following_deltas_recycles_the_rows_the_trainer_evicted(family, tmp_path):
    trainer = rt.Recommender(model=family, dim=8, num_threads=1, max_rows=300, seed=0)
    stream(trainer, [0], [0], [0.0])
    trainer.save(tmp_path / "base")
    replica = rt.Recommender.load(tmp_path / "base")
    memory = []
    for step in range(1, 41):
        users = step * 100 + np.arange(100)
        stream(trainer, users, users % 17, np.full(100, float(step)))
        trainer.save_delta(tmp_path / f"d{step}")
        replica.apply_delta(tmp_path / f"d{step}")
        assert replica.n_users == trainer.n_users <= 300
        memory.append(replica.stats()["memory_bytes"])
    assert replica.stats()["evicted_users"] == trainer.stats()["evicted_users"] > 3000
    assert max(memory[20:]) <= 1.1 * max(memory[5:20])  # the replica's memory is bounded too


def test_a_delta_after_very_many_evictions_lists_the_live_keys_and_replicas_follow(family, tmp_path):
    # More evictions than live keys (and than 65,536) without a delta: the trainer drops its
    # eviction log (it would otherwise grow without end) and the next delta lists the live
    # keys instead; the replica drops every other key.
    trainer = rt.Recommender(model=family, dim=4, num_threads=1, max_rows=100, seed=0)
    stream(trainer, [0], [0], [0.0])
    trainer.save(tmp_path / "base")
    replica = rt.Recommender.load(tmp_path / "base")
    stream(trainer, np.arange(1, 200), np.zeros(199, dtype=np.int64), np.full(199, 1.0))
    trainer.save_delta(tmp_path / "d1")
    replica.apply_delta(tmp_path / "d1")
    users = np.arange(1, 80_001)
    stream(trainer, users, users % 5, 2.0 + users / 1e6)
    assert trainer.stats()["evicted_users"] > 65_536
    trainer.save_delta(tmp_path / "d2")
    replica.apply_delta(tmp_path / "d2")
    assert replica.n_users == trainer.n_users <= 100 and replica.n_items == trainer.n_items
    probe = [0, 1, 150, 79_990, 79_999, 80_000]
    assert fingerprint(replica, probe, [0, 1, 2])[1:] == fingerprint(trainer, probe, [0, 1, 2])[1:]


@pytest.mark.parametrize("kind", ["int", "str"])
def test_eviction_is_safe_while_other_threads_learn_and_serve(family, kind):
    rec = rt.Recommender(model=family, dim=8, num_threads=2, max_rows=3000, seed=0)
    as_ids = (lambda a: a) if kind == "int" else (lambda a: [f"id{v}" for v in a])
    stop = threading.Event()
    errors: list[BaseException] = []
    clock = [0.0]
    lock = threading.Lock()

    def writer(offset: int) -> None:
        rng = np.random.default_rng(offset)
        try:
            for step in range(150):
                with lock:
                    clock[0] += 1.0
                    t = clock[0]
                users = offset + step * 200 + np.arange(200)
                items = rng.integers(0, 4000, 200) + (step // 10) * 4000  # items churn too
                rec.update(as_ids(users), as_ids(items), timestamps=np.full(200, t))
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        try:
            while not stop.is_set():
                ids, scores = rec.recommend(as_ids([int(np.random.randint(0, 60_000))])[0], k=20)
                assert np.all(np.isfinite(scores)) and len(ids) == len(set(ids))
                rec.recommend_batch(as_ids(np.arange(32)), k=5)
                rec.predict(as_ids(np.arange(100)), as_ids(np.arange(100)))
        except BaseException as e:
            errors.append(e)

    def evictor() -> None:
        try:
            while not stop.is_set():
                rec.evict(older_than=40)
        except BaseException as e:
            errors.append(e)

    writers = [threading.Thread(target=writer, args=(o,)) for o in (0, 10**7)]
    others = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=evictor)]
    for t in writers + others:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in others:
        t.join()
    assert not errors, errors[0]
    stats = rec.stats()
    assert rec.n_users <= 3000 and rec.n_items <= 3000
    assert stats["evicted_users"] + rec.n_users == 2 * 150 * 200
    # The structure is consistent: every surviving ID is found, every result is a real item.
    ids, _ = rec.recommend(as_ids([0])[0], k=rec.n_items, exclude_seen=False)
    assert len(ids) == rec.n_items and len(set(ids)) == len(ids)
    values = np.array([int(i[2:]) if kind == "str" else i for i in ids])
    assert np.all(values >= 0) and np.all(values < 15 * 4000)


def test_rows_made_by_set_features_before_any_event_follow_the_streams_clock():
    rec = rt.Recommender(model="mf", dim=4, num_threads=1, ttl=100.0, seed=0)
    rec.set_item_features([100], [["brand=acme"]])  # no event yet: no clock to stamp it with
    stream(rec, [1], [1], [1000.0])                 # a historical stream starts
    assert rec.n_items == 2
    stream(rec, [1], [1], [1050.0])
    assert rec.n_items == 2                          # 50 s old on the stream's clock
    stream(rec, [1], [1], [1200.0])
    assert rec.n_items == 1                          # expired like any row, not stuck at wall-clock time
    rec.set_item_features([200], [["brand=acme"]])  # the clock runs now: stamped with it
    assert rec.evict(older_than=1) == 0 and rec.evict(older_than=0, now=1200.5) == 3  # user 1, items 1, 200


def test_after_a_big_eviction_negatives_are_drawn_among_the_live_items(family):
    rec = rt.Recommender(model=family, dim=8, num_threads=1, seed=0)
    stream(rec, np.arange(10_000) % 50, np.arange(10_000), np.arange(10_000.0))
    assert rec.evict(older_than=0, now=9_900.0) == 9_900  # 99% of the item rows are now free
    before = rec.stats()["updates"]
    stream(rec, np.arange(1_000) % 50, 10_000 + np.arange(1_000) % 20, 10_000 + np.arange(1_000.0))
    # Every positive found a live negative (drawing row numbers would mostly hit free rows).
    assert rec.stats()["updates"] - before == 1_000


FORK_CHILD = textwrap.dedent('''
import os, sys, threading, time
import numpy as np
import rtrec_native as rt

rec = rt.Recommender(model="mf", dim=16, num_threads=1, max_rows=1000, seed=0)
rec.update(np.arange(1000), np.arange(1000) % 50, timestamps=np.zeros(1000))
stop = threading.Event()
users = np.arange(2_000_000) % 1000
items = np.arange(2_000_000) % 50

def busy():
    while not stop.is_set():
        rec.predict(users, items)  # pinned for most of its life

t = threading.Thread(target=busy)
t.start()
time.sleep(0.3)
pid = os.fork()
if pid == 0:
    # The child: only this thread exists. Stream new IDs through the cap.
    memory = []
    for step in range(60):
        ids = 10_000 + step * 1000 + np.arange(1000)
        rec.update(ids, ids % 50, timestamps=np.full(1000, 1.0 + step))
        memory.append(rec.stats()["memory_bytes"])
    ok = rec.n_users <= 1000 and max(memory[30:]) <= 1.1 * max(memory[5:30])
    print("child", rec.n_users, memory[5], memory[-1], flush=True)
    os._exit(0 if ok else 1)
stop.set()
t.join()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
''')


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_while_another_thread_is_mid_call_still_recycles_rows(tmp_path):
    # The parent's other threads do not exist in a fork child; had their epoch pins stayed,
    # the child would never reuse an evicted row again and its memory would grow without end.
    script = tmp_path / "fork_child.py"
    script.write_text(FORK_CHILD)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("child ")
