"""Evaluation metrics, vectorised with numpy.

Two families:

* **Pointwise** metrics compare one prediction per event with its label:
  :func:`rmse`, :func:`mae`, :func:`accuracy`, :func:`auc`, :func:`log_loss`.
* **Ranking** metrics compare a top-K list per user with that user's set of relevant
  items: :func:`precision_at_k`, :func:`recall_at_k`, :func:`ndcg_at_k`,
  :func:`hit_rate_at_k`, :func:`mrr`, :func:`catalogue_coverage_at_k`.
* **Beyond accuracy** — properties of the lists themselves, no relevant sets involved:
  :func:`intra_list_diversity` (how unlike each other a list's items are),
  :func:`novelty` (how unpopular, in bits), :func:`catalogue_coverage_at_k`.

Conventions for the ranking metrics
-----------------------------------
``recommended`` is a 2-D array ``[n_users, K]`` of item IDs, best first (what a batch
top-K call returns). A row may be shorter than ``K`` in reality; the missing slots are
filled with a *padding* value (``pad``, default ``-1``; ``None`` in an object array is
always padding). Padding never counts as a hit and never counts as a recommended item,
but it still occupies its slot, so Precision@K keeps ``K`` as its denominator. An item
repeated within a row counts once (at its first position).

``relevant`` gives, per user, the items that count as hits. Accepted forms:

* a sequence (list, tuple, object array) of length ``n_users`` whose elements are sets,
  lists, arrays or single IDs;
* a 1-D numeric array of length ``n_users``: one relevant item per user (the usual
  prequential case "was the next item in the top-K?");
* a 2-D numeric array ``[n_users, m]``: rows of relevant items, ``pad`` entries ignored.

Users whose relevant set is empty have no defined score; they are **excluded from the
mean**. When every user is excluded the metric is ``nan``. Metrics return plain
``float``.

``k`` defaults to the number of columns of ``recommended``; a smaller ``k`` uses the
first ``k`` columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: The relevant items of each user: one iterable of item IDs per user (or a 2-D array).
Relevant = Sequence[Iterable[Any]] | np.ndarray

__all__ = [
    "accuracy",
    "auc",
    "catalogue_coverage_at_k",
    "hit_rate_at_k",
    "intra_list_diversity",
    "log_loss",
    "mae",
    "mrr",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "recall_at_k",
    "rmse",
]

ArrayLike = Any  # anything np.asarray accepts; kept loose on purpose


# --------------------------------------------------------------------------- validation


def _as_finite_1d(name: str, values: ArrayLike) -> np.ndarray:
    """Return ``values`` as a non-empty, finite, 1-D float64 array or raise."""
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name}: expected numbers, got an array of dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one value, got an empty array")
    arr = arr.astype(np.float64, copy=False)
    n_bad = int(np.count_nonzero(~np.isfinite(arr)))
    if n_bad:
        raise ValueError(f"{name}: expected finite values, got {n_bad} NaN/inf")
    return arr


def _pair(
    y_true: ArrayLike, y_pred: ArrayLike, pred_name: str = "y_pred"
) -> tuple[np.ndarray, np.ndarray]:
    t = _as_finite_1d("y_true", y_true)
    p = _as_finite_1d(pred_name, y_pred)
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and {pred_name} must have the same length, got {t.size} and {p.size}"
        )
    return t, p


def _check_binary(name: str, y: np.ndarray) -> None:
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise ValueError(
            f"{name}: expected binary labels 0/1, got e.g. {y[bad][0]!r} "
            f"({int(bad.sum())} non-binary values)"
        )


def _check_probabilities(name: str, p: np.ndarray) -> None:
    bad = (p < 0) | (p > 1)
    if bad.any():
        raise ValueError(
            f"{name}: expected probabilities in [0, 1], got e.g. {p[bad][0]!r} "
            f"({int(bad.sum())} values outside)"
        )


# --------------------------------------------------------------------------- pointwise


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error: ``sqrt(mean((y_pred - y_true)**2))``."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error: ``mean(|y_pred - y_true|)``."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def accuracy(y_true: ArrayLike, y_prob: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of correct binary predictions: ``mean([y_prob >= threshold] == y_true)``.

    ``y_true`` must be 0/1; ``y_prob`` are probabilities in [0, 1]. A probability
    exactly equal to ``threshold`` predicts the positive class.
    """
    t, p = _pair(y_true, y_prob, "y_prob")
    _check_binary("y_true", t)
    _check_probabilities("y_prob", p)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected a value in [0, 1], got {threshold!r}")
    return float(np.mean((p >= threshold) == (t == 1)))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` where tied values share the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Start index of each run of equal values in sorted order.
    is_start = np.empty(x.size, dtype=bool)
    is_start[0] = True
    np.not_equal(sorted_x[1:], sorted_x[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    ends = np.append(starts[1:], x.size)  # exclusive
    # Ranks in a run [s, e) are s+1..e; their mean is (s + 1 + e) / 2.
    run_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve, via the Mann-Whitney rank statistic.

    ``AUC = (sum(rank(s_i) for positives i) - P (P + 1) / 2) / (P N)``

    where ranks are 1-based over all scores with ties given their average rank (so a
    tied positive/negative pair counts 1/2, exactly as ``sklearn.metrics.roc_auc_score``),
    and ``P``/``N`` are the numbers of positive/negative labels. ``y_true`` must be 0/1.

    Returns ``nan`` when only one class is present (AUC is undefined there); this is
    common in small time windows of a stream, so it is not an error.
    """
    t, s = _pair(y_true, y_score, "y_score")
    _check_binary("y_true", t)
    pos = t == 1
    n_pos = int(pos.sum())
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y_true: ArrayLike, y_prob: ArrayLike, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy (natural log).

    ``-mean(y log(p) + (1 - y) log(1 - p))`` with ``p = clip(y_prob, eps, 1 - eps)`` so
    that a confident wrong prediction costs a large but finite amount. ``y_true`` may be
    soft labels in [0, 1]; ``y_prob`` must be probabilities in [0, 1].
    """
    t, p = _pair(y_true, y_prob, "y_prob")
    _check_probabilities("y_true", t)
    _check_probabilities("y_prob", p)
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps: expected a value in (0, 0.5), got {eps!r}")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(t * np.log(p) + (1.0 - t) * np.log1p(-p)))


# --------------------------------------------------------------------------- ranking


def _recommended_matrix(recommended: ArrayLike, k: int | None) -> np.ndarray:
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(
            f"recommended: expected a 2-D array [n_users, k] of item IDs, got shape {rec.shape}"
        )
    if rec.shape[0] == 0:
        raise ValueError("recommended: expected at least one user (row), got 0 rows")
    if rec.dtype.kind == "f":
        raise TypeError(
            "recommended: expected integer or string item IDs, got floats "
            f"(dtype {rec.dtype}); cast IDs to int64 and use `pad` for empty slots"
        )
    if k is None:
        k = rec.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k: expected k >= 1, got {k}")
    if k > rec.shape[1]:
        raise ValueError(
            f"k: expected k <= number of recommended columns ({rec.shape[1]}), got {k}"
        )
    rec = rec[:, :k]
    # Unsigned IDs that fit in int64 are compared as int64 so that they mix with the
    # plain Python ints of `relevant` without numpy promoting both to float64.
    if rec.dtype.kind == "u" and (rec.size == 0 or rec.max() < 2**63):
        rec = rec.astype(np.int64)
    return rec


def _padding_mask(values: np.ndarray, pad: object) -> np.ndarray:
    mask = np.zeros(values.shape, dtype=bool)
    # Compare only like with like: an int pad against string IDs can never match, and
    # older numpy versions warn on such comparisons.
    comparable = (
        values.dtype == object
        or (values.dtype.kind in "iu" and isinstance(pad, (int, np.integer)))
        or (values.dtype.kind in "US" and isinstance(pad, (str, bytes)))
    )
    if pad is not None and comparable:
        mask |= values == pad
    if values.dtype == object:
        mask |= np.array([v is None for v in values.ravel()], dtype=bool).reshape(values.shape)
    return mask


def _is_scalar_id(x: object) -> bool:
    return isinstance(x, (str, bytes, int, np.integer)) and not isinstance(x, bool)


def _flatten_relevant(
    relevant: Sequence[Iterable[Any]] | np.ndarray, n_users: int, pad: object
) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``relevant`` into parallel arrays ``(user_row, item_id)``, padding removed."""
    if isinstance(relevant, np.ndarray) and relevant.dtype != object and relevant.ndim in (1, 2):
        if relevant.shape[0] != n_users:
            raise ValueError(
                f"relevant: expected one entry per user ({n_users}), got {relevant.shape[0]}"
            )
        arr = relevant.reshape(n_users, -1)
        users = np.repeat(np.arange(n_users), arr.shape[1])
        items = arr.ravel()
    else:
        if isinstance(relevant, (str, bytes)) or not isinstance(relevant, (Sequence, np.ndarray)):
            raise TypeError(
                "relevant: expected a sequence with one set/array of item IDs per user, "
                f"got {type(relevant).__name__}"
            )
        if len(relevant) != n_users:
            raise ValueError(
                f"relevant: expected one entry per user ({n_users}), got {len(relevant)}"
            )
        lengths = np.empty(n_users, dtype=np.int64)
        flat: list[Any] = []
        for row, entry in enumerate(relevant):
            if _is_scalar_id(entry):
                flat.append(entry)
                lengths[row] = 1
                continue
            if entry is None:
                lengths[row] = 0
                continue
            before = len(flat)
            flat.extend(np.asarray(entry).ravel().tolist() if isinstance(entry, np.ndarray) else entry)
            lengths[row] = len(flat) - before
        users = np.repeat(np.arange(n_users), lengths)
        items = np.asarray(flat) if flat else np.empty(0, dtype=np.int64)
        if items.ndim != 1:
            raise TypeError("relevant: expected each entry to hold scalar item IDs")
    keep = ~_padding_mask(items, pad)
    return users[keep], items[keep]


def _hits(
    recommended: ArrayLike,
    relevant: Sequence[Iterable[Any]] | np.ndarray,
    k: int | None,
    pad: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``hits[n_users, k]`` (bool) and ``n_relevant[n_users]`` (distinct, int)."""
    rec = _recommended_matrix(recommended, k)
    n_users, k_used = rec.shape
    rel_users, rel_items = _flatten_relevant(relevant, n_users, pad)
    rec_pad = _padding_mask(rec, pad)
    real = ~rec_pad.ravel()
    n_real = int(real.sum())

    # Encode every (user, item) pair as one int64 key so that membership is one isin().
    # Padding is left out of the encoding (None does not sort against strings).
    try:
        codes, inverse = np.unique(
            np.concatenate([rec.ravel()[real], rel_items]), return_inverse=True
        )
    except TypeError as exc:  # e.g. str and int IDs mixed in an object array
        raise TypeError(
            "recommended and relevant must hold IDs of one kind (all ints or all strings)"
        ) from exc
    n_codes = max(len(codes), 1)
    inverse = inverse.ravel().astype(np.int64)
    rec_users = np.repeat(np.arange(n_users, dtype=np.int64), k_used)
    rec_keys = np.full(rec.size, -1, dtype=np.int64)  # -1: padding, matches no key
    rec_keys[real] = rec_users[real] * n_codes + inverse[:n_real]
    rel_keys = np.unique(rel_users.astype(np.int64) * n_codes + inverse[n_real:])

    hits = np.isin(rec_keys, rel_keys).reshape(n_users, k_used) & ~rec_pad
    # An item repeated in a row is a hit only at its first position.
    order = np.argsort(rec_keys, kind="stable")
    repeated = np.zeros(rec_keys.size, dtype=bool)
    repeated[order[1:]] = rec_keys[order[1:]] == rec_keys[order[:-1]]
    hits &= ~repeated.reshape(n_users, k_used)

    n_relevant = np.bincount(rel_keys // n_codes, minlength=n_users)
    return hits, n_relevant


def _mean_over_users(per_user: np.ndarray, n_relevant: np.ndarray) -> float:
    valid = n_relevant > 0
    if not valid.any():
        return float("nan")
    return float(per_user[valid].mean())


def precision_at_k(recommended: ArrayLike, relevant: Relevant, k: int | None = None, *, pad: object = -1) -> float:
    """Precision@K: ``mean_u |top_k(u) ∩ rel(u)| / k``.

    Padding slots count as misses (the denominator stays ``k``). Users with an empty
    relevant set are excluded from the mean.
    """
    hits, n_rel = _hits(recommended, relevant, k, pad)
    return _mean_over_users(np.asarray(hits.sum(axis=1) / hits.shape[1]), n_rel)


def recall_at_k(recommended: ArrayLike, relevant: Relevant, k: int | None = None, *, pad: object = -1) -> float:
    """Recall@K: ``mean_u |top_k(u) ∩ rel(u)| / |rel(u)|``.

    Users with an empty relevant set are excluded from the mean.
    """
    hits, n_rel = _hits(recommended, relevant, k, pad)
    per_user = hits.sum(axis=1) / np.maximum(n_rel, 1)
    return _mean_over_users(per_user, n_rel)


def ndcg_at_k(recommended: ArrayLike, relevant: Relevant, k: int | None = None, *, pad: object = -1) -> float:
    """NDCG@K with binary relevance and a log2 discount.

    ``DCG(u) = sum_{j=1..k} hit(u, j) / log2(j + 1)``,
    ``IDCG(u) = sum_{j=1..min(|rel(u)|, k)} 1 / log2(j + 1)``,
    ``NDCG@K = mean_u DCG(u) / IDCG(u)``.

    Same as ``sklearn.metrics.ndcg_score(..., k=k)`` on binary gains, except that users
    with an empty relevant set are excluded here (scikit-learn scores them 0).
    """
    hits, n_rel = _hits(recommended, relevant, k, pad)
    k_used = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k_used + 2))
    dcg = hits @ discounts
    ideal_cumulative = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cumulative[np.minimum(n_rel, k_used)]
    per_user = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    return _mean_over_users(per_user, n_rel)


def hit_rate_at_k(recommended: ArrayLike, relevant: Relevant, k: int | None = None, *, pad: object = -1) -> float:
    """HitRate@K: ``mean_u [top_k(u) ∩ rel(u) is not empty]``.

    Users with an empty relevant set are excluded from the mean.
    """
    hits, n_rel = _hits(recommended, relevant, k, pad)
    return _mean_over_users(np.asarray(hits.any(axis=1), dtype=np.float64), n_rel)


def mrr(recommended: ArrayLike, relevant: Relevant, k: int | None = None, *, pad: object = -1) -> float:
    """Mean reciprocal rank within the top K: ``mean_u 1 / rank_u``.

    ``rank_u`` is the 1-based position of the first relevant item in ``top_k(u)``; a
    user with no hit in the top K contributes 0. Users with an empty relevant set are
    excluded from the mean.
    """
    hits, n_rel = _hits(recommended, relevant, k, pad)
    first = np.argmax(hits, axis=1)  # 0 when there is no hit; masked below
    per_user = np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)
    return _mean_over_users(per_user, n_rel)


def catalogue_coverage_at_k(
    recommended: ArrayLike,
    catalogue_size: int,
    k: int | None = None,
    *,
    pad: object = -1,
) -> float:
    """Catalogue coverage@K: ``|distinct items in all top-K lists| / catalogue_size``.

    Padding slots are not items. Every user counts here (no relevant sets involved).
    """
    rec = _recommended_matrix(recommended, k)
    if isinstance(catalogue_size, bool) or not isinstance(catalogue_size, (int, np.integer)):
        raise TypeError(f"catalogue_size: expected an int, got {type(catalogue_size).__name__}")
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size: expected >= 1, got {catalogue_size}")
    items = rec[~_padding_mask(rec, pad)]
    n_distinct = len(np.unique(items)) if items.size else 0
    if n_distinct > catalogue_size:
        raise ValueError(
            f"catalogue_size: {n_distinct} distinct items were recommended, more than the "
            f"catalogue size {catalogue_size}; pass the number of items in the catalogue"
        )
    return n_distinct / int(catalogue_size)


# Beyond-accuracy metrics (properties of the lists themselves) live in their own module;
# imported last because it uses the checks above. The list_* helpers serve evaluation.replay.
from ._list_metrics import (  # noqa: E402, F401
    intra_list_diversity,
    list_dissimilarity,
    list_self_information,
    novelty,
    popularity_probability,
)
