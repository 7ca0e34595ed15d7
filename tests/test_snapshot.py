"""Snapshots: exact round trip, atomic replacement, and corrupted files rejected whole."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import rtrec_native as rt
from conftest import fingerprint, labels_for, planted


def _trained(loss="bpr", optimizer="adagrad", ids="int", threads=1, **kwargs):
    users, items, affinity = planted(n_users=60, n_items=50, per_user=8, seed=5)
    labels = labels_for(loss, affinity, users, items)
    if ids == "str":
        users = [f"user-{u}" for u in users]
        items = [f"item-{i}" for i in items]
    rec = rt.Recommender(**{"dim": 12, "loss": loss, "optimizer": optimizer, "num_threads": threads, "seed": 9,
                            "negatives": 2, **kwargs})
    rec.fit(users, items, labels, epochs=2, timestamps=np.arange(len(users), dtype=np.float64))
    return rec, users, items, labels


def _ids(kind):
    if kind == "str":
        return [f"user-{u}" for u in range(0, 60, 7)] + ["user-none"], [f"item-{i}" for i in range(50)]
    return list(range(0, 60, 7)) + [999], list(range(50))


@pytest.mark.parametrize("ids", ["int", "str"])
def test_round_trip_is_exact_for_every_variant(tmp_path, variant, ids):
    loss, optimizer = variant.loss, variant.optimizer
    rec, *_ = _trained(ids=ids, **variant.kwargs)
    path = tmp_path / "model.rtrec"
    rec.save(path)
    loaded = rt.Recommender.load(path, num_threads=1)
    users, items = _ids(ids)
    assert fingerprint(loaded, users, items) == fingerprint(rec, users, items)
    assert loaded.get_params()["loss"] == loss and loaded.get_params()["optimizer"] == optimizer
    assert loaded.stats()["memory_bytes"] > 0


def test_training_continues_identically_after_load(tmp_path):
    rec, users, items, labels = _trained("bpr", "adagrad")
    rec.save(tmp_path / "m")
    loaded = rt.Recommender.load(tmp_path / "m", num_threads=1)
    for model in (rec, loaded):
        model.fit(users, items, labels, epochs=2)
        model.update([1, 2, 500], [3, 4, 600])
    u, i = _ids("int")
    assert fingerprint(loaded, u, i + [600]) == fingerprint(rec, u, i + [600])


def test_popularity_sampling_state_survives_a_round_trip(tmp_path):
    users, items, _ = planted(n_users=60, n_items=50, per_user=8, seed=5)
    rec = rt.Recommender(model="mf",
                         dim=8, negative_sampling="popularity", num_threads=1, seed=2).fit(users, items, epochs=2)
    rec.save(tmp_path / "m")
    loaded = rt.Recommender.load(tmp_path / "m", num_threads=1)
    assert loaded.get_params()["negative_sampling"] == "popularity"
    for model in (rec, loaded):
        model.update(users[:40], items[:40])  # draws negatives from the restored pool
    u, i = _ids("int")
    assert fingerprint(loaded, u, i) == fingerprint(rec, u, i)


def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path):
    rec, *_ = _trained()
    path = tmp_path / "m"
    rec.save(path)
    first = path.read_bytes()
    rec.update([1], [2])
    rec.save(path)
    assert path.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_save_into_a_missing_directory_fails_clearly(tmp_path):
    rec, *_ = _trained()
    with pytest.raises(RuntimeError, match="cannot create"):
        rec.save(tmp_path / "missing-dir" / "m")


def test_a_save_that_fails_midway_keeps_the_previous_file(tmp_path):
    """The disk 'fills up' half-way through the new file (RLIMIT_FSIZE): the save raises,
    the previous snapshot is untouched and no temporary file is left behind."""
    path = tmp_path / "m"
    script = textwrap.dedent(f"""
        import resource, signal, numpy as np, rtrec_native as rt
        rng = np.random.default_rng(0)
        rec = rt.Recommender(model="mf", dim=32, num_threads=1)
        rec.fit(rng.integers(0, 3000, 9000), rng.integers(0, 3000, 9000), epochs=1)
        rec.save({str(path)!r})
        size = __import__("os").path.getsize({str(path)!r})
        rec.update([1], [99999])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # make the write fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))
        try:
            rec.save({str(path)!r})
        except RuntimeError as exc:
            print("failed:", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "failed: write failed" in out.stdout, out.stdout + out.stderr
    loaded = rt.Recommender.load(path)
    assert 99999 not in loaded.recommend(12345, k=loaded.n_items)[0]  # the earlier model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def _corruptions(data: bytes):
    yield "truncated", data[: len(data) // 2]
    yield "truncated trailer", data[:-3]
    yield "empty", b""
    yield "not a snapshot", b"userId,movieId,rating\n1,2,3\n" * 10
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    yield "flipped byte", bytes(flipped)
    wrong_version = bytearray(data)
    wrong_version[8] = 99
    yield "wrong version", bytes(wrong_version)
    yield "trailing junk", data + b"junk"


@pytest.mark.parametrize("case", [name for name, _ in _corruptions(b"x" * 64)])
def test_corrupted_files_are_rejected_with_a_clear_error(tmp_path, case):
    rec, *_ = _trained(ids="str")
    rec.save(tmp_path / "good")
    data = dict(_corruptions((tmp_path / "good").read_bytes()))[case]
    path = tmp_path / "model.rtrec"
    path.write_bytes(data)
    with pytest.raises(rt.SnapshotError) as info:
        rt.Recommender.load(path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message  # names the file first...
    words = {"truncated": "truncated", "truncated trailer": "truncated", "empty": "truncated",
             "not a snapshot": "not an rtrec_native snapshot", "flipped byte": "checksum|corrupted",
             "wrong version": "version 99 is not supported", "trailing junk": "unexpected data"}[case]
    reason = message[len(f"{path}: "):]
    assert any(w in reason for w in words.split("|")), message  # ...then says what is wrong with it


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        rt.Recommender.load(tmp_path / "nope")


def test_save_while_other_threads_update_and_recommend(tmp_path):
    rec, *_ = _trained(threads=2)
    stop = threading.Event()
    errors = []

    def churn():
        rng = np.random.default_rng(0)
        try:
            while not stop.is_set():
                rec.update(rng.integers(0, 5000, 32), rng.integers(0, 5000, 32))
                rec.recommend(int(rng.integers(0, 60)), k=5)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(15):
            rec.save(tmp_path / "live")
            loaded = rt.Recommender.load(tmp_path / "live")
            assert loaded.n_items >= 50 and np.isfinite(loaded.predict([1, 2], [3, 4])).all()
    finally:
        stop.set()
        worker.join(60)
    assert not errors


def test_kill_9_during_save_always_leaves_a_loadable_snapshot(tmp_path):
    """A writer process saves a large model in a loop; we SIGKILL it at random moments."""
    path = tmp_path / "model.rtrec"
    script = textwrap.dedent(f"""
        import numpy as np, rtrec_native as rt, sys
        rng = np.random.default_rng(0)
        rec = rt.Recommender(model="mf", dim=32, num_threads=1)
        rec.fit(rng.integers(0, 20000, 60000), rng.integers(0, 20000, 60000), epochs=1)
        rec.save({str(path)!r})
        print("ready", flush=True)
        while True:
            rec.update(rng.integers(0, 20000, 100), rng.integers(0, 20000, 100))
            rec.save({str(path)!r})
    """)
    rng = np.random.default_rng(1)
    for _attempt in range(20):  # bounded
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(float(rng.uniform(0.01, 0.3)))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            proc.stdout.close()
        loaded = rt.Recommender.load(path)
        assert loaded.n_users > 10_000 and loaded.n_items > 10_000
