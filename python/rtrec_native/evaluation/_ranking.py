"""Top-k lists without the items a user already consumed, decided by the stream itself.

A model's own seen list is not the user's history: events of IDs that ``min_count`` has not
admitted yet never reach it, an evicted user (``ttl``, ``max_rows``) loses it, and a model
frozen or refitted earlier has not seen the latest events. So the evaluation does not trust
it: it filters the model's list with a :class:`ConsumedIndex` of the stream, asking for as
many extra items as the filter may remove, and keeps the first ``k`` — the top-``k`` of the
items the user has not consumed, whatever the model's seen list holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from ..events import Events
from ..recommender import Recommender
from ._common import PAD, dense_items

# Users per recommend_batch call: rows are grouped by history length, so a heavy user makes
# only its own group ask for many items.
_ROWS_PER_CALL = 256


class ConsumedIndex:
    """Which items each user had consumed by each position of a time-ordered stream.

    Built once from the events (dense user and item indices given) with the consumed rule;
    answers "had user u consumed item i before position p?" and "how many distinct items had
    user u consumed before p?" with binary searches.
    """

    def __init__(self, events: Events, loss: str, user: np.ndarray, item: np.ndarray, n_items: int) -> None:
        self._n_items = np.int64(n_items)
        # The core's rule, the one its seen lists follow: one owner, no copy here.
        consumed = np.flatnonzero(_core.consumed(loss, events.labels, events.weights, len(events)))
        # First consumption of each (user, item) pair: from then on the item is consumed.
        self.keys, first = np.unique(user[consumed] * self._n_items + item[consumed], return_index=True)
        self.since = consumed[first]  # the position that made each key consumed
        # Per-user sorted positions of first consumptions, as one sorted key array, so a
        # count over a range of positions is two searchsorted calls.
        self._stride = np.int64(len(events) + 1)
        self._first_by_user = np.sort(user[self.since] * self._stride + self.since)

    def count(self, users: np.ndarray, start: int | np.ndarray, end: int) -> np.ndarray:
        """Per dense user: the items first consumed at positions ``[start, end)``."""
        base = users * self._stride
        return np.searchsorted(self._first_by_user, base + end) - np.searchsorted(self._first_by_user, base + start)

    def consumed_before(self, users: np.ndarray, items: np.ndarray, position: int) -> np.ndarray:
        """Whether each dense (user, item) pair was consumed before ``position``."""
        keys = users * self._n_items + items
        if self.keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        index = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return (self.keys[index] == keys) & (self.since[index] < position)


def top_k_unconsumed(
    rec: Recommender,
    user_ids: np.ndarray,
    users: np.ndarray,
    index: ConsumedIndex,
    position: int,
    k: int,
    catalogue: np.ndarray,
    *,
    learned_until: int,
    diversity: float = 0.0,
) -> np.ndarray:
    """Top-``k`` dense items (indices into ``catalogue``, ``PAD`` for empty slots) for each
    user, leaving out every item the user consumed before ``position``.

    ``user_ids`` are the users' IDs as the model knows them, ``users`` their dense indices
    in ``index``; the model has learned the stream up to ``learned_until``. The model's seen
    list only ever holds consumed items (it learned from this stream, by the same rule), so
    what it excludes is right, but it may miss some. First each user is asked for ``k`` + the
    items consumed since ``learned_until`` (exact, and as cheap as a plain top-``k``, when the
    seen list holds the rest of the history: no admission or eviction at work). A row whose
    filtered list comes up short although the model filled it (its seen list missed older
    items) is asked again for ``k`` + every item the user consumed: exact whatever it holds.

    With ``diversity`` > 0 the model diversifies the longer list it is asked for, and the
    consumed items are dropped from that: the same as diversifying the unconsumed items
    whenever nothing needs dropping (a split evaluation without admission or eviction),
    close to it otherwise.
    """
    ranker = _Ranker(rec, index, position, k, catalogue, diversity)
    top, short = ranker.ask(user_ids, users, extra=index.count(users, learned_until, position))
    if short.any():
        rows = np.flatnonzero(short)
        top[rows], _ = ranker.ask(user_ids[rows], users[rows], extra=index.count(users[rows], 0, position))
    return top


@dataclass(frozen=True)
class _Ranker:
    """Asks ``rec`` for top lists and filters them with ``index`` at ``position``."""

    rec: Recommender
    index: ConsumedIndex
    position: int
    k: int
    catalogue: np.ndarray
    diversity: float = 0.0

    def ask(self, user_ids: np.ndarray, users: np.ndarray, *, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The filtered top-``k`` of each row from lists of ``k + extra`` items, and which
        rows came up short: fewer than ``k`` kept although the model filled the list (so it
        may hold more items than it listed)."""
        if users.size <= _ROWS_PER_CALL:  # the usual case: one call, no grouping
            return self._ask_once(user_ids, users, int(extra.max(initial=0)))
        out = np.full((users.size, self.k), PAD, dtype=np.int64)
        short = np.zeros(users.size, dtype=bool)
        order = np.argsort(extra, kind="stable")  # similar extras share a call
        for lo in range(0, order.size, _ROWS_PER_CALL):
            rows = order[lo : lo + _ROWS_PER_CALL]
            out[rows], short[rows] = self._ask_once(user_ids[rows], users[rows], int(extra[rows].max()))
        return out, short

    def _ask_once(self, user_ids: np.ndarray, users: np.ndarray, extra: int) -> tuple[np.ndarray, np.ndarray]:
        n_items = max(self.rec.n_items, 1)
        want = min(self.k + extra, n_items)
        # Only a diversified request names diversity: other models (duck-typed) need not take it.
        extra = {"diversity": self.diversity} if self.diversity else {}
        batch = self.rec.recommend_batch(user_ids, k=want, exclude_seen=True, **extra)
        top = dense_items(batch, self.catalogue)
        listed = top != PAD
        drop = listed & self.index.consumed_before(users[:, None], np.maximum(top, 0), self.position)
        if not drop.any():  # nothing to filter (the model's seen list had it all): no copy
            return _fit_width(top, self.k), np.zeros(users.size, dtype=bool)
        keep = listed & ~drop
        short = (keep.sum(axis=1) < self.k) & (listed.sum(axis=1) >= want) & (want < n_items)
        return _compact(top, keep, self.k), short


