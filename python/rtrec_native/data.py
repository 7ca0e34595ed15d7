"""Loading interaction events and cleaning them with a report.

One entry point, :func:`load_events`, takes a CSV or Parquet path, a pandas DataFrame,
a mapping of column name -> array, or an :class:`Events`, finds the user/item/label/
time/event/weight columns (by common names unless given), drops bad rows **with a
reason for each** and returns the clean :class:`Events` together with a
:class:`CleaningReport`::

    events, report = load_events("ratings.csv")   # MovieLens as is
    print(report)

Side features for :meth:`Recommender.set_item_features` / ``set_user_features`` come
from :func:`load_features`, which reads the same sources::

    items, features = load_features("movies.csv", prefix="genre")

pandas (and pyarrow, for Parquet) are imported only inside the functions that need
them, so ``import rtrec_native`` stays light.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = [
    "COLUMN_CANDIDATES",
    "FEATURE_COLUMN_CANDIDATES",
    "REASONS",
    "CleaningReport",
    "Events",
    "load_events",
    "load_features",
]

Source = Union[str, "os.PathLike[str]", "pd.DataFrame", Mapping[str, Any], "Events"]

#: Names tried, in order, for each column role when no explicit name is given. Matching
#: is exact first, then case-insensitive.
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "user": ("userId", "user_id", "user", "uid"),
    "item": ("movieId", "itemId", "item_id", "item", "iid"),
    "label": ("rating", "label", "click", "y"),
    "time": ("timestamp", "time", "ts"),
    "event": ("event", "event_type", "type"),
    "weight": ("weight", "w"),
}

#: Every reason a row can be dropped for, in the order they are checked. A row is
#: counted under the first reason that applies to it, so counts add up to the rows
#: dropped.
REASONS: tuple[str, ...] = (
    "missing_user",
    "missing_item",
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
    "missing_item": "item",
    "non_finite_label": "label",
    "label_out_of_range": "label",
    "negative_or_non_finite_weight": "weight",
    "unparsable_timestamp": "time",
    "unknown_event_type": "event",
    "below_min_user_count": "user",
    "below_min_item_count": "item",
}

_MAX_EXAMPLES = 5
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_COMPRESSED_SUFFIXES = {".gz", ".bz2", ".zip", ".xz", ".zst", ".tar"}


# =========================================================================== Events


def _as_id_array(name: str, values: Any) -> np.ndarray:
    """IDs as int64, or as an object array of str; anything else is a TypeError."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.size and arr.max() >= 2**63:
            raise ValueError(f"{name}: integer IDs must fit in int64, got {arr.max()}")
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind in "US":
        return arr.astype(str).astype(object)
    if arr.dtype == object and all(isinstance(v, str) for v in arr):
        return arr
    raise TypeError(
        f"{name}: expected integer or string IDs, got dtype {arr.dtype}; "
        "use load_events() to clean raw columns"
    )


def _as_optional_float(name: str, values: Any, dtype: type, n: int) -> np.ndarray | None:
    if values is None:
        return None
    arr: np.ndarray = np.asarray(values, dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) like users, got {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Events:
    """A batch of interaction events as parallel numpy arrays (one entry per event).

    Attributes:
        users: int64 IDs, or an object array of ``str`` IDs.
        items: int64 IDs, or an object array of ``str`` IDs.
        labels: float32 rating/click label, or ``None`` (implicit feedback).
        timestamps: float64 seconds since the Unix epoch, or ``None``.
        weights: float32 non-negative per-event weight, or ``None`` (all 1).

    Arrays are coerced to those dtypes on construction. Index with a slice, an integer
    array or a boolean mask to get a new ``Events`` (``events[:1000]``,
    ``events[events.timestamps < t]``).
    """

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        users = _as_id_array("users", self.users)
        items = _as_id_array("items", self.items)
        n = users.shape[0]
        if items.shape[0] != n:
            raise ValueError(
                f"users and items must have the same length, got {n} and {items.shape[0]}"
            )
        # Frozen dataclass: coerced arrays are stored through object.__setattr__.
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "labels", _as_optional_float("labels", self.labels, np.float32, n))
        object.__setattr__(
            self, "timestamps", _as_optional_float("timestamps", self.timestamps, np.float64, n)
        )
        object.__setattr__(
            self, "weights", _as_optional_float("weights", self.weights, np.float32, n)
        )

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Events:
        """Return the events selected by a slice, integer indices or a boolean mask.

        An integer selects one event and still returns an ``Events`` (of length 1).
        """
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            position = range(len(self))[index]  # raises IndexError like a list
            index = slice(position, position + 1)
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool and index.shape != (len(self),):
                raise IndexError(
                    f"boolean mask must have length {len(self)}, got shape {index.shape}"
                )

        def pick(arr: np.ndarray | None) -> np.ndarray | None:
            return None if arr is None else arr[index]

        return Events(
            users=self.users[index],
            items=self.items[index],
            labels=pick(self.labels),
            timestamps=pick(self.timestamps),
            weights=pick(self.weights),
        )

    def __repr__(self) -> str:
        present = [
            name for name in ("labels", "timestamps", "weights") if getattr(self, name) is not None
        ]
        return f"Events(n={len(self)}, users={self.users.dtype}, with={present})"

    def to_dataframe(self) -> pd.DataFrame:
        """Columns ``user``, ``item`` and, when present, ``label``, ``timestamp``, ``weight``.

        ``load_events(events.to_dataframe())`` finds every column again by name.
        """
        _require_pandas()
        import pandas as pd

        columns: dict[str, np.ndarray] = {"user": self.users, "item": self.items}
        for column, arr in (
            ("label", self.labels),
            ("timestamp", self.timestamps),
            ("weight", self.weights),
        ):
            if arr is not None:
                columns[column] = arr
        return pd.DataFrame(columns)


