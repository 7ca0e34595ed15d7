"""The package's core data type: :class:`Events`, a batch of interactions as parallel arrays.

Also the bridge from a table of events to the model's arguments: :meth:`Recommender.fit` and
``update`` accept an ``Events`` or a pandas DataFrame as their first argument, converted here
by :func:`as_columns` (DataFrame columns are found by the package's one column-discovery rule,
:func:`rtrec_native.data.discover_column`).

Only numpy is imported at module level: pandas is used only when a DataFrame is given (and
so is already imported by the caller).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = ["Events", "as_columns", "event_arguments"]

#: The keys of :func:`as_columns`, in the order of ``fit``/``update``'s arguments.
EVENT_FIELDS: tuple[str, ...] = ("users", "items", "labels", "weights", "timestamps")


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
    ``events[events.timestamps < t]``). ``rec.fit(events)`` / ``rec.update(events)`` learn
    from all of them.
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
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("Events.to_dataframe needs pandas: pip install pandas") from exc

        columns: dict[str, np.ndarray] = {"user": self.users, "item": self.items}
        for column, arr in (
            ("label", self.labels),
            ("timestamp", self.timestamps),
            ("weight", self.weights),
        ):
            if arr is not None:
                columns[column] = arr
        return pd.DataFrame(columns)


def _is_dataframe(obj: Any) -> bool:
    # A DataFrame can only exist if pandas is already imported: no import here, so
    # `import rtrec_native` and every update call stay free of pandas.
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def as_columns(obj: Events | pd.DataFrame) -> dict[str, Any]:
    """The arrays of an ``Events`` or a DataFrame, keyed ``users``, ``items``, ``labels``,
    ``weights``, ``timestamps`` (``None`` for what is absent): the arguments of
    :meth:`Recommender.fit` / ``update``.

    A DataFrame's columns are found by the same rule as :func:`rtrec_native.data.load_events`
    (common names, case-insensitive; two candidates for one role is an error). Nothing is
    cleaned or dropped: the model validates the values as it validates arrays (clean a raw
    table with ``load_events`` first). A datetime time column becomes epoch seconds.
    """
    if isinstance(obj, Events):
        return {name: getattr(obj, name) for name in EVENT_FIELDS}
    if not _is_dataframe(obj):
        raise TypeError(f"expected Events or a pandas DataFrame, got {type(obj).__name__}")
    import pandas as pd

    from .data.columns import resolve_event_columns
    from .data.parsing import datetimes_to_seconds

    columns = resolve_event_columns(list(obj.columns), "DataFrame", {}, want_events=False)
    out: dict[str, Any] = {}
    for name, role in zip(EVENT_FIELDS, ("user", "item", "label", "weight", "time"), strict=True):
        column = columns[role]
        if column is None:
            out[name] = None
        elif role == "time" and pd.api.types.is_datetime64_any_dtype(obj[column].dtype):
            out[name] = datetimes_to_seconds(pd.to_datetime(obj[column], utc=True))
        else:
            out[name] = obj[column].to_numpy()
    return out


def event_arguments(users: Any, items: Any, labels: Any, weights: Any, timestamps: Any) -> tuple:
    """``fit``/``update``'s arguments with an ``Events`` or DataFrame first argument spread
    out (the others must then be left out); separate arrays pass through unchanged."""
    if isinstance(users, Events) or _is_dataframe(users):
        given = [name for name, v in zip(EVENT_FIELDS[1:], (items, labels, weights, timestamps), strict=True)
                 if v is not None]
        if given:
            raise TypeError(
                f"{', '.join(given)}: already in the {type(users).__name__} given as the first "
                "argument; pass either a table of events or separate arrays, not both"
            )
        columns = as_columns(users)
        return tuple(columns[name] for name in EVENT_FIELDS)
    if items is None:
        raise TypeError(
            "items: expected a sequence of item IDs (or pass an Events or a pandas DataFrame "
            "as the first argument), got None"
        )
    return users, items, labels, weights, timestamps
