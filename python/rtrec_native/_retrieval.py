"""Retrieval: what a serving process asks a :class:`~rtrec_native.Recommender`.

Every call here goes through one pipeline in the core: the query kind makes a query vector
(a known user, an anonymous history, an item), the filters choose the candidates, one exact
scan (or one gather over an allow-list or a tag list) ranks them. Python checks types and
converts; the core checks ranges and limits, and ranks with the GIL released.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from . import _validation as check
from ._batch import BatchRecommendations

#: At most this many IDs in an allow-list (``items=``), a deny-list (``exclude=``) or one
#: ``hide``/``unhide`` call; at most MAX_FILTER_TAGS tags; at most MAX_QUERY_HISTORY items
#: in an anonymous history. The core's limits.
MAX_FILTER_IDS: int = _core.limits["max_filter_ids"]
MAX_FILTER_TAGS: int = _core.limits["max_filter_tags"]
MAX_QUERY_HISTORY: int = _core.limits["max_query_history"]

_K_LIMIT = 1 << 32  # more than any catalogue holds; the core clamps k to the catalogue

_FILTER_DOC = """
        Filters (all optional; they compose with each other, with ``exclude_seen`` and with
        ``diversity``, and hidden items are never returned):

        - ``items``: an allow-list; only these IDs are ranked (unknown ones are ignored and
          counted in ``stats()["unknown_filter_ids"]``; duplicates count once). The cost grows
          with the list, not with the catalogue. An empty list gives an empty result.
        - ``exclude``: a deny-list.
        - ``tags``: only items that carry all of these item features (``set_item_features``),
          found through an index, not a scan. A tag no item has ever had raises KeyError
          naming it (a typo must not look like an empty category).
"""


def _id_list(values: Any, name: str) -> Any:
    """An allow- or deny-list as the core takes it (None stays None)."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a list of item IDs, got a single {type(values).__name__}: wrap it in a list")
    _, payload, _ = check.ids(values, name)
    return payload


def _tag_list(tags: Any) -> list[str] | None:
    if tags is None:
        return None
    if isinstance(tags, str):
        raise TypeError(f"tags must be a list of str, got the str {tags!r}: use tags=[{tags!r}]")
    if not isinstance(tags, Sequence) and not isinstance(tags, np.ndarray):
        raise TypeError(f"tags must be a list of str, got {type(tags).__name__}")
    out = list(tags)
    for t in out:
        if not isinstance(t, str):
            raise TypeError(f"tags must be a list of str, got an element of type {type(t).__name__} ({t!r})")
    return out


def _ids_out(found: np.ndarray | list) -> np.ndarray:
    if isinstance(found, list):
        out = np.empty(len(found), dtype=object)
        out[:] = found
        return out
    return found


