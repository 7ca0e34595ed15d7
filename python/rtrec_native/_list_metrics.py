"""Beyond-accuracy metrics of :mod:`rtrec_native.metrics`: properties of the recommended
lists themselves, no relevant sets involved — how unlike each other a list's items are
(:func:`intra_list_diversity`) and how unpopular (:func:`novelty`). Use them through
:mod:`rtrec_native.metrics`, which re-exports them."""

from __future__ import annotations

import numpy as np

from .metrics import ArrayLike, _padding_mask, _recommended_matrix


def _dense_lists(recommended: ArrayLike, n_items: int, k: int | None, pad: object, name: str) -> np.ndarray:
    """``recommended`` as int64 row indices into an item table of ``n_items`` rows
    (padding kept as ``-1``)."""
    rec = _recommended_matrix(recommended, k)
    if rec.dtype.kind not in "iu":
        raise TypeError(f"recommended: expected integer row indices into {name}, got dtype {rec.dtype}")
    padding = _padding_mask(rec, pad)
    rec = np.where(padding, -1, rec).astype(np.int64)
    listed = rec[~padding]
    if listed.size and (listed.min() < 0 or listed.max() >= n_items):
        raise ValueError(f"recommended: row indices must be in [0, {n_items}) (rows of {name}), "
                         f"got {int(listed.min())}..{int(listed.max())}")
    return rec


def intra_list_diversity(
    recommended: ArrayLike, item_vectors: ArrayLike, k: int | None = None, *, pad: object = -1
) -> float:
    """Intra-list diversity: the mean over lists of the mean pairwise cosine *dissimilarity*
    (1 - cos) of the list's items, in the model's item space (Ziegler et al. 2005).

    ``recommended`` holds row indices into ``item_vectors`` (``[n_items, dim]``), padding
    ``pad``. 0: every list is one direction repeated; 1: pairwise orthogonal on average; up
    to 2 for opposite vectors. A zero vector is dissimilar (1) to everything. Lists with
    fewer than two items have no pairs and are left out; ``nan`` when none has two.
    """
    vectors = np.asarray(item_vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"item_vectors: expected a 2-D array [n_items, dim], got shape {vectors.shape}")
    rec = _dense_lists(recommended, vectors.shape[0], k, pad, "item_vectors")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    per_list = list_dissimilarity(rec, unit)
    return float(np.nanmean(per_list)) if np.isfinite(per_list).any() else float("nan")


def list_dissimilarity(rec: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Per list (row of int64 indices into the unit vectors ``unit``, -1 for padding): the
    mean pairwise 1 - cos of its items; NaN for a list with fewer than two items."""
    listed = rec >= 0
    rows = unit[np.maximum(rec, 0)] * listed[:, :, None]  # [n, k, dim], padding as zeros
    sims = np.einsum("nid,njd->nij", rows, rows)
    pair = listed[:, :, None] & listed[:, None, :] & ~np.eye(rec.shape[1], dtype=bool)[None]
    n_pairs = pair.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, 1.0 - (sims * pair).sum(axis=(1, 2)) / n_pairs, np.nan)


def list_self_information(rec: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Per list (row of int64 indices, -1 for padding): the mean -log2 p of its items; NaN
    for an empty list."""
    listed = rec >= 0
    bits = np.where(listed, -np.log2(probability[np.maximum(rec, 0)]), 0.0)
    n = listed.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, bits.sum(axis=1) / n, np.nan)


def novelty(recommended: ArrayLike, probability: ArrayLike, k: int | None = None, *, pad: object = -1) -> float:
    """Novelty: the mean self-information ``-log2 p(i)`` of the recommended items, in bits
    (Zhou et al. 2010): recommending what everybody already has carries little information.

    ``recommended`` holds row indices into ``probability``, each item's probability of being
    consumed (e.g. its share of the training events, smoothed so that none is 0). The mean
    over lists of each list's mean (padding is not an item; empty lists are left out);
    ``nan`` when nothing is listed.
    """
    p = np.asarray(probability, dtype=np.float64)
    if p.ndim != 1 or not np.all((p > 0) & (p <= 1)):
        raise ValueError("probability: expected a 1-D array of probabilities in (0, 1], one per item")
    rec = _dense_lists(recommended, p.size, k, pad, "probability")
    per_list = list_self_information(rec, p)
    return float(np.nanmean(per_list)) if np.isfinite(per_list).any() else float("nan")


def popularity_probability(item_counts: ArrayLike) -> np.ndarray:
    """Each item's probability from its training event count, Laplace-smoothed:
    ``(count + 1) / (total + n_items)`` (an item never seen in training is possible, not
    infinitely novel). The ``probability`` argument of :func:`novelty`."""
    counts = np.asarray(item_counts, dtype=np.float64)
    return (counts + 1.0) / (counts.sum() + counts.size)
