"""A whole read batch of stream entries parsed at once into the arrays ``Recommender.update``
takes, in log order, with the entries that cannot be learned set aside (each with its reason).

The rules are :class:`~rtrec_native.stream.EntryParser`'s, entry by entry; this only makes the
common case cheap. Single-event entries that share one layout (the same fields in the same
order, as one producer writes them) are checked column by column: each column's values are
joined and matched by one regular expression, and converted in one call. Any entry that does
not pass that way — another layout, a value the column check refuses, a packed entry — is
parsed on its own by the entry parser, so it is learned or refused exactly as alone.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from .entries import FIELDS, EntryError, EntryParser, entry_time
from .packed import PackedColumns, PackedError, is_packed

__all__ = ["BulkParser", "ParsedBatch"]

# Up to 18 digits always fits in int64 (19 may not: those take the entry parser's way).
_INTS = re.compile(rb"(?:-?[0-9]{1,18} )*-?[0-9]{1,18}")
_INT = re.compile(rb"-?[0-9]{1,18}")
_NUM = rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBERS = re.compile(rb"(?:" + _NUM + rb" )*" + _NUM)
_NUMBER = re.compile(_NUM)
_SINGLE = frozenset(name.encode() for name in FIELDS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ParsedBatch:
    """The events of a batch of entries, in log order: ``columns`` (users, items, labels or
    None, weights or None, timestamps) for :meth:`Recommender.update`; ``failures``: (position
    in the batch, :class:`EntryError`) of the entries that cannot be learned; ``bounds``: entry
    k's events are ``bounds[k]:bounds[k + 1]`` of the columns."""

    __slots__ = ("bounds", "columns", "failures", "n")

    def __init__(self, columns: tuple, failures: list[tuple[int, EntryError]], bounds: np.ndarray) -> None:
        self.columns, self.failures, self.bounds = columns, failures, bounds
        self.n = int(bounds[-1])

    def slice(self, start: int, end: int) -> tuple:
        """The columns of events ``start:end``."""
        return tuple(None if c is None else c[start:end] for c in self.columns)


class _Piece:
    """Events of consecutive entries, as columns."""

    __slots__ = ("items", "labels", "n", "timestamps", "users", "weights")

    def __init__(self, users: Any, items: Any, labels: Any, weights: Any, timestamps: Any) -> None:
        self.users, self.items, self.labels, self.weights, self.timestamps = users, items, labels, weights, timestamps
        self.n = len(users)