# =========================================================================== report


@dataclass
class CleaningReport:
    """What :func:`load_events` did to its input.

    Attributes:
        source: where the events came from (a path, or ``"DataFrame"``/``"mapping"``).
        n_input: rows read.
        n_output: rows kept.
        counts: rows dropped per reason, every reason in :data:`REASONS` present (0 if none).
        examples: up to 5 dropped rows per reason, each a dict with the 0-based ``"row"``
            position in the input and that row's raw values in the columns used.
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


# =========================================================================== reading


def _require_pandas() -> None:
    try:
        import pandas  # noqa: F401
    except ImportError as exc:
        raise ImportError("loading events needs pandas: pip install pandas") from exc


def _read_source(source: Source) -> tuple[pd.DataFrame, str, bool]:
    """Return ``(frame, description, is_text_file)`` for any accepted source."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source, "DataFrame", False
    if isinstance(source, Events):
        return source.to_dataframe(), "Events", False
    if isinstance(source, (str, os.PathLike)):
        return _read_file(Path(source))
    if isinstance(source, Mapping):
        return _frame_from_mapping(source), "mapping", False
    raise TypeError(
        "source: expected a CSV/Parquet path, a pandas DataFrame, a mapping of column "
        f"name -> array, or Events; got {type(source).__name__}"
    )


def _frame_from_mapping(source: Mapping[str, Any]) -> pd.DataFrame:
    import pandas as pd

    lengths = {}
    for name, values in source.items():
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"source[{name!r}]: expected a 1-D array, got shape {arr.shape}")
        lengths[name] = arr.shape[0]
    if len(set(lengths.values())) > 1:
        raise ValueError(f"source: all arrays must have the same length, got {lengths}")
    return pd.DataFrame({name: np.asarray(values) for name, values in source.items()})


def _looks_binary(sample: bytes) -> bool:
    """NUL bytes or many control characters mean this is not a text table."""
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 13))
    return bool(sample) and control / len(sample) > 0.05


def _read_file(path: Path) -> tuple[pd.DataFrame, str, bool]:
    if not path.exists():
        raise FileNotFoundError(f"events file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty")
    with path.open("rb") as fh:
        sample = fh.read(8192)
    suffix = path.suffix.lower()
    # Parquet is recognised by its magic bytes too, whatever the file is called.
    if suffix in _PARQUET_SUFFIXES or sample[:4] == b"PAR1":
        frame = _read_parquet(path)
        is_text = False
    else:
        if suffix not in _COMPRESSED_SUFFIXES and _looks_binary(sample):
            raise ValueError(
                f"{path}: looks like binary data, not CSV text "
                "(expected a CSV with a header row, or a .parquet file)"
            )
        frame = _read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        is_text = True
    if len(frame) == 0:
        raise ValueError(f"{path}: has a header ({', '.join(map(str, frame.columns))}) but no rows")
    return frame, str(path), is_text


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    import pandas as pd

    try:
        # low_memory=False: type inference over the whole column, so no DtypeWarning
        # and no column whose type changes half-way through the file.
        return pd.read_csv(path, sep=sep, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: file is empty (no header row)") from exc
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: could not be parsed as CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"reading Parquet ({path}) needs pyarrow: pip install pyarrow"
        ) from exc
    import pyarrow as pa

    try:
        return pd.read_parquet(path, engine="pyarrow")
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: could not be read as Parquet: {exc}") from exc


