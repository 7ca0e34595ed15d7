"""The trainer learns whole read batches: parsed in bulk (dead letters mixed in), packed
entries alike, exactly as entry by entry; the log trimmed behind every group; the lag figures;
a stream lost while the trainer runs."""

from __future__ import annotations

import contextlib
import json
import time

import numpy as np
import pytest

import rtrec_native as rt
from conftest import model_state
from rtrec_native.stream import Consumer, EntryParser, Producer, RedisStreamSource, encode_packed
from rtrec_native.stream.bulk import BulkParser
from rtrec_native.stream.entries import EntryError
from rtrec_native.stream.packed import PackedColumns, PackedError
from test_stream import logged

try:
    import redis
except ImportError:  # the redis_url fixture skips (in CI: fails) and says why
    redis = None

STREAM = "rtrec:events"


def mixed_entries(n: int, seed: int = 0) -> tuple[list[dict], int]:
    """Single-event entries of several layouts, packed entries and malformed entries of every
    kind, shuffled. Returns (entries, how many are malformed)."""
    rng = np.random.default_rng(seed)
    good = []
    for k in range(n):
        u, i = str(rng.integers(0, 80)), str(rng.integers(0, 120))
        layout = k % 5
        if layout == 0:
            good.append({"user": u, "item": i})
        elif layout == 1:
            good.append({"item": i, "user": u, "weight": f"{rng.uniform(0, 3):.3f}"})
        elif layout == 2:
            good.append({"user": u, "item": i, "label": f"{rng.uniform(-1, 2):.4g}", "ts": f"{1.7e9 + k:.2f}"})
        else:
            good.append({"user": u, "item": i})
    bad = [{"user": "1"}, {"user": "x", "item": "2"}, {"user": "1", "item": "2", "label": "five"},
           {"user": "1", "item": "2", "weight": "-1"}, {"user": "1", "item": "2", "color": "red"},
           {"user": "99999999999999999999", "item": "1"}, {"user": "1", "item": "2", "ts": "nan"},
           {"user": b"\xff\xfe", "item": "2"}, {"user": "1", "item": "2", "label": "1e999"},
           {"user": "", "item": "2"}]
    packed = [encode_packed(rng.integers(0, 80, 30), rng.integers(0, 120, 30)),
              encode_packed(rng.integers(0, 80, 5).tolist(), [str(v) for v in rng.integers(0, 120, 5)],
                            weights=[0.5] * 5, timestamps=[1.7e9] * 5),
              {**encode_packed([1, 2, 3], [4, 5, 6]), "weight": np.array([1, -1, 1], "<f4").tobytes()}]  # bad
    entries = good[:]
    for entry in bad + packed:
        entries.insert(int(rng.integers(1, len(entries))), entry)
    return entries, len(bad) + 1


def reference(url: str, family: str = "mf", stream: str = STREAM) -> rt.Recommender:
    """The stream learned entry by entry: a single-event entry with update_one, a packed one
    with update of its events."""
    rec = rt.Recommender(model=family, dim=8, num_threads=1, seed=0)
    parser = EntryParser(rec.get_params()["loss"], user_kind=lambda: rec.user_id_kind,
                         item_kind=lambda: rec.item_id_kind)
    bulk = BulkParser(parser)
    for entry_id, fields in redis.Redis.from_url(url).xrange(stream):
        try:
            if b"pack" in fields:
                piece = bulk.packed(entry_id.decode(), fields)
                rec.update(piece.users, piece.items, piece.labels, piece.weights, piece.timestamps)
            else:
                rec.update_one(*parser.parse(entry_id.decode(), fields))
        except ValueError:
            pass
    return rec


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batches_with_dead_letters_mixed_in_learn_exactly_entry_by_entry(redis_url, tmp_path, batch_size):
    entries, n_bad = mixed_entries(600)
    ids = Producer(redis_url, STREAM).send_fields(entries)
    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0)
    consumer = Consumer(rec, RedisStreamSource(redis_url, STREAM, "g"), tmp_path, batch_size=batch_size)
    consumer.run(idle_exit=0.3)
    assert consumer.dead == n_bad and consumer.learned == 600 + 30 + 5
    assert model_state(rec) == model_state(reference(redis_url))
    r = redis.Redis.from_url(redis_url)
    dead = {d[0].decode(): d[1] for d in r.xrange(STREAM + ":dead")}
    assert len(dead) == n_bad and set(dead) <= set(ids)
    reasons = sorted(d[b"rtrec.reason"].decode() for d in dead.values())
    assert reasons == sorted(["missing_item", "bad_user", "bad_label", "bad_weight", "unknown_field", "bad_user",
                              "bad_timestamp", "bad_user", "bad_label", "missing_user", "bad_weight"])
    assert r.xpending(STREAM, "g")["pending"] == 0


