"""Scheduled refits in the trainer (Consumer(..., refit=Refitter(...))): a fresh model fitted
on the archive in the background, caught up from it and swapped in — bit for bit the offline
replay of the same schedule, with the model's other state carried over, and replicas and
restarts switching to it."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from conftest import model_state, wait_for
from memory_log import ListSource, drain, events, logged
from rtrec_native.replication import Publisher, restore_latest
from rtrec_native.stream import Consumer, EventArchive, Refitter, read_archive
from rtrec_native.stream.archive import archive_files, table_columns
from rtrec_native.stream.refit import parse_duration

pytest.importorskip("pyarrow")
PARAMS = {"model": "mf", "dim": 8, "loss": "bpr", "num_threads": 1, "seed": 0}


def start(tmp_path, entries, rec=None, refit=None, **consumer_args) -> Consumer:
    archive = EventArchive(tmp_path / "archive")
    refit = refit or Refitter(1e9, epochs=3)
    return Consumer(rec or rt.Recommender(**PARAMS), ListSource(entries), tmp_path / "snap", archive=archive,
                    refit=refit, batch_size=37, interval=consumer_args.pop("interval", 1e9), **consumer_args)


def poll_until(consumer: Consumer, condition, limit: int = 200_000) -> None:
    for _ in range(limit):
        if condition():
            return
        consumer.poll(0.0)
    raise AssertionError("condition never held")


def refit_at(consumer: Consumer, learned: int) -> int:
    """Learn up to ``learned`` events, start a refit, and return its cut."""
    poll_until(consumer, lambda: consumer.learned >= learned)
    consumer.refit.start()
    return consumer.learned


def swapped(consumer: Consumer, refits: int = 1) -> None:
    """Let the consumer go on until its refit is swapped in (the thread's timing decides when)."""
    poll_until(consumer, lambda: consumer.refit.refits >= refits or consumer.refit.failures)
    assert consumer.refit.failures == 0


def arrays(entries) -> tuple:
    users = np.array([int(f["user"]) for _, f in entries], dtype=np.int64)
    items = np.array([int(f["item"]) for _, f in entries], dtype=np.int64)
    return users, items, np.array([float(f["ts"]) for _, f in entries])


def test_durations():
    assert [parse_duration(t) for t in ("24h", "15m", "15s", "90d", "2.5", 7)] == \
        [86400.0, 900.0, 15.0, 90 * 86400.0, 2.5, 7.0]
    for bad in ("0", "-5", "abc", "5x", "", "nan", "inf", 0, -1.0, True):
        with pytest.raises(ValueError, match="interval"):
            parse_duration(bad, "the refit interval")
    with pytest.raises(ValueError, match="epochs"):
        Refitter("1h", epochs=0)
    with pytest.raises(ValueError, match="threads"):
        Refitter("1h", threads=0)


def test_a_refit_mid_stream_is_the_offline_replay_bit_for_bit(tmp_path):
    entries = events(4000)
    consumer = start(tmp_path, entries)
    with logged() as lines:
        cut = refit_at(consumer, 1500)
        drain(consumer)
        swapped(consumer)
    drain(consumer)
    consumer.flush()
    assert sum(line.startswith("refit started") for line in lines) == 1
    assert sum(line.startswith("refit swapped in") for line in lines) == 1

    users, items, stamps = arrays(entries)
    offline = rt.Recommender(**PARAMS)
    offline.fit(users[:cut], items[:cut], epochs=3, timestamps=stamps[:cut])
    offline.update(users[cut:], items[cut:], timestamps=stamps[cut:])
    assert consumer.learned == 4000
    assert consumer.model is not None and consumer.model.snapshot_position[0] != 0
    assert model_state(consumer.model) == model_state(offline)


def test_the_refit_differs_from_never_refitting(tmp_path):
    entries = events(2000)
    consumer = start(tmp_path, entries)
    refit_at(consumer, 1000)
    drain(consumer)
    swapped(consumer)
    users, items, stamps = arrays(entries)
    live_only = rt.Recommender(**PARAMS).update(users, items, timestamps=stamps)
    assert model_state(consumer.model) != model_state(live_only)


def test_state_is_carried_across_the_swap(tmp_path):
    entries = events(1200, users=30, items=20)
    entries.insert(300, ("300-5", {"user": "7", "item": "999", "ts": "1000300.5"}))  # item 999 seen once before the cut
    entries.insert(900, ("900-5", {"op": "hide", "items": "[4, 5]"}))
    rec = rt.Recommender(**PARAMS, min_count=2)
    rec.set_item_features([1, 2, 3], [["genre:a"], ["genre:b", "year:1990"], ["genre:a"]])
    rec.set_user_features([7], [["country:fr"]])
    rec.set_item_names([1, 2, 500], ["one", "two", "a catalogue item nobody rated"])
    consumer = start(tmp_path, entries, rec=rec)
    live = consumer.model
    refit_at(consumer, 600)
    drain(consumer)
    swapped(consumer)
    before = consumer.learned
    consumer.source.entries.append(("9999-0", {b"user": b"8", b"item": b"999", b"ts": b"2000000"}))  # seen again
    drain(consumer)
    new = consumer.model
    assert new is not live and new.snapshot_position[0] != live.snapshot_position[0]
    assert new.item_features(2) == ["genre:b", "year:1990"] and new.item_features(3) == ["genre:a"]
    assert new.user_features(7) == ["country:fr"]
    assert new.item_names([1, 2]) == ["one", "two"]
    assert new.hidden([4, 5, 6]).tolist() == [1, 1, 0]
    assert new.user_id_kind == "int" and new.item_id_kind == "int"
    assert new.get_params() == live.get_params()
    assert consumer.learned == before + 1 == 1202
    assert rt.stream.ConsumerState.decode(new.source_position, "memory://log").learned == 1202
    assert 999 in new.item_vectors()[0].tolist()  # its first sighting was counted by the refit


def test_restarts_and_replicas_switch_to_the_swapped_model(tmp_path):
    entries = events(3000)
    consumer = start(tmp_path, entries, interval=0.001)
    poll_until(consumer, lambda: consumer.learned >= 500)
    consumer.flush()
    replica = rt.Replica(tmp_path / "snap", poll_interval=0.005)
    try:
        old_lineage = replica.position[0]
        consumer.refit.start()
        drain(consumer)
        swapped(consumer)
        drain(consumer)
        consumer.flush()
        lineage = consumer.model.snapshot_position[0]
        assert lineage != old_lineage
        assert wait_for(lambda: replica.position == consumer.model.snapshot_position, timeout=10)
        assert np.array_equal(replica.predict([1, 2, 3], [4, 5, 6]), consumer.model.predict([1, 2, 3], [4, 5, 6]))
    finally:
        replica.close()
    restored = restore_latest(tmp_path / "snap", num_threads=1)
    assert restored.snapshot_position == consumer.model.snapshot_position
    assert model_state(restored) == model_state(consumer.model)


def test_a_crash_mid_takeover_restores_the_staged_model(tmp_path):
    old = rt.Recommender(**PARAMS).update([1, 2], [3, 4])
    publisher = Publisher(old, tmp_path, interval=None)
    old.update([5], [6])
    publisher.flush()
    new = rt.Recommender(**PARAMS).fit([1, 2, 5], [3, 4, 6], epochs=2)
    new.save(tmp_path / "staged-snapshot.rtrec")  # staged, then the process died
    assert restore_latest(tmp_path).snapshot_position[0] == new.snapshot_position[0]
    for name in ("delta-00000001.rtrec",):  # died while removing the old lineage's files
        (tmp_path / name).unlink()
    restored = restore_latest(tmp_path, num_threads=1)
    assert restored.snapshot_position[0] == new.snapshot_position[0]
    Publisher(restored, tmp_path, interval=None).close()  # the restart finishes the takeover
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot-00000000.rtrec"]
    assert restore_latest(tmp_path).snapshot_position[0] == new.snapshot_position[0]


def test_a_failing_refit_is_counted_and_retried_while_the_live_model_goes_on(tmp_path):
    entries = events(3000)
    consumer = start(tmp_path, entries, refit=Refitter(1e9, epochs=2, retry_after=0.01))
    poll_until(consumer, lambda: consumer.learned >= 800)
    consumer.flush()
    consumer.archive.rotate(force=True)
    first = archive_files(tmp_path / "archive")[0].path
    good = first.read_bytes()
    first.write_bytes(b"PAR1 this is not a parquet file PAR1")
    live = consumer.model
    with logged() as lines:
        consumer.refit.start()
        poll_until(consumer, lambda: consumer.refit.failures == 1)
    assert consumer.model is live
    assert any(line.startswith("refit failed") and "retrying" in line for line in lines), lines
    first.write_bytes(good)
    poll_until(consumer, lambda: consumer.refit.refits == 1)
    assert consumer.model is not live
    drain(consumer)
    assert consumer.learned == 3000
    consumer.flush()
    assert read_archive(tmp_path / "archive") is not None


def test_refit_metrics(tmp_path):
    pytest.importorskip("prometheus_client")
    from rtrec_native.prometheus import ServerMetrics

    consumer = start(tmp_path, events(1000))
    metrics = ServerMetrics(lambda: consumer.model, consumer=consumer)
    text = metrics.render().decode()
    assert "rtrec_refits_total 0.0" in text and "rtrec_refit_in_progress 0.0" in text
    assert "rtrec_seconds_since_last_refit NaN" in text
    refit_at(consumer, 300)
    assert "rtrec_refit_in_progress 1.0" in metrics.render().decode()
    drain(consumer)
    swapped(consumer)
    text = metrics.render().decode()
    assert "rtrec_refits_total 1.0" in text and "rtrec_refit_failures_total 0.0" in text
    assert "rtrec_refit_in_progress 0.0" in text and "rtrec_seconds_since_last_refit NaN" not in text


def test_the_schedule_survives_a_restart(tmp_path):
    consumer = start(tmp_path, events(500), refit=Refitter(3600, epochs=1))
    refit_at(consumer, 100)
    drain(consumer)
    swapped(consumer)
    consumer.flush()
    last = consumer.refit.last_refit
    again = start(tmp_path, events(500), rec=restore_latest(tmp_path / "snap", num_threads=1),
                  refit=Refitter(3600, epochs=1))
    assert again.refit.last_refit == pytest.approx(last)
    assert again.learned == 500


def test_a_label_missing_among_labels_reads_as_1():
    import pyarrow as pa

    table = pa.table({"user": [1, 2], "item": [3, 4], "label": [0.5, None], "weight": [None, None],
                      "timestamp": [1.0, 2.0]})
    _, _, labels, weights, _ = table_columns(table)
    assert labels.tolist() == [0.5, 1.0] and weights is None


def test_the_archive_columns_feed_update_as_learned(tmp_path):
    consumer = start(tmp_path, events(100))
    drain(consumer)
    consumer.flush()
    consumer.archive.rotate(force=True)
    users, items, labels, weights, stamps = table_columns(read_archive(tmp_path / "archive"))
    assert labels is None and users.dtype == items.dtype == np.int64
    assert stamps.tolist() == [1_000_000.0 + k for k in range(100)]
    assert weights is None  # all 1: learned the same without the column


@pytest.mark.parametrize(("options", "message"), [
    (["--refit-every", "0", "--archive", "A"], "argument --refit-every: a duration must be > 0 seconds, got '0'"),
    (["--refit-every=-5", "--archive", "A"], "argument --refit-every: a duration must be > 0 seconds, got '-5'"),
    (["--refit-every", "soon", "--archive", "A"], "argument --refit-every: a duration must be a number of seconds"),
    (["--refit-every", "1h"], "--refit-every needs --archive DIR"),
    (["--refit-epochs", "3", "--archive", "A"], "--refit-epochs needs --refit-every"),
    (["--archive-days", "3"], "--archive-days needs --archive DIR"),
    (["--archive", "FILE"], "--archive FILE: not a directory"),
    (["--archive", "missing/A"], "--archive missing/A: its parent directory missing does not exist"),
])
def test_bad_refit_options_are_one_line(tmp_path, monkeypatch, capsys, options, message):
    from rtrec_native.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("not a directory")
    code = main(["consume", "--redis", "redis://127.0.0.1:1/0", "--snapshot-dir", "snap", *options])
    err = capsys.readouterr().err
    assert code != 0 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "A").exists()  # nothing was created


def test_a_refit_with_string_ids(tmp_path):
    entries = [(f"{k + 1}-0", {"user": f"u{k % 13}", "item": f"i{k % 11}", "ts": repr(1e6 + k)}) for k in range(900)]
    rec = rt.Recommender(**PARAMS)
    rec.set_item_features(["i1"], [["genre:x"]])
    consumer = start(tmp_path, entries, rec=rec)
    cut = refit_at(consumer, 300)
    drain(consumer)
    swapped(consumer)
    drain(consumer)
    assert consumer.model.item_id_kind == "str" and consumer.model.item_features("i1") == ["genre:x"]
    offline = rt.Recommender(**PARAMS)
    offline.set_item_features(["i1"], [["genre:x"]])
    users = [f["user"] for _, f in entries]
    items = [f["item"] for _, f in entries]
    stamps = np.array([float(f["ts"]) for _, f in entries])
    offline.fit(users[:cut], items[:cut], epochs=3, timestamps=stamps[:cut])
    offline.update(users[cut:], items[cut:], timestamps=stamps[cut:])
    assert model_state(consumer.model) == model_state(offline)