# =========================================================================== columns


def _find_column(
    frame_columns: list[str],
    role: str,
    explicit: str | None,
    required: bool,
    origin: str,
) -> str | None:
    if explicit is not None:
        if explicit in frame_columns:
            return explicit
        raise ValueError(
            f"{origin}: {role} column {explicit!r} not found; columns are {frame_columns}"
        )
    candidates = COLUMN_CANDIDATES[role]
    for name in candidates:
        if name in frame_columns:
            return name
    folded = {str(c).strip().lower(): c for c in frame_columns}
    for name in candidates:
        if name.lower() in folded:
            return folded[name.lower()]
    if required:
        raise ValueError(
            f"{origin}: no {role} column found; tried {list(candidates)} "
            f"(or pass {role}_col=...); columns are {frame_columns}"
        )
    return None


def _resolve_columns(
    frame: pd.DataFrame,
    origin: str,
    explicit: dict[str, str | None],
    want_events: bool,
) -> dict[str, str | None]:
    frame_columns = list(frame.columns)
    if explicit["event"] is not None and not want_events:
        raise ValueError(
            f"event_col={explicit['event']!r} needs event_weights, a mapping of event type "
            "-> weight such as {'view': 0.2, 'click': 1.0, 'purchase': 3.0}"
        )
    resolved = {
        "user": _find_column(frame_columns, "user", explicit["user"], True, origin),
        "item": _find_column(frame_columns, "item", explicit["item"], True, origin),
        "label": _find_column(frame_columns, "label", explicit["label"], False, origin),
        "time": _find_column(frame_columns, "time", explicit["time"], False, origin),
        # Event types mean nothing without a weight mapping, so the column is only
        # looked for when event_weights is given.
        "event": _find_column(frame_columns, "event", explicit["event"], want_events, origin)
        if want_events
        else None,
        "weight": _find_column(frame_columns, "weight", explicit["weight"], False, origin),
    }
    used = [c for c in resolved.values() if c is not None]
    if len(used) != len(set(used)):
        raise ValueError(f"{origin}: one column was mapped to two roles: {resolved}")
    return resolved


# =========================================================================== parsing


def _parse_ids(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ids, missing)``: int64 for integral columns, else object array of str."""
    import pandas as pd

    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "integer",
        "floating",
        "mixed-integer-float",
    ):
        # Python numbers in an object column (e.g. built from JSON) are numbers, not text.
        series = pd.to_numeric(series)
    missing = series.isna().to_numpy(copy=True)
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        # A CSV integer column with a blank cell is read as float; it is still integral.
        missing |= ~np.isfinite(values)
        present = values[~missing]
        if np.all(present == np.round(present)):
            if pd.api.types.is_integer_dtype(series.dtype):
                ids = series.to_numpy(dtype=np.int64, na_value=0)
            else:
                ids = np.where(missing, 0, values).astype(np.int64)
            return ids, missing
        strings = series.astype(str).to_numpy(dtype=object)
        return strings, missing
    raw = series.to_numpy(dtype=object, copy=True)
    raw[missing] = ""
    strings = pd.Series(raw, dtype=object).astype(str).str.strip().to_numpy(dtype=object)
    missing |= strings == ""
    return strings, missing


def _parse_numbers(series: pd.Series) -> np.ndarray:
    """float64 values; anything unparsable becomes NaN."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("float64")
    numbers = pd.to_numeric(series, errors="coerce")
    # copy=True: pandas may hand out read-only views (copy-on-write); callers write into it.
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)


def _parse_timestamps(series: pd.Series) -> np.ndarray:
    """Seconds since the epoch as float64; NaN where unparsable.

    Numbers are taken as epoch seconds; strings that are not numbers are parsed as ISO
    8601 dates (no offset means UTC); datetime columns are converted directly.
    """
    import pandas as pd

    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
        series.dtype
    ):
        return _datetimes_to_seconds(pd.to_datetime(series, utc=True))
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    ):
        return series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    seconds = _parse_numbers(series)
    needs_date = np.isnan(seconds) & series.notna().to_numpy()
    if needs_date.any():
        texts = series[needs_date].astype(str)
        dates = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
        seconds[needs_date] = _datetimes_to_seconds(dates)
    return seconds


