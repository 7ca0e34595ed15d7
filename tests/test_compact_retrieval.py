"""retrieval="compact": the int8 shadow scan with exact re-scoring, against the exact scan.

Models are trained twice, identically (one thread, one seed), once per mode, so every
comparison is between the two retrieval paths over the same vectors. Catalogues are larger
than the re-rank depth (max(64, 4k)), so the compact scan really prunes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from rtrec_native import Recommender, _core

N_USERS, N_ITEMS = 400, 3000
FAMILIES = ("mf", "two_tower")


def _stream(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A Zipf-skewed stream over every item (so each item has a trained row)."""
    rng = np.random.default_rng(seed)
    n = 30_000
    users = rng.integers(0, N_USERS, n)
    items = rng.permutation(N_ITEMS)[(rng.zipf(1.2, n) - 1) % N_ITEMS]
    items[:N_ITEMS] = np.arange(N_ITEMS)
    return users, items


def _model(family: str, retrieval: str, **kw: object) -> Recommender:
    users, items = _stream()
    extra = {"tower": (32,), "negatives": 8} if family == "two_tower" else {}
    rec = Recommender(family, dim=32, seed=3, num_threads=1, retrieval=retrieval, **extra, **kw)
    rec.fit(users, items, epochs=2)
    return rec


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request: pytest.FixtureRequest) -> tuple[Recommender, Recommender]:
    return _model(request.param, "exact"), _model(request.param, "compact")


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_the_mode_is_a_parameter_and_bad_values_are_refused() -> None:
    assert Recommender(model="mf").get_params()["retrieval"] == "compact"
    assert Recommender(model="mf", retrieval="exact").get_params()["retrieval"] == "exact"
    with pytest.raises(ValueError, match="'fast'"):
        Recommender(model="mf", retrieval="fast")
    with pytest.raises(TypeError, match="retrieval"):
        Recommender(model="mf", retrieval=1)  # type: ignore[arg-type]
    assert Recommender(model="mf", retrieval="exact").stats()["compact_bytes"] == 0


def test_the_trained_models_match(pair: tuple[Recommender, Recommender]) -> None:
    exact, compact = pair
    ids, vectors, _ = exact.item_vectors()
    ids2, vectors2, _ = compact.item_vectors()
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_array_equal(vectors, vectors2)  # so differences below are retrieval's


def test_recommend_equals_the_exact_scan(pair: tuple[Recommender, Recommender]) -> None:
    exact, compact = pair
    equal = 0
    for user in range(N_USERS):
        a, b = exact.recommend(user, 10), compact.recommend(user, 10)
        equal += set(a[0].tolist()) == set(b[0].tolist())
        if np.array_equal(a[0], b[0]):
            np.testing.assert_array_equal(a[1], b[1])  # re-scored exactly: the same scores
    assert equal / N_USERS >= 0.99
    ids, scores = compact.recommend(7, 10)
    np.testing.assert_allclose(scores, compact.predict(np.full(len(ids), 7), ids), rtol=1e-5, atol=1e-6)


def test_batch_history_and_similar_items_equal_exact(pair: tuple[Recommender, Recommender]) -> None:
    exact, compact = pair
    users = np.arange(N_USERS)
    a, b = exact.recommend_batch(users, 10), compact.recommend_batch(users, 10)
    rows_equal = [set(a.ids[i].tolist()) == set(b.ids[i].tolist()) for i in range(N_USERS)]
    assert np.mean(rows_equal) >= 0.99
    _same(exact.recommend_for_history([1, 2, 3], 10), compact.recommend_for_history([1, 2, 3], 10))
    equal = sum(set(exact.similar_items(i, 10)[0].tolist()) == set(compact.similar_items(i, 10)[0].tolist())
                for i in range(0, N_ITEMS, 30))
    assert equal / len(range(0, N_ITEMS, 30)) >= 0.99
    _same(exact.recommend(5, 50, diversity=0.3), compact.recommend(5, 50, diversity=0.3))


def test_filters_compose_with_the_compact_scan(pair: tuple[Recommender, Recommender]) -> None:
    exact, compact = pair
    top = compact.recommend(11, 5)[0]
    deny = top[:3].tolist()
    for rec in pair:
        assert not set(deny) & set(rec.recommend(11, 10, exclude=deny)[0].tolist())
    _same(exact.recommend(11, 10, exclude=deny), compact.recommend(11, 10, exclude=deny))
    allow = list(range(0, N_ITEMS, 7))
    _same(exact.recommend(11, 10, items=allow), compact.recommend(11, 10, items=allow))
    for rec in pair:
        rec.hide(top[:2].tolist())
    try:
        got = compact.recommend(11, 10)[0].tolist()
        assert not set(top[:2].tolist()) & set(got)
        _same(exact.recommend(11, 10), compact.recommend(11, 10))
    finally:
        for rec in pair:
            rec.unhide(top[:2].tolist())


