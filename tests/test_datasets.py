"""Behaviour of rtrec_native.datasets: the seeded synthetic stream and its ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from rtrec_native import metrics
from rtrec_native.data import Events, load_events
from rtrec_native.datasets import EVENT_TYPES, generate_stream, synthetic_stream

SMALL = {"n_users": 300, "n_items": 200, "n_events": 20_000}


@pytest.fixture(scope="module")
def default_stream():
    """The default configuration, as the demo uses it."""
    return generate_stream()


def truth_logits(stream, user_vectors: np.ndarray) -> np.ndarray:
    """Click logits of every event under the true item side and the given user tastes."""
    ev = stream.events
    return (
        stream.global_bias
        + stream.item_bias[ev.items]
        + np.einsum("ed,ed->e", user_vectors, stream.item_factors[ev.items])
    )


def test_default_stream_has_the_documented_shape_and_dtypes(default_stream):
    events = synthetic_stream()
    assert isinstance(events, Events)
    assert len(events) == 100_000
    assert events.users.dtype == np.int64 and events.items.dtype == np.int64
    assert events.labels.dtype == np.float32 and set(np.unique(events.labels)) == {0.0, 1.0}
    assert events.timestamps.dtype == np.float64 and events.weights is None
    assert events.users.min() >= 0 and events.users.max() < 2000
    assert events.items.min() >= 0 and events.items.max() < 1000


def test_synthetic_stream_is_the_events_of_generate_stream():
    np.testing.assert_array_equal(synthetic_stream(**SMALL, seed=4).items,
                                  generate_stream(**SMALL, seed=4).events.items)


def test_same_seed_gives_identical_streams():
    a, b = generate_stream(**SMALL, seed=7), generate_stream(**SMALL, seed=7)
    for name in ("users", "items", "labels", "timestamps"):
        np.testing.assert_array_equal(getattr(a.events, name), getattr(b.events, name))
    np.testing.assert_array_equal(a.user_versions, b.user_versions)
    np.testing.assert_array_equal(a.item_birth, b.item_birth)


def test_different_seeds_give_different_streams():
    a, b = synthetic_stream(**SMALL, seed=1), synthetic_stream(**SMALL, seed=2)
    assert not np.array_equal(a.users, b.users)
    assert not np.array_equal(a.items, b.items)


def test_timestamps_are_sorted_and_span_the_duration(default_stream):
    ts = default_stream.events.timestamps
    assert np.all(np.diff(ts) >= 0)
    assert ts[-1] - ts[0] > 0.9 * 30 * 86_400


def test_items_never_appear_before_they_are_born(default_stream):
    ev = default_stream.events
    assert np.all(default_stream.item_birth[ev.items] <= ev.timestamps)


def test_new_items_arrive_and_take_over_as_popularity_decays(default_stream):
    ev, births = default_stream.events, default_stream.item_birth
    born_later = births > ev.timestamps[0]
    assert born_later.mean() == pytest.approx(0.7, abs=0.01)
    assert np.isin(np.flatnonzero(born_later), ev.items).mean() > 0.9  # most get shown
    tenth = len(ev) // 10
    early_age = np.median(ev.timestamps[:tenth] - births[ev.items[:tenth]])
    late_age = np.median(ev.timestamps[-tenth:] - births[ev.items[-tenth:]])
    # With decay, what is shown late is young, not the items present since the start.
    assert late_age < 0.25 * (ev.timestamps[-1] - ev.timestamps[0])
    assert np.median(births[ev.items[-tenth:]]) > np.median(births[ev.items[:tenth]])
    assert early_age >= 0


def test_user_activity_is_heavy_tailed(default_stream):
    per_user = np.bincount(default_stream.events.users, minlength=2000)
    assert per_user.max() > 20 * np.median(per_user)


def test_true_factors_predict_clicks_far_better_than_chance(default_stream):
    ev = default_stream.events
    assert metrics.auc(ev.labels, default_stream.logits) > 0.8
    # The logits really are the documented model: bias + item bias + <taste in force, q_i>.
    current_tastes = default_stream.user_versions[default_stream.event_user_version]
    np.testing.assert_allclose(truth_logits(default_stream, current_tastes), default_stream.logits)


def test_taste_drift_makes_stale_factors_worse(default_stream):
    ev = default_stream.events
    stale = truth_logits(default_stream, default_stream.initial_user_factors[ev.users])
    # Only events after their user's first drift can tell stale from current tastes.
    first_drift = np.full(2000, np.inf)
    np.minimum.at(first_drift, default_stream.drift_users, default_stream.drift_times)
    drifted = ev.timestamps > first_drift[ev.users]
    assert drifted.mean() > 0.2
    current_auc = metrics.auc(ev.labels[drifted], default_stream.logits[drifted])
    stale_auc = metrics.auc(ev.labels[drifted], stale[drifted])
    assert current_auc - stale_auc > 0.1


def test_events_before_a_users_first_drift_use_the_initial_taste():
    stream = generate_stream(**SMALL, seed=3)
    ev = stream.events
    first_drift = np.full(SMALL["n_users"], np.inf)
    np.minimum.at(first_drift, stream.drift_users, stream.drift_times)
    before = ev.timestamps < first_drift[ev.users]
    tastes = stream.user_versions[stream.event_user_version[before]]
    np.testing.assert_array_equal(tastes, stream.initial_user_factors[ev.users[before]])


def test_no_drift_means_one_taste_per_user():
    stream = generate_stream(**SMALL, drift_rate=0.0)
    assert stream.drift_users.size == 0
    assert stream.user_versions.shape == (SMALL["n_users"], 8)


def test_event_types_follow_the_labels_and_load_with_event_weights():
    stream = generate_stream(**SMALL)
    types = stream.event_types
    assert set(types) == set(EVENT_TYPES)
    np.testing.assert_array_equal(types != "view", stream.events.labels == 1)
    events, report = load_events(
        stream.to_dataframe(), event_weights={"view": 0.2, "click": 1.0, "purchase": 3.0}
    )
    assert len(events) == len(stream.events) and report.counts["unknown_event_type"] == 0
    np.testing.assert_allclose(np.unique(events.weights), [0.2, 1.0, 3.0], rtol=1e-6)


def test_sizes_and_options_are_validated():
    with pytest.raises(ValueError, match="n_events: expected an int >= 1, got 0"):
        synthetic_stream(n_events=0)
    with pytest.raises(TypeError, match="dim: expected an int"):
        synthetic_stream(dim=2.5)
    with pytest.raises(ValueError, match="drift_strength"):
        synthetic_stream(drift_strength=1.5)
