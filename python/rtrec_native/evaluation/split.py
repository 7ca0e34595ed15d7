"""The classic offline protocol: train on the past, test on the future.

:func:`temporal_split` cuts the events **globally** (one timestamp for everyone) or **per
user** (the last fraction of each user's events); :func:`evaluate_split` scores a model
fitted on the training part. Ranking metrics never count an item the user already consumed
in the training part: it is dropped from the relevant set and filtered out of the top-K by
the training events themselves (:mod:`._ranking`), whatever the model's seen list holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .. import _validation as check
from .. import metrics
from ..events import Events
from ..recommender import Recommender
from ._common import (
    PAD,
    check_events,
    check_fraction,
    check_model,
    default_positive_threshold,
    json_number,
    pointwise,
    time_order,
)
from ._ranking import ConsumedIndex, catalogue_vectors, top_k_unconsumed

__all__ = ["SplitEvaluation", "TemporalSplit", "evaluate_split", "temporal_split"]


@dataclass(frozen=True, eq=False)
class TemporalSplit:
    """A train/test split where every test event comes after the training events it
    competes with.

    Attributes:
        train, test: the two parts, each in time order.
        by: ``"global"`` (one cut time for everyone) or ``"user"`` (per-user cut).
        test_fraction: the requested fraction of events in the test part.
        cutoff: the global cut timestamp (test events have ``timestamp >= cutoff``, train
            events ``< cutoff``); ``None`` for per-user cuts or events without timestamps.
    """

    train: Events
    test: Events
    by: str
    test_fraction: float
    cutoff: float | None

    def to_dict(self) -> dict[str, Any]:
        """Sizes and the cut, JSON-serialisable."""
        return {
            "by": self.by,
            "test_fraction": self.test_fraction,
            "cutoff": self.cutoff,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "n_test_users": int(np.unique(self.test.users).size) if len(self.test) else 0,
        }


def temporal_split(
    events: Events, test_fraction: float = 0.2, *, by: Literal["global", "user"] = "global"
) -> TemporalSplit:
    """Split events into past (train) and future (test).

    Args:
        events: the interactions; ordered by ``timestamps`` (stably), or taken in the
            given order when there are none.
        test_fraction: fraction of events in the test part, in (0, 1).
        by: ``"global"`` — one cut for everyone at the ``1 - test_fraction`` quantile of
            time: train is every event strictly before the cut time, test every event at
            or after it (events sharing the cut timestamp all go to test, so no test
            event is older than a training event). ``"user"`` — each user's last
            ``round(test_fraction * n_u)`` events (by time) are test, capped at
            ``n_u - 1`` so that every user keeps a training event; a user with one event
            is all train.

    Returns:
        A :class:`TemporalSplit`; both parts are in time order.
    """
    events = check_events(events)
    test_fraction = check_fraction(test_fraction, "test_fraction")
    if by not in ("global", "user"):
        raise ValueError(f"by: expected 'global' or 'user', got {by!r}")
    order = time_order(events)
    if by == "global":
        is_test, cutoff = _global_cut(events, order, test_fraction)
    else:
        is_test, cutoff = _per_user_cut(events, order, test_fraction), None
    in_order = is_test[order]
    return TemporalSplit(
        train=events[order[~in_order]],
        test=events[order[in_order]],
        by=by,
        test_fraction=test_fraction,
        cutoff=cutoff,
    )


def _global_cut(events: Events, order: np.ndarray, test_fraction: float) -> tuple[np.ndarray, float | None]:
    n = len(events)
    first_test = min(n - 1, max(1, round(n * (1.0 - test_fraction))))
    is_test = np.zeros(n, dtype=bool)
    if events.timestamps is None:
        is_test[order[first_test:]] = True
        return is_test, None
    cutoff = float(events.timestamps[order[first_test]])
    is_test[events.timestamps >= cutoff] = True
    return is_test, cutoff


def _per_user_cut(events: Events, order: np.ndarray, test_fraction: float) -> np.ndarray:
    # Group by user keeping time order inside each group: a stable sort of the
    # time-ordered positions by user.
    _, user_index = np.unique(events.users, return_inverse=True)
    user_index = user_index.ravel()
    grouped = order[np.argsort(user_index[order], kind="stable")]
    counts = np.bincount(user_index)
    n_test = np.minimum(np.floor(counts * test_fraction + 0.5).astype(np.int64), counts - 1)
    ends = np.cumsum(counts)
    # Rank of each grouped event counted from the end of its user's group (1 = last).
    from_end = np.repeat(ends, counts) - np.arange(len(events))
    is_test = np.zeros(len(events), dtype=bool)
    is_test[grouped] = from_end <= np.repeat(n_test, counts)
    return is_test


@dataclass
class SplitEvaluation:
    """Test-set metrics of a model trained on a :class:`TemporalSplit`'s train part.

    Attributes:
        metrics: name -> value: ``"hitrate@k"``, ``"ndcg@k"``, ``"precision@k"``,
            ``"recall@k"``, ``"mrr@k"`` over the test users with at least one new relevant
            item; beside accuracy, over the same users' lists, ``"coverage@k"`` (share of the
            catalogue recommended at least once), ``"ild@k"`` (intra-list diversity: mean
            pairwise cosine dissimilarity in the model's item space; NaN for a model
            without ``item_vectors``) and ``"novelty@k"``
            (mean self-information -log2 p(item) in bits, p from the training events'
            popularity, see :func:`metrics.popularity_probability`); then over every test
            event ``"rmse"``/``"mae"``
            (squared loss), or ``"auc"`` (0/1 labels) and ``"logloss"`` (logistic loss).
            NaN when undefined (e.g. AUC of a test part with one class).
        split: the split's :meth:`TemporalSplit.to_dict`.
        k: the cut-off of the ranking metrics.
        positive_threshold: the label at or above which a test event is relevant.
        n_ranked_users: test users that were ranked (had a new relevant item).
    """

    metrics: dict[str, float]
    split: dict[str, Any]
    k: int
    positive_threshold: float
    n_ranked_users: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (NaN as ``None``)."""
        return {
            "metrics": {name: json_number(v) for name, v in self.metrics.items()},
            "split": dict(self.split),
            "k": self.k,
            "positive_threshold": self.positive_threshold,
            "n_ranked_users": self.n_ranked_users,
        }


