"""What only the two_tower family does: users encoded from the items they just consumed."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt

SMALL = {"model": "two_tower", "dim": 16, "tower": (32,), "history": 4, "num_threads": 1, "seed": 0}


def _chains(n_users=400, n_items=50, length=8, seed=0):
    """Planted sequences: every user walks item i -> i + 1 -> ... (mod n_items) from a
    random start. What a user consumed last says what comes next; who they are does not."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        start = int(rng.integers(0, n_items))
        for k in range(length):
            users.append(u)
            items.append((start + k) % n_items)
    return np.array(users), np.array(items)


def _next_item_hits(rec, n_items=50):
    """For new users who consume one item, how often is the item after it their top-1."""
    hits = 0
    for k in range(n_items):
        user = 100_000 + k
        rec.update_one(user, k)
        hits += int(rec.recommend(user, k=1)[0][0] == (k + 1) % n_items)
    return hits


def test_a_planted_sequence_is_learned_by_two_tower_and_not_by_mf():
    users, items = _chains()
    two_tower = rt.Recommender(**SMALL).fit(users, items, epochs=5)
    mf = rt.Recommender(model="mf", dim=16, num_threads=1, seed=0).fit(users, items, epochs=5)
    assert _next_item_hits(two_tower) >= 45  # of 50
    assert _next_item_hits(mf) <= 10  # a new user's ID row knows nothing of what came before


def test_a_new_users_first_event_changes_their_recommendations_at_once():
    users, items = _chains()
    rec = rt.Recommender(**SMALL).fit(users, items, epochs=5)
    before, _ = rec.recommend(777_777, k=10)  # unknown: the popularity ranking
    rec.update_one(777_777, 20)
    after, scores = rec.recommend(777_777, k=10)
    assert set(after.tolist()) != set(before.tolist())
    assert after[0] == 21 and 20 not in after.tolist()  # consumed items are excluded
    np.testing.assert_allclose(scores, rec.predict([777_777] * 10, after), rtol=1e-5, atol=1e-6)


def test_fit_never_puts_an_event_in_its_own_input_history():
    """If an event's own item leaked into its input history, the model would learn "the
    item in the history is the answer": ranked with nothing excluded, a one-item history
    would put that item itself first. Learned right, the next item of the chain comes first."""
    users, items = _chains(length=6)
    rec = rt.Recommender(**SMALL).fit(users, items, epochs=5)
    # Ranked with nothing excluded: if targets leaked, item k itself would top the list.
    wins = 0
    for k in range(50):
        user = 200_000 + k
        rec.update_one(user, k)
        top = rec.recommend(user, k=1, exclude_seen=False)[0][0]
        wins += int(top == (k + 1) % 50)
    assert wins >= 40


def test_time_order_comes_from_timestamps_when_given():
    """The same events shuffled, with timestamps: fit orders them in time, so the chains are
    learned as well as from ordered input."""
    users, items = _chains()
    ts = np.arange(users.size, dtype=np.float64)
    shuffle = np.random.default_rng(5).permutation(users.size)
    rec = rt.Recommender(**SMALL).fit(users[shuffle], items[shuffle], timestamps=ts[shuffle], epochs=5)
    assert _next_item_hits(rec) >= 45
    # Without timestamps the shuffled order is taken as time: the chains are lost.
    rec = rt.Recommender(**SMALL).fit(users[shuffle], items[shuffle], epochs=5)
    assert _next_item_hits(rec) <= 25


def test_history_survives_save_load_and_deltas(tmp_path):
    users, items = _chains()
    trainer = rt.Recommender(**SMALL).fit(users, items, epochs=3)
    trainer.save(tmp_path / "base")
    replica = rt.Recommender.load(tmp_path / "base", num_threads=1)
    trainer.update_one(5, 33)  # user 5's history moves on to item 33
    trainer.update_one(555_555, 33)  # a new user whose whole history is item 33
    trainer.save_delta(tmp_path / "d1")
    replica.apply_delta(tmp_path / "d1")
    for user in (5, 6, 399, 555_555):
        ids, scores = trainer.recommend(user, k=5)
        r_ids, r_scores = replica.recommend(user, k=5)
        np.testing.assert_array_equal(ids, r_ids)
        np.testing.assert_array_equal(scores, r_scores)
    assert replica.recommend(555_555, k=1)[0][0] == 34  # the history came with the delta


def test_an_evicted_item_leaves_every_history():
    users, items = _chains()
    rec = rt.Recommender(**SMALL).fit(users, items, timestamps=np.zeros(users.size), epochs=3)
    rec.update_one(9_000, 7, timestamp=1000.0)  # only item 7 and this user stay fresh
    assert rec.evict(older_than=500.0) > 0
    assert rec.n_items == 1
    rec.update_one(9_001, 8, timestamp=1001.0)  # recycles rows; histories must not point at them
    rec.update_one(9_000, 8, timestamp=1002.0)
    vectors = rec.user_vectors([9_000])[1]
    assert np.isfinite(vectors).all()
    assert set(rec.recommend(9_000, k=5, exclude_seen=False)[0].tolist()) <= {7, 8}


@pytest.mark.parametrize("loss", ["softmax", "bpr", "logistic", "squared"])
def test_every_loss_learns_the_sequence_direction(loss):
    users, items = _chains()
    labels = None if loss in ("softmax", "bpr") else np.ones(users.size, dtype=np.float32)
    kwargs = {**SMALL, "loss": loss}
    if loss in ("logistic", "squared"):  # pointwise: the wrong next items as negatives
        rng = np.random.default_rng(1)
        wrong = (items + rng.integers(2, 49, items.size)) % 50
        users = np.repeat(users, 2)
        items = np.ravel(np.column_stack([items, wrong]))
        labels = np.ravel(np.column_stack([np.ones(wrong.size), np.zeros(wrong.size)])).astype(np.float32)
    rec = rt.Recommender(**kwargs).fit(users, items, labels, epochs=8)
    assert rec.stats()["skipped_updates"] == 0
    # The model ranks the true next item of a one-item history above a random one.
    wins = 0
    for k in range(50):
        user = 300_000 + k
        rec.update(user and [user], [k], None if labels is None else [1.0])
        s = rec.predict([user, user], [(k + 1) % 50, (k + 25) % 50])
        wins += int(s[0] > s[1])
    assert wins >= 40


def test_the_family_and_its_settings_round_trip_and_show_in_stats(tmp_path):
    rec = rt.Recommender(**{**SMALL, "recency": 0.5, "negatives": 3}).fit([1, 1, 2], [5, 6, 5], epochs=1)
    rec.save(tmp_path / "m")
    loaded = rt.Recommender.load(tmp_path / "m")
    for key, value in {"model": "two_tower", "tower": (32,), "history": 4, "recency": 0.5, "negatives": 3}.items():
        assert loaded.get_params()[key] == value
    assert loaded.stats()["model"] == "two_tower"
    assert rt.defaults("two_tower")["loss"] == "softmax" and rt.defaults("mf")["tower"] is None
