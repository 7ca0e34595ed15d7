"""Reading a source of rows into a pandas DataFrame: CSV/TSV (possibly compressed) and
Parquet files, DataFrames, mappings of column name -> values, and :class:`Events`.

Errors say what is wrong with the file (missing, a directory, empty, binary, unparsable) in
one line. pandas and pyarrow are imported inside the functions that need them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ..events import Events
from .parsing import LIST_TYPES

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

#: What :func:`~rtrec_native.data.load_events` and ``load_features`` read.
Source = Union[str, "os.PathLike[str]", "pd.DataFrame", Mapping[str, Any], Events]

_PARQUET_SUFFIXES = {".parquet", ".pq"}
_COMPRESSED_SUFFIXES = {".gz", ".bz2", ".zip", ".xz", ".zst", ".tar"}


def where(origin: str, is_text_file: bool, row: int) -> str:
    """A row's position for a message: the 0-based row, and its line in a text file."""
    return f"{origin}: row {row}" + (f" (line {row + 2} of the file)" if is_text_file else "")

def require_pandas() -> None:
    try:
        import pandas  # noqa: F401
    except ImportError as exc:
        raise ImportError("loading events needs pandas: pip install pandas") from exc


def read_source(source: Source) -> tuple[pd.DataFrame, str, bool]:
    """Return ``(frame, description, is_text_file)`` for any accepted source."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source, "DataFrame", False
    if isinstance(source, Events):
        return source.to_dataframe(), "Events", False
    if isinstance(source, (str, os.PathLike)):
        return _read_file(Path(source))
    if isinstance(source, Mapping):
        return frame_from_mapping(source), "mapping", False
    raise TypeError(
        "source: expected a CSV/Parquet path, a pandas DataFrame, a mapping of column "
        f"name -> array, or Events; got {type(source).__name__}"
    )


def frame_from_mapping(source: Mapping[str, Any]) -> pd.DataFrame:
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



def frame_from_feature_mapping(source: Mapping[str, Any]) -> pd.DataFrame:
    """Like :func:`frame_from_mapping`, but a column may hold one list of strings per row."""
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
            if any(isinstance(v, LIST_TYPES) for v in seq):
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