def test_the_bulk_parser_gives_what_the_entry_parser_gives():
    parser = EntryParser("squared", user_kind=lambda: "int", item_kind=lambda: "str")
    raw = [[b"1700000000000-%d" % k, [b"user", str(k).encode(), b"item", b"sku-%d" % k, b"label", b"%d.5" % k]]
           for k in range(50)]
    raw[10][1][1] = b"not-int"          # a user of the wrong kind
    raw[20][1] = [b"user", b"3", b"item", b"a", b"label", b"2", b"weight", b"0.5"]   # another layout
    raw[30][1][5] = b"1e400"            # a label beyond float64
    raw[40][1][1] = b"9223372036854775807"  # 19 digits, still an int64
    parsed = BulkParser(parser).parse(raw)
    assert [(k, e.reason) for k, e in parsed.failures] == [(10, "bad_user"), (30, "bad_label")]
    expected = []
    for entry_id, fields in raw:
        with contextlib.suppress(EntryError):
            expected.append(parser.parse(entry_id.decode(), dict(zip(fields[0::2], fields[1::2], strict=True))))
    users, items, labels, weights, stamps = parsed.columns
    assert users.tolist() == [e[0] for e in expected] and items == [e[1] for e in expected]
    assert labels.tolist() == [np.float32(e[2]) for e in expected]
    assert weights.tolist() == [np.float32(e[3]) for e in expected] and stamps.tolist() == [e[4] for e in expected]
    assert parsed.bounds[11] - parsed.bounds[10] == 0 and parsed.n == 48


@pytest.mark.parametrize("family", ["mf", "two_tower"])
def test_packed_entries_learn_like_the_same_events_one_per_entry(redis_url, tmp_path, family):
    rng = np.random.default_rng(3)
    n = 1050
    users, items = rng.integers(0, 200, n), rng.integers(0, 150, n)
    weights, stamps = rng.uniform(0.1, 2, n).astype(np.float32), 1.7e9 + np.arange(n) * 0.5
    ids = Producer(redis_url, "packed", pack=100).send_many(users, items, weights=weights.tolist(),
                                                            timestamps=stamps.tolist())
    assert len(ids) == 11  # ceil(1050 / 100) entries
    Producer(redis_url, "single").send_many(users, items, weights=weights.tolist(), timestamps=stamps.tolist())
    models = []
    for stream, batch in (("packed", 3), ("single", 64)):
        rec = rt.Recommender(model=family, dim=8, num_threads=1, seed=0)
        consumer = Consumer(rec, RedisStreamSource(redis_url, stream, "g"), tmp_path / stream, batch_size=batch)
        consumer.run(idle_exit=0.3)
        assert consumer.learned == n and consumer.dead == 0
        models.append(rec)
    assert model_state(models[0]) == model_state(models[1])


def test_one_bad_event_dead_letters_its_whole_packed_entry_with_its_index(redis_url, tmp_path):
    bad = encode_packed([1, 2, 3, 4], [5, 6, 7, 8])
    bad["weight"] = np.array([1, 1, np.nan, 1], dtype="<f4").tobytes()
    Producer(redis_url, STREAM).send_fields([encode_packed([1, 2], [3, 4]), bad, encode_packed([5], [6])])
    consumer = Consumer(rt.Recommender(model="mf",
                                       dim=8, num_threads=1), RedisStreamSource(redis_url, STREAM, "g"), tmp_path)
    consumer.run(idle_exit=0.3)
    assert (consumer.learned, consumer.dead) == (3, 1)
    (_, copy), = redis.Redis.from_url(redis_url).xrange(STREAM + ":dead")
    assert copy[b"rtrec.reason"] == b"bad_weight" and copy[b"rtrec.index"] == b"2"
    assert copy[b"rtrec.error"].startswith(b"event 2: weight") and copy[b"weight"] == bad["weight"]