def _datetimes_to_seconds(dates: pd.Series) -> np.ndarray:
    import pandas as pd

    delta = dates - pd.Timestamp(0, tz="UTC")
    return (delta / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)


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


# =========================================================================== cleaning


def _to_python(value: Any) -> Any:
    """A JSON-friendly scalar: numpy scalars unboxed, NaN/NA/NaT as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return str(value)  # JSON has no infinity; "inf"/"-inf" still reads clearly
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _example_rows(
    frame: pd.DataFrame, rows: np.ndarray, columns: dict[str, str | None]
) -> list[dict[str, Any]]:
    used = [c for c in columns.values() if c is not None]
    examples = []
    for row in rows[:_MAX_EXAMPLES]:
        record: dict[str, Any] = {"row": int(row)}
        for column in used:
            record[str(column)] = _to_python(frame[column].iat[int(row)])
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
) -> ValueError:
    where = f"row {row}" + (f" (line {row + 2} of the file)" if is_text_file else "")
    col = f"column {column!r} " if column is not None else ""
    return ValueError(
        f"{origin}: {where}: {col}value {value!r}: {reason}{detail} "
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
    for name, value in (("min_user_count", min_user_count), ("min_item_count", min_item_count)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value!r}")


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
) -> tuple[Events, CleaningReport]:
    """Load interaction events, drop bad rows with a reason each, and report.

    Args:
        source: a CSV path (``.tsv`` is tab-separated; ``.gz`` etc. are decompressed), a
            Parquet path (``.parquet``/``.pq``, or any file with Parquet magic bytes;
            needs pyarrow), a pandas DataFrame, a mapping of column name -> 1-D array,
            or an :class:`Events`.
        user_col, item_col, label_col, time_col, event_col, weight_col: column names.
            When ``None`` they are found by the names in :data:`COLUMN_CANDIDATES`
            (exact, then case-insensitive). User and item are required; the others are
            optional. The event column is only used together with ``event_weights``.
        event_weights: event type -> weight, e.g. ``{"view": 0.2, "click": 1.0,
            "purchase": 3.0}``. A row's weight is its event weight times its weight
            column value when both exist. Types not in the mapping are dropped as
            ``unknown_event_type``.
        label_range: inclusive ``(lo, hi)``; finite labels outside are dropped as
            ``label_out_of_range``. Pass ``(0, 1)`` for click/logistic labels.
        strict: raise ``ValueError`` at the first bad row (naming row, column, value and
            reason) instead of dropping it. Duplicates count as bad rows; the min-count
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

    Row-level reasons are checked in the order of :data:`REASONS`; each dropped row is
    counted under the first that applies. IDs are int64 when the column is integral
    (a blank cell does not stop that), otherwise strings (whitespace stripped, blank =
    missing). Timestamps may be epoch seconds or ISO 8601 strings (no offset = UTC).
    Non-numeric labels count as ``non_finite_label``.

    Returns:
        ``(events, report)``: the clean :class:`Events` and a :class:`CleaningReport`.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: an empty, binary or unparsable file; no recognisable user/item
            column (the message lists the columns found and the names tried); bad
            options; a bad row when ``strict=True``.
        ImportError: a Parquet file without pyarrow installed.
    """
    _require_pandas()
    _check_options(label_range, min_user_count, min_item_count)
    if event_weights is not None:
        _validate_event_weights(event_weights)
    frame, origin, is_text_file = _read_source(source)
    columns = _resolve_columns(
        frame,
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
    users, missing_user = _parse_ids(frame[columns["user"]])
    items, missing_item = _parse_ids(frame[columns["item"]])
    flags: dict[str, np.ndarray] = {
        "missing_user": missing_user,
        "missing_item": missing_item,
    }
    labels = None
    if columns["label"] is not None:
        labels = _parse_numbers(frame[columns["label"]])
        finite = np.isfinite(labels)
        flags["non_finite_label"] = ~finite
        if label_range is not None:
            lo, hi = label_range
            flags["label_out_of_range"] = finite & ((labels < lo) | (labels > hi))
    weights = None
    if columns["weight"] is not None:
        weights = _parse_numbers(frame[columns["weight"]])
        flags["negative_or_non_finite_weight"] = ~(np.isfinite(weights) & (weights >= 0))
    timestamps = None
    if columns["time"] is not None:
        timestamps = _parse_timestamps(frame[columns["time"]])
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

    if strict and (reason_of >= 0).any():
        row = int(np.argmax(reason_of >= 0))
        reason = REASONS[reason_of[row]]
        column = columns[_REASON_ROLE[reason]]
        raise _strict_error(origin, is_text_file, row, reason, column, frame[column].iat[row])

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
                _to_python(users[row]), f" (exact duplicate of row {original})",
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
    examples = {
        reason: _example_rows(frame, np.flatnonzero(reason_of == code), columns)
        for code, reason in enumerate(REASONS)
        if counts[reason]
    }

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
        n_input=n,
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


# =========================================================================== features

#: Names tried for the features column of :func:`load_features` when ``feature_col`` is
#: not given (case-insensitive; exactly one may be present). The ID column is found by
#: the ``"item"`` and ``"user"`` names of :data:`COLUMN_CANDIDATES` the same way.
FEATURE_COLUMN_CANDIDATES: tuple[str, ...] = (
    "features",
    "feature",
    "genres",
    "genre",
    "tags",
    "tag",
    "categories",
    "category",
)

_DUPLICATE_POLICIES = ("error", "first", "last", "merge")
_LIST_TYPES = (list, tuple, np.ndarray, set, frozenset)
# A Python list written to CSV by pandas ("['Drama', 'Comedy']"): splitting it on a
# separator would give garbage features such as "['Drama'", so it is an error instead.
_LIST_REPR = re.compile(r"\[\s*\]|\[\s*['\"].*['\"]\s*\]", re.DOTALL)


def _where(origin: str, is_text_file: bool, row: int) -> str:
    return f"{origin}: row {row}" + (f" (line {row + 2} of the file)" if is_text_file else "")


def _is_missing_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (float, np.floating)) and value != value:
        return True
    import pandas as pd

    return value is pd.NA


def _check_prefix(name: str, prefix: Any) -> str | None:
    if prefix is None:
        return None
    if not isinstance(prefix, str):
        raise TypeError(f"{name}: expected a str such as 'genre' or None, got {prefix!r}")
    if not prefix.strip():
        raise ValueError(f"{name}: expected a non-empty name such as 'genre', got {prefix!r}")
    if prefix.strip().endswith("="):
        raise ValueError(
            f"{name}: give the name without '=' (got {prefix!r}); features are written "
            "as 'name=value'"
        )
    return prefix.strip()


def _check_feature_options(sep: Any, drop: Any, duplicates: Any) -> frozenset[str]:
    if sep is not None and (not isinstance(sep, str) or sep == ""):
        raise TypeError(f"sep: expected a non-empty str such as '|', or None, got {sep!r}")
    if duplicates not in _DUPLICATE_POLICIES:
        raise ValueError(f"duplicates: expected one of {list(_DUPLICATE_POLICIES)}, got {duplicates!r}")
    if drop is None:
        return frozenset()
    if isinstance(drop, str):
        drop = [drop]
    try:
        values = list(drop)
    except TypeError as exc:
        raise TypeError(
            f"drop: expected a str or a collection of str such as {{'(no genres listed)'}}, "
            f"got {drop!r}"
        ) from exc
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise TypeError(f"drop: expected strings, got {bad[0]!r} ({type(bad[0]).__name__})")
    return frozenset(v.strip() for v in values)


def _frame_from_feature_mapping(source: Mapping[str, Any]) -> pd.DataFrame:
    """Like :func:`_frame_from_mapping`, but a column may hold one list of strings per row."""
    import pandas as pd

    columns: dict[str, np.ndarray] = {}
    for name, values in source.items():
        if isinstance(values, np.ndarray):
            arr = values
        elif isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(
                f"source[{name!r}]: expected a sequence with one value per row, "
                f"got {type(values).__name__}"
            )
        else:
            seq = list(values)
            if any(isinstance(v, _LIST_TYPES) for v in seq):
                arr = np.empty(len(seq), dtype=object)
                for i, v in enumerate(seq):
                    arr[i] = v
            else:
                arr = np.asarray(seq)
        if arr.ndim != 1:
            raise ValueError(
                f"source[{name!r}]: expected a 1-D array, got shape {arr.shape} "
                "(give features as a list with one list of strings per row)"
            )
        columns[name] = arr
    lengths = {name: arr.shape[0] for name, arr in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"source: all columns must have the same length, got {lengths}")
    return pd.DataFrame(columns)


def _discover_column(
    frame_columns: list[Any],
    candidates: Sequence[str],
    what: str,
    param: str,
    origin: str,
    exclude: Sequence[Any] = (),
) -> Any:
    wanted = {name.lower() for name in candidates}
    matches = [
        c for c in frame_columns if c not in exclude and str(c).strip().lower() in wanted
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ValueError(
            f"{origin}: no {what} column found; tried {list(candidates)} "
            f"(or pass {param}=...); columns are {frame_columns}"
        )
    raise ValueError(
        f"{origin}: several columns could be the {what} column: {matches}; "
        f"pass {param}=... to choose one"
    )


def _resolve_feature_columns(
    frame: pd.DataFrame,
    origin: str,
    id_col: str | None,
    feature_col: Any,
    prefix: str | None,
) -> tuple[Any, list[tuple[Any, str | None]]]:
    """Return ``(id column, [(feature column, prefix or None), ...])``."""
    frame_columns = list(frame.columns)
    if feature_col is None:
        found = _discover_column(
            frame_columns, FEATURE_COLUMN_CANDIDATES, "features", "feature_col", origin,
            exclude=() if id_col is None else (id_col,),
        )
        spec = [(found, prefix)]
    elif isinstance(feature_col, str):
        spec = [(feature_col, prefix)]
    elif isinstance(feature_col, Mapping):
        if prefix is not None:
            raise ValueError(
                "prefix= cannot be combined with a mapping feature_col; give each column's "
                "prefix in the mapping, e.g. {'genres': 'genre', 'tags': None}"
            )
        spec = [(col, _check_prefix(f"feature_col[{col!r}]", p)) for col, p in feature_col.items()]
    elif isinstance(feature_col, Sequence) and all(isinstance(c, str) for c in feature_col):
        spec = [(col, prefix) for col in feature_col]
    else:
        raise TypeError(
            "feature_col: expected a column name, a list of column names or a mapping of "
            f"column name -> prefix, got {feature_col!r}"
        )
    if not spec:
        raise ValueError("feature_col: expected at least one column, got none")
    names = [col for col, _ in spec]
    if len(names) != len(set(names)):
        raise ValueError(f"feature_col: a column is listed twice: {names}")
    for col in names:
        if col not in frame_columns:
            raise ValueError(
                f"{origin}: features column {col!r} not found; columns are {frame_columns}"
            )
    if id_col is None:
        found_id = _discover_column(
            frame_columns,
            COLUMN_CANDIDATES["item"] + COLUMN_CANDIDATES["user"],
            "ID",
            "id_col",
            origin,
            exclude=names,
        )
    elif id_col in frame_columns:
        found_id = id_col
    else:
        raise ValueError(f"{origin}: ID column {id_col!r} not found; columns are {frame_columns}")
    if found_id in names:
        raise ValueError(
            f"{origin}: column {found_id!r} cannot be both the ID and a features column"
        )
    return found_id, spec


def _feature_values(
    series: pd.Series, column: Any, origin: str, is_text_file: bool, sep: str | None
) -> list[list[str]]:
    """Each row's feature values as written: trimmed, non-empty, in order (not yet deduped)."""
    import pandas as pd

    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "integer",
        "floating",
        "mixed-integer-float",
    ):
        series = pd.to_numeric(series)
    if pd.api.types.is_integer_dtype(series.dtype):
        # A category column such as a year or a brand ID: each value is one feature.
        cells = series.to_numpy(dtype=object)
        return [[] if _is_missing_scalar(v) else [str(int(v))] for v in cells]
    if pd.api.types.is_float_dtype(series.dtype):
        # An integer column with blank cells reads from CSV as float; it is still integral.
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isnan(values) & ~(np.isfinite(values) & (values == np.round(values)))
        if bad.any():
            row = int(np.argmax(bad))
            raise TypeError(
                f"{_where(origin, is_text_file, row)}: column {column!r} value "
                f"{float(values[row])!r}: expected strings, lists of strings or integer "
                "categories, got a non-integral number"
            )
        return [[] if math.isnan(v) else [str(int(v))] for v in values]
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        raise TypeError(
            f"{origin}: column {column!r}: expected strings, lists of strings or integer "
            f"categories, got dtype {series.dtype}"
        )

    out: list[list[str]] = []
    for row, cell in enumerate(series.to_numpy(dtype=object)):
        if isinstance(cell, str):
            text = cell.strip()
            if text.startswith("[") and _LIST_REPR.fullmatch(text):
                raise ValueError(
                    f"{_where(origin, is_text_file, row)}: column {column!r} value {cell!r} looks "
                    "like a Python list written to CSV as text; parse it (ast.literal_eval) "
                    "or save the table as Parquet, which keeps list columns"
                )
            if sep is None:
                out.append([text] if text else [])
            else:
                out.append([part for part in map(str.strip, text.split(sep)) if part])
        elif _is_missing_scalar(cell):
            out.append([])
        elif isinstance(cell, _LIST_TYPES):
            if isinstance(cell, np.ndarray) and cell.ndim != 1:
                raise TypeError(
                    f"{_where(origin, is_text_file, row)}: column {column!r}: expected a 1-D "
                    f"array of strings, got shape {cell.shape}"
                )
            values = []
            for position, element in enumerate(cell):
                if isinstance(element, str):
                    element = element.strip()
                    if element:
                        values.append(element)
                elif not _is_missing_scalar(element):
                    raise TypeError(
                        f"{_where(origin, is_text_file, row)}: column {column!r}: expected a list "
                        f"of strings, got {type(element).__name__} {element!r} at position "
                        f"{position}"
                    )
            # A set has no order; sorting keeps the output the same from run to run.
            out.append(sorted(values) if isinstance(cell, (set, frozenset)) else values)
        else:
            raise TypeError(
                f"{_where(origin, is_text_file, row)}: column {column!r}: expected a string, a "
                f"list of strings or a missing value, got {type(cell).__name__} {cell!r}"
            )
    return out


