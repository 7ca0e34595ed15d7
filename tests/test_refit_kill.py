"""`rtrec consume --archive [--refit-every]` killed with SIGKILL (also in the middle of a
refit) while a producer writes: every event is learned once and archived once, a refit is
retried after the restart, and SIGTERM during a refit exits 0 at once with the last delta."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import wait_for
from rtrec_native.replication import restore_latest
from rtrec_native.stream import Producer

try:
    import redis
except ImportError:  # the redis_url fixture skips (in CI: fails) and says why
    redis = None

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
STREAM = "rtrec:events"
MODEL_ARGS = ["--family", "mf", "--dim", "8", "--threads", "1", "--seed", "0", "--loss", "bpr"]


def produce(url: str, n: int, burst: int = 500, pause: float = 0.05, first: int = 0) -> None:
    rng = np.random.default_rng(first)
    send = Producer(url, STREAM)
    for start in range(first, first + n, burst):
        send.send_fields([{"user": str(rng.integers(0, 3000)), "item": str(rng.integers(0, 2000)),
                           "ts": str(1_000_000 + k)} for k in range(start, min(start + burst, first + n))])
        time.sleep(pause)


class Trainer:
    """An `rtrec consume` subprocess whose stderr lines are collected as they come."""

    def __init__(self, url: str, tmp_path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtrec_native.cli", "consume", "--redis", url, "--stream", STREAM,
             "--snapshot-dir", str(tmp_path / "snap"), "--archive", str(tmp_path / "archive"),
             "--snapshot-interval", "0.05", "--batch-size", "200", "--log-level", "info", *MODEL_ARGS, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close()
        assert self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout: float = 120) -> str:
        self.proc.wait(timeout)
        out = self.proc.stdout.read()
        self._close()
        assert self.proc.returncode == 0, "".join(self.lines)
        return out

    def _close(self) -> None:
        self._reader.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def learned_on_disk(tmp_path) -> int:
    rec = restore_latest(tmp_path / "snap")
    return 0 if rec is None or not rec.source_position else json.loads(rec.source_position)["learned"]


def archived_entries(tmp_path) -> list[str]:
    return pd.read_parquet(tmp_path / "archive")["entry"].tolist()


def stream_entries(url: str) -> list[str]:
    return [eid.decode() for eid, _ in redis.Redis.from_url(url).xrange(STREAM)]


@pytest.mark.slow
def test_kill_9_and_every_event_is_archived_once(redis_url, tmp_path):
    redis.Redis.from_url(redis_url).xgroup_create(STREAM, "keep", id="0", mkstream=True)  # keeps the stream whole
    writer = threading.Thread(target=produce, args=(redis_url, 20_000))
    writer.start()
    for _ in range(3):
        trainer = Trainer(redis_url, tmp_path)
        assert wait_for(lambda t=trainer: t.said("reading"), timeout=60)
        time.sleep(0.4)
        trainer.kill()
    writer.join()
    last = Trainer(redis_url, tmp_path, "--idle-exit", "1")
    last.finish()
    assert learned_on_disk(tmp_path) == 20_000
    assert archived_entries(tmp_path) == stream_entries(redis_url)  # once each, in the log's order


@pytest.mark.slow
def test_kill_9_mid_refit_then_the_refit_is_retried(redis_url, tmp_path):
    redis.Redis.from_url(redis_url).xgroup_create(STREAM, "keep", id="0", mkstream=True)
    produce(redis_url, 20_000, pause=0.0)
    # A refit that takes long (many epochs), killed while it runs.
    trainer = Trainer(redis_url, tmp_path, "--refit-every", "1", "--refit-epochs", "3000")
    assert wait_for(lambda: trainer.said("refit started"), timeout=60)
    writer = threading.Thread(target=produce, args=(redis_url, 5_000), kwargs={"first": 20_000})
    writer.start()
    time.sleep(0.5)
    trainer.kill()
    assert not trainer.said("refit swapped in")
    writer.join()
    # The restart finds the refit overdue (none recorded) and runs one at once, now short.
    again = Trainer(redis_url, tmp_path, "--refit-every", "1h", "--refit-epochs", "2", "--idle-exit", "3", "--json")
    out = again.finish()
    assert again.said("refit started") and again.said("refit swapped in"), "".join(again.lines)
    summary = json.loads(out)
    assert summary["learned"] == 25_000 and summary["refits"] == 1 and summary["refit_failures"] == 0
    assert learned_on_disk(tmp_path) == 25_000
    assert archived_entries(tmp_path) == stream_entries(redis_url)


@pytest.mark.slow
def test_sigterm_during_a_refit_exits_0_with_the_last_delta(redis_url, tmp_path):
    produce(redis_url, 10_000, pause=0.0)
    trainer = Trainer(redis_url, tmp_path, "--refit-every", "1", "--refit-epochs", "5000", "--json")
    assert wait_for(lambda: trainer.said("refit started"), timeout=60)
    produce(redis_url, 1_000, pause=0.0, first=10_000)
    assert wait_for(lambda: learned_on_disk(tmp_path) == 11_000, timeout=60)
    trainer.proc.send_signal(signal.SIGTERM)
    # 5000 epochs would take minutes: exiting within the wait means the refit was dropped.
    out = trainer.finish(timeout=30)
    assert json.loads(out)["learned"] == 11_000
    assert not trainer.said("refit swapped in")
    assert learned_on_disk(tmp_path) == 11_000


def test_a_replica_following_redis_switches_to_the_swapped_model(redis_url, tmp_path):
    import rtrec_native as rt
    from memory_log import ListSource, drain, events
    from rtrec_native.stream import Consumer, EventArchive, RedisAnnouncer, Refitter

    announce = RedisAnnouncer(redis_url, "refit:deltas")
    consumer = Consumer(rt.Recommender(model="mf", dim=8, loss="bpr", num_threads=1, seed=0),
                        ListSource(events(3000)), tmp_path / "snap", archive=EventArchive(tmp_path / "archive"),
                        refit=Refitter(1e9, epochs=2), announce=announce, batch_size=50, interval=0.001)
    for _ in range(10):
        consumer.poll(0.0)
    consumer.flush()
    replica = rt.Replica(tmp_path / "snap", redis=redis_url, deltas_stream="refit:deltas", timeout=30)
    try:
        before = replica.position[0]
        consumer.refit.start()
        for _ in range(200_000):
            if consumer.refit.refits or consumer.refit.failures:
                break
            consumer.poll(0.0)
        assert consumer.refit.refits == 1
        drain(consumer)
        consumer.flush()
        assert consumer.model.snapshot_position[0] != before
        assert wait_for(lambda: replica.position == consumer.model.snapshot_position, timeout=10)
        assert np.array_equal(replica.predict([1, 2], [3, 4]), consumer.model.predict([1, 2], [3, 4]))
    finally:
        replica.close()
