"""Offline evaluation: temporal splits and prequential (test-then-train) replay.

Two protocols, both over time-ordered :class:`~rtrec_native.data.Events`:

* :func:`temporal_split` + :func:`evaluate_split` — the classic offline protocol: train on
  the past, test on the future. The cut is either **global** (one timestamp for everyone)
  or **per user** (the last fraction of each user's events). Ranking metrics never count
  an item the user already consumed in the training part: the model's own seen list
  excludes it from the top-K and it is dropped from the relevant set.

* :func:`prequential` — replays the stream and compares how models are kept fresh:

  ``realtime``
      learns from every event: after each micro-batch has been scored, ``rec.update`` is
      called on it (events applied one by one, in arrival order, inside the core).
  ``periodic``
      the industry baseline: a *fresh* model is refitted on all events so far every
      ``retrain_every`` events (and/or every ``retrain_period`` seconds of event time).
  ``static``
      fitted once on the warm-up prefix, then frozen.

  All three start from the same warm-up fit (same data, parameters and seed) and are
  scored on exactly the same events after it. Scoring is **test-then-train per
  micro-batch of B events**: the B events of a batch are scored together (one ``predict``
  call and one ``recommend_batch`` call) by the model as it was before the batch, then
  the batch is learned (realtime) or a refit happens if one is due (periodic). With
  ``batch_size=1`` this is exact per-event prequential evaluation; a larger batch only
  delays what the realtime model has learned by less than B events, so it understates
  the real-time advantage rather than inflating it.

Metrics per scored event (overall, and per window of equal event counts):

* **Ranking** — for each event that is a *new* positive (the first time this user
  consumes this item, with a label at or above ``positive_threshold``): is the item in the
  user's top-``k`` (HitRate@k), and at which rank (NDCG@k, binary gain). Items the user has
  already consumed in the stream are excluded from the top-``k`` for every policy alike —
  also for the frozen models, whose own seen lists stop at their last fit: they are asked
  for extra items and the consumed ones are filtered out, as a serving layer with the
  user's history would do.
* **Pointwise** — ``predict`` on every scored event before it is learned: AUC (and log
  loss for ``loss="logistic"``) for 0/1 labels, RMSE and MAE for ``loss="squared"``.

"Consumed" follows :meth:`Recommender.recommend`'s ``exclude_seen``: an event with weight
> 0 and, for ``squared`` any label, for ``logistic`` a label >= 0.5, for ``bpr`` a label > 0
(or no label).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import metrics
from .events import Events
from .recommender import Recommender

__all__ = [
    "POLICIES",
    "PolicyResult",
    "PrequentialReport",
    "SplitEvaluation",
    "TemporalSplit",
    "WindowSpan",
    "default_positive_threshold",
    "evaluate_split",
    "infer_loss",
    "prequential",
    "temporal_split",
]

#: The freshness policies :func:`prequential` compares, in report order.
POLICIES: tuple[str, ...] = ("realtime", "periodic", "static")

#: What :func:`prequential` accepts as the model: keyword arguments for
#: :class:`Recommender`, or a zero-argument callable that returns a fresh, unfitted model
#: (each policy, and each periodic refit, gets its own).
ModelSpec = Mapping[str, Any] | Callable[[], Recommender] | None

_PAD = -1  # dense item index of an empty top-K slot


# =========================================================================== helpers


def infer_loss(labels: np.ndarray | None) -> str:
    """The loss that fits the labels: ``"squared"`` for ratings (any label other than 0/1),
    ``"bpr"`` otherwise (no labels, or 0/1 clicks).

    0/1 clicks go to BPR rather than logistic on purpose: ranking the next positive is the
    recommender's job, and BPR (positives against sampled items) ranks far better than a
    click-probability model fitted to the shown items only (on the default synthetic
    stream HitRate@10 is about 0.17 against 0.02). Pass ``loss="logistic"`` explicitly
    for calibrated click probabilities.
    """
    if labels is None:
        return "bpr"
    values = np.unique(np.asarray(labels))
    if values.size and np.isin(values, (0.0, 1.0)).all():
        return "bpr"
    return "squared"


def default_positive_threshold(labels: np.ndarray | None, loss: str) -> float:
    """The label at or above which an event counts as a hit for the ranking metrics.

    ``0.5`` for 0/1 labels (logistic, or BPR with labels); for ratings (squared) the 75th
    percentile of the labels, rounded to the rating grid of 0.5 — 4.0 on MovieLens, i.e.
    "the user liked it".
    """
    if loss != "squared" or labels is None or len(labels) == 0:
        return 0.5
    return float(np.round(np.quantile(np.asarray(labels, dtype=np.float64), 0.75) * 2.0) / 2.0)


def _consumed(events: Events, loss: str) -> np.ndarray:
    """Events that put the item in the user's seen list (mirrors the core's rule)."""
    n = len(events)
    mask = np.ones(n, dtype=bool) if events.weights is None else events.weights > 0
    if events.labels is not None:
        if loss == "logistic":
            mask &= events.labels >= 0.5
        elif loss == "bpr":
            mask &= events.labels > 0
    return mask


def _check_events(events: Any, name: str = "events") -> Events:
    if not isinstance(events, Events):
        raise TypeError(
            f"{name}: expected rtrec_native.data.Events (e.g. from load_events() or "
            f"synthetic_stream()), got {type(events).__name__}"
        )
    if len(events) == 0:
        raise ValueError(f"{name}: expected at least one event, got 0")
    return events


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name}: expected a number in (0, 1), got {type(value).__name__}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name}: expected a number in (0, 1), got {value!r}")
    return float(value)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


def _positive_int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1 or None, got {value!r}")
    return int(value)


def _model_factory(model: ModelSpec, labels: np.ndarray | None) -> tuple[Callable[[], Recommender], str]:
    """Return ``(make, loss)``: a callable building a fresh model, and its loss."""
    if callable(model):
        probe = model()
        if not isinstance(probe, Recommender):
            raise TypeError(f"model: the callable must return a Recommender, got {type(probe).__name__}")
        return model, probe.get_params()["loss"]
    params = dict(model or {})
    params.setdefault("loss", infer_loss(labels))
    Recommender(**params)  # validate the parameters once, at the boundary
    return (lambda: Recommender(**params)), params["loss"]


def _json_number(value: float) -> float | None:
    """NaN (undefined metric) becomes ``None`` so that the JSON stays standard."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _learn_args(events: Events, lo: int, hi: int) -> dict[str, Any]:
    """Keyword arguments for ``fit``/``update`` on ``events[lo:hi]``, as array views (no
    ``Events`` is built: that would re-check every ID in Python on the hot path)."""

    def part(arr: np.ndarray | None) -> np.ndarray | None:
        return None if arr is None else arr[lo:hi]

    return {
        "users": events.users[lo:hi],
        "items": events.items[lo:hi],
        "labels": part(events.labels),
        "weights": part(events.weights),
        "timestamps": part(events.timestamps),
    }


