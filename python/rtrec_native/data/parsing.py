"""Raw table columns to typed arrays: IDs, numbers, timestamps, and the cell helpers shared
by the event cleaner and the features loader. A value that cannot be parsed becomes a flag
(missing ID, NaN), never an exception: the callers decide whether that drops a row or raises.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

#: Cell values that hold several values (a features cell; never an ID).
LIST_TYPES = (list, tuple, np.ndarray, set, frozenset)

def parse_ids(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
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


#: An ID column whose values are integers but for at most this fraction is an integer ID
#: column with a few malformed cells (e.g. "abc" among movieIds), not a column of text IDs.
MALFORMED_ID_FRACTION = 0.01


def parse_event_ids(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`parse_ids`, plus ``malformed``: the cells that are not integers in a
    column of integer IDs (at most :data:`MALFORMED_ID_FRACTION` of its present cells).

    Without this one stray word would turn every ID of the column into text, and the
    word into an ID of its own.
    """
    import pandas as pd

    malformed = np.zeros(len(series), dtype=bool)
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        text = series.astype(str).str.strip()
        present = (series.notna() & (text != "")).to_numpy()
        # Nullable integers keep 64-bit IDs exact (a float column would round them).
        numbers = pd.to_numeric(text.where(present), errors="coerce", dtype_backend="numpy_nullable")
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(values) & (values == np.round(values))
        bad = present & ~integral
        n_present = int(present.sum())
        if 0 < bad.sum() <= MALFORMED_ID_FRACTION * n_present:
            malformed = bad
            if not pd.api.types.is_integer_dtype(numbers.dtype):
                numbers = numbers.where(~bad).astype("Int64")
            series = numbers.where(~bad)
    ids, missing = parse_ids(series)
    return ids, missing & ~malformed, malformed


def parse_numbers(series: pd.Series) -> np.ndarray:
    """float64 values; anything unparsable becomes NaN."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("float64")
    numbers = pd.to_numeric(series, errors="coerce")
    # copy=True: pandas may hand out read-only views (copy-on-write); callers write into it.
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)


def parse_timestamps(series: pd.Series) -> np.ndarray:
    """Seconds since the epoch as float64; NaN where unparsable.

    Numbers are taken as epoch seconds; strings that are not numbers are parsed as ISO
    8601 dates (no offset means UTC); datetime columns are converted directly.
    """
    import pandas as pd

    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
        series.dtype
    ):
        return datetimes_to_seconds(pd.to_datetime(series, utc=True))
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    ):
        return series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    seconds = parse_numbers(series)
    needs_date = np.isnan(seconds) & series.notna().to_numpy()
    if needs_date.any():
        texts = series[needs_date].astype(str)
        dates = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
        seconds[needs_date] = datetimes_to_seconds(dates)
    return seconds


def datetimes_to_seconds(dates: pd.Series) -> np.ndarray:
    import pandas as pd

    delta = dates - pd.Timestamp(0, tz="UTC")
    return (delta / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)


def to_python(value: Any) -> Any:
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


def is_missing_scalar(value: Any) -> bool:
    if value is None or (isinstance(value, (float, np.floating)) and value != value):
        return True
    import pandas as pd

    return value is pd.NA
