"""Packed entries: many events in one stream entry, in a compact columnar encoding (version 1).

One event per entry caps any client at the rate it can handle entries (a bare XREADGROUP +
XACK loop in Python: about 200k entries/s). A packed entry carries up to
:data:`MAX_EVENTS` events as columns; the trainer learns them in order, as if they had been
single-event entries one after another. A producer in any language can write one:

===========  =======================================================================
field        value (binary fields are little-endian, without padding or header)
===========  =======================================================================
pack         ``1``: the format version (ASCII). Its presence makes the entry packed.
n            the number of events, ASCII decimal, 1 to 100000
user         integer IDs: n int64
user.str     or text IDs: their UTF-8 bytes concatenated, with
user.len     n uint32: each ID's length in bytes
item         the same three ways (``item``, or ``item.str`` + ``item.len``)
label        optional: n float32
weight       optional: n float32 (default 1 each)
ts           optional: n float64, Unix seconds (default: the entry's own time, each)
type.str     optional (with ``type.len``): each event's type, as ``user.str``
===========  =======================================================================

Every value means what the same value means in a single-event entry (see
:mod:`rtrec_native.stream.entries`): an ID is read as its decimal text would be (``--ids``),
a label must be finite (in [0, 1] for the logistic loss), a weight finite and >= 0, a type one
of the event weights' types.

**One bad event dead-letters the whole entry.** The entry is the unit of the log: it is
acknowledged, dead-lettered and counted once, as a whole. Its copy in the dead-letter stream
says which event was bad (``rtrec.index``, the first bad event's position, -1 when the entry's
structure is wrong) and why (``rtrec.reason``, ``rtrec.error``). A producer that checks its
events (as :class:`~rtrec_native.stream.Producer` does) never writes one; a bad event means a
broken producer, whose other events in that entry are then not trusted either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["MAX_EVENTS", "VERSION", "PackedColumns", "PackedError", "encode", "is_packed"]

VERSION = b"1"
MAX_EVENTS = 100_000
_INT64 = (-(2**63), 2**63 - 1)
_NAMES = frozenset({b"pack", b"n", b"user", b"user.str", b"user.len", b"item", b"item.str", b"item.len", b"label",
                    b"weight", b"ts", b"type.str", b"type.len"})


def is_packed(fields: Any) -> bool:
    """Whether an entry's fields (a mapping, or Redis' flat [name, value, ...] list) are packed."""
    names = fields.keys() if isinstance(fields, Mapping) else fields[0::2]
    return b"pack" in names or "pack" in names


class PackedError(ValueError):
    """A packed entry that cannot be learned: ``reason`` (one of the entry reasons), the
    first bad event's ``index`` (-1: the entry's structure) and a message."""

    def __init__(self, reason: str, message: str, index: int = -1) -> None:
        super().__init__(message if index < 0 else f"event {index}: {message}")
        self.reason, self.index = reason, index


class PackedColumns:
    """A packed entry's columns, checked for structure (values are checked by the parser):
    ``users``/``items`` are int64 arrays or lists of UTF-8 ``bytes`` texts; ``labels``,
    ``weights`` float32 arrays or None; ``timestamps`` float64 or None; ``types`` a list of
    bytes or None."""

    __slots__ = ("items", "labels", "n", "timestamps", "types", "users", "weights")

    def __init__(self, fields: Any) -> None:
        if not isinstance(fields, Mapping):
            fields = dict(zip(fields[0::2], fields[1::2], strict=True))
        fields = {(k if isinstance(k, bytes) else str(k).encode()): v for k, v in fields.items()}
        unknown = set(fields) - _NAMES
        if unknown:
            shown = sorted(k.decode("utf-8", "backslashreplace")[:40] for k in unknown)
            raise PackedError("unknown_field", f"packed entry: unknown fields {shown}")
        if fields.get(b"pack") != VERSION:
            raise PackedError("bad_packed", f"packed entry: version {fields.get(b'pack')!r} is not supported "
                                            f"(this trainer reads version {VERSION.decode()})")
        raw_n = fields.get(b"n", b"")
        if not (raw_n.isdigit() and 1 <= int(raw_n) <= MAX_EVENTS):
            raise PackedError("bad_packed", f"packed entry: n must be 1 to {MAX_EVENTS} events, got {raw_n[:20]!r}")
        self.n = n = int(raw_n)
        self.users = _ids(fields, b"user", n)
        self.items = _ids(fields, b"item", n)
        self.labels = _column(fields, b"label", n, "<f4")
        self.weights = _column(fields, b"weight", n, "<f4")
        self.timestamps = _column(fields, b"ts", n, "<f8")
        self.types = _texts(fields, b"type", n) if b"type.str" in fields or b"type.len" in fields else None


def _column(fields: Mapping[bytes, bytes], name: bytes, n: int, dtype: str) -> np.ndarray | None:
    raw = fields.get(name)
    if raw is None:
        return None
    width = np.dtype(dtype).itemsize
    if len(raw) != n * width:
        raise PackedError("bad_packed", f"packed entry: {name.decode()} must hold {n} x {width} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).astype(dtype[1:])  # native order, writable


def _texts(fields: Mapping[bytes, bytes], name: bytes, n: int) -> list[bytes]:
    blob, lengths = fields.get(name + b".str"), _column(fields, name + b".len", n, "<u4")
    if blob is None or lengths is None:
        raise PackedError("bad_packed", f"packed entry: {name.decode()}.str and {name.decode()}.len come together")
    ends = np.cumsum(lengths, dtype=np.int64)
    if int(ends[-1]) != len(blob):
        raise PackedError("bad_packed", f"packed entry: {name.decode()}.len adds up to {int(ends[-1])} bytes, "
                                        f"{name.decode()}.str holds {len(blob)}")
    starts = (ends - lengths).tolist()
    return [blob[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]


def _ids(fields: Mapping[bytes, bytes], name: bytes, n: int) -> np.ndarray | list[bytes]:
    if name in fields:
        if name + b".str" in fields or name + b".len" in fields:
            raise PackedError("bad_packed", f"packed entry: {name.decode()} comes as int64 or as text, not both")
        column = _column(fields, name, n, "<i8")
        assert column is not None
        return column
    if name + b".str" not in fields and name + b".len" not in fields:
        raise PackedError(f"missing_{name.decode()}", f"packed entry: {name.decode()} IDs are required")
    return _texts(fields, name, n)


# --------------------------------------------------------------------------- writing

def _id_column(values: Sequence[Any], name: str) -> dict[str, bytes]:
    if isinstance(values, np.ndarray) and values.dtype.kind == "i":
        return {name: values.astype("<i8").tobytes()}
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        ints = [int(v) for v in values]
        if min(ints) < _INT64[0] or max(ints) > _INT64[1]:
            raise ValueError(f"{name}: integer IDs must fit in int64")
        return {name: np.array(ints, dtype="<i8").tobytes()}
    texts = []
    for k, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, str, np.integer)):
            raise TypeError(f"event {k}: {name}: expected an int or str ID, got {type(value).__name__}")
        if isinstance(value, str) and not value:
            raise ValueError(f"event {k}: {name}: expected a non-empty ID, got ''")
        if not isinstance(value, str) and not _INT64[0] <= int(value) <= _INT64[1]:
            raise ValueError(f"event {k}: {name}: integer IDs must fit in int64, got {value}")
        text = value if isinstance(value, str) else str(int(value))
        texts.append(text.encode("utf-8", "surrogatepass"))
    return _text_column(texts, name)


def _text_column(texts: list[bytes], name: str) -> dict[str, bytes]:
    return {f"{name}.str": b"".join(texts),
            f"{name}.len": np.array([len(t) for t in texts], dtype="<u4").tobytes()}


def _numbers(values: Sequence[Any], name: str, dtype: str, low: float | None = None,
             high: float | None = None) -> bytes:
    out = []
    for k, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"event {k}: {name}: expected a number, got {type(value).__name__}")
        number = float(value)
        if not math.isfinite(number) or (low is not None and number < low) or (high is not None and number > high):
            bounds = "" if low is None else f" >= {low:g}"
            raise ValueError(f"event {k}: {name}: expected a finite number{bounds}, got {value!r}")
        out.append(number)
    arr = np.array(out, dtype=dtype)
    if not np.isfinite(arr).all():
        k = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"event {k}: {name}: {out[k]!r} does not fit in {np.dtype(dtype).name}")
    return arr.tobytes()


def encode(users: Sequence[Any], items: Sequence[Any], labels: Sequence[Any] | None = None,
           weights: Sequence[Any] | None = None, timestamps: Sequence[Any] | None = None,
           types: Sequence[Any] | None = None) -> dict[str, bytes]:
    """The fields of one packed entry holding these events (1 to :data:`MAX_EVENTS`), every
    value checked (TypeError/ValueError naming the event and field). Integer IDs become an
    int64 column when every ID of the side is an int, text otherwise."""
    n = len(users)
    if not 1 <= n <= MAX_EVENTS:
        raise ValueError(f"a packed entry holds 1 to {MAX_EVENTS} events, got {n}")
    fields: dict[str, bytes] = {"pack": VERSION, "n": str(n).encode()}
    fields.update(_id_column(users, "user"))
    fields.update(_id_column(items, "item"))
    if labels is not None:
        fields["label"] = _numbers(labels, "label", "<f4")
    if weights is not None:
        fields["weight"] = _numbers(weights, "weight", "<f4", low=0.0)
    if timestamps is not None:
        fields["ts"] = _numbers(timestamps, "ts", "<f8")
    if types is not None:
        for k, kind in enumerate(types):
            if not isinstance(kind, str) or not kind:
                raise TypeError(f"event {k}: type: expected a non-empty str, got {kind!r}")
        fields.update(_text_column([t.encode("utf-8", "surrogatepass") for t in types], "type"))
    return fields
