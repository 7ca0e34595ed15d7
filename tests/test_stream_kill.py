"""`rtrec consume` killed with SIGKILL at random moments while producers write: after every
restart it resumes from its files, and the end result is bit for bit the model of a run that
was never interrupted (one thread, a fixed seed), with every event learned once and each
malformed entry dead-lettered once. (benchmarks/bench_stream_faults.py does the same at 1M
events with 2 producers and 5 kills.)"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import rtrec_native as rt
from conftest import model_state
from rtrec_native.replication import restore_latest
from rtrec_native.stream import Consumer, Producer, RedisStreamSource

try:
    import redis
except ImportError:  # the redis_url fixture skips (in CI: fails) and says why
    redis = None

STREAM = "rtrec:events"
N_EVENTS, BURST, PAUSE = 30_000, 500, 0.05  # ~10k events/s for ~3 s
MODEL_ARGS = ["--family", "mf", "--dim", "8", "--threads", "1", "--seed", "0"]


def producer(url: str, planted: list[int]) -> None:
    """Bursts of events; every 293rd entry is malformed (a user that is not an integer)."""
    rng = np.random.default_rng(0)
    send = Producer(url, STREAM)
    k = 0
    while k < N_EVENTS:
        entries = []
        for _ in range(BURST):
            entries.append({"user": str(rng.integers(0, 500)), "item": str(rng.integers(0, 300))})
            k += 1
            if k % 293 == 0:
                entries.append({"user": "not-a-number", "item": "1"})
                planted.append(k)
        send.send_fields(entries)
        time.sleep(PAUSE)


def consume(url: str, directory, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtrec_native.cli", "consume", "--redis", url, "--stream", STREAM,
                             "--snapshot-dir", str(directory), "--snapshot-interval", "0.05", "--batch-size", "200",
                             "--log-level", "error", *MODEL_ARGS, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_a_file_written_after(directory, since: float, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(f.stat().st_mtime >= since for f in directory.iterdir() if f.is_file()):
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_three_times_and_the_model_is_the_uninterrupted_one(redis_url, tmp_path):
    rng = random.Random(12)
    planted: list[int] = []
    # The reference run's group exists from the start: the trainer trims only what every group
    # has acknowledged, so the whole stream stays for it.
    redis.Redis.from_url(redis_url).xgroup_create(STREAM, "reference", id="0", mkstream=True)
    writer = threading.Thread(target=producer, args=(redis_url, planted))
    writer.start()
    progress = []  # events the model on disk held after each kill
    for _ in range(3):
        started = time.time()
        proc = consume(redis_url, tmp_path)
        # Kill it at a random moment once it is learning: on a loaded machine the process
        # alone can take over a second to start, and a kill before its first file tests nothing.
        wait_for_a_file_written_after(tmp_path, started)
        time.sleep(rng.uniform(0.1, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        on_disk = restore_latest(tmp_path)
        progress.append(0 if on_disk is None or not on_disk.source_position
                        else int(on_disk.source_position.split('"learned":')[1].split(",")[0]))
    writer.join()
    last = consume(redis_url, tmp_path, "--idle-exit", "1")
    _, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    assert any(0 < p < N_EVENTS for p in progress), progress  # the kills landed mid-stream

    r = redis.Redis.from_url(redis_url)
    assert r.xpending(STREAM, "trainers")["pending"] == 0
    assert r.xlen(STREAM + ":dead") == len(planted)
    resumed = restore_latest(tmp_path, num_threads=1)
    # Counted with the model (the counters travel in its files): every event once, none twice.
    assert f'"learned":{N_EVENTS},"dead":{len(planted)}' in resumed.source_position

    uninterrupted = Consumer(rt.Recommender(model="mf", loss="bpr", dim=8, num_threads=1, seed=0),
                             RedisStreamSource(redis_url, STREAM, "reference"), tmp_path / "reference")
    uninterrupted.run(idle_exit=0.5)
    assert uninterrupted.learned == N_EVENTS
    # Bit for bit, including the gradient-step counter (an event learned twice would add steps).
    assert model_state(resumed) == model_state(uninterrupted.model)