class BulkParser:
    """Parses batches of entries with ``parser``'s rules. Needs both sides' ID kinds known
    (``parser.kind(side)`` not None): before a model's first ID, entries must be learned one
    by one, since the first one fixes how the next ones' IDs are read."""

    def __init__(self, parser: EntryParser) -> None:
        self._parser = parser

    # ------------------------------------------------------------------ the batch

    def parse(self, entries: Sequence[Any]) -> ParsedBatch:
        """``entries``: (id, fields) pairs, fields a flat [name, value, ...] list (Redis'
        reply) or a mapping."""
        n = len(entries)
        pairs = list(chain.from_iterable(entries))
        ids, flats = pairs[0::2], pairs[1::2]
        fast_rows, fast = self._fast_singles(ids, flats)
        counts = np.ones(n, dtype=np.int64)
        if fast is not None and len(fast_rows) == n:  # the usual batch: one layout, every value fine
            return ParsedBatch(fast, [], np.arange(n + 1, dtype=np.int64))
        is_fast = np.zeros(n, dtype=bool)
        if fast is not None:
            is_fast[fast_rows] = True
        pieces: list[_Piece] = []
        failures: list[tuple[int, EntryError]] = []
        done = 0  # fast rows used so far
        start = 0
        for k in np.flatnonzero(~is_fast).tolist():
            if k > start:  # the fast entries since the last other one
                pieces.append(self._slice_piece(fast, done, done + k - start))
                done += k - start
            start = k + 1
            try:
                piece = self.entry(_text(ids[k]), flats[k])
            except EntryError as exc:
                failures.append((k, exc))
                counts[k] = 0
                continue
            pieces.append(piece)
            counts[k] = piece.n
        if n > start:
            pieces.append(self._slice_piece(fast, done, done + n - start))
        bounds = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=bounds[1:])
        return ParsedBatch(_concatenate(pieces), failures, bounds)

    @staticmethod
    def _slice_piece(fast: tuple | None, a: int, b: int) -> _Piece:
        assert fast is not None
        return _Piece(*(None if c is None else c[a:b] for c in fast))

    def entry(self, entry_id: str, fields: Any) -> _Piece:
        """One entry (single-event or packed) on its own; raises :class:`EntryError`."""
        if is_packed(fields):
            return self.packed(entry_id, fields)
        if not isinstance(fields, dict):
            fields = dict(zip(fields[0::2], fields[1::2], strict=False))
        user, item, label, weight, ts = self._parser.parse(entry_id, fields)
        # The parsed value's type, not the side's kind: before the model's first ID (--ids
        # auto) the kind is unknown and this entry's text decides it.
        return _Piece([user] if isinstance(user, str) else np.array([user], dtype=np.int64),
                      [item] if isinstance(item, str) else np.array([item], dtype=np.int64),
                      None if label is None else np.array([label], dtype=np.float32),
                      np.array([weight], dtype=np.float32), np.array([ts], dtype=np.float64))

    # ------------------------------------------------------------------ single-event entries

    def _fast_singles(self, ids: list, flats: list) -> tuple[np.ndarray, tuple | None]:
        """The rows of the most common single-event layout whose every value passes the
        column checks, and their columns."""
        none = np.empty(0, dtype=np.int64), None
        if not flats or not isinstance(flats[0], list):
            return none
        width = len(flats[0])
        if len(set(map(len, flats))) == 1:
            rows, chosen = np.arange(len(flats)), flats
        else:
            width = Counter(map(len, flats)).most_common(1)[0][0]
            rows = np.array([k for k, f in enumerate(flats) if len(f) == width], dtype=np.int64)
            chosen = [flats[k] for k in rows.tolist()]
        m = len(chosen)
        names = chosen[0][0::2]
        if width < 4 or len(set(names)) != len(names) or not set(names) <= _SINGLE or b"user" not in names \
                or b"item" not in names:
            return none
        ok = np.ones(m, dtype=bool)
        columns = {}
        flat = list(chain.from_iterable(chosen))  # every row has `width` values: columns are strides
        for j, name in enumerate(names):
            found = flat[2 * j::width]
            if found.count(name) != m:
                ok &= np.array([x == name for x in found], dtype=bool)
            columns[name] = flat[2 * j + 1::width]
        p = self._parser
        users, ok = _id_values(columns[b"user"], p.kind("user"), ok)
        items, ok = _id_values(columns[b"item"], p.kind("item"), ok)
        labels = weights = None
        if b"label" in columns:
            labels, ok = _number_values(columns[b"label"], ok)
            if p.unit_label:
                ok &= (labels >= 0.0) & (labels <= 1.0)
        elif p.needs_label:
            return none
        if b"weight" in columns:
            weights, ok = _number_values(columns[b"weight"], ok)
            ok &= weights >= 0.0
        if p.event_weights is not None:
            if b"type" not in columns:
                return none
            table = p.event_weights
            factors = np.array([table.get(t.decode("utf-8", "backslashreplace"), math.nan) for t in columns[b"type"]],
                               dtype=np.float64)
            ok &= ~np.isnan(factors)
            weights = factors if weights is None else weights * factors
        if b"ts" in columns:
            stamps, ok = _number_values(columns[b"ts"], ok)
        else:
            stamps = _entry_times([ids[r] for r in rows.tolist()] if m != len(ids) else ids)
        if not ok.all():  # those rows take the entry parser's way
            keep = np.flatnonzero(ok)
            rows = rows[keep]

            def take(column: Any) -> Any:
                if column is None:
                    return None
                return [column[k] for k in keep.tolist()] if isinstance(column, list) else column[keep]

            users, items, labels, weights, stamps = map(take, (users, items, labels, weights, stamps))
        return rows, (users, items, None if labels is None else labels.astype(np.float32),
                      None if weights is None else weights.astype(np.float32), stamps)

    # ------------------------------------------------------------------ packed entries

    def packed(self, entry_id: str, fields: Any) -> _Piece:
        """A packed entry's events, every value checked; raises :class:`EntryError` (with the
        first bad event's index) when one cannot be learned: the whole entry is refused."""
        try:
            cols = PackedColumns(fields)
        except PackedError as exc:
            raise EntryError(exc.reason, str(exc), exc.index) from None
        p = self._parser
        users = self._packed_ids(cols.users, "user")
        items = self._packed_ids(cols.items, "item")
        labels = cols.labels
        if labels is None and p.needs_label:
            raise EntryError("missing_label", "event 0: label: required for this loss, got nothing", 0)
        if labels is not None:
            _check(np.isfinite(labels), "bad_label", "label: expected a finite number", labels)
            if p.unit_label:
                _check((labels >= 0) & (labels <= 1), "label_out_of_range", "label: expected a number in [0, 1] "
                       "for loss='logistic'", labels)
        weights = cols.weights
        if weights is not None:
            _check(np.isfinite(weights) & (weights >= 0), "bad_weight", "weight: expected a finite number >= 0",
                   weights)
        if p.event_weights is not None:
            texts = [t.decode("utf-8", "backslashreplace") for t in (cols.types or [])]
            if cols.types is None:
                raise EntryError("unknown_event_type", "event 0: type: required with event weights, got nothing", 0)
            factors = np.array([p.event_weights.get(t, math.nan) for t in texts])
            _check(~np.isnan(factors), "unknown_event_type",
                   f"type: expected one of {', '.join(p.event_weights)}", np.array(texts, dtype=object))
            weights = (factors if weights is None else weights.astype(np.float64) * factors).astype(np.float32)
        stamps = cols.timestamps
        if stamps is None:
            stamps = np.full(cols.n, entry_time(entry_id))
        else:
            _check(np.isfinite(stamps), "bad_timestamp", "ts: expected a finite number", stamps)
        return _Piece(users, items, labels, weights, stamps)

    def _packed_ids(self, column: np.ndarray | list[bytes], side: str) -> Any:
        kind = self._parser.kind(side)
        if isinstance(column, np.ndarray):  # int64: read as their decimal text would be
            return [str(v) for v in column.tolist()] if kind == "str" else column
        if kind is None:  # auto, nothing learned yet: the first ID's text decides, as it would alone
            kind = "int" if _INT.fullmatch(column[0]) else "str"
        if kind == "str":
            for k, v in enumerate(column):
                if not v:
                    raise EntryError(f"missing_{side}", f"event {k}: {side}: required, got empty text", k)
            try:
                return [v.decode("utf-8") for v in column]
            except UnicodeDecodeError:
                k = next(k for k, v in enumerate(column) if not _utf8(v))
                raise EntryError("not_utf8", f"event {k}: {side}: not UTF-8 text: {column[k][:40]!r}", k) from None
        if _joined_match(_INTS, column):
            return np.fromstring(b" ".join(column), dtype=np.int64, sep=" ")
        out = np.empty(len(column), dtype=np.int64)
        for k, v in enumerate(column):  # 19 digits may still fit; the entry parser's rule decides
            value = self._parser._id(v, side) if _INT.fullmatch(v) is None else int(v)
            if not isinstance(value, int):
                raise EntryError(f"bad_{side}", f"event {k}: {side}: expected a base-10 int64, got {v[:60]!r}", k)
            out[k] = value
        return out