def evaluate_split(
    rec: Recommender,
    split: TemporalSplit,
    *,
    k: int = 10,
    positive_threshold: float | None = None,
    diversity: float = 0.0,
) -> SplitEvaluation:
    """Score a model fitted on ``split.train`` against ``split.test``.

    Relevant items of a test user are the test items with a label at or above
    ``positive_threshold`` that the user did not already consume in the training part;
    the top-``k`` is the model's ranking with the items the user consumed in the training
    part left out (taken from ``split.train`` itself, so a model with admission or eviction,
    whose seen lists miss some of that history, is scored the same way). Fit ``rec`` on
    ``split.train`` only: anything else leaks the future into the scores. ``diversity`` is
    passed to ``recommend_batch`` (see :meth:`Recommender.recommend`).
    """
    check_model(rec, "rec")
    if not isinstance(split, TemporalSplit):
        raise TypeError(f"split: expected a TemporalSplit, got {type(split).__name__}")
    k = check.positive_int(k, "k")
    test = split.test
    loss = rec.get_params()["loss"]
    threshold = (
        default_positive_threshold(split.train.labels, loss)
        if positive_threshold is None
        else float(positive_threshold)
    )
    out = pointwise(rec.predict(test.users, test.items), test.labels, loss) if len(test) else {}
    diversity = check.number(diversity, "diversity")
    ranking, n_ranked = _split_ranking(rec, split, k, threshold, loss, diversity)
    out = {**ranking, **out}
    return SplitEvaluation(
        metrics=out, split=split.to_dict(), k=k, positive_threshold=threshold, n_ranked_users=n_ranked
    )


def _split_ranking(
    rec: Recommender, split: TemporalSplit, k: int, threshold: float, loss: str, diversity: float
) -> tuple[dict[str, float], int]:
    names = [f"{m}@{k}" for m in ("hitrate", "ndcg", "precision", "recall", "mrr", "coverage", "ild", "novelty")]
    nan = {name: float("nan") for name in names}
    train, test = split.train, split.test
    if len(test) == 0:
        return nan, 0
    catalogue = np.unique(np.concatenate([train.items, test.items]))
    users = np.unique(np.concatenate([train.users, test.users]))
    n_items = catalogue.size
    # The training history, from the training events themselves (not the model's seen list).
    history = ConsumedIndex(train, loss, np.searchsorted(users, train.users),
                            np.searchsorted(catalogue, train.items), n_items)
    test_user = np.searchsorted(users, test.users)
    test_item = np.searchsorted(catalogue, test.items)
    liked = np.ones(len(test), dtype=bool) if test.labels is None else test.labels >= threshold
    if test.weights is not None:
        liked &= test.weights > 0
    liked &= ~history.consumed_before(test_user, test_item, len(train))
    if not liked.any():
        return nan, 0
    relevant_keys = np.unique(test_user[liked] * n_items + test_item[liked])
    ranked_users = relevant_keys // n_items
    bounds = np.r_[0, np.flatnonzero(np.diff(ranked_users)) + 1, relevant_keys.size]
    row_users = ranked_users[bounds[:-1]]
    relevant = np.split(relevant_keys % n_items, bounds[1:-1])
    top = top_k_unconsumed(rec, users[row_users], row_users, history, len(train), k, catalogue,
                           learned_until=len(train), diversity=diversity)
    item_counts = np.bincount(np.searchsorted(catalogue, train.items), minlength=n_items)
    vectors = catalogue_vectors(rec, catalogue)
    out = {
        f"hitrate@{k}": metrics.hit_rate_at_k(top, relevant, k, pad=PAD),
        f"ndcg@{k}": metrics.ndcg_at_k(top, relevant, k, pad=PAD),
        f"precision@{k}": metrics.precision_at_k(top, relevant, k, pad=PAD),
        f"recall@{k}": metrics.recall_at_k(top, relevant, k, pad=PAD),
        f"mrr@{k}": metrics.mrr(top, relevant, k, pad=PAD),
        f"coverage@{k}": metrics.catalogue_coverage_at_k(top, int(n_items), k, pad=PAD),
        f"ild@{k}": float("nan") if vectors is None else metrics.intra_list_diversity(top, vectors, k, pad=PAD),
        f"novelty@{k}": metrics.novelty(top, metrics.popularity_probability(item_counts), k, pad=PAD),
    }
    return out, int(row_users.size)
