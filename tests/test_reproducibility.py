"""With num_threads=1 and a fixed seed, the same calls give bit-for-bit the same model."""

from __future__ import annotations

import numpy as np

import rtrec_native as rt
from conftest import auc, labels_for, planted


def _train(loss, optimizer, seed, threads=1, **kwargs):
    users, items, affinity = planted(n_users=80, n_items=60, per_user=10, seed=7)
    rec = rt.Recommender(**{"dim": 8, "loss": loss, "optimizer": optimizer, "num_threads": threads, "seed": seed,
                            "negatives": 2, **kwargs})
    rec.fit(users, items, labels_for(loss, affinity, users, items), epochs=3)
    rec.update(users[:50], items[:50], labels_for(loss, affinity, users[:50], items[:50]))
    grid_u, grid_i = np.meshgrid(np.arange(80), np.arange(60), indexing="ij")
    return rec.predict(grid_u.ravel(), grid_i.ravel()), rec.recommend_batch(np.arange(80), k=5)[0]


def test_single_thread_runs_are_bit_for_bit_identical(variant):
    p1, r1 = _train(seed=3, **variant.kwargs)
    p2, r2 = _train(seed=3, **variant.kwargs)
    assert p1.tobytes() == p2.tobytes()
    np.testing.assert_array_equal(r1, r2)


def test_a_different_seed_gives_a_different_model():
    p1, _ = _train("bpr", "adagrad", seed=3)
    p2, _ = _train("bpr", "adagrad", seed=4)
    assert p1.tobytes() != p2.tobytes()


def test_multi_threaded_fit_learns_as_well_as_one_thread():
    # Hogwild is not bit-reproducible, but it must learn the planted structure as well.
    users, items, affinity = planted(seed=11)
    rng = np.random.default_rng(0)
    u = rng.integers(0, affinity.shape[0], 4000)
    i = rng.integers(0, affinity.shape[1], 4000)
    liked, disliked = affinity[u, i] > 1.0, affinity[u, i] < -1.0
    aucs = []
    for threads in (1, 2):
        rec = rt.Recommender(model="mf", dim=16, num_threads=threads, seed=0).fit(users, items, epochs=30)
        scores = rec.predict(u, i)
        aucs.append(auc(scores[liked], scores[disliked]))
    assert min(aucs) > 0.8
    assert abs(aucs[0] - aucs[1]) < 0.05


def test_a_batch_update_equals_the_same_events_one_by_one(variant):
    """Each event draws its negatives from its own random stream: how a stream is cut into
    update calls does not change the model (a consumer may batch or not)."""
    rng = np.random.default_rng(2)
    users, items = rng.integers(0, 40, 300), rng.integers(0, 60, 300)
    labels = None if variant.sampled else rng.integers(0, 2, 300).astype(np.float32)
    kwargs = {"dim": 8, "num_threads": 1, "seed": 1, "negatives": 3, **variant.kwargs}
    batched, single = rt.Recommender(**kwargs), rt.Recommender(**kwargs)
    batched.update(users[:100], items[:100], None if labels is None else labels[:100])
    batched.update(users[100:], items[100:], None if labels is None else labels[100:])
    for k in range(300):
        single.update_one(int(users[k]), int(items[k]), None if labels is None else float(labels[k]))
    grid_u, grid_i = np.meshgrid(np.arange(40), np.arange(60), indexing="ij")
    pairs = grid_u.ravel(), grid_i.ravel()
    assert batched.predict(*pairs).tobytes() == single.predict(*pairs).tobytes()
