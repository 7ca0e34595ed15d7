"""Loading interaction events and side features, and cleaning events with a report.

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

Item names for :meth:`Recommender.set_item_names` come from :func:`load_item_names`::

    ids, names = load_item_names("movies.csv")       # movieId, title

The parts, one job each: :mod:`.sources` (reading files and frames), :mod:`.columns` (the
one column-discovery rule), :mod:`.parsing` (raw columns to typed arrays), :mod:`.cleaning`
(:func:`load_events` and its report), :mod:`.features` (:func:`load_features`); the data
type itself is :class:`rtrec_native.events.Events`. pandas (and pyarrow, for Parquet) are
imported only inside the functions that need them, so ``import rtrec_native`` stays light.
"""

from __future__ import annotations

from ..events import Events
from .catalog import NAME_COLUMN_CANDIDATES, load_item_names
from .cleaning import REASONS, CleaningReport, load_events
from .columns import COLUMN_CANDIDATES, FEATURE_COLUMN_CANDIDATES, discover_column
from .features import load_features

__all__ = [
    "COLUMN_CANDIDATES",
    "FEATURE_COLUMN_CANDIDATES",
    "NAME_COLUMN_CANDIDATES",
    "REASONS",
    "CleaningReport",
    "Events",
    "discover_column",
    "load_events",
    "load_features",
    "load_item_names",
]
