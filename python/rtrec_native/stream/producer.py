"""The producer helper: events in, stream entries out (``XADD <stream> * user U item I ...``,
or packed entries of up to ``pack`` events each: :mod:`rtrec_native.stream.packed`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._redis import connect
from .entries import control_fields
from .packed import MAX_EVENTS, encode

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
    """

    def __init__(self, redis: Any, stream: str = "rtrec:events", maxlen: int | None = None, pack: int = 1) -> None:
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream: expected a non-empty name, got {stream!r}")
        if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1):
            raise ValueError(f"maxlen: expected an int >= 1 or None, got {maxlen!r}")
        if isinstance(pack, bool) or not isinstance(pack, int) or not 1 <= pack <= MAX_EVENTS:
            raise ValueError(f"pack: expected an int from 1 to {MAX_EVENTS} (events per entry), got {pack!r}")
        self._r = connect(redis)
        self.stream, self._maxlen, self.pack = stream, maxlen, pack

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
        entry = self._r.xadd(self.stream, self.fields(user, item, label, weight, ts, type), maxlen=self._maxlen,
                             approximate=True)
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

    def send_hide(self, items: Sequence[int | str], hidden: bool = True) -> str:
        """Append a control entry that hides (or, with ``hidden=False``, shows again) these
        items on the trainer, in log order with the events around it (see
        :func:`~rtrec_native.stream.entries.is_control`); returns its entry ID."""
        fields = control_fields("hide" if hidden else "unhide", items)
        return self._r.xadd(self.stream, fields, maxlen=self._maxlen, approximate=True).decode()

    def send_fields(self, entries: Sequence[dict[str, Any]], chunk: int = 1000) -> list[str]:
        """Append entries given as field dicts, as they are (no checks: this is how a test or a
        benchmark plants malformed entries), pipelined; returns their entry IDs."""
        ids: list[str] = []
        for start in range(0, len(entries), chunk):
            pipe = self._r.pipeline(transaction=False)
            for fields in entries[start:start + chunk]:
                pipe.xadd(self.stream, fields, maxlen=self._maxlen, approximate=True)
            ids.extend(entry.decode() for entry in pipe.execute())
        return ids

    def close(self) -> None:
        self._r.close()
