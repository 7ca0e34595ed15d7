"""The result of ``Recommender.recommend_batch``: padded arrays plus how much of each row is real."""

from __future__ import annotations

import numpy as np


class BatchRecommendations(tuple):
    """Top-k lists of many users: ``ids`` and ``scores`` of shape (n, c) and ``counts`` (n,).

    Row i holds ``counts[i]`` results, best first; the entries after them are filler
    (score NaN, an undefined ID) because that user had fewer items left to recommend. Use
    ``counts`` or ``mask`` — never an ID value — to tell results from filler; ``rows()`` gives
    each user's list trimmed. It is the pair ``(ids, scores)`` (a tuple) with ``counts`` beside
    it, so ``ids, scores = batch`` keeps working.
    """

    counts: np.ndarray

    def __new__(cls, ids: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> BatchRecommendations:
        self = super().__new__(cls, (ids, scores))
        self.counts = counts
        return self

    @property
    def ids(self) -> np.ndarray:
        """(n, c) item IDs: int64, or objects (str) for string IDs."""
        return self[0]

    @property
    def scores(self) -> np.ndarray:
        """(n, c) float32 scores in ``predict``'s units; NaN beyond each row's count."""
        return self[1]

    @classmethod
    def from_core(cls, keys: np.ndarray, names: list | None, scores: np.ndarray, counts: np.ndarray,
                  width: int) -> BatchRecommendations:
        """From the native call's output: keys (n, w) uint64, names (string IDs) or None,
        scores (n, w), counts (n,). Trimmed to ``width`` columns (min(k, catalogue) when the
        call started), or to the longest row if the catalogue grew meanwhile."""
        n, w = keys.shape
        counts = counts.astype(np.int64)
        cols = min(w, max(width, int(counts.max()) if n else 0))
        valid = np.arange(cols)[None, :] < counts[:, None]
        out_scores = np.where(valid, scores[:, :cols], np.float32(np.nan)).astype(np.float32)
        if names is not None:
            flat = np.empty(len(names), dtype=object)
            flat[:] = names
            ids = np.full((n, cols), None, dtype=object)
            ids[valid] = flat.reshape(n, w)[:, :cols][valid]
        else:
            ids = np.where(valid, keys[:, :cols].view(np.int64), np.iinfo(np.int64).min)
        return cls(ids, out_scores, counts)

    @property
    def mask(self) -> np.ndarray:
        """Boolean (n, c): True where an entry is a result."""
        return np.arange(self.ids.shape[1])[None, :] < self.counts[:, None]

    def rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each user's (ids, scores), trimmed to its results."""
        return [(self.ids[i, :c], self.scores[i, :c]) for i, c in enumerate(self.counts.tolist())]

    def __repr__(self) -> str:
        return f"BatchRecommendations(users={self.ids.shape[0]}, width={self.ids.shape[1]})"
