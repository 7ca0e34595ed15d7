"""Beyond-accuracy metrics: intra-list diversity, novelty, coverage — the functions and the
evaluation reports that carry them."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native import metrics
from rtrec_native.data import Events
from rtrec_native.evaluation import evaluate_split, prequential, temporal_split

VECTORS = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [0.0, 0.0]])


def test_intra_list_diversity_by_hand():
    # [0, 1]: same direction (1 - 1 = 0); [0, 2]: orthogonal (1); [0, 3]: opposite (2).
    assert metrics.intra_list_diversity([[0, 1]], VECTORS) == pytest.approx(0.0)
    assert metrics.intra_list_diversity([[0, 2]], VECTORS) == pytest.approx(1.0)
    assert metrics.intra_list_diversity([[0, 3]], VECTORS) == pytest.approx(2.0)
    # [0, 1, 2]: pairs 0, 1, 1 -> 2/3; the mean over lists: (2/3 + 1) / 2.
    assert metrics.intra_list_diversity([[0, 1, 2], [2, 3, -1]], VECTORS) == pytest.approx((2 / 3 + 1) / 2)
    # A zero vector is unlike everything; a list of one item has no pairs.
    assert metrics.intra_list_diversity([[0, 4]], VECTORS) == pytest.approx(1.0)
    assert metrics.intra_list_diversity([[0, -1], [1, 2]], VECTORS) == pytest.approx(1.0)
    assert math.isnan(metrics.intra_list_diversity([[0, -1]], VECTORS))


def test_novelty_by_hand():
    p = np.array([0.5, 0.25, 0.125])
    assert metrics.novelty([[0, 1], [2, -1]], p) == pytest.approx((1.5 + 3.0) / 2)
    assert math.isnan(metrics.novelty([[-1, -1]], p))
    np.testing.assert_allclose(metrics.popularity_probability([3, 0, 1]), [4 / 7, 1 / 7, 2 / 7])


@pytest.mark.parametrize("call", [
    lambda: metrics.intra_list_diversity([[0, 5]], VECTORS),
    lambda: metrics.intra_list_diversity([[0, 1]], VECTORS[0]),
    lambda: metrics.novelty([[0, 3]], [0.5, 0.5, 0.5]),
    lambda: metrics.novelty([[0]], [0.0, 1.0]),
])
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()


def _events():
    from conftest import planted

    users, items, _ = planted(n_users=200, n_items=300, per_user=25, seed=4)
    return Events(users=users, items=items, timestamps=np.arange(users.size, dtype=float))


def test_split_report_has_the_columns_and_diversity_raises_ild(family):
    split = temporal_split(_events(), 0.2, by="user")
    kwargs = {"tower": (16,), "history": 8} if family == "two_tower" else {}
    rec = rt.Recommender(model=family, dim=16, seed=2, num_threads=1, **kwargs).fit(split.train, epochs=8)
    plain = evaluate_split(rec, split, k=10).metrics
    diverse = evaluate_split(rec, split, k=10, diversity=0.5).metrics
    for name in ("ild@10", "novelty@10", "coverage@10"):
        assert np.isfinite(plain[name]) and np.isfinite(diverse[name])
    assert 0.0 < plain["coverage@10"] <= 1.0
    assert diverse["ild@10"] > plain["ild@10"]
    assert plain["novelty@10"] > 0


def test_prequential_report_has_the_columns():
    report = prequential(_events(), model={"dim": 16, "num_threads": 1}, policies=["realtime"], batch_size=50,
                         retrain_every=None, retrain_period=None, n_windows=2)
    m = report.policies["realtime"].metrics
    assert {"ild@10", "novelty@10", "coverage@10"} <= set(report.metric_names)
    assert 0.0 < m["ild@10"] < 2.0 and m["novelty@10"] > 0 and 0.0 < m["coverage@10"] <= 1.0
    with pytest.raises(ValueError, match="diversity"):
        prequential(_events(), policies=["static"], diversity=1.5)
