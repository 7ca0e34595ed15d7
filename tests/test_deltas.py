"""Incremental deltas: what changed since the last save, applied in order on a copy."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from conftest import fingerprint


def _pair(tmp_path, loss="bpr", optimizer="adagrad", **kwargs):
    rng = np.random.default_rng(0)
    trainer = rt.Recommender(**{"model": "mf", "dim": 8, "loss": loss, "optimizer": optimizer, "num_threads": 1,
                                "seed": 3, **kwargs})
    labels = None if loss in ("bpr", "softmax") else rng.integers(0, 2, 400).astype(np.float32)
    trainer.fit(rng.integers(0, 40, 400), rng.integers(0, 60, 400), labels, epochs=2)
    trainer.save(tmp_path / "base")
    return trainer, rt.Recommender.load(tmp_path / "base", num_threads=1)


USERS, ITEMS = list(range(0, 50, 3)) + [1000, 1001], list(range(60)) + [2000, 2001]


def test_deltas_in_order_make_the_replica_equal_to_the_trainer(tmp_path, variant):
    trainer, replica = _pair(tmp_path, **variant.kwargs)
    rng = np.random.default_rng(1)
    for step in range(1, 4):
        users = np.r_[rng.integers(0, 40, 20), 1000 + step % 2]
        items = np.r_[rng.integers(0, 60, 20), 2000 + step % 2]  # new IDs arrive through deltas
        labels = None if variant.sampled else rng.integers(0, 2, 21).astype(np.float32)
        trainer.update(users, items, labels)
        if step == 2:
            trainer.fit(users, items, labels, epochs=1)
        trainer.save_delta(tmp_path / f"d{step}")
        replica.apply_delta(tmp_path / f"d{step}")
        assert fingerprint(replica, USERS, ITEMS) == fingerprint(trainer, USERS, ITEMS)
    assert replica.snapshot_position == trainer.snapshot_position
    assert replica.snapshot_position[1] == 3


def test_a_delta_holds_only_the_rows_that_changed(tmp_path):
    trainer, _ = _pair(tmp_path)
    trainer.save_delta(tmp_path / "empty")  # nothing changed since the snapshot
    trainer.update_one(1, 2)
    trainer.save_delta(tmp_path / "small")
    full = (tmp_path / "base").stat().st_size
    # Headers only: 727 bytes in format 7 (each model parameter is named), 432 in format 5.
    assert (tmp_path / "empty").stat().st_size < 1000 < full
    assert (tmp_path / "small").stat().st_size < full / 5


def test_gaps_reordering_and_foreign_bases_are_refused_and_change_nothing(tmp_path):
    trainer, replica = _pair(tmp_path)
    for n in (1, 2, 3):
        trainer.update_one(n, n + 1)
        trainer.save_delta(tmp_path / f"d{n}")
    before = fingerprint(replica, USERS, ITEMS)
    with pytest.raises(rt.DeltaOrderError, match="does not follow"):
        replica.apply_delta(tmp_path / "d2")  # gap: d1 missing
    replica.apply_delta(tmp_path / "d1")
    with pytest.raises(rt.DeltaOrderError, match="does not follow"):
        replica.apply_delta(tmp_path / "d1")  # twice
    other = rt.Recommender(model="mf", dim=8, num_threads=1, seed=3).fit([1], [2], epochs=1)
    other.save(tmp_path / "other-base")
    other.update_one(5, 6)
    other.save_delta(tmp_path / "other-d1")
    mid = fingerprint(replica, USERS, ITEMS)
    with pytest.raises(rt.DeltaOrderError, match="another model's lineage"):
        replica.apply_delta(tmp_path / "other-d1")
    assert fingerprint(replica, USERS, ITEMS) == mid != before


def test_a_copy_from_a_later_snapshot_continues_the_same_delta_chain(tmp_path):
    trainer, early = _pair(tmp_path)
    for n in (1, 2):
        trainer.update_one(n, n + 1)
        trainer.save_delta(tmp_path / f"d{n}")
    trainer.save(tmp_path / "compacted")  # a later snapshot: records delta 2, cuts nothing
    trainer.update_one(9, 99)
    trainer.save_delta(tmp_path / "d3")
    late = rt.Recommender.load(tmp_path / "compacted", num_threads=1)
    assert late.snapshot_position == (trainer.snapshot_position[0], 2)
    late.apply_delta(tmp_path / "d3")
    for n in (1, 2, 3):
        early.apply_delta(tmp_path / f"d{n}")  # the copy that followed every delta goes on too
    for copy in (late, early):
        assert fingerprint(copy, USERS + [9], ITEMS + [99]) == fingerprint(trainer, USERS + [9], ITEMS + [99])


def test_a_change_made_while_a_delta_is_cut_is_never_lost(tmp_path):
    """Writers hammer the model while deltas are cut; a replica fed every delta ends equal."""
    import threading

    trainer, replica = _pair(tmp_path)
    stop = threading.Event()

    def write():
        rng = np.random.default_rng(5)
        while not stop.is_set():
            trainer.update(rng.integers(0, 40, 8), rng.integers(0, 80, 8))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for n in range(1, 30):
            trainer.save_delta(tmp_path / f"c{n}")
            replica.apply_delta(tmp_path / f"c{n}")
    finally:
        stop.set()
        writer.join(30)
    trainer.save_delta(tmp_path / "final")
    replica.apply_delta(tmp_path / "final")
    assert fingerprint(replica, USERS, ITEMS + [60, 70, 79]) == fingerprint(trainer, USERS, ITEMS + [60, 70, 79])


def test_delta_without_a_base_snapshot_and_wrong_file_kinds(tmp_path):
    rec = rt.Recommender(model="mf", dim=4).fit([1], [2], epochs=1)
    with pytest.raises(rt.DeltaOrderError, match="no base snapshot"):
        rec.save_delta(tmp_path / "d")
    rec.save(tmp_path / "base")
    rec.save_delta(tmp_path / "d1")
    with pytest.raises(rt.SnapshotError, match="delta, not a full snapshot"):
        rt.Recommender.load(tmp_path / "d1")
    loaded = rt.Recommender.load(tmp_path / "base")
    with pytest.raises(rt.SnapshotError, match="full snapshot, not a delta"):
        loaded.apply_delta(tmp_path / "base")
    data = (tmp_path / "d1").read_bytes()
    (tmp_path / "cut").write_bytes(data[:-5])
    with pytest.raises(rt.SnapshotError, match="truncated"):
        loaded.apply_delta(tmp_path / "cut")
    assert loaded.snapshot_position[1] == 0


def test_seen_items_travel_with_deltas(tmp_path):
    trainer, replica = _pair(tmp_path)
    trainer.update([7, 7], [2000, 2001])
    trainer.save_delta(tmp_path / "d1")
    replica.apply_delta(tmp_path / "d1")
    assert not {2000, 2001} & set(replica.recommend(7, k=100)[0].tolist())
    assert {2000, 2001} <= set(replica.recommend(7, k=100, exclude_seen=False)[0].tolist())


def test_a_delta_that_cannot_apply_changes_nothing(tmp_path):
    rt.Recommender(model="mf", dim=4, num_threads=1, seed=0).save(tmp_path / "base")  # an empty base
    trainer = rt.Recommender.load(tmp_path / "base", num_threads=1)
    trainer.update([1, 5], [2, 6])  # integer items
    trainer.save_delta(tmp_path / "d1")
    copy = rt.Recommender.load(tmp_path / "base", num_threads=1)
    copy.update([1], ["sku"])  # the copy took string items on its own
    before = fingerprint(copy, [1, 5], ["sku"])
    with pytest.raises(rt.SnapshotError, match="cannot apply the items: this model's item IDs are str, got int"):
        copy.apply_delta(tmp_path / "d1")
    assert fingerprint(copy, [1, 5], ["sku"]) == before  # users were not touched either
    assert copy.n_users == 1 and copy.snapshot_position[1] == 0


def test_two_writers_continuing_one_lineage_cannot_be_mixed(tmp_path):
    trainer, replica = _pair(tmp_path)
    fork = rt.Recommender.load(tmp_path / "base", num_threads=1)  # a second writer, same point
    trainer.update_one(1, 2)
    trainer.save_delta(tmp_path / "t1")
    fork.update_one(3, 4)
    fork.save_delta(tmp_path / "f1")
    fork.update_one(3, 5)
    fork.save_delta(tmp_path / "f2")
    replica.apply_delta(tmp_path / "t1")
    before = fingerprint(replica, USERS, ITEMS)
    with pytest.raises(rt.DeltaOrderError, match="two writers"):
        replica.apply_delta(tmp_path / "f2")
    assert fingerprint(replica, USERS, ITEMS) == before