def test_tags_and_item_features_compose() -> None:
    exact, compact = _model("mf", "exact"), _model("mf", "compact")
    tagged = list(range(0, N_ITEMS, 3))
    for rec in (exact, compact):
        rec.set_item_features(tagged, [["odd" if i % 2 else "even", "all"] for i in tagged])
    for user in range(0, N_USERS, 20):
        _same(exact.recommend(user, 10), compact.recommend(user, 10))  # feature terms in the scan
        _same(exact.recommend(user, 10, tags=["odd"]), compact.recommend(user, 10, tags=["odd"]))
        _same(exact.similar_items(user, 10), compact.similar_items(user, 10))


def test_fresh_after_update_one_from_another_thread() -> None:
    rec = _model("mf", "compact")
    user, planted = 17, N_ITEMS + 1
    rec.update_one(999, planted)  # a new item, far from the top
    assert planted not in rec.recommend(user, 10, exclude_seen=False)[0].tolist()
    seen: list[list[int]] = []

    def read() -> None:
        seen.append(rec.recommend(user, 10, exclude_seen=False)[0].tolist())

    for step in range(200):
        rec.update_one(user, planted)
        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        # The reader ranked the vectors as they are now: its top item is the exact argmax.
        ids, vectors, biases = rec.item_vectors()
        query = rec.user_vectors([user])[1][0]
        best = ids[np.argmax(vectors @ query + biases)]
        assert seen[-1][0] == best, step
        if best == planted:
            break
    assert seen[-1][0] == planted


def test_eviction_leaves_the_shadow() -> None:
    rec = _model("mf", "compact")
    before = rec.recommend(3, 20, exclude_seen=False)[0]
    rec.evict(older_than=0.0, now=time.time() + 1e6)  # every row
    assert rec.n_items == 0
    assert len(rec.recommend(3, 20)[0]) == 0
    # New items reuse the rows: each must rank by its own vector, never an evicted item's.
    rng = np.random.default_rng(1)
    new = N_ITEMS * 10 + np.arange(N_ITEMS)
    rec.fit(rng.integers(0, N_USERS, 20_000), rng.choice(new, 20_000), epochs=1)
    ids, vectors, biases = rec.item_vectors()
    query = rec.user_vectors([3])[1][0]
    got = rec.recommend(3, 20, exclude_seen=False)[0]
    expected = ids[np.argsort(-(vectors @ query + biases), kind="stable")[:20]]
    assert not set(got.tolist()) & set(before.tolist())
    assert set(got.tolist()) == set(expected.tolist())


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_load_rebuild_the_shadow(tmp_path: object, family: str) -> None:
    exact, compact = _model(family, "exact"), _model(family, "compact")
    path = os.path.join(str(tmp_path), "m.rtrec")
    compact.save(path)
    loaded = Recommender.load(path, num_threads=1)
    assert loaded.get_params()["retrieval"] == "compact"
    assert loaded.stats()["compact_bytes"] == compact.stats()["compact_bytes"] > 0
    for user in range(0, N_USERS, 10):
        _same(compact.recommend(user, 10), loaded.recommend(user, 10))
    exact.save(path)
    assert Recommender.load(path).get_params()["retrieval"] == "exact"
    assert Recommender.load(path).stats()["compact_bytes"] == 0


@pytest.mark.parametrize("kernel", ["portable", "avx2"])
def test_every_kernel_ranks_like_exact(kernel: str) -> None:
    """This file's comparisons with the exact scan, again with a lower kernel forced."""
    if kernel == "avx2" and _core.compact_kernel() == "portable":
        pytest.skip("this CPU has no AVX2")
    env = {**os.environ, "RTREC_COMPACT_KERNEL": kernel}
    named = subprocess.run([sys.executable, "-c", "from rtrec_native import _core; print(_core.compact_kernel())"],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert named == kernel
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", __file__,
                          "-k", "other_dims or recommend_equals or batch_history or filters_compose or tags"],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


def test_files_from_before_the_mode_load_as_exact(tmp_path: object) -> None:
    import base64

    sys.path.insert(0, os.path.dirname(__file__))
    from test_noise import SNAPSHOT_V4  # a version 4 file: written before retrieval modes

    path = os.path.join(str(tmp_path), "v4.rtrec")
    with open(path, "wb") as fh:
        fh.write(base64.b64decode(SNAPSHOT_V4))
    rec = Recommender.load(path)
    assert rec.get_params()["retrieval"] == "exact"
    assert rec.stats()["compact_bytes"] == 0
    assert len(rec.recommend(1, 3)[0]) > 0


@pytest.mark.parametrize("dim", [8, 100, 130])
def test_other_dims_rank_like_exact(dim: int) -> None:
    """Row widths the kernels handle apart from the usual 64 bytes (8: one padded word; 100:
    two words; 130: the generic loop) and strides the vector encoder leaves to the loop."""
    users, items = _stream(1)
    ranked = []
    for mode in ("exact", "compact"):
        rec = Recommender("mf", dim=dim, seed=3, num_threads=1, retrieval=mode)
        rec.fit(users, items, epochs=2)
        ranked.append([rec.recommend(u, 10) for u in range(0, N_USERS, 4)])
    equal = sum(set(a[0].tolist()) == set(b[0].tolist()) for a, b in zip(*ranked, strict=True))
    assert equal / len(ranked[0]) >= 0.99
    for a, b in zip(*ranked, strict=True):
        if np.array_equal(a[0], b[0]):
            np.testing.assert_array_equal(a[1], b[1])
