"""What a stream entry must hold, and how its text becomes one event (or a reason to refuse it).

Producers write ``XADD rtrec:events * user U item I [label L] [weight W] [ts T] [type T]``.
Every value is text:

========  ==========================================================================
field     meaning
========  ==========================================================================
user      user ID (required). ``--ids auto``: base-10 int64 text is an integer ID,
          anything else a string ID; a side keeps the kind it started with.
item      item ID (required), the same rules.
label     a finite decimal number (required for the squared and logistic losses;
          in [0, 1] for logistic; for bpr/warp/softmax optional, <= 0 is not a positive).
weight    a finite number >= 0 (default 1); multiplied by the type's weight.
ts        event time in seconds since the Unix epoch (default: the entry ID's time).
type      event type; with event weights configured (``{"view": 0.2, ...}``) its weight
          multiplies ``weight`` and a type outside the mapping is refused, as in
          :func:`rtrec_native.data.load_events`. Without event weights it is ignored.
========  ==========================================================================

Any other field, a missing or ill-typed value, or an ID of the wrong kind makes the entry a
dead letter with one of :data:`REASONS`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .. import _core

__all__ = ["CONTROL_OPS", "FIELDS", "REASONS", "EntryError", "EntryParser", "control_fields", "entry_time",
           "is_control", "parse_control"]

FIELDS: tuple[str, ...] = ("user", "item", "label", "weight", "ts", "type")

#: Why an entry can become a dead letter (the ``rtrec.reason`` field of its copy).
REASONS: tuple[str, ...] = (
    "not_utf8", "unknown_field", "missing_user", "missing_item", "bad_user", "bad_item",
    "missing_label", "bad_label", "label_out_of_range", "bad_weight", "bad_timestamp",
    "unknown_event_type", "rejected_by_model", "bad_packed", "bad_control",
)

_INT = re.compile(rb"-?[0-9]+")
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT64 = (-(2**63), 2**63 - 1)
_ID_KINDS = ("auto", "int", "str")
_KEYS = frozenset(name.encode() for name in FIELDS)


class EntryError(ValueError):
    """A stream entry that cannot be learned: ``reason`` (one of :data:`REASONS`), a message
    saying what was expected and what came, and for a packed entry the ``index`` of its first
    bad event (-1: the entry's structure; None for a single-event entry)."""

    def __init__(self, reason: str, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.reason, self.index = reason, index


def entry_time(entry_id: str) -> float:
    """The time Redis gave an entry ("1700000000000-0": milliseconds), in seconds."""
    return int(entry_id.partition("-")[0]) / 1000.0


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")  # str (or a number) from a Python caller


def _bytes_fields(fields: Mapping[Any, Any]) -> dict[bytes, bytes]:
    """Fields with bytes names and values, as Redis returns them; an unknown name is refused."""
    out = {}
    for key, value in fields.items():
        name = _as_bytes(key)
        if name not in _KEYS:
            shown = name.decode("utf-8", "backslashreplace")[:60]
            raise EntryError("unknown_field", f"unknown field {shown!r}; expected {', '.join(FIELDS)}")
        out[name] = _as_bytes(value)
    return out


def _shown(raw: bytes) -> str:
    return repr(raw[:60].decode("utf-8", "backslashreplace"))


def _number(raw: bytes, field: str, reason: str) -> float:
    if not _NUMBER.fullmatch(raw):
        raise EntryError(reason, f"{field}: expected a decimal number, got {_shown(raw)}")
    value = float(raw)
    if not math.isfinite(value):
        raise EntryError(reason, f"{field}: expected a finite number, got {_shown(raw)}")
    return value


class EntryParser:
    """Turns one entry's fields into ``(user, item, label, weight, timestamp)`` for
    :meth:`Recommender.update_one`, or raises :class:`EntryError`.

    Args:
        loss: the model's loss (decides whether a label is required, and its range).
        ids: ``"auto"``, ``"int"`` or ``"str"``: how ID text is read.
        event_weights: event type -> weight >= 0, or None (``type`` ignored).
        user_kind, item_kind: callables giving the model's current ID kind per side
            ("int", "str" or None before its first ID): a side keeps the kind it started with.
    """

    def __init__(self, loss: str, ids: str = "auto", event_weights: Mapping[str, float] | None = None,
                 user_kind: Any = lambda: None, item_kind: Any = lambda: None) -> None:
        if ids not in _ID_KINDS:
            raise ValueError(f"ids: expected one of {', '.join(_ID_KINDS)}, got {ids!r}")
        if event_weights is not None:
            if not isinstance(event_weights, Mapping) or not event_weights:
                raise TypeError(f"event_weights: expected a non-empty mapping of event type -> weight, "
                                f"got {event_weights!r}")
            for name, weight in event_weights.items():
                if not isinstance(name, str) or isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                        or not (math.isfinite(weight) and weight >= 0):
                    raise ValueError(f"event_weights[{name!r}]: expected a str type and a finite weight >= 0, "
                                     f"got {weight!r}")
        self._needs_label = _core.needs_labels(loss)
        self._unit_label = loss == "logistic"
        self._loss = loss
        self._ids = ids
        self._event_weights = None if event_weights is None else {k: float(v) for k, v in event_weights.items()}
        self._kind = {"user": user_kind, "item": item_kind}
        # The kind each side's IDs are read as; None until known ("auto" before the model's
        # first ID). A side keeps its kind, so once known it is never asked again.
        fixed = None if ids == "auto" else ids
        self._want: dict[str, str | None] = {"user": fixed, "item": fixed}

    def kind(self, side: str) -> str | None:
        """How this side's IDs are read now: "int", "str", or None (``--ids auto`` and the
        model has no ID of this side yet: each ID's text decides)."""
        want = self._want[side]
        if want is None:
            want = self._want[side] = self._kind[side]()
        return want

    @property
    def needs_label(self) -> bool:
        return self._needs_label

    @property
    def unit_label(self) -> bool:
        return self._unit_label

    @property
    def event_weights(self) -> dict[str, float] | None:
        return self._event_weights

    def _id(self, raw: bytes | None, side: str) -> int | str:
        if not raw:
            raise EntryError(f"missing_{side}", f"{side}: required, got {'nothing' if raw is None else 'empty text'}")
        want = self._want[side]
        if want is None:  # "auto" and the model has no ID of this side yet: ask it again
            want = self._kind[side]()
            self._want[side] = want
            want = want or "auto"
        if want != "str" and _INT.fullmatch(raw):
            value = int(raw)
            if len(raw) < 19 or _INT64[0] <= value <= _INT64[1]:
                return value
        if want == "int":
            why = "integer IDs here" if self._ids == "auto" else "--ids int"
            raise EntryError(f"bad_{side}", f"{side}: expected a base-10 int64 ({why}), got {_shown(raw)}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EntryError("not_utf8", f"{side}: not UTF-8 text: {raw[:40]!r}") from None

    def parse(self, entry_id: str, fields: Mapping[Any, Any]) -> tuple[int | str, int | str, float | None, float,
                                                                         float]:
        """The event of one entry (its fields as the client returns them: bytes names and
        values; str names and values are accepted too)."""
        if not fields.keys() <= _KEYS:  # str names (a Python caller) or an unknown field
            fields = _bytes_fields(fields)
        get = fields.get
        user = self._id(get(b"user"), "user")
        item = self._id(get(b"item"), "item")
        raw = get(b"label")
        label = None
        if raw is not None:
            label = _number(raw, "label", "bad_label")
            if self._unit_label and not 0.0 <= label <= 1.0:
                raise EntryError("label_out_of_range", f"label: expected a number in [0, 1] for loss='logistic', "
                                                       f"got {label!r}")
        elif self._needs_label:
            raise EntryError("missing_label", f"label: required for loss={self._loss!r}, got nothing")
        raw = get(b"weight")
        weight = 1.0
        if raw is not None:
            weight = _number(raw, "weight", "bad_weight")
            if weight < 0:
                raise EntryError("bad_weight", f"weight: expected a number >= 0, got {weight!r}")
        if self._event_weights is not None:
            raw = get(b"type")
            kind = None if raw is None else raw.decode("utf-8", "backslashreplace")
            if kind not in self._event_weights:
                raise EntryError("unknown_event_type", f"type: expected one of {', '.join(self._event_weights)}, "
                                                       f"got {kind!r}")
            weight *= self._event_weights[kind]
        raw = get(b"ts")
        # Without a time, the entry's own (unlike the wall clock, a replay learns the same).
        ts = entry_time(entry_id) if raw is None else _number(raw, "ts", "bad_timestamp")
        return user, item, label, weight, ts


# ---------------------------------------------------------------------------------- control

#: A control entry changes what the trainer's model may recommend instead of teaching it an
#: event: ``op`` (its first field) is ``hide`` or ``unhide``, ``items`` a JSON list of item IDs
#: (``Recommender.hide`` / ``unhide``). Learned in log order with the events around it;
#: applying one twice is the same as once.
CONTROL_OPS = ("hide", "unhide")


def is_control(fields: Any) -> bool:
    """Whether an entry's fields (a mapping, or Redis' flat [name, value, ...] list) are a
    control entry (its first field is ``op``)."""
    if isinstance(fields, Mapping):
        return b"op" in fields or "op" in fields
    return len(fields) > 0 and fields[0] in (b"op", "op")


def control_fields(op: str, items: Any) -> dict[str, str]:
    """A control entry's fields, checked: ``op`` first."""
    if op not in CONTROL_OPS:
        raise ValueError(f"op: expected one of {CONTROL_OPS}, got {op!r}")
    values = list(items)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise TypeError(f"items: expected int or str IDs, got {type(v).__name__} ({v!r})")
    return {"op": op, "items": json.dumps(values)}


def parse_control(fields: Any) -> tuple[str, list]:
    """(op, item IDs) of a control entry; raises :class:`EntryError` when malformed."""
    if not isinstance(fields, Mapping):
        fields = dict(zip(fields[0::2], fields[1::2], strict=False))
    raw = {_as_bytes(k): _as_bytes(v) for k, v in fields.items()}
    if set(raw) != {b"op", b"items"}:
        raise EntryError("bad_control", "a control entry holds exactly the fields op and items")
    op = raw[b"op"].decode("utf-8", "replace")
    if op not in CONTROL_OPS:
        raise EntryError("bad_control", f"op must be one of {CONTROL_OPS}, got {_shown(raw.get(b'op', b''))}")
    try:
        items = json.loads(raw[b"items"])
    except ValueError:
        raise EntryError("bad_control", "items must be a JSON list of item IDs") from None
    if not isinstance(items, list) or not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in items):
        raise EntryError("bad_control", "items must be a JSON list of int or str item IDs")
    return op, items
