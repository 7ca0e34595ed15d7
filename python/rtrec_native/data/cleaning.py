"""Cleaning interaction events with a report: :func:`load_events` reads any source, finds the
columns, drops each bad row for a stated reason (or raises on the first with ``strict=True``)
and returns the clean :class:`~rtrec_native.events.Events` with a :class:`CleaningReport`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _validation as check
from ..events import Events
from .columns import resolve_event_columns
from .parsing import parse_event_ids, parse_numbers, parse_timestamps, to_python
from .sources import Source, lines_of_rows, read_source, require_pandas, where

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = ["REASONS", "CleaningReport", "load_events"]

#: Every reason a row can be dropped for, in the order they are checked. A row is
#: counted under the first reason that applies to it, so counts add up to the rows
#: dropped.
REASONS: tuple[str, ...] = (
    "malformed_line",
    "missing_user",
    "malformed_user_id",
    "missing_item",
    "malformed_item_id",
    "non_finite_label",
    "label_out_of_range",
    "negative_or_non_finite_weight",
    "unparsable_timestamp",
    "unknown_event_type",
    "duplicate",
    "below_min_user_count",
    "below_min_item_count",
)

# The column role each row-level reason is about (for messages and examples).
_REASON_ROLE = {
    "missing_user": "user",
    "malformed_user_id": "user",
    "missing_item": "item",
    "malformed_item_id": "item",
    "non_finite_label": "label",
    "label_out_of_range": "label",
    "negative_or_non_finite_weight": "weight",
    "unparsable_timestamp": "time",
    "unknown_event_type": "event",
    "below_min_user_count": "user",
    "below_min_item_count": "item",
}

_MAX_EXAMPLES = 5


@dataclass
class CleaningReport:
    """What :func:`load_events` did to its input.

    Attributes:
        source: where the events came from (a path, or ``"DataFrame"``/``"mapping"``).
        n_input: rows read.
        n_output: rows kept.
        counts: rows dropped per reason, every reason in :data:`REASONS` present (0 if none).
        examples: up to 5 dropped rows per reason, each a dict with the 0-based ``"row"``
            position in the input, its ``"line"`` in a text file (header = line 1), and that
            row's raw values in the columns used. A ``malformed_line`` (more fields than the
            header; a CSV only) has no row: its example is its ``"line"`` and ``"problem"``.
        columns: the input column used for each role (``None`` when absent).
        label_scale: ``(min, max)`` of the labels before ``normalize_ratings`` mapped them
            to [0, 1]; ``None`` when not normalised.
        sorted_by_time: whether the output was stably sorted by timestamp.
    """

    source: str
    n_input: int
    n_output: int
    counts: dict[str, int]
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    columns: dict[str, str | None] = field(default_factory=dict)
    label_scale: tuple[float, float] | None = None
    sorted_by_time: bool = False

    @property
    def n_dropped(self) -> int:
        return self.n_input - self.n_output

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN values in examples are ``None``)."""
        return {
            "source": self.source,
            "n_input": self.n_input,
            "n_output": self.n_output,
            "n_dropped": self.n_dropped,
            "counts": dict(self.counts),
            "examples": {k: [dict(r) for r in v] for k, v in self.examples.items()},
            "columns": dict(self.columns),
            "label_scale": list(self.label_scale) if self.label_scale else None,
            "sorted_by_time": self.sorted_by_time,
        }

    def problems(self, per_reason: int = 2) -> list[str]:
        """One text per reason that dropped rows: the reason, its count and where the first
        ``per_reason`` examples are (e.g. ``"duplicate: 50 (line 841, line 2257, ...)"``)."""
        out = []
        for reason in REASONS:
            count = self.counts.get(reason, 0)
            if not count:
                continue
            examples = self.examples.get(reason, [])[:per_reason]
            places = [f"line {e['line']}" if "line" in e else f"row {e['row']}" for e in examples]
            more = ", ..." if count > len(examples) else ""
            out.append(f"{reason}: {count:,} ({', '.join(places)}{more})")
        return out

    def __str__(self) -> str:
        lines = [
            (
                f"Cleaned {self.source}: {self.n_input:,} rows in, {self.n_output:,} kept, "
                f"{self.n_dropped:,} dropped"
            ),
            "  columns: "
            + ", ".join(f"{role}={col!r}" for role, col in self.columns.items() if col is not None),
        ]
        for reason in REASONS:
            count = self.counts.get(reason, 0)
            if count:
                lines.append(f"  {reason:<30} {count:>9,}")
                for example in self.examples.get(reason, [])[:2]:
                    lines.append(f"      e.g. {example}")
        if self.label_scale is not None:
            lo, hi = self.label_scale
            lines.append(f"  labels min-max normalised from [{lo:g}, {hi:g}] to [0, 1]")
        if self.sorted_by_time:
            lines.append("  sorted by timestamp (stable)")
        return "\n".join(lines)


