"""Shared fixtures: planted data with known structure, a model fingerprint, the data path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import rtrec_native as rt

SHARED = Path(__file__).resolve().parents[2] / "shared"
MOVIELENS = SHARED / "datasets" / "ml-latest-small"

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
        return self.loss in ("bpr", "softmax")

    def __str__(self) -> str:
        return f"{self.model}-{self.loss}-{self.optimizer}"


# Every model variant: behaviour tests run against all of them (one fixture, like a test
# mixin): mf with each loss and optimizer, two_tower with each loss (and both optimizers).
VARIANTS = [Variant("mf", loss, opt) for loss in ("squared", "logistic", "bpr") for opt in ("sgd", "adagrad")] + [
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
