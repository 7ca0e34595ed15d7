"""WARP (loss="warp", mf): learns planted preferences like BPR, follows BPR's label rules,
steps only on margin violators, and is refused where it does not apply. Snapshot round
trips, both ID kinds and batch == one-by-one run for it with every other variant
(conftest.VARIANTS)."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from conftest import auc, fingerprint, planted
from rtrec_native import _core
from rtrec_native.cli.options import LOSS_CHOICES


def _held_out_auc(loss: str, ids: str = "int") -> float:
    users, items, affinity = planted()
    rng = np.random.default_rng(1)
    held_out = rng.random(users.size) < 0.2
    random_items = rng.integers(0, affinity.shape[1], size=held_out.sum())
    name_u = (lambda a: [f"u{x}" for x in a]) if ids == "str" else (lambda a: a)
    name_i = (lambda a: [f"i{x}" for x in a]) if ids == "str" else (lambda a: a)
    rec = rt.Recommender(model="mf", dim=16, loss=loss, negatives=10 if loss == "warp" else 1, num_threads=1, seed=0)
    rec.fit(name_u(users[~held_out]), name_i(items[~held_out]), epochs=30)
    pos = rec.predict(name_u(users[held_out]), name_i(items[held_out]))
    neg = rec.predict(name_u(users[held_out]), name_i(random_items))
    return auc(pos, neg)


@pytest.mark.parametrize("ids", ["int", "str"])
def test_warp_recovers_planted_preferences_as_well_as_bpr(ids):
    warp, bpr = _held_out_auc("warp", ids), _held_out_auc("bpr", ids)
    assert warp > 0.8
    assert warp > bpr - 0.03  # measured: .842 vs .857 (int IDs)


def test_warp_steps_only_on_a_margin_violator():
    """A positive that outranks every item by more than the margin teaches nothing (no
    step, no count), where BPR would still push it up: the rank weighting is WARP's own."""
    # Three items: user 0 likes item 0, user 1 likes item 1, item 2 is never a positive.
    users, items = np.array([0] * 10 + [1] * 10), np.array([0] * 10 + [1] * 10)
    rec = rt.Recommender(model="mf", dim=8, loss="warp", negatives=50, num_threads=1, seed=0)
    rec.fit(np.append(users, 2), np.append(items, 2), weights=np.append(np.ones(20), 0.0), epochs=100)
    scores = rec.predict([0, 0, 0], [0, 1, 2])
    best = 0
    assert scores[0] > max(scores[1], scores[2]) + 1.0  # precondition: item 0 clears the margin for user 0
    updates = rec.stats()["updates"]
    before = fingerprint(rec, [0, 1], [0, 1, 2])
    rec.update([0] * 20, [best] * 20)
    assert rec.stats()["updates"] == updates
    after = fingerprint(rec, [0, 1], [0, 1, 2])
    assert after[1] == before[1] and after[2] == before[2]  # every score and top list unchanged


def test_warp_follows_the_bpr_label_rules():
    """Labels are optional; a label <= 0 is not a positive (no step, not consumed), like BPR:
    both losses take the rule from the core (samples_negatives)."""
    labels = np.array([1.0, 0.0, -1.0, 2.5, 0.5], dtype=np.float32)
    assert (_core.consumed("warp", labels, None, 5) == _core.consumed("bpr", labels, None, 5)).all()
    rec = rt.Recommender(model="mf",
                         dim=4, loss="warp", negatives=5, num_threads=1, seed=0).fit([1, 2, 3], [10, 20, 30], epochs=1)
    before = fingerprint(rec, [1, 2, 3], [10, 20, 30])
    rec.update([1, 2, 3], [20, 30, 10], [0.0, -1.0, 0.0])
    after = fingerprint(rec, [1, 2, 3], [10, 20, 30])
    assert after[1:] == before[1:] and after[0]["seen_pairs"] == before[0]["seen_pairs"]
    assert after[0]["updates"] == before[0]["updates"]


@pytest.mark.parametrize("kwargs,words", [
    (dict(model="two_tower", loss="warp", tower=(8,), history=4), "'warp' is not available for model 'two_tower'"),
    (dict(loss="warp", negatives=0), "negatives must be between 1 and"),
    (dict(loss="warp", negatives=10**6), "negatives must be between 1 and"),
    (dict(loss="warpp"), "'warp'"),
])
def test_bad_warp_configurations_are_refused_with_the_reason(kwargs, words):
    with pytest.raises(ValueError, match=words):
        rt.Recommender(**{"model": "mf", **kwargs})


def test_bad_events_change_nothing_under_warp():
    rec = rt.Recommender(model="mf",
                         dim=4, loss="warp", negatives=5, num_threads=1, seed=0).fit([1, 2, 3], [10, 20, 30], epochs=2)
    before = fingerprint(rec, [1, 2, 3, 4], [10, 20, 30, 40])
    for call in (rec.fit, rec.update):
        with pytest.raises(ValueError, match="labels"):
            call([1, 4], [40, 10], [1.0, float("nan")])
        with pytest.raises(ValueError, match="weights"):
            call([1, 4], [40, 10], None, weights=[1.0, -1.0])
    assert fingerprint(rec, [1, 2, 3, 4], [10, 20, 30, 40]) == before


def test_the_cli_offers_warp_because_the_core_does():
    assert "warp" in _core.losses("mf") and "warp" not in _core.losses("two_tower")
    assert "warp" in LOSS_CHOICES
