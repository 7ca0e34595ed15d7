"""On MovieLens ml-latest-small (when ../shared is present): learning beats popularity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import rtrec_native as rt
from conftest import MOVIELENS

RATINGS = MOVIELENS / "ratings.csv"
pytestmark = pytest.mark.skipif(not RATINGS.exists(), reason=f"MovieLens not found at {RATINGS}")


def _per_user_temporal_split(users, timestamps, test_fraction=0.2):
    """The last fraction of each user's events (by time) is the test set."""
    order = np.lexsort((timestamps, users))
    test = np.zeros(users.size, dtype=bool)
    bounds = np.r_[0, np.flatnonzero(np.diff(users[order])) + 1, users.size]
    for a, b in itertools.pairwise(bounds):
        test[order[b - max(1, round((b - a) * test_fraction)):b]] = True
    return test


def _recall_at_10(recommended: dict, relevant: dict) -> float:
    return float(np.mean([len(set(recommended[u]) & rel) / min(10, len(rel)) for u, rel in relevant.items()]))


def test_recall_at_10_beats_popularity_on_a_per_user_temporal_split():
    data = np.loadtxt(RATINGS, delimiter=",", skiprows=1)
    users, items, ts = data[:, 0].astype(np.int64), data[:, 1].astype(np.int64), data[:, 3]
    test = _per_user_temporal_split(users, ts)
    relevant: dict = {}
    for u, i in zip(users[test], items[test], strict=True):
        relevant.setdefault(u, set()).add(i)
    seen: dict = {}
    for u, i in zip(users[~test], items[~test], strict=True):
        seen.setdefault(u, set()).add(i)

    train_items, counts = np.unique(items[~test], return_counts=True)
    by_popularity = train_items[np.argsort(-counts, kind="stable")]
    popular = {u: [i for i in by_popularity[:600] if i not in seen.get(u, ())][:10] for u in relevant}

    rec = rt.Recommender(model="mf",
                         dim=64, loss="bpr", init_std=0.01, seed=0).fit(users[~test], items[~test], epochs=20)
    ours = {u: rec.recommend(u, k=10)[0].tolist() for u in relevant}
    baseline, model = _recall_at_10(popular, relevant), _recall_at_10(ours, relevant)
    assert model > baseline * 1.1, (model, baseline)
