"""Fuzzing snapshot and delta files: corrupted bytes never crash and never load as another
model.

Two kinds of damage, with fixed seeds and budgets:

- raw damage at generated offsets (hypothesis): bit flips, bytes set, truncations, junk
  appended or inserted, ranges deleted, duplicated, zeroed or swapped, another model's
  file spliced in. Loading or applying must raise SnapshotError/DeltaOrderError and leave
  the replica unchanged, or (when the damage happens to be no change at all) give exactly
  the model that was saved;
- damage with the checksums recomputed (the file's sections found by their checksums):
  what a buggy writer or a deliberate forgery could produce, where only the loader's own
  checks stand between the bytes and the model. These run in a child process so that a
  crash is reported (with the file) instead of ending the test run. Each file must be
  refused with a ValueError (SnapshotError/DeltaOrderError), or load into a model that
  works, scores finitely and saves back to the same model.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import rtrec_native as rt  # noqa: E402
from conftest import fingerprint  # noqa: E402
from snapshot_bytes import LANES, checksum, lanes_value, step  # noqa: E402
from test_fuzz_api import DERANDOMIZE, MODEL_KWARGS, SCALE  # noqa: E402

RAW_EXAMPLES = 32 * SCALE     # raw corruptions per file kind, model family and ID kind
FORGED_PER_FILE = 24 * SCALE  # re-checksummed corruptions per file
BIG = 1 << 20           # files over 1 MiB (admission counts: 16 MiB) get a quarter of each budget
CORRUPTED: Counter = Counter()  # files corrupted, by kind (printed by the last test of the module)
REFUSED = (rt.SnapshotError, rt.DeltaOrderError)


def fuzz(data: bytes) -> settings:
    """The example budget for fuzzing `data`: every example writes and reads the whole file."""
    return settings(max_examples=RAW_EXAMPLES if len(data) < BIG else RAW_EXAMPLES // 4, derandomize=DERANDOMIZE,
                    database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])


def _ids(kind: str, values: range) -> list:
    return [f"id-{v}" for v in values] if kind == "str" else list(values)


def _history(model_kwargs: dict, kind: str, directory: Path) -> SimpleNamespace:
    """A model with a bit of everything a file carries (rows, optimizer state, seen items,
    features on both sides, admission counts, evictions), its snapshot and one delta."""
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 12, 60), rng.integers(0, 10, 60)
    labels = (rng.random(60) > 0.4).astype(np.float32)
    rec = rt.Recommender(num_threads=1, seed=1, **model_kwargs)
    stamps = np.arange(60, dtype=np.float64)
    for _ in range(2):  # twice, so that admission (min_count=2) lets the IDs in
        rec.fit(_ids(kind, users), _ids(kind, items), labels, epochs=2, timestamps=stamps)
    rec.set_item_features(_ids(kind, range(3)), [["genre=a"], ["genre=b", "brand=x"], []])
    rec.set_user_features(_ids(kind, range(2)), [["country=fr"], ["country=de", "device=ios"]])
    rec.save(directory / "base")
    base_model = rt.Recommender.load(directory / "base", num_threads=1)
    more = rng.integers(0, 14, 20)
    rec.update(_ids(kind, more), _ids(kind, rng.integers(0, 12, 20)), (rng.random(20) > 0.5).astype(np.float32),
               timestamps=np.full(20, 1000.0))
    rec.evict(older_than=970.0)  # rows not touched since t=30 go: the delta carries evicted IDs
    rec.save_delta(directory / "d1")
    probe_users, probe_items = _ids(kind, range(15)), _ids(kind, range(13))
    other = rt.Recommender(model="mf", dim=3, num_threads=1, seed=2)
    other.fit(_ids(kind, range(5)), _ids(kind, range(5)), [1.0] * 5, epochs=1)
    other.save(directory / "other")
    return SimpleNamespace(
        dir=directory, kind=kind, users=probe_users, items=probe_items,
        snapshot=(directory / "base").read_bytes(), delta=(directory / "d1").read_bytes(),
        other=(directory / "other").read_bytes(),
        base_fp=fingerprint(base_model, probe_users, probe_items),
        other_fp=fingerprint(rt.Recommender.load(directory / "other", num_threads=1), probe_users, probe_items),
        delta_fp=fingerprint(rec, probe_users, probe_items))


@pytest.fixture(scope="module", params=[(m, k) for m in MODEL_KWARGS for k in ("int", "str")],
                ids=[f"{m.id}-{k}" for m in MODEL_KWARGS for k in ("int", "str")])
def files(request, tmp_path_factory) -> SimpleNamespace:
    param, kind = request.param
    return _history(param.values[0], kind, tmp_path_factory.mktemp("files"))


# --------------------------------------------------------------------------- raw damage


class Blob(bytes):
    """Bytes with a short repr: hypothesis prints failing examples, and a 16 MiB repr is
    useless (and, with warnings as errors, an error of its own)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes, sha1 {hashlib.sha1(self).hexdigest()[:12]}>"


