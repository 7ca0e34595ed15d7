"""The event archive (``rtrec consume --archive``): every learned event in Parquet files once,
also across crashes at any point; readers see finished files only."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import rtrec_native as rt
from conftest import model_state
from memory_log import ListSource, drain, events
from rtrec_native.replication import restore_latest
from rtrec_native.stream import Consumer, EventArchive, read_archive
from rtrec_native.stream.archive import archive_files

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


def new_model() -> rt.Recommender:
    return rt.Recommender(model="mf", dim=8, loss="bpr", num_threads=1, seed=0)


def start(tmp_path, entries, rec=None, **archive_args) -> Consumer:
    archive = EventArchive(tmp_path / "archive", rotate_seconds=archive_args.pop("rotate_seconds", 3600.0),
                           **archive_args)
    return Consumer(rec or new_model(), ListSource(entries), tmp_path / "snap", archive=archive, batch_size=37,
                    interval=1e9)


def test_round_trip_every_learned_event_once_with_its_entry(tmp_path):
    entries = events(1000)
    entries.insert(500, ("500-5", {"user": "not-a-number", "item": "1"}))  # a dead letter: not learned, not archived
    entries.insert(700, ("700-5", {"op": "hide", "items": "[3]"}))  # a control entry: no event
    consumer = start(tmp_path, entries)
    drain(consumer)
    consumer.flush()
    consumer.archive.rotate(force=True)
    frame = pd.read_parquet(tmp_path / "archive")
    good = [(eid, f) for eid, f in entries if "user" in f and f["user"].isdigit()]
    assert consumer.learned == len(good) == len(frame) == 1000
    assert frame["entry"].tolist() == [eid for eid, _ in good]
    assert frame["user"].tolist() == [int(f["user"]) for _, f in good]
    assert frame["item"].tolist() == [int(f["item"]) for _, f in good]
    assert frame["timestamp"].tolist() == [float(f["ts"]) for _, f in good]
    assert frame["label"].isna().all()  # the events carried none
    assert (frame["weight"] == 1.0).all()
    assert list(frame.columns) == ["user", "item", "label", "weight", "timestamp", "entry"]


def test_rotation_keeps_one_journal_and_numbered_files(tmp_path):
    consumer = start(tmp_path, events(300))
    for _ in range(3):
        for _ in range(3):
            consumer.poll(0.0)
        consumer.flush()
        consumer.archive.rotate(force=True)
    files = archive_files(tmp_path / "archive")
    assert [f.first for f in files] == [0, 111, 222]
    assert [f.end for f in files] == [111, 222, 300]
    assert not (tmp_path / "archive" / "_journal.bin").exists()
    assert read_archive(tmp_path / "archive", 100, 230).column("entry").to_pylist() == \
        [f"{k + 1}-0" for k in range(100, 230)]


def crash_after_journal_sync(consumer: Consumer, polls: int) -> None:
    """Learn more and make it durable in the journal but not in a delta: a kill -9 between
    the journal's fsync and the delta's."""
    for _ in range(polls):
        consumer.poll(0.0)
    consumer.archive.sync()


def test_a_crash_between_journal_and_delta_archives_each_event_once(tmp_path):
    entries = events(2000)
    consumer = start(tmp_path, entries)
    for _ in range(10):
        consumer.poll(0.0)
    consumer.flush()  # durable: 370 events
    crash_after_journal_sync(consumer, 7)  # 259 more in the journal, not in the model's files
    with open(tmp_path / "archive" / "_journal.bin", "ab") as fh:  # and a frame cut short
        fh.write(b"\x10\x00\x00\x00\x00\x00\x00\x00\x01\x02")
    (tmp_path / "archive" / ".events-000000000000-000000000001-1.parquet.tmp").write_bytes(b"PAR1 half")
    del consumer

    rec = restore_latest(tmp_path / "snap", num_threads=1)
    consumer = start(tmp_path, entries, rec=rec)
    assert consumer.learned == 370
    drain(consumer)
    consumer.flush()
    consumer.archive.rotate(force=True)
    frame = pd.read_parquet(tmp_path / "archive")
    assert frame["entry"].tolist() == [eid for eid, _ in entries]
    assert not list((tmp_path / "archive").glob(".*.tmp"))

    uninterrupted = start(tmp_path / "again", entries)
    drain(uninterrupted)
    assert model_state(consumer.model) == model_state(uninterrupted.model)


def test_a_crash_after_a_file_before_its_journal_is_removed(tmp_path):
    consumer = start(tmp_path, events(500))
    for _ in range(5):
        consumer.poll(0.0)
    consumer.flush()
    journal = (tmp_path / "archive" / "_journal.bin").read_bytes()
    consumer.archive.rotate(force=True)
    (tmp_path / "archive" / "_journal.bin").write_bytes(journal)  # as if the unlink never happened
    del consumer
    consumer = start(tmp_path, events(500), rec=restore_latest(tmp_path / "snap", num_threads=1))
    drain(consumer)
    consumer.flush()
    consumer.archive.rotate(force=True)
    assert pd.read_parquet(tmp_path / "archive")["entry"].tolist() == [f"{k + 1}-0" for k in range(500)]


def test_readers_skip_files_being_written(tmp_path):
    consumer = start(tmp_path, events(200))
    drain(consumer)
    consumer.flush()  # the events are in the journal only: no finished file yet
    assert not archive_files(tmp_path / "archive")
    (tmp_path / "archive" / ".events-x.parquet.tmp").write_bytes(b"PAR1 not finished")
    assert len(pd.read_parquet(tmp_path / "archive")) == 0  # the journal and the .tmp file are not read
    consumer.archive.rotate(force=True)
    assert len(pd.read_parquet(tmp_path / "archive")) == 200


def test_retention_removes_old_files(tmp_path):
    consumer = start(tmp_path, events(200), retention_days=1)
    for _ in range(2):
        consumer.poll(0.0)
    consumer.flush()
    consumer.archive.rotate(force=True)
    old = archive_files(tmp_path / "archive")[0]
    aged = old.path.with_name(f"events-{old.first:012d}-{old.end:012d}-{int(old.archived - 2 * 86400)}.parquet")
    os.replace(old.path, aged)
    drain(consumer)
    consumer.flush()
    consumer.archive.rotate(force=True)
    assert [f.first for f in archive_files(tmp_path / "archive")] == [74]


def test_train_reads_an_archive_directory(tmp_path):
    from rtrec_native.cli import main

    consumer = start(tmp_path, events(400))
    drain(consumer)
    consumer.flush()
    consumer.archive.rotate(force=True)
    out = tmp_path / "model.rtrec"
    assert main(["train", "--data", str(tmp_path / "archive"), "--model-out", str(out), "--family", "mf",
                 "--loss", "bpr", "--epochs", "1"]) == 0
    model = rt.Recommender.load(out)
    assert model.n_users == consumer.model.n_users and model.n_items == consumer.model.n_items


def test_string_ids_and_labels(tmp_path):
    entries = [(f"{k + 1}-0", {"user": f"u{k % 7}", "item": f"i{k % 5}", "label": str(k % 5 + 1)}) for k in range(100)]
    rec = rt.Recommender(model="mf", dim=4, loss="squared", num_threads=1, seed=0)
    consumer = start(tmp_path, entries, rec=rec)
    drain(consumer)
    consumer.flush()
    consumer.archive.rotate(force=True)
    frame = pd.read_parquet(tmp_path / "archive")
    assert frame["user"].tolist() == [f"u{k % 7}" for k in range(100)]
    assert frame["label"].tolist() == [float(k % 5 + 1) for k in range(100)]
    assert frame["timestamp"].tolist() == [(k + 1) / 1000 for k in range(100)]  # the entry ID's time (ms)


def test_misuse_is_refused(tmp_path, monkeypatch):
    archive = EventArchive(tmp_path / "a")
    with pytest.raises(RuntimeError, match="recover"):
        archive.append(0, np.array([1]), np.array([2]), None, None, None, ["1-0"])
    archive.recover(0)
    with pytest.raises(ValueError, match="expected event 0 next, got 5"):
        archive.append(5, np.array([1]), np.array([2]), None, None, None, ["1-0"])
    with pytest.raises(ValueError, match="retention_days"):
        EventArchive(tmp_path / "b", retention_days=0)
    with pytest.raises(ValueError, match="refit needs an archive"):
        Consumer(new_model(), ListSource([]), tmp_path / "snap", refit=object())
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match="needs pyarrow: pip install"):
        EventArchive(tmp_path / "c")


def test_a_model_restored_from_an_older_file_drops_the_later_archived_events(tmp_path):
    entries = events(600)
    consumer = start(tmp_path, entries)
    for _ in range(5):
        consumer.poll(0.0)
    consumer.flush()
    older = tmp_path / "older.rtrec"
    consumer.model.save(older)  # 185 events
    drain(consumer)
    consumer.flush()
    consumer.archive.rotate(force=True)
    assert len(pd.read_parquet(tmp_path / "archive")) == 600
    rec = rt.Recommender.load(older, num_threads=1)
    again = start(tmp_path, entries, rec=rec)
    assert again.learned == 185 and len(pd.read_parquet(tmp_path / "archive")) == 185
    drain(again)
    again.flush()
    again.archive.rotate(force=True)
    assert pd.read_parquet(tmp_path / "archive")["entry"].tolist() == [eid for eid, _ in entries]