def _time_order(events: Events) -> np.ndarray:
    """Stable order by timestamp (positional order when there are no timestamps)."""
    if events.timestamps is None:
        return np.arange(len(events))
    return np.argsort(events.timestamps, kind="stable")


# =========================================================================== temporal split


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
    events = _check_events(events)
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    if by not in ("global", "user"):
        raise ValueError(f"by: expected 'global' or 'user', got {by!r}")
    order = _time_order(events)
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
            ``"recall@k"``, ``"mrr@k"``, ``"coverage@k"`` over the test users with at least
            one new relevant item; then over every test event ``"rmse"``/``"mae"``
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
            "metrics": {name: _json_number(v) for name, v in self.metrics.items()},
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
) -> SplitEvaluation:
    """Score a model fitted on ``split.train`` against ``split.test``.

    Relevant items of a test user are the test items with a label at or above
    ``positive_threshold`` that the user did not already consume in the training part;
    the top-``k`` comes from ``recommend_batch(..., exclude_seen=True)``, so the items the
    model saw the user consume in training are not ranked. (Fit ``rec`` on
    ``split.train`` only — that is what makes its seen list the training history.)
    """
    if not isinstance(rec, Recommender):
        raise TypeError(f"rec: expected a Recommender, got {type(rec).__name__}")
    if not isinstance(split, TemporalSplit):
        raise TypeError(f"split: expected a TemporalSplit, got {type(split).__name__}")
    k = _positive_int(k, "k")
    test = split.test
    loss = rec.get_params()["loss"]
    threshold = (
        default_positive_threshold(split.train.labels, loss)
        if positive_threshold is None
        else float(positive_threshold)
    )
    out = _pointwise(rec.predict(test.users, test.items), test.labels, loss) if len(test) else {}
    ranking, n_ranked = _split_ranking(rec, split, k, threshold, loss)
    out = {**ranking, **out}
    return SplitEvaluation(
        metrics=out, split=split.to_dict(), k=k, positive_threshold=threshold, n_ranked_users=n_ranked
    )