def _compact(top: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Shift the kept entries of each row to the left, keep ``k`` columns."""
    slot = np.cumsum(keep, axis=1) - 1
    keep &= slot < k
    out = np.full((top.shape[0], k), PAD, dtype=np.int64)
    rows, cols = np.nonzero(keep)
    out[rows, slot[rows, cols]] = top[rows, cols]
    return out


def _fit_width(top: np.ndarray, k: int) -> np.ndarray:
    """Exactly ``k`` columns: cut, or pad with ``PAD`` (a catalogue smaller than ``k``)."""
    if top.shape[1] >= k:
        return top[:, :k]
    return np.hstack([top, np.full((top.shape[0], k - top.shape[1]), PAD, dtype=np.int64)])


def catalogue_vectors(rec: Recommender, catalogue: np.ndarray) -> np.ndarray | None:
    """The model's item vectors, one row per ``catalogue`` entry (dense item index); zeros
    for items the model does not hold (it never recommends them). None for a model without
    ``item_vectors`` (intra-list diversity is then undefined)."""
    if not callable(getattr(rec, "item_vectors", None)):
        return None
    ids, vectors, _ = rec.item_vectors()
    out = np.zeros((catalogue.size, vectors.shape[1]), dtype=np.float32)
    if ids.size:
        where = np.minimum(np.searchsorted(catalogue, ids), catalogue.size - 1)
        known = catalogue[where] == ids
        out[where[known]] = vectors[known]
    return out
