"""Publisher -> Replica: a trainer's changes reach replicas (also in other processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from functools import partial

import numpy as np
import pytest

import rtrec_native as rt
from conftest import wait_for as wait_until
from rtrec_native.replication import restore_latest

wait_for = partial(wait_until, timeout=5.0, interval=0.005)  # this file's waits


def _trainer():
    rng = np.random.default_rng(0)
    return rt.Recommender(model="mf", dim=8, loss="squared", num_threads=1, seed=1).fit(
        rng.integers(0, 50, 500), rng.integers(0, 80, 500), rng.uniform(1, 5, 500), epochs=2)


def test_replica_follows_updates_and_new_ids(tmp_path):
    rec = _trainer()
    with rt.Publisher(rec, tmp_path, interval=0.02) as pub, rt.Replica(tmp_path, poll_interval=0.005) as rep:
        assert rep.predict([1], [2])[0] == rec.predict([1], [2])[0]
        rec.update([1, 777], [2, 888], [5.0, 4.0])
        assert wait_for(lambda: rep.predict([1, 777], [2, 888]).tolist() == rec.predict([1, 777], [2, 888]).tolist())
        assert 888 in rep.recommend(5, k=100)[0]
        assert 888 not in rep.recommend(777, k=100)[0]  # seen items travel too
    assert pub.deltas_written >= 1 and rep.deltas_applied >= 1


def test_nothing_changed_means_no_delta_and_close_flushes_the_last_one(tmp_path):
    rec = _trainer()
    pub = rt.Publisher(rec, tmp_path, interval=0.01)
    time.sleep(0.1)
    assert pub.deltas_written == 0
    rec.update_one(3, 4, 2.0)
    pub.close()  # the final delta is written even if the thread had no time to
    replica = rt.Recommender.load(tmp_path / "snapshot-00000000.rtrec")
    for name in sorted(os.listdir(tmp_path)):
        if name.startswith("delta-"):
            replica.apply_delta(tmp_path / name)
    assert replica.predict([3], [4])[0] == rec.predict([3], [4])[0]


def test_an_up_to_date_replica_follows_deltas_across_compactions(tmp_path):
    rec = _trainer()
    with rt.Publisher(rec, tmp_path, interval=60, compact_every=3) as pub, \
            rt.Replica(tmp_path, poll_interval=0.005) as rep:
        for i in range(12):
            rec.update_one(i, 1000 + i, 4.0)
            pub.flush()
            assert wait_for(lambda: rep.position == rec.snapshot_position)
        assert pub.snapshots_written >= 4
        assert rep.snapshots_loaded == 1  # never reloaded: compaction does not stall it
        assert rep.predict([11], [1011])[0] == rec.predict([11], [1011])[0]
    snapshots = sorted(n for n in os.listdir(tmp_path) if n.startswith("snapshot-"))
    deltas = sorted(n for n in os.listdir(tmp_path) if n.startswith("delta-"))
    assert len(snapshots) == 2  # older snapshots and the deltas before them are pruned
    assert all(d[6:14] > snapshots[0][9:17] for d in deltas)


def test_a_replica_that_fell_behind_pruned_deltas_jumps_to_the_newest_snapshot(tmp_path):
    rec = _trainer()
    with rt.Publisher(rec, tmp_path, interval=60, compact_every=2) as pub:
        rep = rt.Replica(tmp_path, poll_interval=3600)  # effectively paused
        for i in range(9):
            rec.update_one(i, 3000 + i, 2.0)
            pub.flush()
        rep._catch_up()  # what its thread would do on the next poll
        assert rep.position == rec.snapshot_position and rep.snapshots_loaded == 2
        rep.close()


def test_a_new_model_takes_over_a_directory_and_replicas_switch_to_it(tmp_path):
    old = _trainer()
    with rt.Publisher(old, tmp_path, interval=60) as pub:
        old.update_one(1, 2, 3.0)
        pub.flush()
    rep = rt.Replica(tmp_path, poll_interval=3600)
    new = rt.Recommender(model="mf", dim=8, loss="squared", num_threads=1, seed=5).fit([7], [8], [4.0], epochs=1)
    with rt.Publisher(new, tmp_path, interval=60) as pub:
        new.update_one(7, 9, 5.0)
        pub.flush()
        rep._catch_up()
        assert rep.position == new.snapshot_position
        assert rep.predict([7], [9])[0] == new.predict([7], [9])[0]
    rep.close()


def test_a_late_replica_starts_from_the_newest_base(tmp_path):
    rec = _trainer()
    with rt.Publisher(rec, tmp_path, interval=0.01, compact_every=2) as pub:
        for i in range(7):
            rec.update_one(i, 2000 + i, 3.0)
            pub.flush()
    with rt.Replica(tmp_path) as rep:
        assert rep.position == rec.snapshot_position
        np.testing.assert_array_equal(rep.predict(np.arange(7), 2000 + np.arange(7)),
                                      rec.predict(np.arange(7), 2000 + np.arange(7)))


def test_bad_arguments(tmp_path):
    rec = _trainer()
    with pytest.raises(ValueError, match="interval"):
        rt.Publisher(rec, tmp_path, interval=0)
    with pytest.raises(ValueError, match="compact_every"):
        rt.Publisher(rec, tmp_path, compact_every=0)
    with pytest.raises(TypeError, match="Recommender"):
        rt.Publisher("model", tmp_path)
    with pytest.raises(FileNotFoundError, match="no snapshot"):
        rt.Replica(tmp_path / "empty", timeout=0.05)


def test_replica_in_another_process_sees_an_update_within_seconds(tmp_path):
    rec = _trainer()
    script = textwrap.dedent(f"""
        import sys, time, rtrec_native as rt
        rep = rt.Replica({str(tmp_path)!r}, poll_interval=0.01)
        print("ready", flush=True)
        target = float(sys.stdin.readline())
        deadline = time.monotonic() + 30
        while abs(float(rep.predict([424242], [515151])[0]) - target) > 1e-6 and time.monotonic() < deadline:
            time.sleep(0.002)
        print("seen", float(rep.predict([424242], [515151])[0]), flush=True)
    """)
    with rt.Publisher(rec, tmp_path, interval=0.1):
        proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            rec.update_one(424242, 515151, 5.0)
            target = float(rec.predict([424242], [515151])[0])
            start = time.monotonic()
            proc.stdin.write(f"{target!r}\n")
            proc.stdin.flush()
            line = proc.stdout.readline().split()
            lag = time.monotonic() - start
        finally:
            proc.kill()
            proc.wait(10)
            proc.stdin.close()
            proc.stdout.close()
    assert line[0] == "seen" and float(line[1]) == pytest.approx(target, abs=1e-6)
    assert lag < 5.0  # loose bound for a noisy machine; the benchmark measures the real lag


def test_what_fit_learns_while_a_publisher_runs_is_published(tmp_path):
    rng = np.random.default_rng(3)
    rec = rt.Recommender(model="mf", dim=16, num_threads=2, seed=0)
    rec.fit(rng.integers(0, 3000, 5000), rng.integers(0, 2000, 5000), epochs=1)
    with rt.Publisher(rec, tmp_path, interval=0.002):
        rec.fit(rng.integers(0, 3000, 200_000), rng.integers(0, 2000, 200_000), epochs=2)
    restored = restore_latest(tmp_path, num_threads=1)
    u, i = rng.integers(0, 3000, 2000), rng.integers(0, 2000, 2000)
    np.testing.assert_array_equal(restored.predict(u, i), rec.predict(u, i))


def test_a_failed_write_is_reported_and_retried_not_fatal(tmp_path):
    import shutil

    rec = _trainer()
    directory = tmp_path / "pub"
    pub = rt.Publisher(rec, directory, interval=0.01)
    shutil.rmtree(directory)  # the disk "goes away"
    rec.update_one(1, 2, 3.0)
    assert wait_for(lambda: pub.last_error is not None)
    assert pub._thread.is_alive()
    directory.mkdir()  # and comes back: the next retry publishes
    assert wait_for(lambda: pub.last_error is None and pub.deltas_written >= 1, timeout=15)
    pub.close()