def _validate_event_weights(event_weights: Mapping[Any, float]) -> None:
    if not isinstance(event_weights, Mapping) or not event_weights:
        raise TypeError(
            "event_weights: expected a non-empty mapping of event type -> weight, "
            f"got {event_weights!r}"
        )
    for event, weight in event_weights.items():
        if not isinstance(weight, (int, float, np.number)) or not (
            math.isfinite(weight) and weight >= 0
        ):
            raise ValueError(
                f"event_weights[{event!r}]: expected a finite weight >= 0, got {weight!r}"
            )


def _example_rows(
    frame: pd.DataFrame, rows: np.ndarray, columns: dict[str, str | None], lines: np.ndarray | None
) -> list[dict[str, Any]]:
    used = [c for c in columns.values() if c is not None]
    examples = []
    for j, row in enumerate(rows[:_MAX_EXAMPLES]):
        record: dict[str, Any] = {"row": int(row)}
        if lines is not None:
            record["line"] = int(lines[j])
        for column in used:
            record[str(column)] = to_python(frame[column].iat[int(row)])
        examples.append(record)
    return examples


def _strict_error(
    origin: str,
    is_text_file: bool,
    row: int,
    reason: str,
    column: str | None,
    value: Any,
    detail: str = "",
    line: int | None = None,
) -> ValueError:
    col = f"column {column!r} " if column is not None else ""
    return ValueError(
        f"{where(origin, is_text_file, row, line)}: {col}value {value!r}: {reason}{detail} "
        "(strict=True; pass strict=False to drop bad rows and get a report)"
    )


def _first_occurrence(keys: pd.DataFrame) -> np.ndarray:
    """For each row, the position of the first row with identical values in ``keys``."""
    group = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup().to_numpy()
    _, first_index = np.unique(group, return_index=True)
    return first_index[group]


def _below_min_count(ids: np.ndarray, keep: np.ndarray, min_count: int) -> np.ndarray:
    """Rows (among ``keep``) whose ID occurs fewer than ``min_count`` times among ``keep``."""
    below = np.zeros(ids.shape[0], dtype=bool)
    if min_count <= 1 or not keep.any():
        return below
    kept_ids = ids[keep]
    _, inverse, counts = np.unique(kept_ids, return_inverse=True, return_counts=True)
    below[np.flatnonzero(keep)] = counts[inverse.ravel()] < min_count
    return below


def _check_options(
    label_range: tuple[float, float] | None, min_user_count: int, min_item_count: int
) -> None:
    if label_range is not None:
        try:
            lo, hi = (float(v) for v in label_range)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"label_range: expected a pair (lo, hi) of numbers, got {label_range!r}"
            ) from exc
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"label_range: expected finite lo <= hi, got {label_range!r}")
    check.positive_int(min_user_count, "min_user_count")
    check.positive_int(min_item_count, "min_item_count")


