"""Display names of items (a movie's title, a product's name), kept with the model.

A mixin of :class:`~rtrec_native.Recommender`: the names live in the native core, keyed like
the items, so they travel in snapshots and deltas and a replica shows what the trainer shows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _validation as check

#: Longest name accepted, in UTF-8 bytes (the core's limit).
MAX_NAME_BYTES = 4096


def _name_list(names: Any, n: int) -> list[str]:
    """One str per ID; None or NaN (a missing cell of a catalogue) means "no name"."""
    if isinstance(names, (str, bytes)) or not hasattr(names, "__len__"):
        raise TypeError(f"names must be a list with one str per item, got {type(names).__name__}")
    if len(names) != n:
        raise ValueError(f"names must have one entry per item: got {n} items and {len(names)} names")
    values = names.tolist() if isinstance(names, np.ndarray) else list(names)
    out: list[str] = []
    for i, name in enumerate(values):
        if name is None or (isinstance(name, float) and math.isnan(name)):
            out.append("")
        elif isinstance(name, str):
            out.append(name)
        else:
            raise TypeError(f"names[{i}] must be a str (or None for no name), got {type(name).__name__} ({name!r})")
    return out


class ItemNamesMixin:
    """``set_item_names`` / ``item_names`` for the model class (``self._model`` is the core)."""

    _model: Any

    def set_item_names(self, items: Any, names: Any) -> Any:
        """Give items display names, e.g. ``rec.set_item_names(movies.movieId, movies.title)``.

        ``names`` holds one str per item (None, NaN or "" removes an item's name). An item
        needs no row to have a name (a catalogue may list items nobody has rated yet); the
        names of evicted items are dropped with them. Names are saved in snapshots and, when
        set since the last delta, in deltas, so replicas show them (a removal reaches
        replicas with the next full snapshot). The whole batch is checked before anything
        changes; item IDs of the other kind than the model's raise ``IdKindError``. Returns
        ``self``.
        """
        _, payload, n = check.ids(items, "items")
        text = _name_list(names, n)
        self._model.set_item_names(payload, text)
        return self

    def item_names(self, items: Any) -> list[str | None]:
        """The display names of ``items``, a list aligned with them (None where an item has
        no name or is unknown)."""
        _, payload, _ = check.ids(items, "items")
        return self._model.item_names(payload)