def _split_ranking(
    rec: Recommender, split: TemporalSplit, k: int, threshold: float, loss: str
) -> tuple[dict[str, float], int]:
    names = [f"{m}@{k}" for m in ("hitrate", "ndcg", "precision", "recall", "mrr", "coverage")]
    nan = {name: float("nan") for name in names}
    train, test = split.train, split.test
    if len(test) == 0:
        return nan, 0
    catalogue = np.unique(np.concatenate([train.items, test.items]))
    users = np.unique(np.concatenate([train.users, test.users]))
    n_items = catalogue.size
    test_user = np.searchsorted(users, test.users)
    test_item = np.searchsorted(catalogue, test.items)
    train_keys = np.unique(
        np.searchsorted(users, train.users[_consumed(train, loss)]) * n_items
        + np.searchsorted(catalogue, train.items[_consumed(train, loss)])
    )
    liked = np.ones(len(test), dtype=bool) if test.labels is None else test.labels >= threshold
    if test.weights is not None:
        liked &= test.weights > 0
    keys = test_user * n_items + test_item
    liked &= ~np.isin(keys, train_keys)
    if not liked.any():
        return nan, 0
    relevant_keys = np.unique(keys[liked])
    ranked_users = relevant_keys // n_items
    bounds = np.r_[0, np.flatnonzero(np.diff(ranked_users)) + 1, relevant_keys.size]
    row_users = ranked_users[bounds[:-1]]
    relevant = np.split(relevant_keys % n_items, bounds[1:-1])
    ids, _ = rec.recommend_batch(users[row_users], k=k, exclude_seen=True)
    top = _dense_items(ids, catalogue)
    if top.shape[1] < k:  # a catalogue smaller than k: pad so that k columns exist
        top = np.hstack([top, np.full((top.shape[0], k - top.shape[1]), _PAD, dtype=np.int64)])
    out = {
        f"hitrate@{k}": metrics.hit_rate_at_k(top, relevant, k, pad=_PAD),
        f"ndcg@{k}": metrics.ndcg_at_k(top, relevant, k, pad=_PAD),
        f"precision@{k}": metrics.precision_at_k(top, relevant, k, pad=_PAD),
        f"recall@{k}": metrics.recall_at_k(top, relevant, k, pad=_PAD),
        f"mrr@{k}": metrics.mrr(top, relevant, k, pad=_PAD),
        f"coverage@{k}": metrics.catalogue_coverage_at_k(top, int(n_items), k, pad=_PAD),
    }
    return out, int(row_users.size)


def _dense_items(ids: np.ndarray, catalogue: np.ndarray) -> np.ndarray:
    """Item IDs from ``recommend_batch`` as indices into ``catalogue`` (``_PAD`` = empty).

    IDs the catalogue does not hold (cannot happen for a model trained on the stream) are
    treated as empty slots too rather than silently aliasing another item.
    """
    if ids.dtype == object:
        empty = np.asarray(ids == None, dtype=bool)
        probe = np.where(empty, catalogue[0], ids)
    else:
        empty = ids == np.iinfo(np.int64).min
        probe = np.where(empty, catalogue[0], ids)
    index = np.minimum(np.searchsorted(catalogue, probe), catalogue.size - 1)
    known = catalogue[index] == probe
    return np.where(empty | ~known, _PAD, index).astype(np.int64)


def _pointwise(scores: np.ndarray, labels: np.ndarray | None, loss: str) -> dict[str, float]:
    """Pointwise metrics of scores against labels (empty when there is nothing to score)."""
    if labels is None or scores.size == 0:
        return {}
    if loss == "squared":
        return {"rmse": metrics.rmse(labels, scores), "mae": metrics.mae(labels, scores)}
    if not np.isin(labels, (0.0, 1.0)).all():
        return {}
    out = {"auc": metrics.auc(labels, scores)}
    if loss == "logistic":
        out["logloss"] = metrics.log_loss(labels, np.clip(scores, 0.0, 1.0))
    return out


# =========================================================================== prequential


@dataclass(frozen=True)
class WindowSpan:
    """A window of scored events: positions ``[start, end)`` in the time-ordered stream
    and the timestamps of its first and last events (``None`` without timestamps)."""

    start: int
    end: int
    t_start: float | None
    t_end: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "t_start": self.t_start, "t_end": self.t_end}


