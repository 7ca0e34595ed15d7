"""Diversified recommendations (``diversity=``, maximal marginal relevance in the core)."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from conftest import planted


def _model(family: str) -> rt.Recommender:
    users, items, _ = planted(n_users=200, n_items=300, per_user=25)
    kwargs = {"tower": (16,), "history": 8} if family == "two_tower" else {}
    return rt.Recommender(model=family, dim=16, seed=3, num_threads=1, **kwargs).fit(users, items, epochs=8)


def _reference_mmr(rec: rt.Recommender, user: int, k: int, lam: float) -> list[int]:
    """MMR as the docs state it, in numpy: pool of the max(5k, 50) best, relevance and
    pairwise cosine each min-max scaled over the pool, greedy picks."""
    pool_size = max(rt.recommender.DIVERSITY_POOL_FACTOR * k, rt.recommender.DIVERSITY_POOL_MIN)
    pool, scores = rec.recommend(user, k=pool_size)
    _, vectors, _ = rec.item_vectors(pool)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = unit @ unit.T
    pairs = sim[np.triu_indices(len(pool), 1)]
    sim = (sim - pairs.min()) / (pairs.max() - pairs.min())
    rel = (scores - scores.min()) / (scores.max() - scores.min())
    picked: list[int] = []
    for _ in range(k):
        redundancy = sim[:, picked].max(axis=1) if picked else np.zeros(len(pool))
        value = (1 - lam) * rel - lam * redundancy
        value[picked] = -np.inf
        picked.append(int(np.argmax(value)))
    return [int(pool[j]) for j in picked]


def _intra_list_diversity(rec: rt.Recommender, ids: np.ndarray) -> float:
    _, vectors, _ = rec.item_vectors(ids)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = unit @ unit.T
    return float(1.0 - sim[np.triu_indices(len(ids), 1)].mean())


def test_zero_diversity_is_the_exact_top_k(variant):
    users, items, affinity = planted(n_users=60, n_items=80, per_user=10)
    from conftest import labels_for

    rec = rt.Recommender(**variant.kwargs, seed=1, num_threads=1)
    rec.fit(users, items, labels_for(variant.loss, affinity, users, items), epochs=2)
    for user in range(0, 60, 7):
        plain_ids, plain_scores = rec.recommend(user, k=12)
        ids, scores = rec.recommend(user, k=12, diversity=0.0)
        np.testing.assert_array_equal(ids, plain_ids)
        np.testing.assert_array_equal(scores, plain_scores)
    batch = rec.recommend_batch(np.arange(60), k=12, diversity=0.0)
    plain = rec.recommend_batch(np.arange(60), k=12)
    np.testing.assert_array_equal(batch.ids, plain.ids)
    np.testing.assert_array_equal(batch.counts, plain.counts)


@pytest.mark.parametrize("lam", [0.3, 0.7, 1.0])
def test_mmr_matches_the_documented_rule(family, lam):
    rec = _model(family)
    for user in (0, 17, 42, 199):
        ids, scores = rec.recommend(user, k=10, diversity=lam)
        assert ids.tolist() == _reference_mmr(rec, user, 10, lam)
        # Scores are the model's own scores of the picked items.
        np.testing.assert_allclose(scores, rec.predict([user] * len(ids), ids), rtol=1e-5, atol=1e-5)


def test_diversity_spreads_the_list_and_keeps_the_best_item_first(family):
    rec = _model(family)
    plain_ild, diverse_ild = [], []
    for user in range(0, 200, 5):
        plain, _ = rec.recommend(user, k=10)
        diverse, _ = rec.recommend(user, k=10, diversity=0.5)
        assert diverse[0] == plain[0]  # no redundancy yet: the first pick is the most relevant
        pool, _ = rec.recommend(user, k=50)
        assert set(diverse.tolist()) <= set(pool.tolist())
        plain_ild.append(_intra_list_diversity(rec, plain))
        diverse_ild.append(_intra_list_diversity(rec, diverse))
    assert np.mean(diverse_ild) > 1.05 * np.mean(plain_ild)


def test_batch_equals_one_by_one(family):
    rec = _model(family)
    users = np.array([0, 5, 9, 123, 10**6])  # the last one is unknown: ranked by item bias
    batch = rec.recommend_batch(users, k=7, diversity=0.4)
    for row, user in enumerate(users):
        ids, scores = rec.recommend(int(user), k=7, diversity=0.4)
        assert batch.ids[row, : batch.counts[row]].tolist() == ids.tolist()
        np.testing.assert_allclose(batch.scores[row, : batch.counts[row]], scores, rtol=1e-6)


def test_small_catalogue_and_string_ids():
    rec = rt.Recommender(model="mf",
                         seed=0, num_threads=1).fit(["u1", "u1", "u2", "u3"], ["a", "b", "c", "d"], epochs=3)
    ids, _ = rec.recommend("u1", k=10, diversity=0.5)
    assert sorted(ids.tolist()) == ["c", "d"]  # a and b are seen; the pool is the whole rest
    batch = rec.recommend_batch(["u1", "u2"], k=10, diversity=0.5)
    assert batch.counts.tolist() == [2, 3]


@pytest.mark.parametrize("bad", [-0.01, 1.0001, float("nan"), float("inf"), -float("inf")])
def test_diversity_out_of_range_is_a_value_error(bad):
    rec = _model("mf")
    with pytest.raises(ValueError, match=r"diversity must be a finite number in \[0, 1\]"):
        rec.recommend(0, k=5, diversity=bad)
    with pytest.raises(ValueError, match=r"diversity must be a finite number in \[0, 1\]"):
        rec.recommend_batch([0, 1], k=5, diversity=bad)


@pytest.mark.parametrize("bad", ["0.5", None, True, [0.5]])
def test_diversity_of_the_wrong_type_is_a_type_error(bad):
    rec = _model("mf")
    with pytest.raises(TypeError, match="diversity must be a number"):
        rec.recommend(0, k=5, diversity=bad)
    with pytest.raises(TypeError, match="diversity must be a number"):
        rec.recommend_batch([0], k=5, diversity=bad)


def test_pool_limits_come_from_the_core():
    assert rt.recommender.DIVERSITY_POOL_FACTOR == rt._core.limits["diversity_pool_factor"] == 5
    assert rt.recommender.DIVERSITY_POOL_MIN == rt._core.limits["diversity_pool_min"] == 50
    assert rt._core.limits["max_diversity"] == 1.0