def load_features(
    source: Source,
    *,
    id_col: str | None = None,
    feature_col: str | Sequence[str] | Mapping[str, str | None] | None = None,
    prefix: str | None = None,
    sep: str | None = "|",
    drop: str | Iterable[str] | None = None,
    duplicates: str = "error",
) -> tuple[np.ndarray, list[list[str]]]:
    """Load side features, one row per user or item, as ``(ids, features)``.

    The result feeds straight into the model::

        items, features = load_features("movies.csv", prefix="genre")  # MovieLens as is
        rec.set_item_features(items, features)   # features[0] == ["genre=Adventure", ...]

    Args:
        source: what :func:`load_events` reads (a CSV/TSV path, possibly compressed; a
            Parquet path, whose list columns come through as lists; a pandas DataFrame;
            a mapping of column name -> sequence, where the features column may be a list
            of lists), except an :class:`Events`.
        id_col: the ID column. When ``None`` it is found by the item and user names of
            :data:`COLUMN_CANDIDATES` (case-insensitive), e.g. ``movieId``; exactly one
            such column may be present, so a table with both ``userId`` and ``movieId``
            needs ``id_col``.
        feature_col: the features column: a name; a list of names; or a mapping of name ->
            prefix (``None`` for no prefix) to give each column its own, e.g.
            ``{"genres": "genre", "brand": "brand"}``. When ``None`` it is found by the
            names in :data:`FEATURE_COLUMN_CANDIDATES` (``features``, ``genres``,
            ``tags``, ...); exactly one may be present. With several columns a row's
            features are those of each column in turn.
        prefix: written before every value as ``prefix=value`` (``"Drama"`` becomes
            ``"genre=Drama"``), for every column given by name. With a mapping
            ``feature_col`` the prefixes are in the mapping and this must be ``None``.
        sep: separator splitting a string cell (``"Adventure|Animation"``); ``None``
            makes each string cell one feature. Lists are never split.
        drop: values to leave out, e.g. ``{"(no genres listed)"}``. Each value is compared
            as written (trimmed) and with its prefix, so ``"genre=(no genres listed)"``
            drops it too. Nothing is dropped unless asked: MovieLens's
            ``"(no genres listed)"`` is otherwise a feature like any other.
        duplicates: what to do with an ID on several rows: ``"error"`` (default) raises
            naming the rows; ``"first"``/``"last"`` keep one row; ``"merge"`` unites the
            rows' features at the ID's first position (a long table with one row per
            ID and feature, such as MovieLens ``tags.csv``).

    A cell may be a string (split on ``sep``), a list/tuple/1-D array of strings (a set
    is sorted), an integer (a category column such as a year becomes ``"1995"``), or
    missing (``None``/NaN/NA, or an empty string), which gives no features. Values are
    trimmed of whitespace, empty ones are skipped, case is kept, and a value repeated in
    one row (or across its columns) is kept once, at its first position. Rows without
    features are kept, with ``[]``. As in :func:`load_events`, a CSV cell that is exactly
    ``NA``, ``null``, ``None`` etc. is read by pandas as missing.

    Returns:
        ``(ids, features)`` in the order of the input rows: ``ids`` is int64 when the ID
        column is integral and otherwise an object array of ``str`` (trimmed), like
        :class:`Events`; ``features`` is a list with one list of ``str`` per ID.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: an empty, binary or unparsable file; a missing, unrecognisable or
            ambiguous ID/features column (the message lists the columns); a row with no
            ID; a duplicated ID with ``duplicates="error"``; a string cell that is a
            Python list written to CSV (``"['Drama', 'Comedy']"``); bad options.
        TypeError: a wrong source or option type; a cell or list element that is not a
            string (or, for a whole column, an integer).
        ImportError: a Parquet file without pyarrow installed.
    """
    _require_pandas()
    import pandas as pd

    prefix = _check_prefix("prefix", prefix)
    drop_set = _check_feature_options(sep, drop, duplicates)
    if isinstance(source, Events):
        raise TypeError(
            "source: Events hold no features; expected a CSV/Parquet path, a pandas "
            "DataFrame or a mapping of column name -> values"
        )
    if isinstance(source, Mapping) and not isinstance(source, pd.DataFrame):
        frame, origin, is_text_file = _frame_from_feature_mapping(source), "mapping", False
    else:
        if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
            raise FileNotFoundError(f"features file not found: {source}")
        frame, origin, is_text_file = _read_source(source)
    id_column, spec = _resolve_feature_columns(frame, origin, id_col, feature_col, prefix)

    id_series = frame[id_column]
    if id_series.dtype == object:
        for row, cell in enumerate(id_series.to_numpy(dtype=object)):
            if isinstance(cell, _LIST_TYPES) or not (
                isinstance(cell, (str, int, np.integer, float, np.floating))
                or _is_missing_scalar(cell)
            ):
                raise TypeError(
                    f"{_where(origin, is_text_file, row)}: ID column {id_column!r}: expected "
                    f"an integer or string ID, got {type(cell).__name__} {cell!r}"
                )
    ids, missing = _parse_ids(id_series)
    if missing.any():
        row = int(np.argmax(missing))
        raise ValueError(
            f"{_where(origin, is_text_file, row)}: ID column {id_column!r} value "
            f"{_to_python(id_series.iat[row])!r}: missing ID ({int(missing.sum())} row(s) "
            "have none); drop those rows first"
        )

    per_column = [
        (_feature_values(frame[col], col, origin, is_text_file, sep), col_prefix)
        for col, col_prefix in spec
    ]
    # Column by column (a comprehension per step is much faster than a loop per value).
    columns_out = []
    for values, col_prefix in per_column:
        if drop_set:
            values = [[v for v in vs if v not in drop_set] for vs in values]
        if col_prefix is not None:
            head = col_prefix + "="
            values = [[head + v for v in vs] for vs in values]
            if drop_set:
                values = [[v for v in vs if v not in drop_set] for vs in values]
        columns_out.append(values)
    combined = (
        columns_out[0]
        if len(columns_out) == 1
        else [[v for vs in parts for v in vs] for parts in zip(*columns_out, strict=True)]
    )
    # Each row's list is its own (fresh per row), so short rows are returned as they are.
    rows = [list(dict.fromkeys(vs)) if len(vs) > 1 else vs for vs in combined]

    keys = ids.tolist()
    duplicated = pd.Series(ids, dtype=ids.dtype).duplicated(keep=False).to_numpy()
    if not duplicated.any():
        return ids, rows
    if duplicates == "error":
        first = int(np.argmax(duplicated))
        again = next(r for r in range(first + 1, len(keys)) if keys[r] == keys[first])
        line = f" (lines {first + 2} and {again + 2} of the file)" if is_text_file else ""
        n_ids = len({keys[r] for r in np.flatnonzero(duplicated)})
        raise ValueError(
            f"{origin}: ID {keys[first]!r} is on rows {first} and {again}{line} "
            f"({n_ids} ID(s) are on more than one row); pass duplicates='first' or 'last' to "
            "keep one row, or 'merge' to unite their features"
        )
    if duplicates in ("first", "last"):
        keep = np.flatnonzero(
            ~pd.Series(ids, dtype=ids.dtype).duplicated(keep=duplicates).to_numpy()
        )
        return ids[keep], [rows[r] for r in keep]
    # merge: each ID at its first position, with the features of all its rows in order.
    position: dict[Any, int] = {}
    order: list[int] = []
    merged: list[dict[str, None]] = []
    for row, key in enumerate(keys):
        if key in position:
            merged[position[key]].update(dict.fromkeys(rows[row]))
        else:
            position[key] = len(order)
            order.append(row)
            merged.append(dict.fromkeys(rows[row]))
    return ids[np.asarray(order, dtype=np.intp)], [list(m) for m in merged]