@dataclass
class PolicyResult:
    """What one policy scored, and what it cost.

    Attributes:
        name: ``"realtime"``, ``"periodic"`` or ``"static"``.
        metrics: overall metrics over every scored event (see :class:`PrequentialReport`).
        windows: the same metrics per window, in window order.
        events_per_s: scored events per second of this policy's replay, everything
            included (scoring, updates, refits; not the shared warm-up fit).
        update_latency_ms: mean duration of one model refresh — one ``update`` call on a
            micro-batch (realtime) or one full refit (periodic); 0 for static.
        update_us_per_event: total refresh time divided by the scored events (amortised
            cost of freshness per event).
        n_updates: refreshes done (update calls or refits).
        seconds: wall time of the replay.
    """

    name: str
    metrics: dict[str, float]
    windows: list[dict[str, float]]
    events_per_s: float
    update_latency_ms: float
    update_us_per_event: float
    n_updates: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Flat: the overall metrics next to the cost numbers (NaN as ``None``)."""
        out: dict[str, Any] = {name: _json_number(v) for name, v in self.metrics.items()}
        out.update(
            events_per_s=self.events_per_s,
            update_latency_ms=self.update_latency_ms,
            update_us_per_event=self.update_us_per_event,
            n_updates=self.n_updates,
            seconds=self.seconds,
        )
        return out


@dataclass
class PrequentialReport:
    """The outcome of :func:`prequential`.

    Attributes:
        policies: policy name -> :class:`PolicyResult`, in the order run.
        windows: the :class:`WindowSpan` of each per-window entry.
        metric_names: the metrics computed, e.g. ``["hitrate@10", "ndcg@10", "auc",
            "logloss"]`` for clicks or ``["hitrate@10", "ndcg@10", "rmse", "mae"]`` for
            ratings. Counts ``"n_scored"`` (events scored) and ``"n_ranked"`` (new positives
            ranked) are in every metrics dict too.
        config: the replay settings actually used (batch size, warm-up, refit schedule,
            k, threshold, model parameters).
        stream: sizes of the stream (events, users, items, scored events, time span).
    """

    policies: dict[str, PolicyResult]
    windows: list[WindowSpan]
    metric_names: list[str]
    config: dict[str, Any]
    stream: dict[str, Any]

    @property
    def primary_metric(self) -> str:
        """The metric the demo plots: ``"hitrate@k"``."""
        return self.metric_names[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ``{"policies": {name: flat overall metrics + costs},
        "windows": {"spans": [...], "metrics": {name: {metric: [per window]}}},
        "metric_names", "config", "stream"}``. NaN (undefined) values are ``None``."""
        per_window = {
            name: {
                metric: [_json_number(w[metric]) for w in result.windows]
                for metric in [*self.metric_names, "n_scored", "n_ranked"]
            }
            for name, result in self.policies.items()
        }
        return {
            "policies": {name: result.to_dict() for name, result in self.policies.items()},
            "windows": {"spans": [w.to_dict() for w in self.windows], "metrics": per_window},
            "metric_names": list(self.metric_names),
            "config": dict(self.config),
            "stream": dict(self.stream),
        }


class _Stream:
    """The stream, indexed once for every policy: dense IDs, which events are new positives,
    and an index answering "had user u consumed item i before position p?"."""

    def __init__(self, events: Events, loss: str, threshold: float) -> None:
        self.events = events
        self.n = len(events)
        self.user_ids, user_index = np.unique(events.users, return_inverse=True)
        self.item_ids, item_index = np.unique(events.items, return_inverse=True)
        self.user = user_index.ravel().astype(np.int64)
        self.item = item_index.ravel().astype(np.int64)
        n_items = np.int64(self.item_ids.size)
        pair = self.user * n_items + self.item

        # First consumption of each (user, item) pair: from then on the item is "seen".
        consumed = np.flatnonzero(_consumed(events, loss))
        first_keys, first_at = np.unique(pair[consumed], return_index=True)
        self.seen_keys = first_keys  # sorted pair keys ...
        self.seen_since = consumed[first_at]  # ... and the position that made each seen
        is_first = np.zeros(self.n, dtype=bool)
        is_first[self.seen_since] = True

        # A ranking trial: a first consumption with a label that counts as liked.
        liked = np.ones(self.n, dtype=bool) if events.labels is None else events.labels >= threshold
        self.ranked = is_first & liked

        # Per-user sorted positions of first consumptions, as one sorted key array, so
        # "how many items did u newly consume in [a, b)" is two searchsorted calls.
        stride = np.int64(self.n + 1)
        self._stride = stride
        self._first_by_user = np.sort(self.user[self.seen_since] * stride + self.seen_since)

    def newly_consumed(self, users: np.ndarray, start: int | np.ndarray, end: int) -> np.ndarray:
        """Per dense user: items first consumed in positions ``[start, end)``."""
        base = users * self._stride
        return np.searchsorted(self._first_by_user, base + end) - np.searchsorted(
            self._first_by_user, base + start
        )

    def seen_before(self, users: np.ndarray, items: np.ndarray, position: int) -> np.ndarray:
        """Whether each dense (user, item) pair was consumed before ``position``."""
        keys = users * np.int64(self.item_ids.size) + items
        if self.seen_keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        index = np.minimum(np.searchsorted(self.seen_keys, keys), self.seen_keys.size - 1)
        return (self.seen_keys[index] == keys) & (self.seen_since[index] < position)