def test_the_packed_encoding_refuses_a_wrong_structure():
    fields = encode_packed([1, 2], ["a", "b"], labels=[1.0, 0.0], types=["view", "buy"])
    assert set(fields) == {"pack", "n", "user", "item.str", "item.len", "label", "type.str", "type.len"}
    cols = PackedColumns(fields)
    assert cols.users.tolist() == [1, 2] and cols.items == [b"a", b"b"] and cols.types == [b"view", b"buy"]
    for change, reason in (({"pack": b"2"}, "bad_packed"), ({"n": b"3"}, "bad_packed"),
                           ({"label": b"\x00" * 7}, "bad_packed"), ({"item.len": np.array([1, 5], "<u4").tobytes()},
                                                                    "bad_packed"),
                           ({"extra": b"1"}, "unknown_field"), ({"user": b"", "user.str": b"x"}, "bad_packed")):
        with pytest.raises(PackedError) as err:
            PackedColumns({**fields, **change})
        assert err.value.reason == reason
    with pytest.raises(ValueError, match="event 1: weight: expected a finite number >= 0"):
        encode_packed([1, 2], [3, 4], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="pack"):
        Producer.__init__(object.__new__(Producer), "redis://127.0.0.1:1/0", pack=0)


def test_trimming_keeps_what_any_group_still_needs(redis_url, tmp_path):
    ids = Producer(redis_url, STREAM).send_many(list(range(3000)), [k % 50 for k in range(3000)])
    r = redis.Redis.from_url(redis_url)
    r.xgroup_create(STREAM, "slow", id="0")  # another reader: read 1000, acknowledged 600
    read = r.xreadgroup("slow", "s", {STREAM: ">"}, count=1000)[0][1]
    r.xack(STREAM, "slow", *[entry_id for entry_id, _ in read[:600]])
    consumer = Consumer(rt.Recommender(model="mf",
                                       dim=8, num_threads=1), RedisStreamSource(redis_url, STREAM, "trainers"),
                        tmp_path, trim=True, trim_interval=0.01)
    consumer.run(idle_exit=0.3)
    assert consumer.learned == 3000
    assert r.xrange(STREAM, count=1)[0][0].decode() == ids[600]  # the slow group's oldest pending entry
    assert r.xlen(STREAM) == 2400 and consumer.trimmed == 600
    r.xack(STREAM, "slow", *[entry_id for entry_id, _ in read[600:]])
    r.xgroup_destroy(STREAM, "slow")
    Producer(redis_url, STREAM).send(1, 2)
    consumer.run(idle_exit=0.3)
    assert r.xlen(STREAM) == 0 and consumer.learned == 3001  # all acknowledged: all gone


def test_entries_learned_but_not_durable_are_never_trimmed(redis_url, tmp_path):
    Producer(redis_url, STREAM).send_many(list(range(500)), list(range(500)))
    consumer = Consumer(rt.Recommender(model="mf",
                                       dim=8, num_threads=1), RedisStreamSource(redis_url, STREAM, "trainers"),
                        tmp_path, trim=True, trim_interval=0.01, interval=3600, batch_size=100)
    consumer.poll()
    consumer.flush()  # 100 durable and acknowledged
    consumer.poll()   # 100 more learned, not durable
    time.sleep(0.02)
    consumer.source.trim()
    assert redis.Redis.from_url(redis_url).xlen(STREAM) == 400


def test_the_dead_letter_stream_is_capped(redis_url, tmp_path):
    Producer(redis_url, STREAM).send_fields([{"user": "1"}] * 1000)
    source = RedisStreamSource(redis_url, STREAM, "g", dead_maxlen=10)
    consumer = Consumer(rt.Recommender(model="mf", dim=8, num_threads=1), source, tmp_path)
    consumer.run(idle_exit=0.3)
    assert consumer.dead == 1000
    kept = redis.Redis.from_url(redis_url).xlen(STREAM + ":dead")
    assert 10 <= kept < 1000  # about 10: Redis drops whole blocks of entries


def test_lag_in_entries_and_seconds_rate_and_delta_age(redis_url, tmp_path):
    Producer(redis_url, STREAM).send_many(list(range(500)), list(range(500)))
    time.sleep(0.05)
    consumer = Consumer(rt.Recommender(model="mf",
                                       dim=8, num_threads=1), RedisStreamSource(redis_url, STREAM, "g"), tmp_path,
                        batch_size=100)
    behind = consumer.stats()
    assert behind["lag_entries"] == 500 and behind["lag_seconds"] >= 0.05
    assert behind["events_per_second"] == 0.0
    consumer.poll()
    assert consumer.stats()["lag_entries"] == 400
    consumer.run(idle_exit=0.3)
    caught_up = consumer.stats()
    assert caught_up["lag_entries"] == 0 and caught_up["lag_seconds"] == 0.0
    assert caught_up["events_per_second"] > 0
    assert 0 <= caught_up["seconds_since_last_delta"] < behind["lag_seconds"] + 60
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    from rtrec_native.prometheus import ServerMetrics

    text = ServerMetrics(lambda: consumer.model, consumer=consumer).render().decode()
    gauges = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert gauges["rtrec_stream_lag_entries"] == 0 and gauges["rtrec_stream_lag_seconds"] == 0
    assert gauges["rtrec_events_learned_per_second"] > 0 and gauges["rtrec_seconds_since_last_delta"] >= 0


