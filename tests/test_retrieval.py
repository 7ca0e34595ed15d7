"""Retrieval a product can ship: allow-lists, deny-lists, tags, hidden items, similar items,
anonymous sessions and unknown users — for both families, both ID kinds, composed with each
other and with diversity."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from conftest import planted, wait_for


def _model(family: str, ids: str = "int", seed: int = 0) -> rt.Recommender:
    users, items, _ = planted(n_users=120, n_items=150, per_user=20, seed=seed)
    extra = {"tower": (16,), "history": 8} if family == "two_tower" else {}
    rec = rt.Recommender(model=family, dim=16, num_threads=1, seed=seed, **extra)
    if ids == "str":
        users = [f"u{u}" for u in users]
        items = [f"i{i}" for i in items]
    rec.fit(users, items, epochs=5)
    return rec


def _item(i: int, ids: str):
    return f"i{i}" if ids == "str" else i


def _user(u: int, ids: str):
    return f"u{u}" if ids == "str" else u


def _catalogue(rec: rt.Recommender) -> list:
    ids, _, _ = rec.item_vectors()
    return list(ids)


def _full_ranking(rec: rt.Recommender, user, exclude_seen: bool = True) -> list:
    ids, _ = rec.recommend(user, k=rec.n_items, exclude_seen=exclude_seen)
    return list(ids)


@pytest.fixture(params=["int", "str"])
def ids(request) -> str:
    return request.param


# --------------------------------------------------------------------------- allow-lists


def test_allow_list_ranks_only_its_items_in_the_full_ranking_order(family, ids):
    rec = _model(family, ids)
    user = _user(3, ids)
    full = _full_ranking(rec, user)
    allowed = full[::7][:12]
    got, scores = rec.recommend(user, k=5, items=allowed)
    assert list(got) == [i for i in full if i in allowed][:5]
    # Scores are the model's: equal to predict for the same pairs.
    np.testing.assert_allclose(scores, rec.predict([user] * len(got), list(got)), rtol=1e-5, atol=1e-6)


def test_allow_list_unknown_ids_are_ignored_and_counted_and_duplicates_count_once(family):
    rec = _model(family)
    before = rec.stats()["unknown_filter_ids"]
    got, _ = rec.recommend(1, k=10, items=[5, 5, 5, 10**12, -7], exclude_seen=False)
    assert list(got) == [5]
    assert rec.stats()["unknown_filter_ids"] == before + 2


def test_empty_allow_list_gives_an_empty_result(family):
    rec = _model(family)
    got, scores = rec.recommend(1, k=10, items=[])
    assert len(got) == 0 and len(scores) == 0
    batch = rec.recommend_batch([1, 2], k=3, items=[])
    assert batch.counts.tolist() == [0, 0]


# --------------------------------------------------------------------------- deny-lists, hidden


def test_deny_list_removes_items_and_keeps_the_rest_in_order(family, ids):
    rec = _model(family, ids)
    user = _user(7, ids)
    full = _full_ranking(rec, user)
    denied = full[:3] + [full[5]]
    got, _ = rec.recommend(user, k=6, exclude=denied)
    assert list(got) == [i for i in full if i not in denied][:6]


def test_hidden_items_leave_every_retrieval_call_but_are_still_scored_and_learned(family, ids):
    rec = _model(family, ids)
    user = _user(2, ids)
    top = list(rec.recommend(user, k=3)[0])
    neighbour = list(rec.similar_items(top[0], k=3)[0])
    score_before = rec.predict([user], [top[0]])
    assert rec.hide(top + [_item(10**6, ids)]) == {"hidden": 3, "unknown": 1}
    assert rec.hidden(top + [neighbour[0]]).tolist() == [True, True, True, neighbour[0] in top]
    assert rec.stats()["hidden_items"] == 3
    assert not set(top) & set(rec.recommend(user, k=rec.n_items)[0])
    batch = rec.recommend_batch([user, _user(4, ids)], k=rec.n_items)
    assert not set(top) & {i for row in batch.rows() for i in row[0]}
    assert not set(top) & set(rec.recommend_for_history([neighbour[0]], k=rec.n_items)[0])
    assert not set(top) & set(rec.similar_items(neighbour[0], k=rec.n_items)[0])
    assert not set(top) & set(rec.recommend(user, k=10, items=top + neighbour)[0])
    # predict still scores it; learning still reaches it.
    np.testing.assert_array_equal(rec.predict([user], [top[0]]), score_before)
    updates = rec.stats()["updates"]
    rec.update([user], [top[0]])
    assert rec.stats()["updates"] > updates
    assert rec.unhide(top[:1]) == {"shown": 1, "unknown": 0}
    assert rec.stats()["hidden_items"] == 2
    assert top[0] in rec.recommend(user, k=rec.n_items, exclude_seen=False)[0]


def test_hide_of_unknown_ids_changes_nothing(family):
    rec = _model(family)
    changes = rec.change_count
    assert rec.hide([10**9, 10**9 + 1]) == {"hidden": 0, "unknown": 2}
    assert rec.change_count == changes and rec.stats()["hidden_items"] == 0


def test_an_evicted_item_is_no_longer_hidden_and_comes_back_recommendable(family):
    rec = rt.Recommender(model=family, dim=8, num_threads=1, seed=0,
                         **({"tower": (8,), "history": 4} if family == "two_tower" else {}))
    rec.update([1, 2, 3], [10, 11, 12], timestamps=[100.0, 100.0, 100.0])
    rec.update([4, 5], [20, 21], timestamps=[500.0, 500.0])
    rec.hide([10, 20])
    assert rec.stats()["hidden_items"] == 2
    assert rec.evict(older_than=200.0) > 0  # item 10 (and its users) go
    assert rec.stats()["hidden_items"] == 1
    rec.update([9], [10], timestamps=[600.0])  # item 10 comes back as a new row
    assert rec.hidden([10, 20]).tolist() == [False, True]
    assert 10 in rec.recommend(99, k=10)[0]


def test_hidden_items_survive_save_and_load(tmp_path, family, ids):
    rec = _model(family, ids)
    top = list(rec.recommend(_user(1, ids), k=4)[0])
    rec.hide(top[:2])
    rec.save(tmp_path / "m.rtrec")
    back = rt.Recommender.load(tmp_path / "m.rtrec")
    assert back.hidden(top).tolist() == [True, True, False, False]
    assert back.stats()["hidden_items"] == 2
    assert list(back.recommend(_user(1, ids), k=2)[0]) == top[2:4]


def test_a_replica_hides_what_its_trainer_hides_after_a_delta(tmp_path, family):
    rec = _model(family)
    top = list(rec.recommend(1, k=3)[0])
    with rt.Publisher(rec, tmp_path, interval=None) as pub, rt.Replica(tmp_path, poll_interval=0.005) as rep:
        assert list(rep.recommend(1, k=3)[0]) == top
        rec.hide(top[:1])
        pub.flush()
        assert wait_for(lambda: rep.hidden(top[:1])[0], timeout=5)
        assert rep.hidden(top).tolist() == [True, False, False]
        assert top[0] not in rep.recommend(1, k=rec.n_items)[0]
        rec.unhide(top[:1])
        pub.flush()
        assert wait_for(lambda: not rep.hidden(top[:1])[0], timeout=5)


# --------------------------------------------------------------------------- tags


def _tagged(family: str, ids: str = "int") -> tuple[rt.Recommender, dict]:
    rec = _model(family, ids)
    catalogue = _catalogue(rec)
    genres = {}
    for n, item in enumerate(catalogue):
        tags = ["genre=Comedy"] if n % 3 == 0 else ["genre=Drama"]
        if n % 5 == 0:
            tags.append("new")
        genres[item] = tags
    rec.set_item_features(list(genres), list(genres.values()))
    return rec, genres


def test_tags_keep_only_items_carrying_all_of_them(family, ids):
    rec, genres = _tagged(family, ids)
    user = _user(5, ids)
    full = _full_ranking(rec, user)
    got, _ = rec.recommend(user, k=8, tags=["genre=Comedy"])
    assert list(got) == [i for i in full if "genre=Comedy" in genres[i]][:8]
    got, _ = rec.recommend(user, k=50, tags=["genre=Comedy", "new"])
    expected = [i for i in full if {"genre=Comedy", "new"} <= set(genres[i])]
    assert list(got) == expected[:50] and len(expected) > 0


def test_a_tag_never_given_raises_key_error_naming_it(family):
    rec, _ = _tagged(family)
    with pytest.raises(KeyError, match="genre=Comdy"):
        rec.recommend(1, tags=["genre=Comdy"])
    with pytest.raises(KeyError, match="nope"):
        rec.similar_items(next(iter(_catalogue(rec))), tags=["nope"])


def test_tags_follow_feature_changes_and_evictions(family):
    rec, genres = _tagged(family)
    comedy = [i for i, t in genres.items() if "genre=Comedy" in t]
    rec.set_item_features([comedy[0]], [["genre=Drama"]])
    got = set(rec.recommend(1, k=rec.n_items, tags=["genre=Comedy"], exclude_seen=False)[0])
    assert comedy[0] not in got and set(comedy[1:]) == got


def test_filters_compose_with_each_other_seen_items_and_diversity(family):
    rec, genres = _tagged(family)
    user = 8
    full = _full_ranking(rec, user)
    allowed = full[:60]
    denied = [i for i in allowed if "genre=Comedy" in genres[i]][:2]
    rec.hide([i for i in allowed if "genre=Comedy" in genres[i]][2:4])
    hidden = set(np.array(allowed)[rec.hidden(allowed)])
    want = [i for i in full if i in allowed and i not in denied and i not in hidden and "genre=Comedy" in genres[i]]
    got, _ = rec.recommend(user, k=5, items=allowed, exclude=denied, tags=["genre=Comedy"])
    assert list(got) == want[:5]
    diverse, _ = rec.recommend(user, k=5, items=allowed, exclude=denied, tags=["genre=Comedy"], diversity=0.8)
    assert set(diverse) <= set(want) and len(diverse) == min(5, len(want))
    seen = set(full) ^ set(_full_ranking(rec, user, exclude_seen=False))
    assert seen and not seen & set(diverse)
    batch = rec.recommend_batch([user, 9], k=5, items=allowed, exclude=denied, tags=["genre=Comedy"], diversity=0.8)
    assert list(batch.rows()[0][0]) == list(diverse)


def test_batch_filters_equal_one_call_per_user(family, ids):
    rec, _ = _tagged(family, ids)
    users = [_user(u, ids) for u in (1, 2, 3, 10**6)]  # an unknown user among them
    allowed = _catalogue(rec)[::2]
    denied = allowed[:5]
    batch = rec.recommend_batch(users, k=7, items=allowed, exclude=denied, tags=["genre=Drama"])
    for u, (got, scores) in zip(users, batch.rows(), strict=True):
        one, one_scores = rec.recommend(u, k=7, items=allowed, exclude=denied, tags=["genre=Drama"])
        assert list(got) == list(one)
        np.testing.assert_allclose(scores, one_scores, rtol=1e-6)
    plain = rec.recommend_batch(users, k=7, exclude=denied)
    for u, (got, _) in zip(users, plain.rows(), strict=True):
        assert list(got) == list(rec.recommend(u, k=7, exclude=denied)[0])


# --------------------------------------------------------------------------- similar items


def test_similar_items_are_the_session_of_one_item_without_the_item(family, ids):
    rec = _model(family, ids)
    item = _catalogue(rec)[4]
    got, scores = rec.similar_items(item, k=10)
    assert item not in got and len(got) == 10
    assert np.all(np.diff(scores) <= 1e-6)
    session, session_scores = rec.recommend_for_history([item], k=10)
    assert list(got) == list(session)
    np.testing.assert_array_equal(scores, session_scores)


def test_mf_similar_items_rank_by_item_bias_plus_inner_product():
    rec = _model("mf")
    ids_, vectors, biases = rec.item_vectors()
    item = ids_[7]
    row = {i: r for r, i in enumerate(ids_)}
    score = biases + vectors @ vectors[row[item]]
    score[row[item]] = -np.inf
    expected = [ids_[r] for r in np.argsort(-score, kind="stable")[:10]]
    assert list(rec.similar_items(item, k=10)[0]) == expected


def test_similar_items_take_the_filters_and_a_batch(family):
    rec, genres = _tagged(family)
    item = _catalogue(rec)[0]
    full = list(rec.similar_items(item, k=rec.n_items)[0])
    got, _ = rec.similar_items(item, k=4, tags=["genre=Drama"], exclude=full[:1])
    assert list(got) == [i for i in full if "genre=Drama" in genres[i] and i != full[0]][:4]
    allowed = full[10:20] + [item]
    assert list(rec.similar_items(item, k=5, items=allowed)[0]) == full[10:15]
    batch = rec.similar_items_batch([item, full[0]], k=3)
    assert list(batch.rows()[0][0]) == full[:3]
    assert item not in batch.rows()[1][0] or full[0] != item


def test_similar_items_of_an_unknown_item_raise_key_error(family, ids):
    rec = _model(family, ids)
    with pytest.raises(KeyError, match="unknown item"):
        rec.similar_items(_item(10**7, ids))
    with pytest.raises(KeyError):
        rec.similar_items_batch([_item(1, ids), _item(10**7, ids)])


# --------------------------------------------------------------------------- anonymous sessions


def test_history_recommendations_change_nothing_and_exclude_the_history(family, ids):
    rec = _model(family, ids)
    history = [_item(i, ids) for i in (3, 17, 42)]
    catalogue = set(_catalogue(rec))
    history = [h for h in history if h in catalogue]
    before = (rec.stats(), rec.change_count, rec.predict([_user(1, ids)] * len(history), history).tobytes())
    got, scores = rec.recommend_for_history(history, k=10)
    after = (rec.stats(), rec.change_count, rec.predict([_user(1, ids)] * len(history), history).tobytes())
    assert before == after
    assert len(got) == 10 and not set(history) & set(got)
    assert np.all(np.diff(scores) <= 1e-6)
    kept, _ = rec.recommend_for_history(history, k=rec.n_items, exclude_history=False)
    assert set(history) <= set(kept)


def test_history_recommendations_follow_the_history(family):
    # Two planted groups of items; a session inside one group is recommended that group.
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(200), 10)
    group = users % 2
    items = group * 50 + rng.integers(0, 50, users.size)
    extra = {"tower": (16,), "history": 8} if family == "two_tower" else {}
    rec = rt.Recommender(model=family, dim=16, num_threads=1, seed=0, **extra).fit(users, items, epochs=20)
    for g in (0, 1):
        got, _ = rec.recommend_for_history([g * 50 + 1, g * 50 + 2, g * 50 + 3], k=10)
        assert np.mean((np.asarray(got) // 50) == g) >= 0.8


def test_history_weights_and_unknown_items(family):
    rec = _model(family)
    got, _ = rec.recommend_for_history([3, 10**9], k=5)
    same, _ = rec.recommend_for_history([3], k=5)
    assert list(got) == list(same)  # the unknown item is ignored
    zero_weight, _ = rec.recommend_for_history([3, 4], k=5, weights=[1.0, 0.0], exclude_history=False)
    only_three, _ = rec.recommend_for_history([3], k=5, exclude_history=False)
    if family == "mf":
        assert list(zero_weight) == list(only_three)
    empty, _ = rec.recommend_for_history([], k=5)
    assert len(empty) == 5  # no history: the popular list


# --------------------------------------------------------------------------- unknown users


def test_knows_user(family, ids):
    rec = _model(family, ids)
    assert rec.knows_user(_user(1, ids))
    assert not rec.knows_user(_user(10**8, ids))


# --------------------------------------------------------------------------- bad input


def test_bad_filter_arguments_raise_clear_errors_and_change_nothing(family):
    rec, _ = _tagged(family)
    state = (rec.stats(), rec.change_count)
    with pytest.raises(rt.IdKindError):
        rec.recommend(1, items=["a", "b"])
    with pytest.raises(rt.IdKindError):
        rec.recommend(1, exclude=["a"])
    with pytest.raises(rt.IdKindError):
        rec.recommend_for_history(["a"])
    with pytest.raises(rt.IdKindError):
        rec.hide(["a"])
    with pytest.raises(TypeError, match="tags"):
        rec.recommend(1, tags="genre=Comedy")
    with pytest.raises(TypeError, match="tags"):
        rec.recommend(1, tags=[1, 2])
    with pytest.raises(TypeError, match="items"):
        rec.recommend(1, items="abc")
    with pytest.raises(ValueError, match="k"):
        rec.recommend(1, k=0, items=[1])
    with pytest.raises(ValueError, match="diversity"):
        rec.recommend_for_history([1], diversity=1.5)
    with pytest.raises(ValueError, match="weights"):
        rec.recommend_for_history([1, 2], weights=[1.0])
    with pytest.raises(ValueError, match="weights"):
        rec.recommend_for_history([1, 2], weights=[1.0, -1.0])
    too_many = np.arange(rt.recommender.MAX_FILTER_IDS + 1)
    with pytest.raises(ValueError, match=str(rt.recommender.MAX_FILTER_IDS)):
        rec.recommend(1, items=too_many)
    with pytest.raises(ValueError, match=str(rt.recommender.MAX_FILTER_IDS)):
        rec.recommend_batch([1], exclude=too_many)
    with pytest.raises(ValueError, match="history"):
        rec.recommend_for_history(np.arange(rt.recommender.MAX_QUERY_HISTORY + 1))
    assert (rec.stats(), rec.change_count) == state
    assert rec.stats()["hidden_items"] == 0


def test_a_large_allow_list_at_the_limit_works():
    rec = _model("mf")
    allowed = np.arange(100_000)  # mostly unknown IDs: ignored
    got, _ = rec.recommend(1, k=5, items=allowed)
    assert len(got) == 5