class _Recorder:
    """Collects per-event scores and per-trial top-K lists of one policy."""

    def __init__(self, stream: _Stream, start: int, k: int) -> None:
        self.start = start
        self.scores = np.empty(stream.n - start, dtype=np.float32)
        n_trials = int(stream.ranked[start:].sum())
        self.top = np.full((n_trials, k), _PAD, dtype=np.int64)
        self.trial_pos = np.flatnonzero(stream.ranked[start:]) + start
        self._next_trial = 0

    def add_scores(self, lo: int, scores: np.ndarray) -> None:
        self.scores[lo - self.start : lo - self.start + scores.size] = scores

    def add_top(self, top: np.ndarray) -> None:
        self.top[self._next_trial : self._next_trial + top.shape[0]] = top
        self._next_trial += top.shape[0]


def _top_k_unseen(
    rec: Recommender, stream: _Stream, trial_pos: np.ndarray, position: int, synced: int, k: int
) -> np.ndarray:
    """Top-``k`` dense items for the users of the trials, excluding everything they
    consumed before ``position``.

    The model excludes what *it* saw consumed (up to ``synced``, where its knowledge of
    the stream ends); for the consumptions in ``[synced, position)`` it is asked for that
    many extra items, which are then filtered out here.
    """
    users = stream.user[trial_pos]
    extra = int(stream.newly_consumed(users, synced, position).max()) if synced < position else 0
    want = min(k + extra, max(rec.n_items, 1))
    ids, _ = rec.recommend_batch(stream.user_ids[users], k=want, exclude_seen=True)
    top = _dense_items(ids, stream.item_ids)
    if extra:
        rows = np.broadcast_to(users[:, None], top.shape)
        drop = (top != _PAD) & stream.seen_before(rows, np.maximum(top, 0), position)
        top = _compact(top, ~drop & (top != _PAD), k)
    return _fit_width(top, k)


