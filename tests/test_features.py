"""Side features (cold start): set_item_features / set_user_features."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rtrec_native as rt
from conftest import VARIANTS, fingerprint
from rtrec_native import datasets

N_ITEMS = 300
GENRE = np.arange(N_ITEMS) % 10  # item i has genre i % 10
COLD_POPULAR, COLD_NICHE = N_ITEMS, N_ITEMS + 1  # never seen; genre 0 (popular) / 9 (niche)


def genre_events(n_users: int = 400, per_user: int = 20, seed: int = 0):
    """Each user likes two genres, genres 0-2 far more often than the rest."""
    rng = np.random.default_rng(seed)
    weights = np.array([5, 4, 3, 1, 1, 1, 1, 1, 1, 1]) / 19
    users, items = [], []
    for u in range(n_users):
        liked = rng.choice(10, 2, replace=False, p=weights)
        pool = np.flatnonzero(np.isin(GENRE, liked))
        users += [u] * per_user
        items += rng.choice(pool, per_user).tolist()
    return np.array(users), np.array(items)


def genre_features() -> tuple[np.ndarray, list[list[str]]]:
    ids = np.arange(N_ITEMS + 2)
    return ids, [[f"genre={g}"] for g in GENRE] + [["genre=0"], ["genre=9"]]


def mean_rank(rec: rt.Recommender, item: int, users) -> float:
    """Average position of `item` in the users' full rankings, 0 = first, 1 = last."""
    ranks = []
    for u in users:
        ids, _ = rec.recommend(int(u), k=N_ITEMS + 2, exclude_seen=False)
        ranks.append(list(ids).index(item) / (len(ids) - 1))
    return float(np.mean(ranks))


def test_an_item_without_interactions_but_with_popular_features_ranks_above_random():
    users, items = genre_events()
    with_features = rt.Recommender(model="mf", dim=16, num_threads=1, seed=1)
    with_features.set_item_features(*genre_features())
    ids_only = rt.Recommender(model="mf", dim=16, num_threads=1, seed=1)
    ids_only.set_item_features(genre_features()[0], [[] for _ in range(N_ITEMS + 2)])  # rows, no features
    for rec in (with_features, ids_only):
        rec.fit(users, items, epochs=10)
    fans = np.unique(users[GENRE[items] == 0])[:60]  # users who chose genre-0 items
    popular = mean_rank(with_features, COLD_POPULAR, fans)
    assert popular < 0.3  # well above the middle of the ranking (0.5 = random)
    assert popular < mean_rank(with_features, COLD_NICHE, fans)
    assert popular < mean_rank(ids_only, COLD_POPULAR, fans)


def test_features_are_set_replaced_removed_and_reported():
    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0)
    rec.set_item_features([1, 2], [["genre=drama", "brand=acme"], ["genre=drama", "genre=drama"]])
    assert rec.n_items == 2  # rows created: recommendable before any event
    assert rec.item_features(1) == ["genre=drama", "brand=acme"]
    assert rec.item_features(2) == ["genre=drama"]  # a repeat counts once
    assert rec.stats()["n_item_features"] == 2
    rec.set_item_features([1], [["brand=other"]])  # replaces, not adds
    assert rec.item_features(1) == ["brand=other"]
    rec.set_item_features(np.array([1]), [[]])
    assert rec.item_features(1) == [] and rec.item_features(999) == []
    rec.set_user_features(["not", "ints"][:0], [])  # an empty batch is a no-op
    assert set(rec.recommend(5, k=5)[0]) == {1, 2}


def test_adding_features_leaves_scores_unchanged_until_training_moves_them():
    users, items = genre_events(100, 10)
    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0).fit(users, items, epochs=2)
    before = rec.predict(users[:50], items[:50])
    rec.set_item_features(*genre_features())
    assert np.array_equal(rec.predict(users[:50], items[:50]), before)  # feature rows start at zero
    rec.update(users[:5], items[:5])
    assert not np.array_equal(rec.predict(users[:50], items[:50]), before)


@pytest.mark.parametrize("variant", VARIANTS, ids=[str(v) for v in VARIANTS])
def test_recommend_scores_equal_predict_with_features_on_both_sides(variant):
    users, items = genre_events(80, 10)
    loss = variant.loss
    labels = None if variant.sampled else (np.ones(users.size, dtype=np.float32) if loss == "logistic"
                                           else np.full(users.size, 4.0, dtype=np.float32))
    rec = rt.Recommender(dim=8, num_threads=1, seed=0, **variant.kwargs)
    rec.set_item_features(*genre_features())
    rec.set_user_features(np.arange(0, 80, 2), [["even"] for _ in range(40)])
    rec.fit(users, items, labels, epochs=3)
    for u in (0, 1, 2, 999):
        ids, scores = rec.recommend(u, k=20, exclude_seen=False)
        np.testing.assert_allclose(scores, rec.predict(np.full(ids.size, u), ids), rtol=1e-5, atol=1e-6)
    batch_ids, batch_scores = rec.recommend_batch([0, 1, 2, 999], k=20, exclude_seen=False)
    for row, u in enumerate((0, 1, 2, 999)):
        ids, scores = rec.recommend(u, k=20, exclude_seen=False)
        assert list(batch_ids[row]) == list(ids)
        np.testing.assert_allclose(batch_scores[row], scores, rtol=1e-6)


def test_training_moves_feature_rows_so_a_shared_feature_carries_what_was_learned():
    rec = rt.Recommender(model="mf", dim=8, loss="squared", num_threads=1, seed=0)
    rec.set_item_features([1, 2], [["brand=acme"], ["brand=acme"]])
    rec.update(np.zeros(50, dtype=np.int64), np.ones(50, dtype=np.int64), np.full(50, 5.0))
    # Item 2 was never rated, but shares item 1's brand: its score rose with item 1's.
    assert rec.predict([0], [2])[0] > rec.predict([0], [3])[0]


