"""Boundary checks: turn user input into the exact arrays the native core expects, or raise.

Everything here runs before the core is called, on the whole batch, so a bad batch raises a
ValueError/TypeError that names the argument, what was expected and what came, and the
model is left exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np

from . import _core

IdKind = Literal["int", "str"]
# What the core takes for one side of a batch: uint64 keys (int64 IDs reinterpreted) or strings.
CoreIds = np.ndarray | list

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _describe(values: Any) -> str:
    if isinstance(values, np.ndarray):
        return f"an array of dtype {values.dtype} and shape {values.shape}"
    return f"{type(values).__name__}"


def _as_array(values: Any, name: str) -> np.ndarray:
    """Array view of lists, tuples, pandas Series and arrays, without guessing element types."""
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):  # pandas Series/Index
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        arr = values
    elif isinstance(values, (list, tuple, range)):
        # np.asarray([1, "a"]) would silently make strings of everything: keep objects as they are.
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    elif isinstance(values, (str, bytes)) or np.isscalar(values):
        raise TypeError(f"{name} must be a 1-D sequence of IDs (list, numpy array or pandas Series), "
                        f"got a scalar {values!r}")
    else:
        raise TypeError(f"{name} must be a 1-D sequence of IDs (list, numpy array or pandas Series), "
                        f"got {_describe(values)}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _int_ids(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype.kind == "u" and arr.size and arr.max() > _INT64_MAX:
        raise ValueError(f"{name}: integer IDs must fit in int64, got {arr.max()}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _float_ids(arr: np.ndarray, name: str) -> np.ndarray:
    # float64 first: comparing a float16/float32 array with 2.0**63 would overflow in the cast
    # (a RuntimeWarning, an error under -W error) before any check could speak.
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = arr[~finite][0]
        raise ValueError(f"{name}: float IDs must be finite whole numbers, got {bad}")
    if (np.floor(arr) != arr).any():
        bad = arr[np.floor(arr) != arr][0]
        raise ValueError(f"{name}: float IDs must be whole numbers (an ID with a fraction is ambiguous), got {bad}")
    if arr.size and (arr.min() < _INT64_MIN or arr.max() >= 2.0**63):
        raise ValueError(f"{name}: IDs must fit in int64")
    return arr.astype(np.int64)


def _object_ids(arr: np.ndarray, name: str) -> tuple[IdKind, Any]:
    kinds = set()
    for value in arr:
        if isinstance(value, str):
            kinds.add("str")
        elif isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name}: IDs must be int or str, got a bool ({value!r})")
        elif isinstance(value, Integral):
            kinds.add("int")
        elif isinstance(value, Real):
            kinds.add("float")  # allowed when whole, like a float array
        else:
            raise TypeError(f"{name}: IDs must be int or str, got {type(value).__name__} ({value!r})")
        if "str" in kinds and len(kinds) > 1:
            raise TypeError(f"{name}: IDs in one call must be all int or all str, got a mix of both")
    if kinds == {"str"}:
        return "str", [str(v) for v in arr]
    if "float" in kinds:
        # Element by element: one float array for all would round ints above 2**53 to another
        # ID ([2**53 + 1, 0.0] -> 2**53) and overflow on ints beyond the float range.
        values = [int(v) if isinstance(v, Integral) else int(_float_ids(np.array([float(v)]), name)[0]) for v in arr]
    else:
        values = [int(v) for v in arr]
    if values and (min(values) < _INT64_MIN or max(values) > _INT64_MAX):
        raise ValueError(f"{name}: integer IDs must fit in int64")
    return "int", np.array(values, dtype=np.int64)


def _plain_list_ids(values: list | tuple) -> tuple[IdKind, CoreIds] | None:
    """The common case, fast: a list of plain ints (in int64) or of plain strs. None otherwise
    (the general path then checks element by element and says what is wrong)."""
    if all(type(v) is int for v in values):
        try:
            return "int", np.array(values, dtype=np.int64).view(np.uint64)
        except OverflowError:
            return None
    if all(type(v) is str for v in values):
        return "str", list(values)
    return None


def ids(values: Any, name: str, *, allow_empty: bool = True) -> tuple[IdKind | None, CoreIds, int]:
    """Normalise a batch of IDs. Returns (kind, core payload, length); kind is None when empty."""
    if isinstance(values, (list, tuple)) and values:
        plain = _plain_list_ids(values)
        if plain is not None:
            return plain[0], plain[1], len(values)
    arr = _as_array(values, name)
    if arr.size == 0:
        if not allow_empty:
            raise ValueError(f"{name} is empty: at least one event is needed")
        return None, np.empty(0, dtype=np.uint64), 0
    kind_code = arr.dtype.kind
    if kind_code == "b":
        raise TypeError(f"{name}: IDs must be int or str, got a bool array")
    if kind_code in "iu":
        return "int", _int_ids(arr, name).view(np.uint64), arr.size
    if kind_code == "f":
        return "int", _float_ids(arr, name).view(np.uint64), arr.size
    if kind_code == "U":
        return "str", arr.tolist(), arr.size
    if kind_code == "O":
        kind, payload = _object_ids(arr, name)
        if kind == "int":
            payload = payload.view(np.uint64)
        return kind, payload, arr.size
    raise TypeError(f"{name}: IDs must be int or str, got {_describe(arr)}")


def scalar_id(value: Any, name: str) -> int | str:
    """One ID (for recommend): an int (numpy integers included) or a str."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a str, got a bool")
    if isinstance(value, str):
        return value
    if isinstance(value, Integral):
        v = int(value)
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise ValueError(f"{name} must fit in int64, got {v}")
        return v
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise TypeError(f"{name} must be an int or a str, got {type(value).__name__} ({value!r})")