def _check(good: np.ndarray, reason: str, message: str, values: np.ndarray) -> None:
    if not good.all():
        k = int(np.flatnonzero(~good)[0])
        value = values[k].item() if isinstance(values[k], np.generic) else values[k]
        raise EntryError(reason, f"event {k}: {message}, got {value!r}", k)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _joined_match(pattern: re.Pattern, values: list) -> bool:
    try:
        return pattern.fullmatch(b" ".join(values)) is not None
    except TypeError:  # a value that is not bytes
        return False


def _id_values(values: list, kind: str | None, ok: np.ndarray) -> tuple[Any, np.ndarray]:
    """A column of ID texts as the kind the side reads (``ok``: False where a value is not
    fine that way; the entry parser then says why)."""
    if kind == "str":
        try:
            out = [v.decode("utf-8") for v in values]
        except (UnicodeDecodeError, AttributeError):
            out = [v.decode("utf-8", "replace") if isinstance(v, bytes) else "" for v in values]
            ok = ok & np.array([isinstance(v, bytes) and _utf8(v) for v in values], dtype=bool)
        if not all(values):
            ok = ok & np.array([bool(v) for v in values], dtype=bool)
        return out, ok
    return _parse_joined(values, _INTS, _INT, np.int64, ok)


def _number_values(values: list, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out, ok = _parse_joined(values, _NUMBERS, _NUMBER, np.float64, ok)
    return out, ok & np.isfinite(out)


def _parse_joined(values: list, joined_pattern: re.Pattern, pattern: re.Pattern, dtype: type,
                  ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers from their texts: joined by spaces, matched once, converted by numpy's text
    reader (the regular expression has already refused anything but plain decimals, which it
    reads exactly as int() or float() would). Values that do not match are set aside (``ok``
    False) and read as 0."""
    try:
        joined = b" ".join(values)
    except TypeError:  # a value that is not bytes
        joined = None
    if joined is None or joined_pattern.fullmatch(joined) is None:
        good = np.array([isinstance(v, bytes) and pattern.fullmatch(v) is not None for v in values], dtype=bool)
        ok = ok & good
        joined = b" ".join(v if g else b"0" for v, g in zip(values, good.tolist(), strict=True))
    return np.fromstring(joined, dtype=dtype, sep=" "), ok


def _entry_times(ids: list) -> np.ndarray:
    """Each entry's time from its ID ("1700000000000-3": milliseconds), as entry_time gives it."""
    try:
        # "ms-seq ms-seq ...": Redis writes every ID that way; numbers read as int() would.
        pairs = np.fromstring(b" ".join(ids).replace(b"-", b" "), dtype=np.int64, sep=" ")
    except (TypeError, ValueError):
        pairs = None
    if pairs is None or len(pairs) != 2 * len(ids):
        return np.array([entry_time(_text(i)) for i in ids], dtype=np.float64)
    return pairs[0::2] / 1000.0


def _concatenate(pieces: list[_Piece]) -> tuple:
    if not pieces:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, None, None, np.empty(0, dtype=np.float64)
    if len(pieces) == 1:
        p = pieces[0]
        return p.users, p.items, p.labels, p.weights, p.timestamps

    def ids(column: list) -> Any:
        if any(isinstance(c, list) for c in column):
            out: list = []
            for c in column:
                out.extend(c if isinstance(c, list) else c.tolist())
            return out
        return np.concatenate(column)

    def numbers(column: list, n: list[int]) -> np.ndarray | None:
        if all(c is None for c in column):
            return None
        return np.concatenate([np.ones(k, dtype=np.float32) if c is None else c for c, k in zip(column, n,
                                                                                                 strict=True)])

    sizes = [p.n for p in pieces]
    return (ids([p.users for p in pieces]), ids([p.items for p in pieces]), numbers([p.labels for p in pieces], sizes),
            numbers([p.weights for p in pieces], sizes), np.concatenate([p.timestamps for p in pieces]))
