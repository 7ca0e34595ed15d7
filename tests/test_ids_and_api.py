"""IDs of any int64 value or string, input containers, outputs and the documented edge cases."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt

INT64_MIN, INT64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def test_sparse_huge_and_negative_int64_ids_round_trip(family):
    items = np.array([INT64_MIN, -1, 0, 7, 2**40 + 3, INT64_MAX], dtype=np.int64)
    rec = rt.Recommender(model=family, dim=4, seed=0).fit(np.zeros(6, dtype=np.int64), items, epochs=1)
    ids, scores = rec.recommend(123, k=10)  # unknown user: by item bias
    assert ids.dtype == np.int64 and sorted(ids.tolist()) == sorted(items.tolist())
    assert scores.dtype == np.float32 and np.all(np.diff(scores) <= 0)


def test_string_ids_round_trip_as_strings(family):
    rec = rt.Recommender(model=family, dim=4, seed=0)
    rec.fit(["alice", "bob", "alice"], ["the matrix", "amélie", "東京物語"], epochs=2)
    ids, _ = rec.recommend("carol", k=5)
    assert ids.dtype == object and set(ids.tolist()) == {"the matrix", "amélie", "東京物語"}
    assert set(rec.recommend("alice", k=5)[0].tolist()) == {"amélie"}
    batch_ids, batch_scores = rec.recommend_batch(["alice", "bob"], k=3)
    assert batch_ids.shape == (2, 3)
    assert batch_ids[0].tolist()[:1] == ["amélie"] and batch_ids[0, 1] is None and np.isnan(batch_scores[0, 1])


def test_lists_arrays_series_and_numpy_scalars_are_accepted_alike():
    pd = pytest.importorskip("pandas")
    fits = [
        ([1, 2, 3], [4, 5, 6]),
        (np.array([1, 2, 3], dtype=np.int32), np.array([4, 5, 6], dtype=np.uint16)),
        (pd.Series([1, 2, 3]), pd.Series([4, 5, 6])),
        (np.array([1.0, 2.0, 3.0]), [4, 5, 6]),  # whole floats are IDs, fractions are not
    ]
    preds = []
    for users, items in fits:
        rec = rt.Recommender(model="mf", dim=4, num_threads=1, seed=0).fit(users, items, epochs=2)
        preds.append(rec.predict([1, 2, 3], [4, 5, 6]))
        assert rec.recommend(np.int64(1), k=2)[0].tolist() == rec.recommend(1, k=2)[0].tolist()
    for p in preds[1:]:
        np.testing.assert_array_equal(p, preds[0])


def test_predict_returns_float32_and_unknown_pairs_get_the_global_bias():
    rec = rt.Recommender(model="mf", dim=4, loss="squared", seed=0).fit([1, 2], [1, 2], [4.0, 2.0], epochs=1)
    out = rec.predict([1, 99], [1, 99])
    assert out.dtype == np.float32 and out.shape == (2,)
    assert out[1] == pytest.approx(rec.stats()["global_bias"])
    assert rec.predict([], []).shape == (0,)


def test_logistic_predictions_are_probabilities():
    rec = rt.Recommender(model="mf", dim=4, loss="logistic", seed=0).fit([1, 1, 2], [1, 2, 1], [1, 0, 1], epochs=5)
    p = rec.predict([1, 1, 2, 3], [1, 2, 1, 3])
    assert np.all((p > 0) & (p < 1))
    ids, scores = rec.recommend(1, k=2, exclude_seen=False)
    np.testing.assert_allclose(scores, rec.predict([1] * len(ids), ids), rtol=1e-6)


def test_exclude_seen_drops_positives_only_and_k_beyond_catalogue_returns_what_exists():
    rec = rt.Recommender(model="mf", dim=4, loss="logistic", seed=0)
    rec.fit([1, 1, 1, 2], [10, 11, 12, 13], [1, 0, 1, 1], epochs=1)
    ids, _ = rec.recommend(1, k=100)
    assert sorted(ids.tolist()) == [11, 13]  # 10 and 12 were clicks; 11 was shown, not clicked
    assert len(rec.recommend(1, k=100, exclude_seen=False)[0]) == 4


def test_recommend_scores_match_predict_and_are_best_first(variant):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 300), rng.integers(0, 3000, 300)
    labels = None if variant.sampled else rng.integers(0, 2, 300).astype(np.float32)
    rec = rt.Recommender(dim=8, seed=0, **variant.kwargs).fit(users, items, labels, epochs=3)
    for u in (0, 5, 999):
        ids, scores = rec.recommend(u, k=25, exclude_seen=False)
        assert len(ids) == 25 and np.all(np.diff(scores) <= 0)
        np.testing.assert_allclose(scores, rec.predict(np.full(25, u), ids), rtol=1e-5, atol=1e-6)
        # Exact: nothing outside the list scores higher than its last entry.
        all_items = np.unique(items)
        assert rec.predict(np.full(all_items.size, u), all_items).max() == pytest.approx(scores[0], rel=1e-5)


def test_recommend_batch_equals_one_by_one(family):
    rng = np.random.default_rng(1)
    rec = rt.Recommender(model=family, dim=8, seed=0)
    rec.fit(rng.integers(0, 50, 2000), rng.integers(0, 40_000, 2000), epochs=2)
    users = np.array([0, 3, 17, 49, 12345])
    ids, scores = rec.recommend_batch(users, k=7)
    assert ids.shape == scores.shape == (5, 7)
    for row, u in enumerate(users):
        one_ids, one_scores = rec.recommend(u, k=7)
        np.testing.assert_array_equal(ids[row], one_ids)
        np.testing.assert_array_equal(scores[row], one_scores)


def test_empty_model_recommends_nothing_and_stats_report_sizes():
    rec = rt.Recommender(model="mf", dim=4)
    ids, scores = rec.recommend(1, k=3)
    assert ids.size == 0 and scores.size == 0
    ids, scores = rec.recommend_batch([1, 2], k=3)
    assert ids.shape == (2, 0)
    stats = rec.stats()
    assert stats["n_users"] == stats["n_items"] == stats["updates"] == 0
    rec.update([1, 2], [3, 3])
    stats = rec.stats()
    assert (stats["n_users"], stats["n_items"], stats["seen_pairs"]) == (2, 1, 2)
    assert stats["memory_bytes"] > 0


def test_update_with_an_empty_batch_is_a_no_op():
    rec = rt.Recommender(model="mf", dim=4, loss="squared").fit([1], [1], [3.0], epochs=1)
    before = rec.stats()
    assert rec.update([], [], []) is rec
    assert rec.stats() == before


def test_num_threads_none_uses_the_openmp_default():
    rec = rt.Recommender(model="mf", dim=4, num_threads=None)
    assert rec.stats()["num_threads"] >= 1
    assert rt.Recommender(model="mf", dim=4, num_threads=3).stats()["num_threads"] == 3


def test_omp_num_threads_is_respected_when_num_threads_is_none():
    import os
    import subprocess
    import sys

    code = "import rtrec_native as rt; print(rt.Recommender(model='mf', dim=4).stats()['num_threads'])"
    for n in ("1", "3"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": n})
        expected = n if rt.openmp_enabled else "1"
        assert out.stdout.strip() == expected


def test_multi_threaded_scan_over_a_large_catalogue_is_exact_with_exclusions(family):
    rng = np.random.default_rng(4)
    n_items = 40_000  # above the size where one user's scan is split across threads
    users = rng.integers(0, 30, 60_000)
    items = np.r_[np.arange(n_items), rng.integers(0, n_items, 60_000 - n_items)]
    rec = rt.Recommender(model=family, dim=8, num_threads=2, seed=0).fit(users, items, epochs=1)
    all_items = np.arange(n_items)
    for u in (0, 7, 29):
        ids, scores = rec.recommend(u, k=15)
        seen = set(items[users == u].tolist())
        brute = rec.predict(np.full(n_items, u), all_items)
        order = [i for i in np.argsort(-brute, kind="stable") if i not in seen][:15]
        assert not seen & set(ids.tolist())
        np.testing.assert_allclose(scores, brute[order], rtol=1e-6)


def test_k_far_beyond_the_catalogue_costs_nothing():
    rec = rt.Recommender(model="mf", dim=4).fit([1, 2, 3], [10, 20, 30], epochs=1)
    ids, scores = rec.recommend_batch(list(range(64)), k=10**12)
    assert ids.shape == scores.shape == (64, 3)
    assert len(rec.recommend(1, k=2**70, exclude_seen=False)[0]) == 3
