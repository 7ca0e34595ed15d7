"""Events, the package's data type: its own module, and what fit/update accept."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from conftest import fingerprint
from rtrec_native import data, events

pd = pytest.importorskip("pandas")


def some_events(n: int = 400, seed: int = 0) -> events.Events:
    rng = np.random.default_rng(seed)
    return events.Events(
        users=rng.integers(0, 30, size=n),
        items=rng.integers(0, 40, size=n),
        labels=rng.integers(1, 6, size=n).astype(np.float32),
        weights=rng.uniform(0.5, 2.0, size=n).astype(np.float32),
        timestamps=1e9 + np.arange(n, dtype=np.float64),
    )


def model() -> rt.Recommender:
    return rt.Recommender(model="mf", dim=8, loss="squared", num_threads=1, seed=3)


def fitted_on_arrays(ev: events.Events) -> rt.Recommender:
    return model().fit(ev.users, ev.items, ev.labels, ev.weights, epochs=2, timestamps=ev.timestamps)


def test_events_is_one_class_wherever_it_is_imported_from():
    assert data.Events is events.Events
    assert "Events" in data.__all__


def test_fit_and_update_take_events_like_the_arrays_they_hold():
    ev = some_events()
    expected = fingerprint(fitted_on_arrays(ev), [0, 1, 2], [0, 1, 2, 3])
    assert fingerprint(model().fit(ev, epochs=2), [0, 1, 2], [0, 1, 2, 3]) == expected

    by_arrays = model().update(ev.users, ev.items, ev.labels, ev.weights, ev.timestamps)
    by_events = model().update(ev)
    assert fingerprint(by_events, [0, 1], [0, 1, 2]) == fingerprint(by_arrays, [0, 1], [0, 1, 2])
    assert by_events.stats()["updates"] == len(ev)


def test_fit_takes_a_dataframe_whose_columns_are_found_by_name():
    ev = some_events()
    frame = pd.DataFrame({"userId": ev.users, "movieId": ev.items, "rating": ev.labels,
                          "weight": ev.weights, "timestamp": ev.timestamps})
    expected = fingerprint(fitted_on_arrays(ev), [0, 1, 2], [0, 1, 2, 3])
    assert fingerprint(model().fit(frame, epochs=2), [0, 1, 2], [0, 1, 2, 3]) == expected
    # Events.to_dataframe() round-trips, and a datetime column is taken as epoch seconds.
    assert fingerprint(model().fit(ev.to_dataframe(), epochs=2), [0, 1, 2], [0, 1, 2, 3]) == expected
    frame["timestamp"] = pd.to_datetime(ev.timestamps, unit="s", utc=True)
    rec = model().update(frame)
    assert rec.stats()["clock"] == pytest.approx(ev.timestamps.max())


def test_a_table_and_separate_arrays_together_are_refused():
    ev = some_events(n=10)
    with pytest.raises(TypeError, match="labels: already in the Events"):
        model().fit(ev, labels=ev.labels)
    with pytest.raises(TypeError, match="items: already in the DataFrame"):
        model().update(ev.to_dataframe(), ev.items)
    with pytest.raises(TypeError, match="items: expected a sequence of item IDs"):
        model().fit([1, 2])


def test_a_dataframe_follows_the_one_column_rule():
    frame = pd.DataFrame({"user": [1, 2], "item": [3, 4], "rating": [4.0, 5.0], "label": [1.0, 0.0]})
    with pytest.raises(ValueError, match=r"several columns could be the label column: \['rating', 'label'\]"):
        model().fit(frame)
    with pytest.raises(ValueError, match="no item column found"):
        model().fit(pd.DataFrame({"user": [1], "rating": [3.0]}))
    rec = model()
    with pytest.raises(ValueError, match="labels"):  # not cleaned: the model checks values as always
        rec.fit(pd.DataFrame({"user": [1, 2], "item": [3, 4], "rating": [4.0, np.nan]}))
    assert rec.n_users == 0
