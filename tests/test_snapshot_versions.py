"""Every snapshot format version ever released, written here from frozen bytes: the current
version loads (with exactly the values in the bytes), every older one is refused as
"version N is not supported", never as a corrupted file.

The layouts are those of each version's last form (see `git log -p -- cpp/src/snapshot.cpp`):
1 (single-chain checksums, the trailer over every byte), 2 (lineage, chained deltas,
admission counts), 3 (expiry and evicted keys, then side features), 4 (model families,
update events, source position). A change to what version 4 saves breaks
`test_version_4_loads_with_the_values_in_its_bytes`: bump the version and add the old
layout here as refused (or loaded)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import rtrec_native as rt
from snapshot_bytes import FileBuilder

CURRENT = 4
LINEAGE, DELTA_LINK = 0x1111, 0x2222
SNAPSHOT, DELTA = b"RTRECSNP", b"RTRECDLT"


def _config(f: FileBuilder) -> None:
    """dim 2, squared loss, SGD, 1 negative, learning rate 0.05, l2 0, grad_clip 10,
    init_std 0.1, seed 7 (the fields every version starts with)."""
    f.pack("IIII", 2, 0, 0, 1).pack("ffff", 0.05, 0.0, 10.0, 0.1).pack("Q", 7)


def _counters(f: FileBuilder, updates: int, global_bias: float) -> None:
    """label sum, weight sum, global bias, updates, skipped, calls."""
    f.pack("ddf", 2.0 * global_bias, 2.0, global_bias).pack("QQQ", updates, 0, 1)


def _table(f: FileBuilder, rows: list[tuple[int, float, float, tuple[float, float]]]) -> None:
    """Integer IDs (kind 1; 0 when empty), records of key, update count, last update, bias,
    bias accumulator, vector (dim 2, no accumulators under SGD)."""
    f.pack("II", 1 if rows else 0, len(rows))
    for key, last, bias, vector in rows:
        f.pack("QIdff", key, 1, last, bias, 0.0).pack("2f", *vector)
    f.end_section()


def _seen(f: FileBuilder, lists: list[list[int]]) -> None:
    f.pack("I", len(lists))
    for keys in lists:
        f.pack("I", len(keys)).pack(f"{len(keys)}Q", *keys)
    f.end_section()


def _no_features(f: FileBuilder) -> None:
    for _side in ("user", "item"):
        _table(f, [])  # the feature table
        f.pack("I", 0).end_section()  # no feature lists


def _no_evictions(f: FileBuilder) -> None:
    f.pack("QQI", 0, 0, 0).end_section()


def _no_sketches(f: FileBuilder) -> None:
    f.pack("Q", 0).end_section()


USERS = [(1, 200.0, 0.5, (0.1, 0.2))]
ITEMS = [(10, 100.0, 0.25, (1.0, 2.0)), (20, 200.0, -0.25, (3.0, -1.0))]


def _start(version: int, delta: bool, updates: int = 2, global_bias: float = 4.0) -> FileBuilder:
    """Magic, version, kind, config and counters: how every version's header starts."""
    f = FileBuilder(version)
    f.raw(DELTA if delta else SNAPSHOT).pack("II", version, int(delta))
    _config(f)
    _counters(f, updates, global_bias)
    return f


def _chain(f: FileBuilder, delta: bool) -> None:
    """Lineage, sequence, the link followed (deltas) and the file's own link (versions 2+)."""
    f.pack("QQQQ", LINEAGE, int(delta), LINEAGE if delta else 0, DELTA_LINK if delta else LINEAGE)


def _rows(f: FileBuilder) -> None:
    """The users, items and seen lists of the snapshot (and, as if unchanged, the delta)."""
    _table(f, USERS)
    _table(f, ITEMS)
    _seen(f, [[10]])


def version_1(delta: bool) -> bytes:
    f = _start(1, delta)
    f.pack("QQ", LINEAGE, int(delta))  # base id, sequence
    f.pack("IQI", 0, 0, 0).end_section()  # uniform negatives, empty pool
    _rows(f)
    return f.finish()


def version_2(delta: bool) -> bytes:
    f = _start(2, delta)
    _chain(f, delta)
    f.pack("II", 0, 1)  # uniform negatives, min_count
    f.pack("QI", 0, 0).end_section()  # empty pool
    _rows(f)
    if not delta:
        _no_sketches(f)
    return f.finish()