def load_events(
    source: Source,
    *,
    user_col: str | None = None,
    item_col: str | None = None,
    label_col: str | None = None,
    time_col: str | None = None,
    event_col: str | None = None,
    weight_col: str | None = None,
    event_weights: Mapping[Any, float] | None = None,
    label_range: tuple[float, float] | None = None,
    strict: bool = False,
    min_user_count: int = 1,
    min_item_count: int = 1,
    normalize_ratings: bool = False,
    drop_duplicates: bool = True,
    sort_by_time: bool = True,
    delimiter: str | None = None,
) -> tuple[Events, CleaningReport]:
    """Load interaction events, drop bad rows with a reason each, and report.

    Args:
        source: a CSV path (``.tsv`` is tab-separated; ``.gz`` etc. are decompressed), a
            Parquet path (``.parquet``/``.pq``, or any file with Parquet magic bytes;
            needs pyarrow), a pandas DataFrame, a mapping of column name -> 1-D array,
            or an :class:`Events`.
        user_col, item_col, label_col, time_col, event_col, weight_col: column names.
            When ``None`` they are found by the names in :data:`~rtrec_native.data.COLUMN_CANDIDATES`
            (case-insensitive; two candidates for one role is an error: name the one
            to use). User and item are required; the others are optional. The event
            column is only used together with ``event_weights``.
        event_weights: event type -> weight, e.g. ``{"view": 0.2, "click": 1.0,
            "purchase": 3.0}``. A row's weight is its event weight times its weight
            column value when both exist. Types not in the mapping are dropped as
            ``unknown_event_type``.
        label_range: inclusive ``(lo, hi)``; finite labels outside are dropped as
            ``label_out_of_range``. Pass ``(0, 1)`` for click/logistic labels.
        strict: raise ``ValueError`` at the first bad row (naming row, column, value and
            reason) instead of dropping it. Duplicates and malformed CSV lines count as bad rows; the min-count
            filters are requested filtering and never raise.
        min_user_count, min_item_count: drop rows of users/items with fewer events.
            Applied once, after every other check: users first, then items counted on
            what remains (so a user may end up below the minimum again; this is not
            iterated to a fixed point).
        normalize_ratings: min-max scale labels to [0, 1] using the global min and max
            of the clean labels; the ``(min, max)`` is kept in ``report.label_scale``.
        drop_duplicates: drop rows identical to an earlier row in every column used
            (after parsing), keeping the first.
        sort_by_time: stable-sort the output by timestamp when there is a time column.
        delimiter: the field separator of a text file (``","``, ``"tab"``, ``";"``, ...);
            None sniffs it from the header line (comma, tab or semicolon).

    Row-level reasons are checked in the order of :data:`REASONS`; each dropped row is
    counted under the first that applies. A CSV line with more fields than the header is
    a ``malformed_line``. IDs are int64 when the column is integral (a blank cell does not
    stop that; nor do a few non-integer cells, at most 1% of the column, which are dropped
    as ``malformed_user_id``/``malformed_item_id``), otherwise strings (whitespace
    stripped, blank = missing). Timestamps may be epoch seconds or ISO 8601 strings (no offset = UTC).
    Non-numeric labels count as ``non_finite_label``.

    Returns:
        ``(events, report)``: the clean :class:`Events` and a :class:`CleaningReport`.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: an empty, binary or unparsable file; no recognisable user/item
            column, or several candidates for one role (the message lists the columns
            found and the names tried); bad
            options; a bad row when ``strict=True``.
        ImportError: a Parquet file without pyarrow installed.
    """
    require_pandas()
    _check_options(label_range, min_user_count, min_item_count)
    if event_weights is not None:
        _validate_event_weights(event_weights)
    skipped: list[tuple[int, str]] = []
    frame, origin, is_text_file = read_source(source, skipped_lines=skipped, delimiter=delimiter)
    if strict and skipped:
        line, problem = skipped[0]
        raise ValueError(
            f"{origin}: line {line}: malformed_line ({problem}) "
            "(strict=True; pass strict=False to drop bad rows and get a report)"
        )
    columns = resolve_event_columns(
        list(frame.columns),
        origin,
        {
            "user": user_col,
            "item": item_col,
            "label": label_col,
            "time": time_col,
            "event": event_col,
            "weight": weight_col,
        },
        want_events=event_weights is not None,
    )
    n = len(frame)

    # ---- parse every used column; a parse failure becomes a per-row flag
    users, missing_user, malformed_user = parse_event_ids(frame[columns["user"]])
    items, missing_item, malformed_item = parse_event_ids(frame[columns["item"]])
    flags: dict[str, np.ndarray] = {
        "missing_user": missing_user,
        "malformed_user_id": malformed_user,
        "missing_item": missing_item,
        "malformed_item_id": malformed_item,
    }
    labels = None
    if columns["label"] is not None:
        labels = parse_numbers(frame[columns["label"]])
        finite = np.isfinite(labels)
        flags["non_finite_label"] = ~finite
        if label_range is not None:
            lo, hi = label_range
            flags["label_out_of_range"] = finite & ((labels < lo) | (labels > hi))
    weights = None
    if columns["weight"] is not None:
        weights = parse_numbers(frame[columns["weight"]])
        flags["negative_or_non_finite_weight"] = ~(np.isfinite(weights) & (weights >= 0))
    timestamps = None
    if columns["time"] is not None:
        timestamps = parse_timestamps(frame[columns["time"]])
        flags["unparsable_timestamp"] = ~np.isfinite(timestamps)
    if columns["event"] is not None:
        assert event_weights is not None
        event_weight = (
            frame[columns["event"]]
            .map(dict(event_weights))
            .to_numpy(dtype=np.float64, na_value=np.nan)
        )
        flags["unknown_event_type"] = np.isnan(event_weight)
        weights = event_weight if weights is None else weights * event_weight

    # ---- each row gets the first reason that applies (-1 = good so far)
    reason_of = np.full(n, -1, dtype=np.int8)
    for code, reason in enumerate(REASONS):
        if reason in flags:
            reason_of[(reason_of < 0) & flags[reason]] = code

    def line_of(rows: np.ndarray) -> np.ndarray | None:
        return lines_of_rows(rows, (line for line, _ in skipped)) if is_text_file else None

    def line_at(row: int) -> int | None:
        lines = line_of(np.array([row]))
        return None if lines is None else int(lines[0])

    if strict and (reason_of >= 0).any():
        row = int(np.argmax(reason_of >= 0))
        reason = REASONS[reason_of[row]]
        column = columns[_REASON_ROLE[reason]]
        raise _strict_error(
            origin, is_text_file, row, reason, column, frame[column].iat[row], line=line_at(row)
        )

    if drop_duplicates:
        import pandas as pd

        candidates = np.flatnonzero(reason_of < 0)
        keys = {"user": users[candidates], "item": items[candidates]}
        for name, arr in (("label", labels), ("time", timestamps), ("weight", weights)):
            if arr is not None:
                keys[name] = arr[candidates]
        if columns["event"] is not None:
            keys["event"] = frame[columns["event"]].to_numpy(dtype=object)[candidates]
        first = candidates[_first_occurrence(pd.DataFrame(keys))]
        is_duplicate = first != candidates
        if strict and is_duplicate.any():
            j = int(np.argmax(is_duplicate))
            row, original = int(candidates[j]), int(first[j])
            raise _strict_error(
                origin, is_text_file, row, "duplicate", None,
                to_python(users[row]), f" (exact duplicate of row {original})", line=line_at(row),
            )
        reason_of[candidates[is_duplicate]] = REASONS.index("duplicate")

    reason_of[_below_min_count(users, reason_of < 0, min_user_count)] = REASONS.index(
        "below_min_user_count"
    )
    reason_of[_below_min_count(items, reason_of < 0, min_item_count)] = REASONS.index(
        "below_min_item_count"
    )

    # ---- report
    counts = {reason: int(np.count_nonzero(reason_of == code)) for code, reason in enumerate(REASONS)}
    counts["malformed_line"] = len(skipped)
    examples = {}
    for code, reason in enumerate(REASONS):
        if counts[reason] and reason != "malformed_line":
            rows = np.flatnonzero(reason_of == code)[:_MAX_EXAMPLES]
            examples[reason] = _example_rows(frame, rows, columns, line_of(rows))
    if skipped:
        examples["malformed_line"] = [
            {"line": line, "problem": problem} for line, problem in skipped[:_MAX_EXAMPLES]
        ]

    # ---- assemble the clean events
    keep = np.flatnonzero(reason_of < 0)
    if sort_by_time and timestamps is not None:
        keep = keep[np.argsort(timestamps[keep], kind="stable")]
    out_labels = None if labels is None else labels[keep]
    label_scale = None
    if normalize_ratings:
        out_labels, label_scale = _min_max_normalise(out_labels, origin)
    events = Events(
        users=users[keep],
        items=items[keep],
        labels=out_labels,
        timestamps=None if timestamps is None else timestamps[keep],
        weights=None if weights is None else weights[keep],
    )
    report = CleaningReport(
        source=origin,
        n_input=n + len(skipped),
        n_output=len(events),
        counts=counts,
        examples=examples,
        columns=dict(columns),
        label_scale=label_scale,
        sorted_by_time=bool(sort_by_time and timestamps is not None),
    )
    return events, report


def _min_max_normalise(
    labels: np.ndarray | None, origin: str
) -> tuple[np.ndarray | None, tuple[float, float] | None]:
    if labels is None:
        raise ValueError(f"{origin}: normalize_ratings=True needs a label column, none was found")
    if labels.size == 0:
        return labels, None
    lo, hi = float(labels.min()), float(labels.max())
    if hi == lo:
        raise ValueError(
            f"{origin}: normalize_ratings=True cannot scale labels that are all {lo:g}"
        )
    return (labels - lo) / (hi - lo), (lo, hi)