def _compact(top: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Shift the kept entries of each row to the left, keep ``k`` columns."""
    slot = np.cumsum(keep, axis=1) - 1
    keep &= slot < k
    out = np.full((top.shape[0], k), _PAD, dtype=np.int64)
    rows, cols = np.nonzero(keep)
    out[rows, slot[rows, cols]] = top[rows, cols]
    return out


def _fit_width(top: np.ndarray, k: int) -> np.ndarray:
    if top.shape[1] >= k:
        return top[:, :k]
    return np.hstack([top, np.full((top.shape[0], k - top.shape[1]), _PAD, dtype=np.int64)])


def _batches(start: int, n: int, batch_size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + batch_size, n)) for lo in range(start, n, batch_size)]


def _refit_due(
    stream: _Stream, lo: int, last_fit: int, retrain_every: int | None, retrain_period: float | None
) -> bool:
    """Whether the periodic model is refitted before scoring the batch starting at ``lo``.

    ``last_fit`` is where the last fit stopped (it learned ``events[:last_fit]``). By
    count: ``retrain_every`` events since then. By time: this batch starts in a later
    period (multiples of ``retrain_period`` after the first event, e.g. a later day of the
    stream) than the one the last fit was made in — a nightly job.
    """
    if retrain_every is not None and lo - last_fit >= retrain_every:
        return True
    ts = stream.events.timestamps
    if retrain_period is not None and ts is not None:
        start, period = ts[0], retrain_period
        return math.floor((ts[lo] - start) / period) > math.floor((ts[last_fit] - start) / period)
    return False


class _FeatureCatalogue:
    """Side features to hand to models during a replay: an ID's features are set when it
    first appears in the stream, just before the micro-batch that mentions it is scored (as
    if the catalogue entry were published with its first event), never earlier, so a replay
    does not recommend items before they exist."""

    def __init__(self, item_features: Any = None, user_features: Any = None) -> None:
        self.sides = [(True, _feature_map(item_features, "item_features")),
                      (False, _feature_map(user_features, "user_features"))]
        self.sides = [(on_items, m) for on_items, m in self.sides if m]
        self.model: Recommender | None = None  # the model being fed (one at a time)
        self.done: list[set] = []              # its IDs already given their features

    def register(self, rec: Recommender, events: Events, lo: int, hi: int, *, fresh: bool = False) -> None:
        if not self.sides:
            return
        if fresh or rec is not self.model:
            self.model, self.done = rec, [set() for _ in self.sides]
        for (on_items, mapping), done in zip(self.sides, self.done):
            ids = events.items[lo:hi] if on_items else events.users[lo:hi]
            new = [i for i in dict.fromkeys(ids.tolist()) if i not in done and i in mapping]
            if not new:
                continue
            done.update(new)
            lists = [mapping[i] for i in new]
            if on_items:
                rec.set_item_features(new, lists)
            else:
                rec.set_user_features(new, lists)


def _feature_map(features: Any, name: str) -> dict:
    """(ids, lists) as returned by :func:`rtrec_native.data.load_features` -> {id: list}."""
    if features is None:
        return {}
    if not isinstance(features, (tuple, list)) or len(features) != 2:
        raise TypeError(f"{name}: expected (ids, feature lists) as from data.load_features, got {type(features).__name__}")
    ids, lists = features
    ids = np.asarray(ids).tolist()
    if len(ids) != len(lists):
        raise ValueError(f"{name}: {len(ids)} IDs but {len(lists)} feature lists")
    return dict(zip(ids, lists))


def _replay(
    policy: str,
    make: Callable[[], Recommender],
    stream: _Stream,
    warmup: int,
    *,
    batch_size: int,
    epochs: int,
    k: int,
    retrain_every: int | None,
    retrain_period: float | None,
    progress: Callable[[str, int, int], Any] | None,
    total: int,
    features: _FeatureCatalogue | None = None,
) -> tuple[_Recorder, list[float], float]:
    """Run one policy over the stream after the warm-up.

    Returns the recorder, the duration of each model refresh (update call or refit) and
    the wall time of the replay.
    """
    events = stream.events
    catalogue = features or _FeatureCatalogue()

    def fresh(hi: int) -> Recommender:
        """A new model, given the features of the IDs seen before `hi`, fitted on them."""
        model = make()
        catalogue.register(model, events, 0, hi, fresh=True)
        return model.fit(**_learn_args(events, 0, hi), epochs=epochs)

    rec = fresh(warmup)
    recorder = _Recorder(stream, warmup, k)
    synced = warmup  # the model has learned the stream up to here
    refresh_seconds: list[float] = []
    began = time.perf_counter()
    trial_lo = 0
    for lo, hi in _batches(warmup, stream.n, batch_size):
        if policy == "periodic" and _refit_due(stream, lo, synced, retrain_every, retrain_period):
            t0 = time.perf_counter()
            # A fresh model on everything so far: what a nightly batch job does.
            rec = fresh(lo)
            refresh_seconds.append(time.perf_counter() - t0)
            synced = lo
        # IDs appearing for the first time bring their features (published with them).
        catalogue.register(rec, events, lo, hi)
        # Test: score the whole micro-batch with the model as it was before it.
        recorder.add_scores(lo, rec.predict(events.users[lo:hi], events.items[lo:hi]))
        trial_hi = trial_lo + int(np.count_nonzero(stream.ranked[lo:hi]))
        if trial_hi > trial_lo:
            recorder.add_top(_top_k_unseen(rec, stream, recorder.trial_pos[trial_lo:trial_hi], lo, synced, k))
        trial_lo = trial_hi
        # Then train: the realtime model learns the batch, event by event, in order.
        if policy == "realtime":
            t0 = time.perf_counter()
            rec.update(**_learn_args(events, lo, hi))
            refresh_seconds.append(time.perf_counter() - t0)
            synced = hi
        if progress is not None:
            progress(policy, hi - lo, total)
    return recorder, refresh_seconds, time.perf_counter() - began


def _summarise(
    recorder: _Recorder, stream: _Stream, lo: int, hi: int, loss: str, k: int, metric_names: list[str]
) -> dict[str, float]:
    """Metrics of the events at positions ``[lo, hi)``."""
    scores = recorder.scores[lo - recorder.start : hi - recorder.start]
    labels = None if stream.events.labels is None else stream.events.labels[lo:hi]
    out = {name: float("nan") for name in metric_names}
    out.update(_pointwise(scores, labels, loss))
    a, b = np.searchsorted(recorder.trial_pos, (lo, hi))
    if b > a:
        top = recorder.top[a:b]
        relevant = stream.item[recorder.trial_pos[a:b]]
        out[f"hitrate@{k}"] = metrics.hit_rate_at_k(top, relevant, k, pad=_PAD)
        out[f"ndcg@{k}"] = metrics.ndcg_at_k(top, relevant, k, pad=_PAD)
    out["n_scored"] = hi - lo
    out["n_ranked"] = int(b - a)
    return out


def _window_spans(stream: _Stream, start: int, n_windows: int) -> list[WindowSpan]:
    edges = np.unique(np.linspace(start, stream.n, n_windows + 1).round().astype(np.int64))
    ts = stream.events.timestamps
    return [
        WindowSpan(
            start=int(a),
            end=int(b),
            t_start=None if ts is None else float(ts[a]),
            t_end=None if ts is None else float(ts[b - 1]),
        )
        for a, b in itertools.pairwise(edges)
    ]


def _metric_names(loss: str, labels: np.ndarray | None, k: int) -> list[str]:
    names = [f"hitrate@{k}", f"ndcg@{k}"]
    if loss == "squared":
        return [*names, "rmse", "mae"]
    if labels is not None and np.isin(np.unique(labels), (0.0, 1.0)).all():
        names.append("auc")
        if loss == "logistic":
            names.append("logloss")
    return names


def prequential(
    events: Events,
    *,
    model: ModelSpec = None,
    policies: tuple[str, ...] | list[str] = POLICIES,
    batch_size: int = 10,
    warmup: float = 0.2,
    epochs: int = 5,
    retrain_every: int | None = 10_000,
    retrain_period: float | None = None,
    k: int = 10,
    n_windows: int = 20,
    positive_threshold: float | None = None,
    progress: Callable[[str, int, int], Any] | None = None,
    item_features: Any = None,
    user_features: Any = None,
) -> PrequentialReport:
    """Replay a time-ordered stream through several freshness policies, test-then-train.

    Every policy first fits the warm-up prefix (``epochs`` passes), then for each
    micro-batch of ``batch_size`` events in arrival order: a periodic refit if one is due;
    the batch is scored by the current model (``predict`` for every event,
    ``recommend_batch`` for every new positive); the realtime model then learns the batch
    with ``update`` (one SGD step per event, in order).

    Args:
        events: the stream; sorted by timestamp here (stably) if it is not already.
        model: :class:`Recommender` keyword arguments, or a zero-argument callable
            returning a fresh model. Without ``loss``, it is inferred from the labels
            (:func:`infer_loss`: 0/1 -> logistic, ratings -> squared, none -> bpr).
        policies: which of ``"realtime"``, ``"periodic"``, ``"static"`` to run.
        batch_size: events per micro-batch (1 = exact per-event test-then-train).
        warmup: fraction of the stream used for the initial fit, in (0, 1).
        epochs: passes of the warm-up fit and of every periodic refit.
        retrain_every: periodic refit every this many events (``None``: only by period).
        retrain_period: periodic refit at every boundary of this many seconds of event
            time, counted from the first event (86400: nightly); ``None``: only by count.
            With both, whichever comes first. Refits happen at micro-batch boundaries.
        k: cut-off of the ranking metrics.
        n_windows: windows of equal event counts for the per-window metrics.
        positive_threshold: label at or above which a new consumption is a ranking trial;
            default :func:`default_positive_threshold` of the warm-up labels.
        progress: called after each micro-batch as ``progress(policy, n_events_scored,
            total)``, where ``total = len(policies) * n_scored`` (for a progress bar).
        item_features, user_features: side features as ``(ids, lists)`` (what
            :func:`rtrec_native.data.load_features` returns). Every policy's model gets an
            ID's features when the ID first appears: before the micro-batch that first
            mentions it is scored (the warm-up fit and every refit: the IDs seen so far),
            so items are never recommendable before they exist in the stream.

    Returns:
        A :class:`PrequentialReport`.
    """
    events = _check_events(events)
    policies = _check_policies(policies)
    batch_size = _positive_int(batch_size, "batch_size")
    epochs = _positive_int(epochs, "epochs")
    k = _positive_int(k, "k")
    n_windows = _positive_int(n_windows, "n_windows")
    retrain_every = _positive_int_or_none(retrain_every, "retrain_every")
    if retrain_period is not None and not (
        isinstance(retrain_period, (int, float, np.number)) and not isinstance(retrain_period, bool)
        and math.isfinite(retrain_period) and retrain_period > 0
    ):
        raise ValueError(f"retrain_period: expected seconds > 0 or None, got {retrain_period!r}")
    if "periodic" in policies and retrain_every is None and retrain_period is None:
        raise ValueError("periodic policy needs retrain_every (events) or retrain_period (seconds)")
    if retrain_period is not None and events.timestamps is None:
        raise ValueError("retrain_period needs event timestamps; use retrain_every instead")
    warmup_fraction = _check_fraction(warmup, "warmup")
    if len(events) < 2:
        raise ValueError(f"events: expected at least 2 events (warm-up + test), got {len(events)}")

    order = _time_order(events)
    if not np.array_equal(order, np.arange(len(events))):
        events = events[order]
    n_warmup = min(len(events) - 1, max(1, round(len(events) * warmup_fraction)))
    make, loss = _model_factory(model, events.labels)
    threshold = (
        default_positive_threshold(events.labels[:n_warmup] if events.labels is not None else None, loss)
        if positive_threshold is None
        else float(positive_threshold)
    )
    stream = _Stream(events, loss, threshold)
    names = _metric_names(loss, events.labels, k)
    spans = _window_spans(stream, n_warmup, n_windows)

    results: dict[str, PolicyResult] = {}
    n_scored = stream.n - n_warmup
    catalogue = _FeatureCatalogue(item_features, user_features)
    for policy in policies:
        recorder, refresh_seconds, seconds = _replay(
            policy, make, stream, n_warmup, batch_size=batch_size, epochs=epochs, k=k,
            retrain_every=retrain_every, retrain_period=retrain_period, progress=progress,
            total=len(policies) * n_scored, features=catalogue,
        )
        seconds = max(seconds, 1e-9)  # a finite events/s even on a coarse clock
        results[policy] = PolicyResult(
            name=policy,
            metrics=_summarise(recorder, stream, n_warmup, stream.n, loss, k, names),
            windows=[_summarise(recorder, stream, w.start, w.end, loss, k, names) for w in spans],
            events_per_s=n_scored / seconds,
            update_latency_ms=1e3 * float(np.mean(refresh_seconds)) if refresh_seconds else 0.0,
            update_us_per_event=1e6 * float(np.sum(refresh_seconds)) / n_scored,
            n_updates=len(refresh_seconds),
            seconds=seconds,
        )
    params = make().get_params()
    config = {
        "batch_size": batch_size,
        "warmup": warmup_fraction,
        "n_warmup": n_warmup,
        "epochs": epochs,
        "retrain_every": retrain_every,
        "retrain_period": retrain_period,
        "k": k,
        "n_windows": len(spans),
        "positive_threshold": threshold,
        "model": params,
        "protocol": f"test-then-train per micro-batch of {batch_size} events",
    }
    ts = events.timestamps
    info = {
        "n_events": stream.n,
        "n_scored": stream.n - n_warmup,
        "n_ranked": int(stream.ranked[n_warmup:].sum()),
        "n_users": int(stream.user_ids.size),
        "n_items": int(stream.item_ids.size),
        "t_start": None if ts is None else float(ts[0]),
        "t_end": None if ts is None else float(ts[-1]),
        "loss": loss,
    }
    return PrequentialReport(policies=results, windows=spans, metric_names=names, config=config, stream=info)


def _check_policies(policies: Any) -> tuple[str, ...]:
    if isinstance(policies, str) or not isinstance(policies, (list, tuple)) or not policies:
        raise ValueError(f"policies: expected a non-empty list drawn from {list(POLICIES)}, got {policies!r}")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"policies: unknown {unknown}; expected names from {list(POLICIES)}")
    if len(set(policies)) != len(policies):
        raise ValueError(f"policies: each policy at most once, got {list(policies)}")
    return tuple(policies)
