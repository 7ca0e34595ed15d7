"""Reference models for the quality benchmarks, evaluated by the same code as rtrec's models
(they have the methods rtrec_native.evaluation.MODEL_METHODS lists).

* :class:`Popularity` — recommends the items with the most consumptions so far.
* :class:`ItemCooccurrence` — item-item kNN on the fly: a user's score for item j is the
  sum over the last ``history`` items i they consumed of cos(i, j), where cos is the
  co-occurrence count of i and j in users' recent histories over sqrt(count_i * count_j).
* :class:`ImplicitModel` — a peer library's model (implicit's ALS or BPR) behind the same
  interface, for the offline split (fitted once, not updated).

All learn every event whose label is > 0 (or that has no label) as a consumption, like
two_tower's softmax. Both streaming references are real-time: ``update`` learns at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtrec_native import BatchRecommendations


class _Streaming:
    """Shared bookkeeping: dense item indices, each user's consumed set and recent items."""

    def __init__(self, history: int = 50) -> None:
        self.history = history
        self._index: dict[Any, int] = {}
        self._ids: list[Any] = []
        self._seen: dict[Any, set[int]] = {}
        self._recent: dict[Any, list[int]] = {}
        self.count = np.zeros(1024, dtype=np.float64)

    @property
    def n_items(self) -> int:
        return len(self._ids)

    def get_params(self) -> dict[str, Any]:
        return {"loss": "bpr", "model": type(self).__name__}

    def _item(self, item: Any) -> int:
        j = self._index.get(item)
        if j is None:
            j = self._index[item] = len(self._ids)
            self._ids.append(item)
            if j >= self.count.size:
                self._grow(2 * self.count.size)
        return j

    def _grow(self, size: int) -> None:
        self.count = np.concatenate([self.count, np.zeros(size - self.count.size)])

    def _learn(self, users: Any, items: Any, labels: Any) -> None:
        labels = None if labels is None else np.asarray(labels)
        for e, (u, i) in enumerate(zip(np.asarray(users).tolist(), np.asarray(items).tolist(), strict=True)):
            j = self._item(i)
            if labels is not None and not labels[e] > 0:
                continue
            seen = self._seen.setdefault(u, set())
            if j in seen:
                continue
            seen.add(j)
            self._observe(u, j)
            recent = self._recent.setdefault(u, [])
            recent.append(j)
            del recent[: -self.history]

    def fit(self, users: Any, items: Any, labels: Any = None, weights: Any = None, epochs: int = 1,
            timestamps: Any = None) -> _Streaming:
        self._learn(users, items, labels)
        return self

    def update(self, users: Any, items: Any, labels: Any = None, weights: Any = None, timestamps: Any = None) -> None:
        self._learn(users, items, labels)

    def predict(self, users: Any, items: Any) -> np.ndarray:
        out = np.zeros(len(users), dtype=np.float32)
        for e, (u, i) in enumerate(zip(np.asarray(users).tolist(), np.asarray(items).tolist(), strict=True)):
            j = self._index.get(i)
            if j is not None:
                out[e] = self._scores(u)[j]
        return out

    def recommend_batch(self, users: Any, k: int = 10, exclude_seen: bool = True) -> BatchRecommendations:
        users = np.asarray(users).tolist()
        width = max(1, min(k, self.n_items))
        ids = np.zeros((len(users), width), dtype=np.int64)
        scores = np.full((len(users), width), np.nan, dtype=np.float32)
        counts = np.zeros(len(users), dtype=np.int64)
        catalogue = np.asarray(self._ids)
        for r, u in enumerate(users):
            s = self._scores(u).astype(np.float64)
            seen = list(self._seen.get(u, ())) if exclude_seen else []
            if seen:
                s[seen] = -np.inf
            top = np.argpartition(-s, width - 1)[:width] if width < s.size else np.arange(s.size)
            top = top[np.argsort(-s[top], kind="stable")]
            top = top[np.isfinite(s[top])]
            counts[r] = top.size
            ids[r, : top.size] = catalogue[top]
            scores[r, : top.size] = s[top]
        return BatchRecommendations(ids, scores, counts)


