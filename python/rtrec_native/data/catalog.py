"""Item names from a catalogue file (MovieLens ``movies.csv`` as is), for
:meth:`Recommender.set_item_names <rtrec_native.Recommender.set_item_names>`::

    ids, names = load_item_names("movies.csv")      # movieId, title
    rec.set_item_names(ids, names)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .columns import COLUMN_CANDIDATES, discover_column
from .parsing import parse_ids
from .sources import Source, read_source, require_pandas, where

#: Names tried for the name column of :func:`load_item_names` when ``name_col`` is not given
#: (case-insensitive; at most one may be present).
NAME_COLUMN_CANDIDATES: tuple[str, ...] = ("title", "name", "item_name", "product_name")


def load_item_names(
    source: Source,
    *,
    id_col: str | None = None,
    name_col: str | None = None,
    delimiter: str | None = None,
) -> tuple[np.ndarray, list[str | None]]:
    """Load ``(ids, names)`` from a catalogue: one row per item, an ID and a name column.

    Args:
        source: a CSV/TSV/Parquet path, a pandas DataFrame or a mapping of column name ->
            values (what :func:`load_events` reads, except Events).
        id_col: the item ID column; None finds it by the item names of
            :data:`COLUMN_CANDIDATES` (``movieId``, ``itemId``, ``item_id``, ...).
        name_col: the name column; None finds it among :data:`NAME_COLUMN_CANDIDATES`
            (``title``, ``name``, ...).
        delimiter: a text file's field separator; None sniffs it (comma, tab, semicolon).

    IDs are int64 when the column is integral, else str (as :func:`load_events` reads them,
    so they match the events' IDs). A missing name is None; an ID on several rows keeps its
    first name.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: no (or an ambiguous) ID or name column, or a row without an ID.
    """
    require_pandas()
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        raise FileNotFoundError(f"catalogue file not found: {source}")
    frame, origin, is_text_file = read_source(source, delimiter=delimiter)
    columns = list(frame.columns)
    for given, what, param in ((id_col, "item ID", "id_col"), (name_col, "name", "name_col")):
        if given is not None and given not in columns:
            raise ValueError(f"{origin}: {what} column {given!r} not found (pass {param}=...); columns are {columns}")
    name_column = name_col if name_col is not None else discover_column(
        columns, NAME_COLUMN_CANDIDATES, "name", "name_col", origin, exclude=() if id_col is None else (id_col,))
    id_column = id_col if id_col is not None else discover_column(
        columns, COLUMN_CANDIDATES["item"], "item ID", "id_col", origin, exclude=(name_column,))
    if id_column == name_column:
        raise ValueError(f"{origin}: column {id_column!r} cannot be both the item ID and the name column")
    ids, missing = parse_ids(frame[id_column])
    if missing.any():
        row = int(np.argmax(missing))
        raise ValueError(f"{where(origin, is_text_file, row)}: item ID column {id_column!r} is empty "
                         f"({int(missing.sum())} row(s) have no ID); drop those rows first")
    raw = frame[name_column].to_numpy(dtype=object)
    names: list[Any] = [None if not isinstance(v, str) or not v.strip() else v.strip() for v in raw]
    _, first = np.unique(ids if ids.dtype != object else ids.astype(str), return_index=True)
    if len(first) < len(ids):
        keep = np.sort(first)
        ids, names = ids[keep], [names[i] for i in keep]
    return ids, names