@pytest.mark.parametrize("features, error, match", [
    ([["a"]], ValueError, "one list per ID"),                       # 1 list for 2 IDs
    ("genre=drama", TypeError, "one list of feature strings"),
    (["genre=drama", ["x"]], TypeError, "bare string"),
    ([["a"], [3]], TypeError, "only strings"),
    ([["a"], [""]], ValueError, "non-empty"),
    ([["a"], None], TypeError, "list of strings"),
    ([["a"], [f"f{i}" for i in range(1025)]], ValueError, "at most 1024"),
])
def test_malformed_feature_specs_are_refused_and_change_nothing(features, error, match):
    rec = rt.Recommender(model="mf", dim=4, num_threads=1, seed=0)
    rec.set_item_features([1], [["keep"]])
    rec.update([7, 8], [1, 2])
    before = fingerprint(rec, [7, 8], [1, 2])
    with pytest.raises(error, match=match):
        rec.set_item_features([1, 2], features)
    assert fingerprint(rec, [7, 8], [1, 2]) == before
    assert rec.item_features(1) == ["keep"] and rec.stats()["n_item_features"] == 1


def test_feature_ids_must_match_the_model_id_kind():
    rec = rt.Recommender(model="mf", dim=4, num_threads=1)
    rec.update([1], [2])
    with pytest.raises(TypeError, match="int"):
        rec.set_item_features(["two"], [["x"]])
    assert rec.n_items == 1 and rec.stats()["n_item_features"] == 0


def test_features_survive_snapshots_and_travel_in_deltas(tmp_path):
    users, items = genre_events(60, 10)
    trainer = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0)
    trainer.set_item_features(*genre_features())
    trainer.fit(users, items, epochs=2)
    trainer.save(tmp_path / "base")
    copy = rt.Recommender.load(tmp_path / "base")
    probe_users, probe_items = [0, 1, 5], [0, 1, COLD_POPULAR, COLD_NICHE]
    assert fingerprint(copy, probe_users, probe_items) == fingerprint(trainer, probe_users, probe_items)
    assert copy.item_features(COLD_POPULAR) == ["genre=0"]
    # A delta carries new features, replaced lists and the feature rows that training moved.
    trainer.set_item_features([COLD_NICHE, 500], [["genre=0", "new=1"], ["new=1"]])
    trainer.set_user_features([0], [["country=fr"]])
    trainer.update(users[:20], items[:20])
    trainer.save_delta(tmp_path / "d1")
    copy.apply_delta(tmp_path / "d1")
    probe_items += [500]
    assert fingerprint(copy, probe_users, probe_items)[1:] == fingerprint(trainer, probe_users, probe_items)[1:]
    assert copy.item_features(COLD_NICHE) == ["genre=0", "new=1"] and copy.user_features(0) == ["country=fr"]


def test_an_evicted_items_features_do_not_pass_to_the_id_that_reuses_its_row():
    rec = rt.Recommender(model="mf", dim=4, num_threads=1, seed=0)
    rec.set_item_features([1], [["brand=acme"]])
    rec.update([7], [1], timestamps=[rec.stats()["clock"]])
    assert rec.evict(older_than=0, now=rec.stats()["clock"] + 1) >= 1
    rec.update([8], [2], timestamps=[rec.stats()["clock"] + 2])  # takes a freed row
    assert rec.item_features(2) == [] and rec.item_features(1) == []


def test_setting_features_while_other_threads_train_and_serve_is_safe():
    users, items = genre_events(200, 10)
    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0).fit(users, items, epochs=1)
    errors: list[BaseException] = []
    stop = threading.Event()

    def setter() -> None:
        try:
            for step in range(200):
                ids = np.arange(step % 50, N_ITEMS, 50)
                rec.set_item_features(ids, [[f"genre={step % 7}", f"batch={step}"] for _ in ids])
        except BaseException as e:
            errors.append(e)

    def worker() -> None:
        try:
            while not stop.is_set():
                rec.update(users[:100], items[:100])
                _, scores = rec.recommend(3, k=10)
                assert np.all(np.isfinite(scores))
                rec.recommend_batch(np.arange(20), k=5)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    setter()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert rec.stats()["n_item_features"] == 7 + 200
    assert all(len(rec.item_features(i)) == 2 for i in range(N_ITEMS))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_multi_threaded_fit_learns_shared_feature_rows_like_one_thread(threads):
    """Each genre's feature row takes part in half of all events. With 2 threads every user
    must still rank their genre's cold item (known by its genre only) above the other's. The
    fit used to split events between threads by positive item: on a busy machine the threads'
    runs did not overlap, each epoch trained one block of items after the other, and the
    share fell to 50-85% (see partition_by_user)."""
    users, items, taste, genres, cold = datasets.two_genre_cold_start()
    ids = np.array(sorted(genres))
    features = [genres[i] for i in ids]
    shares = []
    for seed in range(3):
        rec = rt.Recommender(model="mf", dim=16, optimizer="sgd", num_threads=threads, seed=seed)
        rec.set_item_features(ids, features)
        rec.fit(users, items, epochs=5)
        everyone = np.arange(taste.size)
        genre0 = rec.predict(everyone, np.full(taste.size, cold))
        genre1 = rec.predict(everyone, np.full(taste.size, cold + 1))
        shares.append(float(np.mean(np.where(taste == 0, genre0 > genre1, genre1 > genre0))))
    assert min(shares) >= 0.99, shares
