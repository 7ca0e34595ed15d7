"""Shared fixtures: planted data with known structure, a model fingerprint, the data path, a
private redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import rtrec_native as rt

SHARED = Path(__file__).resolve().parents[2] / "shared"


def find_dataset(name: str) -> Path:
    """A data set directory: under $RTREC_DATA (a directory of data sets) when it holds it,
    else under ../shared/datasets next to the clone (the path returned may not exist)."""
    env = os.environ.get("RTREC_DATA")
    if env and (Path(env) / name).is_dir():
        return Path(env) / name
    return SHARED / "datasets" / name


MOVIELENS = find_dataset("ml-latest-small")

@dataclass(frozen=True)
class Variant:
    """One model configuration the behaviour tests run against: family, loss, optimizer."""

    model: str
    loss: str
    optimizer: str

    @property
    def kwargs(self) -> dict:
        """Constructor arguments (small two_tower towers and histories keep the tests fast)."""
        extra = {"tower": (16,), "history": 8} if self.model == "two_tower" else {}
        return {"model": self.model, "loss": self.loss, "optimizer": self.optimizer, **extra}

    @property
    def sampled(self) -> bool:
        """Positives against sampled negatives: labels are optional."""
        return rt.samples_negatives(self.loss)

    def __str__(self) -> str:
        return f"{self.model}-{self.loss}-{self.optimizer}"


# Every model variant: behaviour tests run against all of them (one fixture, like a test
# mixin): mf with each loss and optimizer, two_tower with each loss (and both optimizers).
MF_LOSSES = ("squared", "logistic", "bpr", "warp")
VARIANTS = [Variant("mf", loss, opt) for loss in MF_LOSSES for opt in ("sgd", "adagrad")] + [
    Variant("two_tower", "softmax", "adagrad"), Variant("two_tower", "bpr", "adagrad"),
    Variant("two_tower", "logistic", "sgd"), Variant("two_tower", "squared", "adagrad"),
]
# The families, for tests of behaviour that does not depend on the loss.
FAMILIES = ["mf", "two_tower"]


def planted(n_users: int = 300, n_items: int = 200, rank: int = 4, per_user: int = 30, seed: int = 0):
    """Implicit feedback from a hidden low-rank taste model: each user's events are drawn
    from their 40 best-matching items. Returns (users, items, true_affinity)."""
    rng = np.random.default_rng(seed)
    affinity = rng.normal(size=(n_users, rank)) @ rng.normal(size=(rank, n_items))
    users, items = [], []
    for u in range(n_users):
        liked = np.argsort(-affinity[u])[:40]
        chosen = rng.choice(liked, size=per_user, replace=False)
        users.extend([u] * per_user)
        items.extend(chosen.tolist())
    return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), affinity


def labels_for(loss: str, affinity: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray | None:
    """Labels that fit the loss: ratings in [1, 5] or 0/1 clicks from the same affinity."""
    a = affinity[users, items]
    if loss == "squared":
        return np.clip(3.0 + a, 1.0, 5.0).astype(np.float32)
    if loss == "logistic":
        return (a > 0).astype(np.float32)
    return None


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    pos = np.asarray(pos, dtype=np.float64)[:, None]
    neg = np.asarray(neg, dtype=np.float64)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def wait_for(condition, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Polls `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def fingerprint(rec: rt.Recommender, users, items) -> tuple:
    """Everything observable about a model on the given IDs: counters, every pair's score,
    every user's top list. Two equal fingerprints mean nothing changed."""
    stats = rec.stats()
    uu, ii = np.meshgrid(np.asarray(users, dtype=object), np.asarray(items, dtype=object), indexing="ij")
    scores = rec.predict(list(uu.ravel()), list(ii.ravel())) if len(users) and len(items) else np.empty(0)
    tops = [rec.recommend(u, k=5) for u in users]
    return (
        {k: stats[k] for k in ("n_users", "n_items", "updates", "skipped_updates", "seen_pairs", "global_bias")},
        scores.tobytes(),
        [(list(ids), s.tobytes()) for ids, s in tops],
    )


@pytest.fixture(params=VARIANTS, ids=[str(v) for v in VARIANTS])
def variant(request) -> Variant:
    return request.param


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


# --------------------------------------------------------------------------- Redis

# Outside CI the stream tests skip when there is no redis-server binary; .ci/run installs one and
# sets RTREC_REQUIRE_REDIS=1, which turns that skip into a failure (never a silent skip in CI).
REQUIRE_REDIS = os.environ.get("RTREC_REQUIRE_REDIS") == "1"


def _no_redis(reason: str):
    if REQUIRE_REDIS:
        pytest.fail(f"{reason} (RTREC_REQUIRE_REDIS=1: the stream tests must run)")
    pytest.skip(reason)


class RedisServer:
    """A private redis-server on an ephemeral loopback port. Persistence is off (``save ""``,
    ``appendonly no``): the data lives in memory for the test session only. The tests crash the
    trainer, never Redis, so Redis' own durability is not what they are about."""

    def __init__(self, binary: str, directory: Path) -> None:
        import redis

        for _attempt in range(5):  # the port is free when picked; another process may take it first
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self._log = open(directory / f"redis-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(directory), "--loglevel", "warning"], stdout=self._log, stderr=subprocess.STDOUT)
            client = redis.Redis(port=self.port, socket_connect_timeout=1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    client.ping()
                    client.close()
                    return
                except redis.exceptions.ConnectionError:
                    time.sleep(0.02)
            client.close()
            self.stop()
        raise RuntimeError(f"redis-server did not start; see {directory}")

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        _no_redis("no redis-server binary on PATH (apt-get install redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        _no_redis("the redis client is not installed (pip install '.[test]')")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url())
    client.flushall()
    client.close()
    return redis_server.url()


def model_state(rec: rt.Recommender) -> tuple:
    """A model bit for bit as far as it can be observed: every item's and user's vector and bias
    as scoring uses them, the counters learning moves (memory aside), and the same after both
    learn the same few more events (which brings in the optimizer state, the random streams and
    the histories). Call it on models you may change: it trains them."""

    def now() -> tuple:
        items, users = rec.item_vectors(), rec.user_vectors()
        stats = {k: v for k, v in rec.stats().items() if k != "memory_bytes"}
        return (items[0].tolist(), items[1].tobytes(), items[2].tobytes(), users[0].tolist(), users[1].tobytes(),
                users[2].tobytes(), stats)

    before = now()
    if rec.n_users and rec.n_items:
        users, items = rec.user_vectors()[0][:50].tolist(), rec.item_vectors()[0][:50].tolist()
        label = 1.0 if rec.get_params()["loss"] in ("squared", "logistic") else None
        for k in range(100):
            rec.update_one(users[k % len(users)], items[3 * k % len(items)], label, 1.0, 2e9 + k)
    return before, now()