class Popularity(_Streaming):
    """The items consumed most so far (ties: the earlier item first)."""

    def _observe(self, user: Any, j: int) -> None:
        self.count[j] += 1

    def _scores(self, user: Any) -> np.ndarray:
        return self.count[: self.n_items]


class ItemCooccurrence(_Streaming):
    """Real-time item-item kNN over each user's last ``history`` consumed items (cosine of
    co-occurrence counts), popularity breaking ties and ranking for users with no history."""

    def __init__(self, history: int = 50) -> None:
        super().__init__(history)
        self.cooc = np.zeros((1024, 1024), dtype=np.float32)

    def _grow(self, size: int) -> None:
        super()._grow(size)
        bigger = np.zeros((size, size), dtype=np.float32)
        n = self.cooc.shape[0]
        bigger[:n, :n] = self.cooc
        self.cooc = bigger

    def _observe(self, user: Any, j: int) -> None:
        self.count[j] += 1
        recent = self._recent.get(user, [])
        if recent:
            self.cooc[j, recent] += 1.0
            self.cooc[recent, j] += 1.0

    def _scores(self, user: Any) -> np.ndarray:
        n = self.n_items
        counts = np.maximum(self.count[:n], 1.0)
        recent = self._recent.get(user, [])
        tie_break = 1e-6 * counts / counts.max()
        if not recent:
            return tie_break
        rows = self.cooc[recent, :n] / np.sqrt(counts[recent])[:, None]
        return rows.sum(axis=0) / np.sqrt(counts) + tie_break


class ImplicitModel:
    """implicit's AlternatingLeastSquares or BayesianPersonalizedRanking behind the
    evaluation interface: ``fit`` builds the user-item matrix of the consumed events (label
    > 0) and trains; ``recommend_batch`` asks implicit, the user's training items filtered."""

    def __init__(self, factory: Any, name: str) -> None:
        self._factory, self.name = factory, name

    @property
    def n_items(self) -> int:
        return len(self._items)

    def get_params(self) -> dict[str, Any]:
        return {"loss": "bpr", "model": self.name}

    def fit(self, users: Any, items: Any, labels: Any = None, weights: Any = None, epochs: int = 1,
            timestamps: Any = None) -> ImplicitModel:
        from scipy.sparse import csr_matrix

        users, items = np.asarray(users), np.asarray(items)
        keep = np.ones(len(users), dtype=bool) if labels is None else np.asarray(labels) > 0
        self._users, user_index = np.unique(users, return_inverse=True)
        self._items, item_index = np.unique(items, return_inverse=True)
        matrix = csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (user_index[keep], item_index[keep])),
                            shape=(self._users.size, self._items.size))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        self._matrix = matrix
        self._model = self._factory()
        self._model.fit(matrix, show_progress=False)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("an offline model: fit once")

    def predict(self, users: Any, items: Any) -> np.ndarray:
        return np.zeros(len(users), dtype=np.float32)

    def recommend_batch(self, users: Any, k: int = 10, exclude_seen: bool = True) -> BatchRecommendations:
        users = np.asarray(users)
        rows = np.searchsorted(self._users, users)
        known = (rows < self._users.size) & (self._users[np.minimum(rows, self._users.size - 1)] == users)
        width = max(1, min(k, self.n_items))
        ids = np.zeros((users.size, width), dtype=np.int64)
        scores = np.full((users.size, width), np.nan, dtype=np.float32)
        counts = np.zeros(users.size, dtype=np.int64)
        if known.any():
            idx = rows[known]
            top, top_scores = self._model.recommend(idx, self._matrix[idx], N=width,
                                                    filter_already_liked_items=exclude_seen)
            valid = top >= 0
            ids[known] = np.where(valid, self._items[np.maximum(top, 0)], 0)
            scores[known] = np.where(valid, top_scores, np.nan)
            counts[known] = valid.sum(axis=1)
        return BatchRecommendations(ids, scores, counts)