def version_3(delta: bool, features: bool = True) -> bytes:
    """`features` False: version 3 as first released, before the side-feature sections."""
    f = _start(3, delta)
    _chain(f, delta)
    f.pack("II", 0, 1).pack("dQ", 0.0, 0)  # uniform negatives, min_count, ttl, max_rows
    f.pack("QQd", 0, 0, 200.0)  # evicted users, items, clock
    f.pack("QI", 0, 0).end_section()
    _rows(f)
    if features:
        _no_features(f)
    _no_evictions(f)
    if not delta:
        _no_sketches(f)
    return f.finish()


def _start_4(delta: bool, updates: int, global_bias: float, position: bytes) -> FileBuilder:
    f = _start(4, delta, updates, global_bias)
    f.pack("Q", updates)  # events seen by update
    _chain(f, delta)
    f.pack("II", 0, 1).pack("dQ", 0.0, 0)  # uniform negatives, min_count, ttl, max_rows
    f.pack("QQd", 0, 1 if delta else 0, 300.0 if delta else 200.0)  # evicted users, items, clock
    f.pack("IIfI", 0, 0, 1.0, 0)  # mf: no history, recency 1, no tower layers
    f.pack("I", len(position)).raw(position)  # source position
    f.pack("QI", 0, 0).end_section()  # empty pool
    return f


def version_4(delta: bool) -> bytes:
    """The snapshot: user 1, items 10 and 20, user 1 has seen item 10. The delta (its
    first): item 20 evicted, item 30 new, global bias 5."""
    if not delta:
        f = _start_4(False, 2, 4.0, b"7-0")
        _rows(f)
    else:
        f = _start_4(True, 3, 5.0, b"9-0")
        _table(f, [])
        _table(f, [(30, 300.0, 0.0, (0.0, 1.0))])
        _seen(f, [])
    _no_features(f)
    f.pack("QI", 0, 0).end_section()  # two_tower: no parameters, no histories
    if delta:
        f.pack("QQ", 0, 1).pack("Q", 20).pack("I", 0).end_section()  # item 20 evicted
    else:
        _no_evictions(f)
        _no_sketches(f)
    return f.finish()


RELEASED = {1: version_1, 2: version_2, 3: version_3, 4: version_4}
# Older layouts of a released version (the side features joined version 3 without a bump).
EARLIER_FORMS = {"3-before-features": (3, lambda delta: version_3(delta, features=False))}


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_every_released_version_is_listed():
    assert sorted(RELEASED) == list(range(1, CURRENT + 1))


def test_version_4_loads_with_the_values_in_its_bytes(tmp_path):
    rec = rt.Recommender.load(_write(tmp_path, "v4", version_4(False)), num_threads=1)
    assert (rec.n_users, rec.n_items) == (1, 2)
    # mu + b_u + b_i + <p_u, q_i>: 4 + 0.5 + 0.25 + 0.5, and 4 + 0.5 - 0.25 + 0.1.
    np.testing.assert_allclose(rec.predict([1, 1], [10, 20]), [5.25, 4.35], rtol=1e-6)
    ids, _ = rec.recommend(1, k=5)
    assert ids.tolist() == [20]  # item 10 is in user 1's seen list
    assert rec.stats()["updates"] == 2 and rec.stats()["clock"] == 200.0
    assert rec.source_position == "7-0" and rec.snapshot_position == (LINEAGE, 0)

    rec.apply_delta(_write(tmp_path, "v4.delta", version_4(True)))
    assert rec.n_items == 2 and rec.snapshot_position == (LINEAGE, 1)
    ids, _ = rec.recommend(1, k=5, exclude_seen=False)
    assert sorted(ids.tolist()) == [10, 30]  # 20 evicted, 30 arrived
    np.testing.assert_allclose(rec.predict([1], [30]), [5.0 + 0.5 + 0.0 + 0.2], rtol=1e-6)
    assert rec.source_position == "9-0"


OLDER = {str(v): (v, RELEASED[v]) for v in RELEASED if v != CURRENT} | EARLIER_FORMS


@pytest.mark.parametrize("form", list(OLDER))
@pytest.mark.parametrize("delta", [False, True], ids=["snapshot", "delta"])
def test_older_versions_are_refused_as_not_supported(tmp_path, form, delta):
    version, write = OLDER[form]
    path = _write(tmp_path, f"v{form}", write(delta))
    replica = rt.Recommender.load(_write(tmp_path, "v4", version_4(False)), num_threads=1)
    with pytest.raises(rt.SnapshotError) as info:
        if delta:
            replica.apply_delta(path)
        else:
            rt.Recommender.load(path, num_threads=1)
    message = str(info.value)
    assert re.search(rf"version {version}\b.*not supported", message), message
    assert "corrupt" not in message and "truncated" not in message, message
    assert replica.snapshot_position == (LINEAGE, 0)  # a refused delta changes nothing