def test_a_stream_lost_while_running_is_said_once_and_nothing_is_learned_twice(redis_url, tmp_path):
    Producer(redis_url, STREAM).send_many(list(range(100)), list(range(100)))
    consumer = Consumer(rt.Recommender(model="mf",
                                       dim=8, num_threads=1), RedisStreamSource(redis_url, STREAM, "trainers"),
                        tmp_path)
    consumer.run(idle_exit=0.3)
    r = redis.Redis.from_url(redis_url)
    r.flushall()  # Redis came back without persistence
    with logged("rtrec_native.stream") as lines:
        consumer.poll(timeout=0.05)
        Producer(redis_url, STREAM).send_many(list(range(100, 150)), list(range(100, 150)))
        consumer.run(idle_exit=0.3)
    lost = [line for line in lines if "was lost" in line]
    assert len(lost) == 1 and "keeps the 100 events it learned" in lost[0]
    assert consumer.learned == 150 and consumer.model.n_users == 150
    assert r.xpending(STREAM, "trainers")["pending"] == 0


def test_rtrec_consume_trims_by_default_and_keeps_everything_with_no_trim(redis_url, tmp_path, capsys):
    from rtrec_native.cli import main

    r = redis.Redis.from_url(redis_url)
    for stream, extra, left in (("trimmed", [], 0), ("kept", ["--no-trim"], 300)):
        Producer(redis_url, stream, pack=100).send_many(list(range(300)), list(range(300)))
        Producer(redis_url, stream).send_many(list(range(300)), list(range(300)))
        assert main(["consume", "--redis", redis_url, "--stream", stream, "--snapshot-dir", str(tmp_path / stream),
                     "--idle-exit", "0.3", "--dim", "8", "--log-level", "error", "--json", *extra]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["learned"] == 600 and summary["lag_entries"] == 0 and summary["lag_seconds"] == 0
        assert r.xlen(stream) == left + (3 if extra else 0)


def test_an_acknowledgement_lost_with_its_connection_is_sent_again(redis_url, tmp_path):
    Producer(redis_url, STREAM).send_many(list(range(300)), list(range(300)))
    source = RedisStreamSource(redis_url, STREAM, "g")
    consumer = Consumer(rt.Recommender(model="mf",
                                       dim=8, num_threads=1), source, tmp_path, batch_size=100, interval=3600)
    consumer.poll()
    consumer.flush()  # the XACK of 100 entries is sent; its answer is not read yet
    conn, sent, _ = source._acking
    conn.disconnect()  # the connection goes before the answer is read
    consumer.poll()
    with pytest.raises(redis.exceptions.ConnectionError):
        consumer.flush()  # the next commit finds the answer lost: both acknowledgements wait
    assert source._reack[:100] == sent and len(source._reack) == 200
    consumer.run(idle_exit=0.3)
    assert consumer.learned == 300 and source._reack == []
    assert redis.Redis.from_url(redis_url).xpending(STREAM, "g")["pending"] == 0


def test_entries_whose_read_reply_was_lost_are_read_again_and_learned_once(redis_url, tmp_path):
    Producer(redis_url, STREAM).send_many(list(range(300)), [k % 40 for k in range(300)])
    source = RedisStreamSource(redis_url, STREAM, "g")
    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0)
    consumer = Consumer(rec, source, tmp_path, batch_size=100)
    consumer.poll()  # 100 learned; the next read is already sent: Redis delivered 100 more to the group
    source._prefetch.disconnect()  # and its reply is lost with the connection
    with pytest.raises(redis.exceptions.ConnectionError):
        consumer.poll()
    consumer.run(idle_exit=0.3)
    assert consumer.learned == 300 and rec.n_users == 300
    assert model_state(rec) == model_state(reference(redis_url))
    assert redis.Redis.from_url(redis_url).xpending(STREAM, "g")["pending"] == 0
