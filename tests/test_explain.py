"""Explanations: ``Recommender.explain(user, item, n)``, computed in the core."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt

A, B = 0, 1  # B is A's twin: consumed together by many users


def _twin_data(extra_items_for_target: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """30 twin pairs (2p, 2p + 1), each consumed together by 12 users along with two random
    background items (100..299); user 0 (the target) consumes A (item 0) and the given items."""
    rng = np.random.default_rng(7)
    users, items = [], []
    user = 1
    for pair in range(30):
        for _ in range(12):
            mine = [2 * pair, 2 * pair + 1, *rng.choice(np.arange(100, 300), size=2, replace=False).tolist()]
            rng.shuffle(mine)
            users += [user] * len(mine)
            items += mine
            user += 1
    for item in [A, *extra_items_for_target]:
        users.append(0)
        items.append(item)
    return np.array(users), np.array(items)


def _fitted(family: str, users: np.ndarray, items: np.ndarray) -> rt.Recommender:
    kwargs = {"tower": (16,), "history": 8} if family == "two_tower" else {}
    return rt.Recommender(model=family, dim=16, seed=5, num_threads=1, **kwargs).fit(users, items, epochs=15)


def test_the_twin_is_explained_by_the_only_positive(family):
    rec = _fitted(family, *_twin_data([]))
    reasons = rec.explain(0, B)
    assert reasons[0] == {"item": A, "weight": pytest.approx(reasons[0]["weight"])}
    assert reasons[0]["weight"] > 0


def test_the_twin_is_explained_by_its_twin_among_other_positives(family):
    rec = _fitted(family, *_twin_data([4, 10, 150]))  # other pairs' items and a background item
    reasons = rec.explain(0, B, n=4)
    assert reasons[0].get("item") == A
    assert {r["item"] for r in reasons} == {A, 4, 10, 150}
    weights = [r["weight"] for r in reasons]
    assert weights == sorted(weights, reverse=True)


def test_n_limits_the_reasons(family):
    rec = _fitted(family, *_twin_data([4, 10, 150]))
    assert len(rec.explain(0, B, n=2)) == 2
    assert len(rec.explain(0, B, n=1)) == 1
    assert len(rec.explain(0, B, n=100)) == 4  # the user's four items, no features


def test_features_are_reasons(family):
    users, items = _twin_data([4])
    rec = _fitted(family, users, items)
    # A feature shared by A and B (and only them) learns what A and B have in common.
    rec.set_item_features([A, B], [["series=twins"], ["series=twins"]])
    rec.set_user_features([0], [["country=fr"]])
    rec.fit(users, items, epochs=5)
    reasons = rec.explain(0, B, n=10)
    kinds = {("feature", r["feature"]) if "feature" in r else ("item", r["item"]) for r in reasons}
    assert kinds == {("item", A), ("item", 4), ("feature", "series=twins"), ("feature", "country=fr")}
    feature_weight = next(r["weight"] for r in reasons if r.get("feature") == "series=twins")
    assert feature_weight > 0  # the shared feature speaks for B


def test_string_ids():
    users, items = _twin_data([3])
    rec = _fitted("mf", np.array([f"u{u}" for u in users]), np.array([f"i{i}" for i in items]))
    reasons = rec.explain("u0", f"i{B}")
    assert reasons[0]["item"] == f"i{A}"


def test_unknown_ids_are_key_errors(family):
    rec = _fitted(family, *_twin_data([]))
    with pytest.raises(KeyError, match="user 123456 is not in the model"):
        rec.explain(123456, B)
    with pytest.raises(KeyError, match="item 999999 is not in the model"):
        rec.explain(0, 999999)


def test_bad_arguments(family):
    rec = _fitted(family, *_twin_data([]))
    with pytest.raises(ValueError, match="n must be >= 1"):
        rec.explain(0, B, n=0)
    with pytest.raises(TypeError):
        rec.explain(0, B, n=1.5)
    with pytest.raises(TypeError, match="item"):
        rec.explain(0, "b")  # this model's item IDs are integers
    with pytest.raises(TypeError, match="user"):
        rec.explain(1.5, B)


def test_explain_and_diversified_lists_while_training(family):
    """Readers (explain, diversified recommend) run while another thread trains and adds
    items: no crash, every answer well-formed."""
    import threading

    users, items = _twin_data([4, 10])
    rec = _fitted(family, users, items)
    stop = threading.Event()
    errors: list[BaseException] = []

    def train() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            rec.update(rng.integers(0, 400, 64), rng.integers(0, 2000, 64))  # new users and items too

    def read() -> None:
        try:
            for _ in range(300):
                reasons = rec.explain(0, B, n=5)
                assert reasons and all(np.isfinite(r["weight"]) for r in reasons)
                ids, _ = rec.recommend(0, k=10, diversity=0.5)
                assert len(set(ids.tolist())) == len(ids) == 10
                rec.recommend_batch([0, 1, 2], k=10, diversity=0.5)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    trainer = threading.Thread(target=train)
    readers = [threading.Thread(target=read) for _ in range(2)]
    trainer.start()
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    trainer.join()
    assert not errors, errors
