"""The model learns: planted structure is recovered, and single updates move scores at once."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from conftest import auc, labels_for, planted


def test_bpr_recovers_planted_low_rank_preferences():
    users, items, affinity = planted()
    rng = np.random.default_rng(1)
    held_out = rng.random(users.size) < 0.2
    rec = rt.Recommender(model="mf", dim=16, loss="bpr", seed=0).fit(users[~held_out], items[~held_out], epochs=30)
    pos = rec.predict(users[held_out], items[held_out])
    random_items = rng.integers(0, affinity.shape[1], size=held_out.sum())
    neg = rec.predict(users[held_out], random_items)
    assert auc(pos, neg) > 0.8


def test_every_variant_ranks_liked_items_above_random_ones(variant):
    loss, optimizer = variant.loss, variant.optimizer
    users, items, affinity = planted(seed=2)
    labels = labels_for(loss, affinity, users, items)
    # For pointwise losses add the same amount of "disliked" feedback so the labels carry signal.
    if not variant.sampled:
        rng = np.random.default_rng(3)
        neg_items = np.array([np.argsort(affinity[u])[rng.integers(0, 40)] for u in users])
        users = np.concatenate([users, users])
        items = np.concatenate([items, neg_items])
        labels = labels_for(loss, affinity, users, items)
    lr = 0.05 if optimizer == "adagrad" else 0.02
    rec = rt.Recommender(**{**variant.kwargs, "dim": 16, "learning_rate": lr, "seed": 0})
    rec.fit(users, items, labels, epochs=40)
    rng = np.random.default_rng(4)
    u = rng.integers(0, affinity.shape[0], 3000)
    i = rng.integers(0, affinity.shape[1], 3000)
    truth = affinity[u, i]
    scores = rec.predict(u, i)
    assert np.isfinite(scores).all()
    assert auc(scores[truth > 1.0], scores[truth < -1.0]) > 0.75


@pytest.mark.parametrize("loss,label,direction", [("squared", 5.0, 1), ("squared", 1.0, -1),
                                                  ("logistic", 1.0, 1), ("logistic", 0.0, -1), ("bpr", None, 1)])
def test_one_update_moves_that_pairs_score_the_right_way_immediately(loss, label, direction):
    users, items, affinity = planted(n_users=50, n_items=40, per_user=10)
    rec = rt.Recommender(model="mf", dim=8, loss=loss, seed=0)
    rec.fit(users, items, labels_for(loss, affinity, users, items) if loss != "bpr" else None, epochs=3)
    before = rec.predict([7], [13])[0]
    rec.update([7], [13], None if label is None else [label])
    after = rec.predict([7], [13])[0]
    assert direction * (after - before) > 0


def test_update_one_matches_batch_update_bit_for_bit():
    a = rt.Recommender(model="mf", dim=8, loss="squared", num_threads=1, seed=5)
    b = rt.Recommender(model="mf", dim=8, loss="squared", num_threads=1, seed=5)
    events = [(1, 10, 4.0), (2, 10, 2.0), (1, 11, 5.0), (3, 12, 1.0)]
    for u, i, y in events:
        a.update_one(u, i, y)
    b.update([e[0] for e in events], [e[1] for e in events], [e[2] for e in events])
    np.testing.assert_array_equal(a.predict([1, 2, 3], [10, 11, 12]), b.predict([1, 2, 3], [10, 11, 12]))
    assert a.stats()["updates"] == b.stats()["updates"] == 4


def test_new_user_and_item_from_update_are_recommendable_at_once():
    users, items, _ = planted(n_users=50, n_items=40, per_user=10)
    rec = rt.Recommender(model="mf", dim=8, seed=0).fit(users, items, epochs=2)
    assert rec.n_items == 40
    rec.update([10_000], [777])  # both never seen before
    assert rec.n_users == 51 and rec.n_items == 41
    assert 777 in rec.recommend(0, k=41, exclude_seen=False)[0]
    # The new user already has a personal top list, without the item they just took.
    ids, scores = rec.recommend(10_000, k=5)
    assert len(ids) == 5 and 777 not in ids and np.isfinite(scores).all()
    # Learning continues for the new pair: repeated positives lift it to the top.
    for _ in range(50):
        rec.update_one(10_000, 777)
    assert rec.recommend(10_000, k=1, exclude_seen=False)[0][0] == 777


def test_non_finite_steps_are_skipped_and_counted_not_written():
    # A huge learning rate makes squared-loss SGD overflow within a few steps.
    rec = rt.Recommender(model="mf", dim=4, loss="squared", optimizer="sgd", learning_rate=1e30, grad_clip=1e30, seed=0)
    rec.update([1, 1, 1, 1, 1], [2, 2, 2, 2, 2], [5.0, -5.0, 5.0, -5.0, 5.0])
    stats = rec.stats()
    assert stats["skipped_updates"] > 0
    assert stats["updates"] + stats["skipped_updates"] == 5
    assert np.isfinite(rec.predict([1], [2])).all()


def test_fit_again_continues_from_the_current_state():
    users, items, _ = planted(n_users=30, n_items=30, per_user=5)
    once = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0).fit(users, items, epochs=2)
    twice = rt.Recommender(model="mf",
                           dim=8, num_threads=1, seed=0).fit(users, items, epochs=2).fit(users, items, epochs=2)
    assert twice.stats()["updates"] == 2 * once.stats()["updates"]
    assert not np.array_equal(once.predict(users, items), twice.predict(users, items))


def test_weights_scale_the_step():
    """A weight w scales the event's gradient step by w. The running mean mu also moves with
    the weight, whatever the kernel does, so it is taken out: what is compared is the change
    of the learned part, score - mu, which SGD moves by learning_rate * w * error (to first
    order, the same factor for every model here since they start from the same seed)."""

    def learned(rec: rt.Recommender) -> float:
        return float(rec.predict([1], [1])[0]) - rec.stats()["global_bias"]

    def after(weight: float | None) -> rt.Recommender:
        rec = rt.Recommender(model="mf", dim=8, loss="squared", optimizer="sgd", num_threads=1, seed=0)
        rec.update([1], [1], [3.0])  # sets mu = 3 so the next event has an error to learn from
        if weight is not None:
            rec.update([1], [1], [5.0], weights=[weight])
        return rec

    base = learned(after(None))
    steps = {}
    for weight in (1.0, 3.0):
        rec = after(weight)
        error = 5.0 - rec.stats()["global_bias"] - base  # the event's error, with its own mu
        steps[weight] = (learned(rec) - base) / error
    assert steps[1.0] > 0
    assert steps[3.0] / steps[1.0] == pytest.approx(3.0, rel=0.05)  # weights ignored: 1.0
    zero = after(0.0)
    assert zero.stats()["updates"] == 1 and learned(zero) == base  # weight 0: no step at all


def test_popularity_negatives_learn_taste_beyond_popularity_sooner():
    """Scored against popularity-drawn negatives, popularity alone is worth nothing; after a
    few epochs the popularity sampler must have learned more of the planted taste."""
    users, items, affinity = planted(n_users=400, n_items=300, per_user=25, seed=8)
    rng = np.random.default_rng(9)
    held = rng.random(users.size) < 0.1
    counts = np.bincount(items[~held], minlength=affinity.shape[1]).astype(float)
    negatives = rng.choice(affinity.shape[1], size=held.sum(), p=counts / counts.sum())
    aucs = {}
    for sampling in ("uniform", "popularity"):
        rec = rt.Recommender(model="mf", dim=16, negative_sampling=sampling, num_threads=1, seed=0)
        rec.fit(users[~held], items[~held], epochs=3)
        aucs[sampling] = auc(rec.predict(users[held], items[held]), rec.predict(users[held], negatives))
    assert aucs["popularity"] > 0.7
    assert aucs["popularity"] > aucs["uniform"]


def test_fit_without_epochs_makes_the_familys_default_number_of_passes():
    users, items, _ = planted(n_users=40, n_items=200, per_user=5)
    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0).fit(users, items)
    steps = rec.stats()["updates"] + rec.stats()["skipped_updates"]
    # One negative per positive; a draw that hits the positive twice is no step (rare here).
    assert steps == pytest.approx(rt.default_epochs("mf") * users.size, rel=0.01)