@st.composite
def damaged(draw, data: bytes, other: bytes) -> tuple[str, bytes]:
    n = len(data)
    # Offsets near the start (the header and the first rows) half of the time.
    offset = st.one_of(st.integers(0, min(n - 1, 256)), st.integers(0, n - 1))
    how = draw(st.sampled_from(["flip", "set", "truncate", "append", "insert", "delete", "duplicate", "zero",
                                "swap", "splice"]))
    out = bytearray(data)
    if how == "flip":
        for _ in range(draw(st.integers(1, 3))):
            at = draw(offset)
            out[at] ^= 1 << draw(st.integers(0, 7))
    elif how == "set":
        out[draw(offset)] = draw(st.integers(0, 255))
    elif how == "truncate":
        out = out[: draw(offset)]
    elif how == "append":
        out += draw(st.binary(min_size=1, max_size=24))
    elif how == "insert":
        at = draw(offset)
        out[at:at] = draw(st.binary(min_size=1, max_size=24))
    elif how in ("delete", "duplicate", "zero"):
        at, length = draw(offset), draw(st.integers(1, 64))
        if how == "delete":
            del out[at:at + length]
        elif how == "duplicate":
            out[at:at] = data[at:at + length]
        else:
            out[at:at + length] = bytes(len(out[at:at + length]))
    elif how == "swap":
        length = draw(st.integers(1, max(1, min(64, n // 2))))
        a, b = sorted((draw(st.integers(0, n - length)), draw(st.integers(0, n - length))))
        if b - a >= length:
            out[a:a + length], out[b:b + length] = data[b:b + length], data[a:a + length]
    else:  # splice: the start of this file, the rest of another model's
        cut = draw(offset)
        out = bytearray(data[:cut] + other[min(cut, len(other)):])
    return how, Blob(out)


_serial = iter(range(10**9))


def _write(files: SimpleNamespace, data: bytes) -> Path:
    path = files.dir / f"bad-{next(_serial)}"
    path.write_bytes(data)
    return path


def test_a_damaged_snapshot_is_refused_or_is_the_saved_model(files):
    @fuzz(files.snapshot)
    @given(data=st.data())
    def damaged_snapshot(data):
        how, bad = data.draw(damaged(files.snapshot, files.other))
        CORRUPTED[f"snapshot {how}"] += 1
        path = _write(files, bad)
        try:
            loaded = rt.Recommender.load(path, num_threads=1)
        except REFUSED as exc:
            assert any(w in str(exc) for w in ("corrupt", "truncated", "snapshot", "unexpected", "version")), exc
            return
        finally:
            path.unlink()
        if bad == files.other:  # spliced before the first difference: the other model's file, whole
            assert fingerprint(loaded, files.users, files.items) == files.other_fp
            return
        assert bad == files.snapshot, f"{how}: damaged bytes loaded as a model"
        assert fingerprint(loaded, files.users, files.items) == files.base_fp

    damaged_snapshot()


@pytest.fixture(scope="module")
def replica(files):
    """One replica per file set: a refused delta leaves it unchanged, so it is reused."""
    holder = SimpleNamespace(model=None)

    def fresh() -> rt.Recommender:
        (files.dir / "base-copy").write_bytes(files.snapshot)
        holder.model = rt.Recommender.load(files.dir / "base-copy", num_threads=1)
        return holder.model

    holder.fresh = fresh
    fresh()
    return holder


def test_a_damaged_delta_is_refused_and_changes_nothing(files, replica):
    @fuzz(files.delta)
    @given(data=st.data())
    def damaged_delta(data):
        how, bad = data.draw(damaged(files.delta, files.snapshot))
        CORRUPTED[f"delta {how}"] += 1
        path = _write(files, bad)
        before = fingerprint(replica.model, files.users, files.items)
        try:
            replica.model.apply_delta(path)
        except REFUSED:
            assert fingerprint(replica.model, files.users, files.items) == before
            return
        finally:
            path.unlink()
        assert bad == files.delta, f"{how}: a damaged delta was applied"
        assert fingerprint(replica.model, files.users, files.items) == files.delta_fp
        replica.fresh()  # back to the base for the next example

    damaged_delta()


# --------------------------------------------------------------------------- forged files


def sections(data: bytes, scan_limit: int = 1 << 16) -> list[tuple[int, int]]:
    """(start, end) of each checksummed section, found by where its checksum matches; the
    8-byte checksum is at `end`. The file ends with the end magic and the trailer (16 bytes).
    A section longer than `scan_limit` can only be the last (admission counts)."""
    last_end = len(data) - 24
    out, start = [], 0
    while start < last_end:
        lanes, end = list(LANES), last_end
        for p in range(start, min(last_end, start + scan_limit) + 1):
            k = p - start
            if k and k % 8 == 0:
                i = k // 8 - 1
                lanes[i & 3] = step(lanes[i & 3], int.from_bytes(data[p - 8:p], "little"))
            pending = int.from_bytes(data[start + (k // 8) * 8:p], "little")
            if lanes_value(lanes, pending, k) == int.from_bytes(data[p:p + 8], "little"):
                end = p
                break
        out.append((start, end))
        start = end + 8
    return out


def reseal(data: bytearray, spans: list[tuple[int, int]], dirty: set[int] | None = None) -> bytes:
    """Recompute the checksums of the `dirty` sections (all when None) and the trailer,
    which covers the section checksums and the end magic. (Only what changed: a Python
    checksum of the 16 MiB admission section takes a second.)"""
    sums = bytearray()
    for i, (start, end) in enumerate(spans):
        if dirty is None or i in dirty:
            data[end:end + 8] = checksum(bytes(data[start:end])).to_bytes(8, "little")
        sums += data[end:end + 8]
    sums += data[-16:-8]
    data[-8:] = checksum(bytes(sums)).to_bytes(8, "little")
    return bytes(data)


def test_the_checksum_reimplementation_matches_the_format(files):
    for data in (files.snapshot, files.delta):
        spans = sections(data)
        small = {i for i, (start, end) in enumerate(spans) if end - start < 1 << 20}
        assert len(spans) >= 8 and reseal(bytearray(data), spans, small) == data


FIELD_VALUES = [b"\x00" * 4, b"\xff" * 4, b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", struct.pack("<f", float("nan")),
                struct.pack("<f", float("inf")), struct.pack("<f", -1.0), struct.pack("<f", 3e38), b"\x01\x00\x00\x00",
                b"\x00" * 8, b"\xff" * 8, struct.pack("<d", float("nan")), struct.pack("<d", float("-inf")),
                struct.pack("<Q", 2**63), struct.pack("<Q", 1)]


def forge(data: bytes, spans: list[tuple[int, int]], rng: np.random.Generator) -> tuple[str, bytes]:
    """One structural change inside the sections of `data` (whose sections are `spans`),
    checksums recomputed."""
    out = bytearray(data)
    how = str(rng.choice(["field", "flip", "cut", "grow", "swap-sections", "drop-section"]))
    target = int(rng.integers(len(spans)))
    dirty: set[int] | None = {target}
    start, end = spans[target]
    if end <= start:
        how = "swap-sections"
    if how == "field":
        value = FIELD_VALUES[int(rng.integers(len(FIELD_VALUES)))]
        at = start + 4 * int(rng.integers(max(1, (end - start - len(value)) // 4 + 1)))
        out[at:at + len(value)] = value[: max(0, end - at)]
    elif how == "flip":
        at = int(rng.integers(start, end))
        out[at] ^= 1 << int(rng.integers(8))
    elif how in ("cut", "grow"):
        at = int(rng.integers(start, end + 1))
        length = int(rng.integers(1, 17))
        if how == "cut":
            length = min(length, end - at)
            del out[at:at + length]
        else:
            out[at:at] = bytes(rng.integers(0, 256, length, dtype=np.uint8))
        spans = [(s, e) if e < at else ((s, e - length) if how == "cut" else (s, e + length)) if s <= at else
                 ((s - length, e - length) if how == "cut" else (s + length, e + length)) for s, e in spans]
    else:
        i, j = sorted(int(x) for x in rng.choice(len(spans), 2, replace=False))
        pieces = [bytes(data[s:e + 8]) for s, e in spans]
        if how == "drop-section":
            del pieces[j]
        else:
            pieces[i], pieces[j] = pieces[j], pieces[i]
        body = b"".join(pieces)
        out = bytearray(body + data[-16:])
        spans, pos = [], 0
        for piece in pieces:
            spans.append((pos, pos + len(piece) - 8))
            pos += len(piece)
        dirty = set()  # whole sections moved with their checksums: only the trailer changes
    return how, reseal(out, spans, dirty)


WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import rtrec_native as rt

    def probe(model, users, items):
        out = {}
        scores = model.predict(users * len(items), [i for i in items for _ in users])
        ids, top = model.recommend(users[0], k=1000)
        batch_ids, batch = model.recommend_batch(users, k=5)
        stats = model.stats()
        out["finite"] = bool(np.isfinite(scores).all() and np.isfinite(top).all()
                             and np.isfinite(batch[~np.isnan(batch)]).all() and np.isfinite(stats["global_bias"]))
        out["fp"] = [scores.tolist(), [ids.tolist(), top.tolist()], stats["n_users"], stats["n_items"],
                     stats["updates"]]
        return out

    job = json.load(open(sys.argv[1]))
    replica = None  # a refused delta changes nothing (the raw-damage tests check that), so it is reused
    for task in job["tasks"]:
        print(json.dumps({"begin": task["file"]}), flush=True)  # the last one begun is the one that crashed
        result = {"file": task["file"]}
        try:
            if task["kind"] == "snapshot":
                model = rt.Recommender.load(task["file"], num_threads=1)
            else:
                if replica is None:
                    replica = rt.Recommender.load(job["base"], num_threads=1)
                model = replica
                replica.apply_delta(task["file"])
                replica = None  # applied: the next delta starts from the base again
        except Exception as exc:
            result.update(outcome="refused", type=type(exc).__name__, valueerror=isinstance(exc, ValueError),
                          message=str(exc)[:200])
        else:
            try:
                first = probe(model, job["users"], job["items"])
                model.save(task["file"] + ".again")
                again = probe(rt.Recommender.load(task["file"] + ".again", num_threads=1), job["users"], job["items"])
                # Compared as JSON text, so that a NaN equals itself.
                result.update(outcome="loaded", finite=first["finite"],
                              stable=json.dumps(first["fp"]) == json.dumps(again["fp"]))
            except Exception as exc:
                result.update(outcome="broken", type=type(exc).__name__, message=str(exc)[:200])
        print(json.dumps(result), flush=True)
""")


def test_forged_files_are_refused_or_load_a_working_model(files):
    seed = 14 if DERANDOMIZE else int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    tasks = []
    for kind, data in (("snapshot", files.snapshot), ("delta", files.delta)):
        spans = sections(data)
        # Fewer with a 16 MiB snapshot (admission counts): each costs loads and a save of it.
        for n in range(FORGED_PER_FILE if len(files.snapshot) < BIG else FORGED_PER_FILE // 4):
            how, forged = forge(data, spans, rng)
            path = files.dir / f"forged-{kind}-{n}-{how}"
            path.write_bytes(forged)
            tasks.append({"file": str(path), "kind": kind})
            CORRUPTED[f"forged {kind} {how}"] += 1
    (files.dir / "base-for-worker").write_bytes(files.snapshot)
    job = files.dir / "job.json"
    job.write_text(json.dumps({"tasks": tasks, "base": str(files.dir / "base-for-worker"),
                               "users": files.users[:6], "items": files.items[:6]}))
    proc = subprocess.run([sys.executable, "-c", WORKER, str(job)], capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    begun = [line["begin"] for line in lines if "begin" in line]
    assert proc.returncode == 0, f"the loader crashed (exit {proc.returncode}, forging seed {seed}) on " \
                                 f"{begun[-1] if begun else '?'}:\n" \
                                 f"{proc.stderr[-2000:]}"
    results = [line for line in lines if "outcome" in line]
    assert len(results) == len(tasks)
    wrong = [r for r in results if (r["outcome"] == "refused" and not r["valueerror"]) or r["outcome"] == "broken"
             or (r["outcome"] == "loaded" and not r["stable"])]
    assert not wrong, f"forging seed {seed}: " + json.dumps(wrong, indent=1)
    # A forged non-finite parameter is refused (test_a_file_with_a_non_finite_parameter_is_refused).
    CORRUPTED["forged, loaded with non-finite scores"] += sum(r["outcome"] == "loaded" and not r["finite"]
                                                              for r in results)


def test_a_file_with_a_non_finite_parameter_is_refused(tmp_path):
    rec = rt.Recommender(model="mf", dim=4, loss="squared", optimizer="sgd", num_threads=1, seed=0)
    rec.fit([1, 2, 3], [4, 5, 6], [1.0, 2.0, 3.0], epochs=1)
    rec.save(tmp_path / "m")
    data = (tmp_path / "m").read_bytes()
    spans = sections(data)
    _, end = spans[1]  # the users' rows: key, count, time, bias, ..., vector (floats)
    forged = bytearray(data)
    forged[end - 4:end] = struct.pack("<f", float("nan"))  # the last user's last vector coordinate
    (tmp_path / "forged").write_bytes(reseal(forged, spans))
    with pytest.raises(rt.SnapshotError):
        loaded = rt.Recommender.load(tmp_path / "forged", num_threads=1)
        assert np.isfinite(loaded.predict([1, 2, 3], [4, 5, 6])).all()  # what happens instead


def test_zz_report_counts():
    """Not a check: the number of files corrupted, for the record (-s shows it)."""
    print(f"\nfiles corrupted: {sum(CORRUPTED.values())} ({dict(sorted(CORRUPTED.items()))})")