def numbers(values: Any, name: str, n: int, dtype: type, *, low: float | None = None,
            high: float | None = None) -> np.ndarray:
    """A 1-D array of n finite numbers (within [low, high] when given), as `dtype`."""
    arr = values.to_numpy() if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray) else values
    arr = np.asarray(arr)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numeric, got {_describe(arr)}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have one entry per event ({n}), got shape {arr.shape}")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    finite = np.isfinite(out)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} must be finite (and fit in {np.dtype(dtype).name}), got {arr[i]} at position {i}")
    if low is not None and (out < low).any():
        i = int(np.flatnonzero(out < low)[0])
        raise ValueError(f"{name} must be >= {low}, got {arr[i]} at position {i}")
    if high is not None and (out > high).any():
        i = int(np.flatnonzero(out > high)[0])
        raise ValueError(f"{name} must be <= {high}, got {arr[i]} at position {i}")
    return out


def timestamps(values: Any, n: int) -> np.ndarray:
    """Event times as float64 seconds; numpy datetime64 is converted."""
    is_series = hasattr(values, "to_numpy") and not isinstance(values, np.ndarray)
    arr = values.to_numpy() if is_series else np.asarray(values)
    if arr.dtype.kind == "M":
        if np.isnat(arr).any():
            raise ValueError("timestamps must not contain NaT")
        ns = arr.astype("datetime64[ns]")
        # The cast wraps around silently outside datetime64[ns]'s range (years 1678-2262): a
        # year 5000 became 1709. A coarser unit that does not survive the round trip wrapped.
        if np.datetime_data(arr.dtype)[0] not in ("ps", "fs", "as") and (ns.astype(arr.dtype) != arr).any():
            i = int(np.flatnonzero(ns.astype(arr.dtype) != arr)[0])
            raise ValueError(f"timestamps must lie within the years 1678-2262 (datetime64[ns]), got {arr[i]} "
                             f"at position {i}")
        arr = ns.astype(np.int64) / 1e9
    return numbers(arr, "timestamps", n, np.float64)


def positive_int(value: Any, name: str, *, high: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return int(value)


def _to_float(value: Real, name: str) -> float:
    """float(value), with an int beyond the float range a ValueError (not OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got an integer of {int(value).bit_length()} bits") from None


def real(value: Any, name: str, *, low: float, low_inclusive: bool) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    v = _to_float(value, name)
    ok = np.isfinite(v) and (v >= low if low_inclusive else v > low)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if low_inclusive else '>'} {low}, got {value!r}")
    return v


def number(value: Any, name: str) -> float:
    """A real number as a float, range unchecked (the core checks it, e.g. ``diversity``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    return _to_float(value, name)


def finite(value: Any, name: str) -> float:
    """Any finite number (seconds on a clock, say)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    v = _to_float(value, name)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


# More threads than any machine has cores: OpenMP would try to start them all, and a count
# beyond the core's C int (2**31 - 1) failed only at the first call, with pybind11's
# "incompatible function arguments"; when thread creation fails, libgomp ends the process.
MAX_THREADS = 1024


def num_threads(value: Any) -> int:
    """None -> 0 (the core's default: OMP_NUM_THREADS, else all cores); an int in
    [1, MAX_THREADS] is exact."""
    if value is None:
        return 0
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or not 1 <= value <= MAX_THREADS:
        raise ValueError(f"num_threads must be None (all cores) or an int in [1, {MAX_THREADS}], got {value!r}")
    return int(value)


def choice(value: Any, name: str, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(repr(o) for o in options)}; got {value!r}")
    return value


MAX_FEATURES_PER_ID: int = _core.limits["max_features_per_id"]  # the core's limit


def feature_lists(values: Any, n: int, name: str = "features") -> list[list[str]]:
    """One list of feature strings per ID (lists, tuples or 1-D arrays of str; an empty
    list removes the ID's features). A bare string where a list is expected is an error,
    not a list of characters."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a list with one list of feature strings per ID, got {_describe(values)}")
    if len(values) != n:
        raise ValueError(f"{name} must have one list per ID: got {n} IDs and {len(values)} lists")
    out: list[list[str]] = []
    for i, row in enumerate(values):
        if isinstance(row, (str, bytes)):
            raise TypeError(f"{name}[{i}] must be a list of strings such as ['genre=drama'], got a bare string {row!r}")
        if isinstance(row, np.ndarray):
            row = row.tolist()
        if not isinstance(row, (list, tuple)):
            raise TypeError(f"{name}[{i}] must be a list of strings, got {type(row).__name__} ({row!r})")
        if len(row) > MAX_FEATURES_PER_ID:
            raise ValueError(f"{name}[{i}]: at most {MAX_FEATURES_PER_ID} features per ID, got {len(row)}")
        for f in row:
            if not isinstance(f, str):
                raise TypeError(f"{name}[{i}] must hold only strings, got {type(f).__name__} ({f!r})")
            if not f:
                raise ValueError(f"{name}[{i}]: feature names must be non-empty strings")
        out.append(list(row))
    return out
