"""Admission (min_count): an ID gets a row only after it has been seen N times."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt


def test_an_id_gets_a_row_on_its_nth_sighting_and_earlier_events_are_not_learned():
    rec = rt.Recommender(model="mf", dim=4, loss="squared", min_count=3, seed=0)
    rec.update([1, 1], [10, 10], [5.0, 5.0])
    assert rec.n_users == 0 and rec.n_items == 0
    assert rec.stats()["not_admitted"] == 2 and rec.stats()["updates"] == 0
    assert rec.predict([1], [10])[0] == pytest.approx(rec.stats()["global_bias"])  # scored as unknown
    rec.update_one(1, 10, 5.0)  # third sighting of both: admitted and learned
    assert rec.n_users == 1 and rec.n_items == 1 and rec.stats()["updates"] == 1
    assert 10 in rec.recommend(2, k=5)[0]


def test_a_long_tailed_stream_costs_rows_only_for_repeat_ids():
    rng = np.random.default_rng(0)
    users = np.r_[rng.integers(0, 500, 20_000), 10**9 + np.arange(20_000)]  # 20k one-off users
    items = rng.integers(0, 300, users.size)
    everyone = rt.Recommender(model="mf", dim=8, min_count=1, seed=0).fit(users, items, epochs=1)
    filtered = rt.Recommender(model="mf", dim=8, min_count=2, seed=0).fit(users, items, epochs=1)
    assert everyone.n_users >= 20_000 + 490
    assert 490 <= filtered.n_users < 600  # the one-off IDs got no row (a few sketch collisions may)
    assert filtered.stats()["not_admitted"] >= 19_000
    # The rows cost less; the two sketches are a fixed 2 x 8 MiB on top (a win once more
    # than ~30k one-off IDs at dim 64 would otherwise get rows).
    sketches = 2 * 8 * 2**20
    assert filtered.stats()["memory_bytes"] - sketches < everyone.stats()["memory_bytes"]


def test_admission_counts_survive_a_snapshot(tmp_path):
    rec = rt.Recommender(model="mf", dim=4, min_count=2, num_threads=1, seed=0)
    rec.update([7], [8])
    rec.save(tmp_path / "m")
    loaded = rt.Recommender.load(tmp_path / "m")
    assert loaded.get_params()["min_count"] == 2 and loaded.n_users == 0
    loaded.update([7], [8])  # the second sighting, counted across the restart
    assert loaded.n_users == 1 and loaded.n_items == 1


@pytest.mark.parametrize("value,exc", [(0, ValueError), (-1, ValueError), (70_000, ValueError), (2.0, TypeError),
                                       (True, TypeError)])
def test_bad_min_count(value, exc):
    with pytest.raises(exc, match="min_count"):
        rt.Recommender(model="mf", min_count=value)
