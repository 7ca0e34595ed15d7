"""Training and serving threads share one model: structure never races, values stay finite."""

from __future__ import annotations

import threading

import numpy as np

import rtrec_native as rt


def _run_threads(targets):
    errors: list[BaseException] = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guard(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert not errors, errors


def test_writers_growing_the_tables_while_readers_recommend(family):
    rec = rt.Recommender(model=family, dim=16, loss="logistic", num_threads=2, seed=0)
    rec.fit([0, 1], [0, 1], [1.0, 0.0], epochs=1)
    rounds = 150
    seen_bad = []

    def writer(offset):
        rng = np.random.default_rng(offset)
        def run():
            for r in range(rounds):
                # New users and items every round: hash tables and chunk directories grow
                # (past 1024 rows, so new chunks are published) while readers scan them.
                users = rng.integers(0, 5000, 64) + offset * 1_000_000
                items = np.concatenate([rng.integers(0, 3000, 48), offset * 1_000_000 + r * 16 + np.arange(16)])
                rec.update(users, items, rng.integers(0, 2, 64).astype(np.float32))
                for j in range(8):
                    rec.update_one(int(users[j]), int(items[j]), 1.0)
        return run

    def big_fit():
        rng = np.random.default_rng(99)
        rec.fit(rng.integers(0, 3000, 20_000) + 7_000_000, rng.integers(0, 3000, 20_000),
                rng.integers(0, 2, 20_000).astype(np.float32), epochs=2)

    def reader(seed):
        rng = np.random.default_rng(seed)
        def run():
            for _ in range(rounds):
                u = int(rng.integers(0, 5000))
                ids, scores = rec.recommend(u, k=20)
                if not np.isfinite(scores).all() or len(ids) != len(scores):
                    seen_bad.append(("recommend", u))
                _, b_scores = rec.recommend_batch(rng.integers(0, 5000, 8), k=5)
                if np.isinf(b_scores).any():
                    seen_bad.append(("batch", b_scores))
                p = rec.predict(rng.integers(0, 5000, 256), rng.integers(0, 3000, 256))
                if not np.isfinite(p).all():
                    seen_bad.append(("predict", p))
                rec.stats()
        return run

    _run_threads([writer(1), writer(2), big_fit, reader(10), reader(11)])
    assert not seen_bad
    stats = rec.stats()
    assert stats["n_items"] > 1024 * 2  # several chunks were published under the readers
    assert stats["updates"] > 0
    ids, scores = rec.recommend(5, k=10)
    assert len(ids) == 10 and np.isfinite(scores).all()


def test_updates_from_one_thread_are_visible_to_the_next_read_in_another(family):
    rec = rt.Recommender(model=family, dim=8, loss="squared", seed=0).fit([1], [1], [3.0], epochs=1)
    observed = []
    done = threading.Event()

    def writer():
        for i in range(200):
            rec.update_one(1, 1000 + i, 5.0)
        done.set()

    def reader():
        done.wait(60)
        observed.append(rec.n_items)
        observed.append(set(rec.recommend(2, k=300)[0].tolist()))

    _run_threads([writer, reader])
    assert observed[0] == 201
    assert {1000 + i for i in range(200)} <= observed[1]


def test_string_ids_under_concurrent_inserts(family):
    rec = rt.Recommender(model=family, dim=8, seed=0)

    def writer(prefix):
        def run():
            for i in range(300):
                rec.update([f"{prefix}-user-{i % 37}"], [f"{prefix}-item-{i}"])
        return run

    def reader():
        for _ in range(300):
            ids, _ = rec.recommend("a-user-1", k=5)
            assert all(isinstance(x, str) for x in ids)

    _run_threads([writer("a"), writer("b"), reader])
    assert rec.n_items == 600 and rec.n_users == 74