class RetrievalMixin:
    """The retrieval methods of :class:`~rtrec_native.Recommender` (see its docs)."""

    _model: Any
    _threads: int

    def recommend(self, user: int | str, k: int = 10, exclude_seen: bool = True, diversity: float = 0.0, *,
                  items: Any = None, exclude: Any = None, tags: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best items for one user, best first: ``(item_ids, scores)``.

        Over all known items: with ``retrieval="compact"`` (the default) the scan reads an
        int8 copy of the item vectors first and re-scores its best few hundred exactly, so the
        scores are ``predict``'s and the lists equal the exact scan's in every measured case
        (docs/retrieval-modes.md); ``retrieval="exact"`` scores every item in float32.
        ``exclude_seen`` drops items this user has had positive
        events with. An unknown user gets the items with the highest mu + b_i (the learned
        item bias: popularity under BPR/logistic, average rating under squared); use
        :meth:`knows_user` to tell. Fewer than k results come back when fewer items pass.
        Item IDs come back as int64, or as an object array of str for string IDs.

        ``diversity`` (lambda in [0, 1]; else ValueError): 0 is the exact top-k above. Above 0
        the k items are chosen by maximal marginal relevance from the pool of the
        max(5k, 50) best-scored items (``DIVERSITY_POOL_FACTOR``, ``DIVERSITY_POOL_MIN``):
        each next pick maximises (1 - lambda) * relevance - lambda * (its largest cosine
        similarity to the items already picked), relevance (the score) and similarity (of
        the item vectors as scoring uses them, side features included) each min-max scaled
        to [0, 1] over the pool. Items come in pick order, with their model scores (which
        then need not decrease). 1 keeps only the first (best) item for relevance and picks
        the rest for spread alone.
        """
        ids, scores, _ = self._recommend_with_info(user, k, exclude_seen, diversity, items=items, exclude=exclude,
                                                   tags=tags)
        return ids, scores

    recommend.__doc__ = (recommend.__doc__ or "") + _FILTER_DOC

    def _recommend_with_info(self, user: int | str, k: int = 10, exclude_seen: bool = True, diversity: float = 0.0,
                             *, items: Any = None, exclude: Any = None,
                             tags: Any = None) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """:meth:`recommend` plus the call's counts (``unknown_allowed``), for serving."""
        user = check.scalar_id(user, "user")
        k = check.positive_int(k, "k")
        diversity = check.number(diversity, "diversity")
        found, scores, info = self._model.recommend(user, min(k, _K_LIMIT), bool(exclude_seen), self._threads,
                                                    diversity, _id_list(items, "items"), _id_list(exclude, "exclude"),
                                                    _tag_list(tags))
        return _ids_out(found), scores, info

    def recommend_batch(self, users: Any, k: int = 10, exclude_seen: bool = True, diversity: float = 0.0, *,
                        items: Any = None, exclude: Any = None, tags: Any = None) -> BatchRecommendations:
        """Top-k for many users at once (blocks of users share each pass over the items,
        blocks spread over threads). ``diversity`` and the filters as in :meth:`recommend`;
        one allow-list, deny-list and tag list for all the users.

        Returns a :class:`BatchRecommendations`: ``ids[n, c]``, ``scores[n, c]`` with
        c = min(k, n_items), and ``counts[n]``, how many entries of each row are results
        (fewer than c when items were excluded); ``mask`` marks them. Entries beyond a row's
        count are filler (score NaN) and must not be read as IDs. It unpacks as
        ``ids, scores = rec.recommend_batch(...)``.
        """
        k = check.positive_int(k, "k")
        diversity = check.number(diversity, "diversity")
        _, user_ids, _ = check.ids(users, "users")
        allow, deny, tag_list = _id_list(items, "items"), _id_list(exclude, "exclude"), _tag_list(tags)
        n_items_before = self._model.n_items
        keys, names, scores, counts, _ = self._model.recommend_batch(
            user_ids, min(k, _K_LIMIT), bool(exclude_seen), self._threads, diversity, allow, deny, tag_list)
        return BatchRecommendations.from_core(keys, names, scores, counts, min(k, n_items_before))

    def recommend_for_history(self, history: Any, k: int = 10, weights: Any = None, *, items: Any = None,
                              exclude: Any = None, tags: Any = None, diversity: float = 0.0,
                              exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The k best items for an anonymous visitor known only by ``history``, the items of
        this session (oldest first), as ``(item_ids, scores)``. Creates no user row and
        changes nothing in the model.

        two_tower encodes the history as it encodes a user's recent items, without a user
        ID row (the last ``history`` items, recency-weighted). mf scores the visitor with
        the sum of the items' vectors over the square root of their number (SVD++'s
        implicit-feedback term), which ranked MovieLens positives as well as the mean of the
        vectors did (docs/retrieval.md). ``weights`` (one per item, >= 0)
        replace the family's own weighting. Unknown items are ignored. The history's own
        items are excluded unless ``exclude_history=False``. ``diversity`` and the filters
        as in :meth:`recommend`.
        """
        if isinstance(history, (str, bytes)):
            raise TypeError("history must be a list of item IDs, got a single str: wrap it in a list")
        _, history_ids, n = check.ids(history, "history")
        k = check.positive_int(k, "k")
        diversity = check.number(diversity, "diversity")
        w = None if weights is None else check.numbers(weights, "weights", n, np.float32, low=0.0)
        found, scores, _ = self._model.recommend_for_history(
            history_ids, w, min(k, _K_LIMIT), bool(exclude_history), self._threads, diversity,
            _id_list(items, "items"), _id_list(exclude, "exclude"), _tag_list(tags))
        return _ids_out(found), scores

    recommend_for_history.__doc__ = (recommend_for_history.__doc__ or "") + _FILTER_DOC

    def similar_items(self, item: int | str, k: int = 10, *, items: Any = None, exclude: Any = None,
                      tags: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The k items most similar to ``item`` (never the item itself), best first, as
        ``(item_ids, scores)``: the items the model ranks first for a visitor whose session
        holds ``item`` alone (:meth:`recommend_for_history` of one item; scores in
        ``predict``'s units). Chosen by measurement: on the MovieLens replay this query
        ranked the item a user likes next better than the cosine of item vectors for mf, and
        as well for two_tower (see benchmarks/README.md). Raises KeyError for an unknown item.
        """
        item = check.scalar_id(item, "item")
        batch = self.similar_items_batch([item], k, items=items, exclude=exclude, tags=tags)
        n = int(batch.counts[0])
        return batch.ids[0, :n], batch.scores[0, :n]

    similar_items.__doc__ = (similar_items.__doc__ or "") + _FILTER_DOC

    def similar_items_batch(self, query_items: Any, k: int = 10, *, items: Any = None, exclude: Any = None,
                            tags: Any = None) -> BatchRecommendations:
        """:meth:`similar_items` for many items at once, as a :class:`BatchRecommendations`
        (one row per item). Raises KeyError naming the first unknown item, before any work."""
        k = check.positive_int(k, "k")
        _, item_ids, _ = check.ids(query_items, "items")
        n_items_before = self._model.n_items
        keys, names, scores, counts, _ = self._model.similar_items(
            item_ids, min(k, _K_LIMIT), self._threads, _id_list(items, "items"), _id_list(exclude, "exclude"),
            _tag_list(tags))
        return BatchRecommendations.from_core(keys, names, scores, counts, max(1, min(k, n_items_before - 1)))

    def knows_user(self, user: int | str) -> bool:
        """Whether ``user`` has a row. A recommendation for an unknown user is the popular
        list (``recommend`` does not raise for them); this tells the two apart."""
        return bool(self._model.knows_user(check.scalar_id(user, "user")))

    # ------------------------------------------------------------------ hidden items

    def hide(self, items: Any) -> dict[str, int]:
        """Hide items from every retrieval call (out of stock, withdrawn) at once, in every
        thread. A hidden item is still learned from and still scored by ``predict``; it is
        saved in snapshots and carried by deltas, so replicas hide it too. An evicted item is
        no longer hidden. Unknown IDs change nothing and are counted. Returns
        ``{"hidden": newly hidden, "unknown": unknown IDs}``."""
        changed, unknown = self._model.hide(self._hide_ids(items), True)
        return {"hidden": int(changed), "unknown": int(unknown)}

    def unhide(self, items: Any) -> dict[str, int]:
        """Show hidden items again. Returns ``{"shown": shown again, "unknown": unknown IDs}``."""
        changed, unknown = self._model.hide(self._hide_ids(items), False)
        return {"shown": int(changed), "unknown": int(unknown)}

    def hidden(self, items: Any) -> np.ndarray:
        """A bool array aligned with ``items``: True where the item is hidden."""
        return self._model.hidden(self._hide_ids(items)).astype(bool)

    @staticmethod
    def _hide_ids(items: Any) -> Any:
        if isinstance(items, (str, bytes)):
            raise TypeError("items must be a list of item IDs, got a single str: wrap it in a list")
        _, payload, _ = check.ids(items, "items")
        return payload
