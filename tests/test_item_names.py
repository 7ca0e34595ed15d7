"""Item display names: set/read, kept in snapshots and deltas, dropped with evicted items,
counted in stats; the catalogue loader and the delimiter sniffing of the data loaders."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native.data import load_events, load_features, load_item_names


def _model() -> rt.Recommender:
    rec = rt.Recommender(model="mf", num_threads=1, seed=0)
    rec.fit(np.array([1, 1, 2, 2, 3]), np.array([10, 11, 10, 12, 11]), epochs=2)
    return rec


def test_names_are_aligned_with_the_ids_asked_and_none_where_unknown():
    rec = _model()
    assert rec.item_names([10, 11]) == [None, None]
    assert rec.set_item_names([10, 11, 99], ["Ten", None, "Ninety-nine"]) is rec
    assert rec.item_names([99, 10, 11, 12]) == ["Ninety-nine", "Ten", None, None]
    stats = rec.stats()
    assert stats["item_names"] == 2
    rec.set_item_names([10], [""])  # an empty name removes it
    assert rec.item_names([10]) == [None]
    assert rec.stats()["item_names"] == 1


def test_names_count_in_memory_bytes():
    rec = _model()
    before = rec.stats()["memory_bytes"]
    rec.set_item_names(np.arange(1000), [f"a rather long movie title number {i}" for i in range(1000)])
    assert rec.stats()["memory_bytes"] - before >= 1000 * 35


def test_a_bad_batch_changes_nothing():
    rec = _model()
    rec.set_item_names([10], ["Ten"])
    with pytest.raises(ValueError, match="one entry per item"):
        rec.set_item_names([10, 11], ["X"])
    with pytest.raises(TypeError, match=r"names\[1\] must be a str"):
        rec.set_item_names([10, 11], ["X", 5])
    with pytest.raises(ValueError, match="at most 4096 bytes"):
        rec.set_item_names([10, 11], ["X", "y" * 5000])
    with pytest.raises(rt.IdKindError):
        rec.set_item_names(["sku-1"], ["X"])
    assert rec.item_names([10, 11]) == ["Ten", None]


def test_string_item_ids_have_names_too():
    rec = rt.Recommender(model="mf", num_threads=1, seed=0)
    rec.fit(["u1", "u2"], ["sku-1", "sku-2"], epochs=1)
    rec.set_item_names(["sku-1"], ["Blue shoes"])
    assert rec.item_names(["sku-2", "sku-1"]) == [None, "Blue shoes"]


def test_names_survive_save_and_load(tmp_path):
    rec = _model()
    rec.set_item_names([10, 12], ["Ten", "Twelve"])
    rec.save(tmp_path / "m.rtrec")
    loaded = rt.Recommender.load(tmp_path / "m.rtrec")
    assert loaded.item_names([10, 11, 12]) == ["Ten", None, "Twelve"]
    assert loaded.stats()["item_names"] == 2


def test_deltas_carry_the_names_set_since_the_previous_one(tmp_path):
    trainer = _model()
    trainer.set_item_names([10], ["Ten"])
    trainer.save(tmp_path / "base.rtrec")
    replica = rt.Recommender.load(tmp_path / "base.rtrec")
    trainer.set_item_names([11, 77], ["Eleven", "Seventy-seven"])
    trainer.save_delta(tmp_path / "d1.rtrec")
    replica.apply_delta(tmp_path / "d1.rtrec")
    assert replica.item_names([10, 11, 77]) == ["Ten", "Eleven", "Seventy-seven"]
    trainer.set_item_names([10], ["Ten (1995)"])
    trainer.save_delta(tmp_path / "d2.rtrec")
    replica.apply_delta(tmp_path / "d2.rtrec")
    assert replica.item_names([10]) == ["Ten (1995)"]


def test_the_name_of_an_evicted_item_goes_with_it(tmp_path):
    rec = _model()
    rec.set_item_names([10, 99], ["Ten", "Not a row"])
    rec.save(tmp_path / "base.rtrec")
    replica = rt.Recommender.load(tmp_path / "base.rtrec")
    assert rec.evict(older_than=0, now=1e12) > 0
    assert rec.item_names([10, 99]) == [None, "Not a row"]  # a name without a row stays
    rec.save_delta(tmp_path / "d1.rtrec")
    replica.apply_delta(tmp_path / "d1.rtrec")
    assert replica.item_names([10]) == [None]


# ------------------------------------------------------------------ files


def test_load_item_names_finds_movielens_columns(tmp_path):
    path = tmp_path / "movies.csv"
    path.write_text('movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n2,"Heat, the movie",Action\n'
                    "3,,Drama\n")
    ids, names = load_item_names(path)
    assert ids.tolist() == [1, 2, 3]
    assert names == ["Toy Story (1995)", "Heat, the movie", None]


def test_load_item_names_errors_name_the_arguments(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("sku,label\na,b\n")
    with pytest.raises(ValueError, match=r"no name column found.*name_col="):
        load_item_names(path)
    with pytest.raises(ValueError, match=r"no item ID column found.*id_col="):
        load_item_names(path, name_col="label")
    ids, names = load_item_names(path, id_col="sku", name_col="label")
    assert ids.tolist() == ["a"] and names == ["b"]


@pytest.mark.parametrize("sep", ["\t", ";", ","])
def test_the_delimiter_is_sniffed(tmp_path, sep):
    path = tmp_path / "ratings.csv"  # named .csv whatever it holds
    path.write_text(sep.join(["userId", "movieId", "rating"]) + "\n" + sep.join(["1", "10", "4.5"]) + "\n"
                    + sep.join(["2", "11", "3.0"]) + "\n")
    events, _ = load_events(path)
    assert events.users.tolist() == [1, 2] and events.labels.tolist() == [4.5, 3.0]


def test_the_delimiter_can_be_given(tmp_path):
    path = tmp_path / "features.csv"
    path.write_text("movieId;genres\n1;Comedy|Drama\n")
    ids, lists = load_features(path, delimiter="semicolon")
    assert ids.tolist() == [1] and lists == [["Comedy", "Drama"]]
    with pytest.raises(ValueError, match="one character"):
        load_features(path, delimiter=";;")


def test_a_replica_following_a_publisher_shows_the_new_names(tmp_path):
    import time

    trainer = _model()
    publisher = rt.Publisher(trainer, tmp_path, interval=None)
    replica = rt.Replica(tmp_path, poll_interval=0.01)
    try:
        trainer.set_item_names([10, 11], ["Ten", "Eleven"])
        assert publisher.flush()  # a change (names only) is a delta to publish
        deadline = time.monotonic() + 10
        while replica.model.item_names([10, 11]) != ["Ten", "Eleven"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert replica.model.item_names([10, 11]) == ["Ten", "Eleven"]
    finally:
        replica.close()
        publisher.close()
