"""The producer helper: events in, stream entries out (``XADD <stream> * user U item I ...``,
or packed entries of up to ``pack`` events each: :mod:`rtrec_native.stream.packed`)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _validation as check
from ._redis import connect
from .entries import control_fields
from .packed import MAX_EVENTS, encode
from .partitions import MAX_PARTITIONS, partition_of

__all__ = ["Producer"]

_INT64 = (-(2**63), 2**63 - 1)


def _id_text(value: Any, name: str) -> str:
    if isinstance(value, bool) or (not isinstance(value, (int, str)) and not hasattr(value, "__index__")):
        raise TypeError(f"{name}: expected an int or str ID, got {type(value).__name__}")
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{name}: expected a non-empty ID, got ''")
        return value
    value = int(value)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{name}: integer IDs must fit in int64, got {value}")
    return str(value)


def _number_text(value: Any, name: str, low: float | None = None) -> str:
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or (low is not None and number < low):
        raise ValueError(f"{name}: expected a finite number{f' >= {low:g}' if low is not None else ''}, got {value!r}")
    return repr(number) if not isinstance(value, int) else str(value)


class Producer:
    """Writes feedback events to a Redis stream for ``rtrec consume``.

    ``send`` / ``send_many`` check every value first (nothing is written when one is bad:
    TypeError/ValueError naming it), then XADD the entries, pipelined: one round trip per
    ``chunk`` entries. With ``pack=1`` (the default) each event is one entry of text fields;
    with ``pack=N``, ``send_many`` writes ⌈n/N⌉ packed entries of up to N events each (a
    compact columnar encoding, :mod:`rtrec_native.stream.packed`), which the trainer learns
    like the same events one per entry, at a fraction of the cost per event.

    Args:
        redis: a URL (``redis://127.0.0.1:6379/0``) or a ``redis.Redis`` client.
        stream: the stream's key.
        maxlen: trim the stream to about this many entries on each write (None: never). Trim
            only well beyond what the trainer lags by: a trimmed entry is never learned
            (``rtrec consume`` trims what it has made durable by itself).
        pack: most events per entry (1 to 100000).
        partitions: split the events over this many streams by user, ``<stream>:0`` to
            ``<stream>:<partitions - 1>``, each event to the stream of
            :func:`~rtrec_native.stream.partition_of` its user (the rule any producer in any
            language can follow); control entries (``send_hide``) go to every one. None or 1:
            the one stream ``stream``.
    """

    def __init__(self, redis: Any, stream: str = "rtrec:events", maxlen: int | None = None, pack: int = 1,
                 partitions: int | None = None) -> None:
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream: expected a non-empty name, got {stream!r}")
        if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1):
            raise ValueError(f"maxlen: expected an int >= 1 or None, got {maxlen!r}")
        if isinstance(pack, bool) or not isinstance(pack, int) or not 1 <= pack <= MAX_EVENTS:
            raise ValueError(f"pack: expected an int from 1 to {MAX_EVENTS} (events per entry), got {pack!r}")
        if partitions is not None:
            partitions = check.positive_int(partitions, "partitions", high=MAX_PARTITIONS)
        self._r = connect(redis)
        self.stream, self._maxlen, self.pack = stream, maxlen, pack
        self.partitions = partitions if partitions is not None and partitions > 1 else None

    def stream_of(self, user: int | str) -> str:
        """The stream an event of ``user`` goes to: the partition of the user as the trainer
        reads the entry's text (``--ids auto``, the default: "123" is the integer ID 123)."""
        if self.partitions is None:
            return self.stream
        return f"{self.stream}:{self._partition_of_text(_id_text(user, 'user'))}"

    def _streams(self) -> list[str]:
        if self.partitions is None:
            return [self.stream]
        return [f"{self.stream}:{p}" for p in range(self.partitions)]

    @staticmethod
    def fields(user: int | str, item: int | str, label: float | None = None, weight: float | None = None,
               ts: float | None = None, type: str | None = None) -> dict[str, str]:
        """The entry's fields for one event, checked."""
        out = {"user": _id_text(user, "user"), "item": _id_text(item, "item")}
        if label is not None:
            out["label"] = _number_text(label, "label")
        if weight is not None:
            out["weight"] = _number_text(weight, "weight", low=0.0)
        if ts is not None:
            out["ts"] = _number_text(ts, "ts")
        if type is not None:
            if not isinstance(type, str) or not type:
                raise TypeError(f"type: expected a non-empty str, got {type!r}")
            out["type"] = type
        return out

    def send(self, user: int | str, item: int | str, label: float | None = None, weight: float | None = None,
             ts: float | None = None, type: str | None = None) -> str:
        """Append one event; returns its entry ID."""
        fields = self.fields(user, item, label, weight, ts, type)
        entry = self._r.xadd(self.stream_of(user), fields, maxlen=self._maxlen, approximate=True)
        return entry.decode()

    def send_many(self, users: Sequence[Any], items: Sequence[Any], labels: Sequence[Any] | None = None,
                  weights: Sequence[Any] | None = None, timestamps: Sequence[Any] | None = None,
                  types: Sequence[Any] | None = None, chunk: int = 1000) -> list[str]:
        """Append many events in order (parallel sequences, as ``Recommender.update`` takes
        them); returns the IDs of the entries written (one per event, or with ``pack`` one per
        up to ``pack`` events). Every event is checked before the first is sent."""
        n = len(users)
        columns = {"items": items, "labels": labels, "weights": weights, "timestamps": timestamps, "types": types}
        for name, values in columns.items():
            if values is not None and len(values) != n:
                raise ValueError(f"{name}: expected {n} values like users, got {len(values)}")
        if self.partitions is not None:
            return self._send_partitioned(users, columns, chunk)
        if self.pack > 1:
            packed = []
            for start in range(0, n, self.pack):
                end = min(start + self.pack, n)
                try:
                    packed.append(encode(*(None if v is None else v[start:end]
                                           for v in (users, items, labels, weights, timestamps, types))))
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"events {start}-{end - 1}: {exc}") from None
            return self.send_fields(packed, chunk=max(1, chunk // self.pack))

        def at(values: Sequence[Any] | None, k: int) -> Any:
            return None if values is None else values[k]

        entries = []
        for k in range(n):
            try:
                entries.append(self.fields(users[k], items[k], at(labels, k), at(weights, k), at(timestamps, k),
                                           at(types, k)))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"event {k}: {exc}") from None
        return self.send_fields(entries, chunk=chunk)

    def _send_partitioned(self, users: Sequence[Any], columns: dict[str, Sequence[Any] | None],
                          chunk: int) -> list[str]:
        """send_many over the partition streams: every event checked first, then each
        partition's events sent in their order (through a Producer of that one stream)."""
        for k in range(len(users)):  # nothing is sent while any event is bad
            try:
                self.fields(users[k], *(None if v is None else v[k] for v in columns.values()))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"event {k}: {exc}") from None
        routes = np.array([self._partition_of_text(_id_text(user, "user")) for user in users])
        ids: list[str] = []
        for p in range(self.partitions):
            at = np.flatnonzero(routes == p)
            if at.size == 0:
                continue
            one = Producer(self._r, f"{self.stream}:{p}", self._maxlen, self.pack)

            def pick(values: Sequence[Any] | None, at: np.ndarray = at) -> Any:
                return None if values is None else [values[k] for k in at]

            ids.extend(one.send_many(pick(users), pick(columns["items"]), pick(columns["labels"]),
                                     pick(columns["weights"]), pick(columns["timestamps"]), pick(columns["types"]),
                                     chunk=chunk))
        return ids

    def send_hide(self, items: Sequence[int | str], hidden: bool = True) -> str:
        """Append a control entry that hides (or, with ``hidden=False``, shows again) these
        items on the trainer, in log order with the events around it (see
        :func:`~rtrec_native.stream.entries.is_control`); returns its entry ID (with
        partitions: the entry is appended to every partition's stream, and the last ID is
        returned)."""
        fields = control_fields("hide" if hidden else "unhide", items)
        entry = b""
        for stream in self._streams():
            entry = self._r.xadd(stream, fields, maxlen=self._maxlen, approximate=True)
        return entry.decode()

    def send_fields(self, entries: Sequence[dict[str, Any]], chunk: int = 1000) -> list[str]:
        """Append entries given as field dicts, as they are (no checks: this is how a test or a
        benchmark plants malformed entries), pipelined; returns their entry IDs. With
        partitions, an entry goes to the stream of its ``user`` field (read as the trainer's
        ``--ids auto`` reads it: a base-10 int64 is an integer ID), and an entry without one
        (a control) to every partition's stream (its ID: the last partition's)."""
        if self.partitions is None:
            return self._append(self.stream, entries, chunk)
        streams = self._streams()
        routes: list[list[int]] = [[] for _ in streams]
        for k, fields in enumerate(entries):
            user = fields.get("user", fields.get(b"user"))
            for p in (range(len(streams)) if user is None else [self._partition_of_text(user)]):
                routes[p].append(k)
        ids = [""] * len(entries)
        for stream, at in zip(streams, routes, strict=True):
            for k, entry_id in zip(at, self._append(stream, [entries[k] for k in at], chunk), strict=True):
                ids[k] = entry_id
        return ids

    def _partition_of_text(self, user: Any) -> int:
        text = user.decode() if isinstance(user, bytes) else str(user)
        value: int | str = text
        if re.fullmatch(r"-?[0-9]+", text) and _INT64[0] <= int(text) <= _INT64[1]:
            value = int(text)  # as entries.EntryParser reads it under --ids auto
        return int(partition_of([value], self.partitions)[0])

    def _append(self, stream: str, entries: Sequence[dict[str, Any]], chunk: int) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(entries), chunk):
            pipe = self._r.pipeline(transaction=False)
            for fields in entries[start:start + chunk]:
                pipe.xadd(stream, fields, maxlen=self._maxlen, approximate=True)
            ids.extend(entry.decode() for entry in pipe.execute())
        return ids

    def close(self) -> None:
        self._r.close()
