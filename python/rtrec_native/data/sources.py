"""Reading a source of rows into a pandas DataFrame: CSV/TSV (possibly compressed) and
Parquet files, DataFrames, mappings of column name -> values, and :class:`Events`.

Errors say what is wrong with the file (missing, a directory, empty, binary, unparsable) in
one line. pandas and pyarrow are imported inside the functions that need them.
"""

from __future__ import annotations

import os
import re
import warnings
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


def where(origin: str, is_text_file: bool, row: int, line: int | None = None) -> str:
    """A row's position for a message: the 0-based row, and its line in a text file
    (``line`` when known, else the row's line if every line above it is one row)."""
    if not is_text_file:
        return f"{origin}: row {row}"
    return f"{origin}: row {row} (line {row + 2 if line is None else line} of the file)"


def lines_of_rows(rows: np.ndarray, skipped_lines: Iterable[int]) -> np.ndarray:
    """The file line (1-based, header = line 1) of each 0-based data row, given the lines
    the reader skipped. Assumes one line per row otherwise: blank lines (which the CSV
    reader also skips) and quoted fields spanning lines are not counted."""
    skipped = np.sort(np.asarray(list(skipped_lines), dtype=np.int64))
    # The j-th skipped line (0-based j) comes right after data row (line - 2 - j) - 1, so
    # every row from (line - 2 - j) on is one line further down.
    shift_from = skipped - 2 - np.arange(skipped.size)
    rows = np.asarray(rows, dtype=np.int64)
    return rows + 2 + np.searchsorted(shift_from, rows, side="right")


def require_pandas() -> None:
    try:
        import pandas  # noqa: F401
    except ImportError as exc:
        raise ImportError("loading events needs pandas: pip install pandas") from exc


def read_source(
    source: Source, *, skipped_lines: list[tuple[int, str]] | None = None, delimiter: str | None = None
) -> tuple[pd.DataFrame, str, bool]:
    """Return ``(frame, description, is_text_file)`` for any accepted source.

    A CSV line with more fields than the header is an error, unless ``skipped_lines`` is a
    list: then the line is skipped and ``(line number, what is wrong)`` appended to it.
    ``delimiter``: the field separator of a text file; None sniffs it (see :func:`sniff_delimiter`).
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source, "DataFrame", False
    if isinstance(source, Events):
        return source.to_dataframe(), "Events", False
    if isinstance(source, (str, os.PathLike)):
        return _read_file(Path(source), skipped_lines, check_delimiter(delimiter))
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


#: Field separators :func:`sniff_delimiter` chooses from.
DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon"}


def check_delimiter(delimiter: Any) -> str | None:
    """None (sniff) or a one-character separator; ``"tab"``/``"\\t"`` mean a tab."""
    if delimiter is None:
        return None
    if not isinstance(delimiter, str):
        raise TypeError(f"delimiter must be a one-character str or None, got {type(delimiter).__name__}")
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
    delimiter = named.get(delimiter.lower(), delimiter)
    if len(delimiter) != 1 or delimiter in "\"\r\n":
        raise ValueError(f"delimiter must be one character such as ',', ';' or 'tab', got {delimiter!r}")
    return delimiter


def sniff_delimiter(sample: bytes, suffix: str) -> str:
    """The separator of a text table from its header line: the most frequent of comma, tab
    and semicolon there (comma when none occurs; tab for an empty ``.tsv`` header)."""
    header = sample.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    counts = {sep: header.count(sep) for sep in DELIMITERS}
    best = max(counts, key=lambda sep: counts[sep])
    if counts[best] == 0:
        return "\t" if suffix == ".tsv" else ","
    return best


def _read_file(
    path: Path, skipped_lines: list[tuple[int, str]] | None = None, delimiter: str | None = None
) -> tuple[pd.DataFrame, str, bool]:
    if not path.exists():
        raise FileNotFoundError(f"events file not found: {path}")
    if path.is_dir():
        return _read_parquet_directory(path), str(path), False
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
        if delimiter is None:
            compressed = suffix in _COMPRESSED_SUFFIXES  # the sample is not text: by name only
            delimiter = ("\t" if path.name.lower().endswith(".tsv" + suffix) else ",") if compressed \
                else sniff_delimiter(sample, suffix)
        frame = _read_csv(path, sep=delimiter, skipped_lines=skipped_lines)
        is_text = True
    if len(frame) == 0:
        raise ValueError(f"{path}: has a header ({', '.join(map(str, frame.columns))}) but no rows")
    return frame, str(path), is_text


# pandas' message for a skipped line ("Skipping line 7593: expected 4 fields, saw 5").
_SKIPPED_LINE = re.compile(r"Skipping line (\d+): (.*)")


def _read_csv(
    path: Path, sep: str, skipped_lines: list[tuple[int, str]] | None = None
) -> pd.DataFrame:
    import pandas as pd

    try:
        if skipped_lines is None:
            # low_memory=False: type inference over the whole column, so no DtypeWarning
            # and no column whose type changes half-way through the file.
            return pd.read_csv(path, sep=sep, low_memory=False)
        # The fast C reader only reports a skipped line through a warning; collect them.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(path, sep=sep, low_memory=False, on_bad_lines="warn")
        for warning in caught:
            if not issubclass(warning.category, pd.errors.ParserWarning):
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
                continue
            for found in _SKIPPED_LINE.finditer(str(warning.message)):
                skipped_lines.append((int(found.group(1)), found.group(2).strip()))
        skipped_lines.sort()
        return frame
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: file is empty (no header row)") from exc
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: could not be parsed as CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _read_parquet_directory(path: Path) -> pd.DataFrame:
    """A directory of Parquet files (e.g. ``rtrec consume --archive DIR``): every finished
    file (names starting with ``.`` or ``_`` are files being written, and skipped), in name
    order. A column null throughout (an archive's labels or timestamps when the events
    carried none) is dropped."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in _PARQUET_SUFFIXES and p.name[0] not in "._")
    if not files:
        raise ValueError(f"{path}: is a directory without Parquet files, expected a CSV or Parquet file or a "
                         "directory of Parquet files")
    frame = _read_parquet(path)
    empty = [name for name in frame.columns if frame[name].isna().all()]
    return frame.drop(columns=empty) if len(frame) else frame


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
