"""Side features for :meth:`Recommender.set_item_features` / ``set_user_features``:
:func:`load_features` reads one row per ID from the same sources as the event loader and
returns ``(ids, feature lists)``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..events import Events
from .columns import COLUMN_CANDIDATES, FEATURE_COLUMN_CANDIDATES, discover_column
from .parsing import LIST_TYPES, is_missing_scalar, parse_ids, to_python
from .sources import Source, frame_from_feature_mapping, read_source, require_pandas, where

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = ["load_features"]

#: What ``duplicates=`` accepts: an ID on several rows is an error, keeps one row, or merges them.
DUPLICATE_POLICIES = ("error", "first", "last", "merge")
# A Python list written to CSV by pandas ("['Drama', 'Comedy']"): splitting it on a
# separator would give garbage features such as "['Drama'", so it is an error instead.
_LIST_REPR = re.compile(r"\[\s*\]|\[\s*['\"].*['\"]\s*\]", re.DOTALL)


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
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates: expected one of {list(DUPLICATE_POLICIES)}, got {duplicates!r}")
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
        found = discover_column(
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
        found_id = discover_column(
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
        return [[] if is_missing_scalar(v) else [str(int(v))] for v in cells]
    if pd.api.types.is_float_dtype(series.dtype):
        # An integer column with blank cells reads from CSV as float; it is still integral.
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isnan(values) & ~(np.isfinite(values) & (values == np.round(values)))
        if bad.any():
            row = int(np.argmax(bad))
            raise TypeError(
                f"{where(origin, is_text_file, row)}: column {column!r} value "
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
                    f"{where(origin, is_text_file, row)}: column {column!r} value {cell!r} looks "
                    "like a Python list written to CSV as text; parse it (ast.literal_eval) "
                    "or save the table as Parquet, which keeps list columns"
                )
            if sep is None:
                out.append([text] if text else [])
            else:
                out.append([part for part in map(str.strip, text.split(sep)) if part])
        elif is_missing_scalar(cell):
            out.append([])
        elif isinstance(cell, LIST_TYPES):
            if isinstance(cell, np.ndarray) and cell.ndim != 1:
                raise TypeError(
                    f"{where(origin, is_text_file, row)}: column {column!r}: expected a 1-D "
                    f"array of strings, got shape {cell.shape}"
                )
            values = []
            for position, element in enumerate(cell):
                if isinstance(element, str):
                    element = element.strip()
                    if element:
                        values.append(element)
                elif not is_missing_scalar(element):
                    raise TypeError(
                        f"{where(origin, is_text_file, row)}: column {column!r}: expected a list "
                        f"of strings, got {type(element).__name__} {element!r} at position "
                        f"{position}"
                    )
            # A set has no order; sorting keeps the output the same from run to run.
            out.append(sorted(values) if isinstance(cell, (set, frozenset)) else values)
        else:
            raise TypeError(
                f"{where(origin, is_text_file, row)}: column {column!r}: expected a string, a "
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
    delimiter: str | None = None,
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
        delimiter: the field separator of a text file; None sniffs it (comma, tab or
            semicolon).

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
    require_pandas()
    import pandas as pd

    prefix = _check_prefix("prefix", prefix)
    drop_set = _check_feature_options(sep, drop, duplicates)
    if isinstance(source, Events):
        raise TypeError(
            "source: Events hold no features; expected a CSV/Parquet path, a pandas "
            "DataFrame or a mapping of column name -> values"
        )
    if isinstance(source, Mapping) and not isinstance(source, pd.DataFrame):
        frame, origin, is_text_file = frame_from_feature_mapping(source), "mapping", False
    else:
        if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
            raise FileNotFoundError(f"features file not found: {source}")
        frame, origin, is_text_file = read_source(source, delimiter=delimiter)
    id_column, spec = _resolve_feature_columns(frame, origin, id_col, feature_col, prefix)

    id_series = frame[id_column]
    if id_series.dtype == object:
        for row, cell in enumerate(id_series.to_numpy(dtype=object)):
            if isinstance(cell, LIST_TYPES) or not (
                isinstance(cell, (str, int, np.integer, float, np.floating))
                or is_missing_scalar(cell)
            ):
                raise TypeError(
                    f"{where(origin, is_text_file, row)}: ID column {id_column!r}: expected "
                    f"an integer or string ID, got {type(cell).__name__} {cell!r}"
                )
    ids, missing = parse_ids(id_series)
    if missing.any():
        row = int(np.argmax(missing))
        raise ValueError(
            f"{where(origin, is_text_file, row)}: ID column {id_column!r} value "
            f"{to_python(id_series.iat[row])!r}: missing ID ({int(missing.sum())} row(s) "
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
