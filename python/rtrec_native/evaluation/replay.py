"""Prequential (test-then-train) replay of a stream through freshness policies.

See :func:`prequential`; the package docstring describes the protocol and its metrics.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core, metrics
from .. import _validation as check
from ..events import Events
from ..recommender import Recommender
from ._common import (
    PAD,
    ModelSpec,
    check_events,
    check_fraction,
    default_positive_threshold,
    learn_args,
    model_factory,
    pointwise,
    positive_int_or_none,
    time_order,
)
from ._ranking import ConsumedIndex, top_k_unconsumed
from ._refits import SharedRefits
from .reports import PolicyResult, PrequentialReport, WindowSpan

__all__ = ["POLICIES", "prequential"]

#: The freshness policies :func:`prequential` compares, in report order: learning from every
#: event (realtime), refitting from scratch now and then (periodic), never learning after the
#: warm-up (static), and both at once (hybrid: the periodic refits, with every event learned
#: in between, as a trainer that refits on a schedule and hands over to live learning).
POLICIES: tuple[str, ...] = ("realtime", "periodic", "static", "hybrid")
#: The policies ``rtrec demo`` and ``rtrec evaluate`` compare when none are named: all four.
DEFAULT_POLICIES: tuple[str, ...] = POLICIES
_REFITS = ("periodic", "hybrid")  # policies that refit from scratch on the schedule
_LEARNS = ("realtime", "hybrid")  # policies that learn every event


class _Stream:
    """The stream, indexed once for every policy: dense IDs, the consumed index and which
    events are ranking trials (new positives)."""

    def __init__(self, events: Events, loss: str, threshold: float) -> None:
        self.events = events
        self.n = len(events)
        self.user_ids, user_index = np.unique(events.users, return_inverse=True)
        self.item_ids, item_index = np.unique(events.items, return_inverse=True)
        self.user = user_index.ravel().astype(np.int64)
        self.item = item_index.ravel().astype(np.int64)
        self.consumed = ConsumedIndex(events, loss, self.user, self.item, self.item_ids.size)
        # A ranking trial: a first consumption with a label that counts as liked.
        is_first = np.zeros(self.n, dtype=bool)
        is_first[self.consumed.since] = True
        liked = np.ones(self.n, dtype=bool) if events.labels is None else events.labels >= threshold
        self.ranked = is_first & liked


class _Recorder:
    """Collects per-event scores and per-trial top-K lists of one policy."""

    def __init__(self, stream: _Stream, start: int, k: int) -> None:
        self.start = start
        self.scores = np.empty(stream.n - start, dtype=np.float32)
        n_trials = int(stream.ranked[start:].sum())
        self.top = np.full((n_trials, k), PAD, dtype=np.int64)
        self.trial_pos = np.flatnonzero(stream.ranked[start:]) + start
        # Beyond accuracy, per trial: the list's intra-list diversity (in the item space of
        # the model that made it) and mean self-information (popularity of the stream so far).
        self.dissimilarity = np.full(n_trials, np.nan)
        self.self_information = np.full(n_trials, np.nan)
        self._next_trial = 0

    def add_scores(self, lo: int, scores: np.ndarray) -> None:
        self.scores[lo - self.start : lo - self.start + scores.size] = scores

    def add_top(self, top: np.ndarray, rec: Recommender, stream: _Stream, item_counts: np.ndarray) -> None:
        rows = slice(self._next_trial, self._next_trial + top.shape[0])
        self.top[rows] = top
        listed = np.unique(top[top != PAD])
        if listed.size and callable(getattr(rec, "item_vectors", None)):  # a model with an item space
            _, vectors, _ = rec.item_vectors(stream.item_ids[listed])
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
            local = np.where(top != PAD, np.searchsorted(listed, top), -1)
            self.dissimilarity[rows] = metrics.list_dissimilarity(local, unit)
        if listed.size:
            self.self_information[rows] = metrics.list_self_information(
                np.where(top != PAD, top, -1), metrics.popularity_probability(item_counts))
        self._next_trial += top.shape[0]


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
        for (on_items, mapping), done in zip(self.sides, self.done, strict=True):
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
        raise TypeError(
            f"{name}: expected (ids, feature lists) as from data.load_features, got {type(features).__name__}"
        )
    ids, lists = features
    ids = np.asarray(ids).tolist()
    if len(ids) != len(lists):
        raise ValueError(f"{name}: {len(ids)} IDs but {len(lists)} feature lists")
    return dict(zip(ids, lists, strict=True))


def _replay(
    policy: str,
    make: Callable[[], Recommender],
    stream: _Stream,
    warmup: int,
    *,
    batch_size: int,
    epochs: int,
    refit_epochs: int,
    k: int,
    retrain_every: int | None,
    retrain_period: float | None,
    progress: Callable[[str, int, int], Any] | None,
    total: int,
    features: _FeatureCatalogue | None = None,
    diversity: float = 0.0,
    start: Callable[[], Recommender] | None = None,
    refits: SharedRefits | None = None,
) -> tuple[_Recorder, list[float], float, list[int], list[float], Recommender]:
    """Run one policy over the stream after the warm-up.

    Returns the recorder, the duration of each model refresh (update call or refit), the
    wall time of the replay (a refit copied from ``refits`` counts with its fit's seconds),
    the stream positions of the refits, their durations and the model at the end.
    """
    events = stream.events
    catalogue = features or _FeatureCatalogue()
    shared = refits or SharedRefits(n_policies=1)

    def fresh(hi: int, passes: int) -> Recommender:
        """A new model, given the features of the IDs seen before `hi`, fitted on them."""
        model = make()
        catalogue.register(model, events, 0, hi, fresh=True)
        return model.fit(**learn_args(events, 0, hi), epochs=passes)

    rec = fresh(warmup, epochs) if start is None else start()
    recorder = _Recorder(stream, warmup, k)
    learned = warmup  # the model has learned the stream up to here
    last_fit = warmup  # where the last fit from scratch stopped (the refit schedule counts from it)
    refresh_seconds: list[float] = []
    refits_at: list[int] = []
    refit_seconds: list[float] = []
    began = time.perf_counter()
    charged = 0.0  # seconds of shared refits this policy copied instead of fitting
    trial_lo = 0
    # Events per item in the stream so far: the popularity novelty is measured against.
    item_counts = np.bincount(stream.item[:warmup], minlength=stream.item_ids.size)
    for lo, hi in _batches(warmup, stream.n, batch_size):
        if policy in _REFITS and _refit_due(stream, lo, last_fit, retrain_every, retrain_period):
            t0 = time.perf_counter()
            # A fresh model on everything so far: what a nightly batch job does.
            rec, fit_seconds, copied = shared.fit(lo, functools.partial(fresh, lo, refit_epochs))
            if copied:  # it has its IDs' features already: the catalogue tracks it from here
                catalogue.register(rec, events, 0, lo, fresh=True)
            charged += max(0.0, fit_seconds - (time.perf_counter() - t0))
            refresh_seconds.append(fit_seconds)
            refit_seconds.append(fit_seconds)
            refits_at.append(lo)
            learned = last_fit = lo
        # IDs appearing for the first time bring their features (published with them).
        catalogue.register(rec, events, lo, hi)
        # Test: score the whole micro-batch with the model as it was before it.
        recorder.add_scores(lo, rec.predict(events.users[lo:hi], events.items[lo:hi]))
        trial_hi = trial_lo + int(np.count_nonzero(stream.ranked[lo:hi]))
        if trial_hi > trial_lo:  # new positives: rank them, leaving out what each user consumed
            users = stream.user[recorder.trial_pos[trial_lo:trial_hi]]
            top = top_k_unconsumed(rec, stream.user_ids[users], users, stream.consumed, lo, k, stream.item_ids,
                                   learned_until=learned, diversity=diversity)
            recorder.add_top(top, rec, stream, item_counts)
        trial_lo = trial_hi
        item_counts += np.bincount(stream.item[lo:hi], minlength=item_counts.size)
        # Then train: the realtime and hybrid models learn the batch, event by event, in order.
        if policy in _LEARNS:
            t0 = time.perf_counter()
            rec.update(**learn_args(events, lo, hi))
            refresh_seconds.append(time.perf_counter() - t0)
            learned = hi
        if progress is not None:
            progress(policy, hi - lo, total)
    return recorder, refresh_seconds, time.perf_counter() - began + charged, refits_at, refit_seconds, rec


def _summarise(
    recorder: _Recorder, stream: _Stream, lo: int, hi: int, loss: str, k: int, metric_names: list[str]
) -> dict[str, float]:
    """Metrics of the events at positions ``[lo, hi)``."""
    scores = recorder.scores[lo - recorder.start : hi - recorder.start]
    labels = None if stream.events.labels is None else stream.events.labels[lo:hi]
    out = {name: float("nan") for name in metric_names}
    out.update(pointwise(scores, labels, loss))
    a, b = np.searchsorted(recorder.trial_pos, (lo, hi))
    if b > a:
        top = recorder.top[a:b]
        relevant = stream.item[recorder.trial_pos[a:b]]
        out[f"hitrate@{k}"] = metrics.hit_rate_at_k(top, relevant, k, pad=PAD)
        out[f"ndcg@{k}"] = metrics.ndcg_at_k(top, relevant, k, pad=PAD)
        out[f"coverage@{k}"] = metrics.catalogue_coverage_at_k(top, int(stream.item_ids.size), k, pad=PAD)
        for name, values in ((f"ild@{k}", recorder.dissimilarity[a:b]),
                             (f"novelty@{k}", recorder.self_information[a:b])):
            out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
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
    beyond = [f"ild@{k}", f"novelty@{k}", f"coverage@{k}"]
    if _core.rating_loss(loss):
        return [*names, "rmse", "mae", *beyond]
    if labels is not None and np.isin(np.unique(labels), (0.0, 1.0)).all():
        names.append("auc")
        if loss == "logistic":
            names.append("logloss")
    return [*names, *beyond]


def prequential(
    events: Events,
    *,
    model: ModelSpec = None,
    policies: tuple[str, ...] | list[str] = POLICIES,
    batch_size: int = 10,
    warmup: float = 0.2,
    epochs: int = 5,
    refit_epochs: int | None = None,
    retrain_every: int | None = 10_000,
    retrain_period: float | None = None,
    k: int = 10,
    n_windows: int = 20,
    positive_threshold: float | None = None,
    progress: Callable[[str, int, int], Any] | None = None,
    item_features: Any = None,
    user_features: Any = None,
    diversity: float = 0.0,
    start: Callable[[], Recommender] | None = None,
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
            (:func:`infer_loss`: ratings -> squared; 0/1 clicks or none -> bpr).
        policies: which of ``"realtime"``, ``"periodic"``, ``"static"``, ``"hybrid"`` to run
            (hybrid: the periodic refits, every event learned in between).
        batch_size: events per micro-batch (1 = exact per-event test-then-train).
        warmup: fraction of the stream used for the initial fit, in (0, 1).
        epochs: passes of the warm-up fit.
        refit_epochs: passes of every refit of the periodic and hybrid policies (the same
            refits: each is fitted once and copied for the other policy); ``None``: ``epochs``.
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
        diversity: passed to ``recommend_batch`` for the ranking trials (see
            :meth:`Recommender.recommend`; 0: plain top-k).
        start: a zero-argument callable returning a trained model (a fresh copy per call,
            e.g. ``lambda: Recommender.load("m.rtrec")``): every policy starts from it
            instead of the warm-up fit (the warm-up events are not learned again), realtime
            keeps learning from it and static keeps it as it is; periodic refits build fresh
            models as ``model`` describes (pass the saved model's ``get_params()``).

    Beside accuracy, every report has, over the ranking trials' top-k lists:
    ``"ild@k"`` (intra-list diversity: mean pairwise cosine dissimilarity of a list in the
    item space of the model that made it), ``"novelty@k"`` (mean self-information
    -log2 p(item) in bits, p the item's Laplace-smoothed share of the stream's events
    before the list was made) and ``"coverage@k"`` (share of the stream's items recommended
    at least once).

    Returns:
        A :class:`PrequentialReport`.
    """
    events = check_events(events)
    policies = _check_policies(policies)
    batch_size = check.positive_int(batch_size, "batch_size")
    epochs = check.positive_int(epochs, "epochs")
    refit_epochs = epochs if refit_epochs is None else check.positive_int(refit_epochs, "refit_epochs")
    k = check.positive_int(k, "k")
    n_windows = check.positive_int(n_windows, "n_windows")
    diversity = check.number(diversity, "diversity")
    if not 0.0 <= diversity <= _core.limits["max_diversity"]:
        raise ValueError(f"diversity must be a finite number in [0, 1] (0: plain top-K), got {diversity!r}")
    retrain_every = positive_int_or_none(retrain_every, "retrain_every")
    if retrain_period is not None:
        retrain_period = check.real(retrain_period, "retrain_period", low=0.0, low_inclusive=False)
    if set(_REFITS) & set(policies) and retrain_every is None and retrain_period is None:
        raise ValueError("the periodic and hybrid policies need retrain_every (events) or retrain_period (seconds)")
    if retrain_period is not None and events.timestamps is None:
        raise ValueError("retrain_period needs event timestamps; use retrain_every instead")
    warmup_fraction = check_fraction(warmup, "warmup")
    if len(events) < 2:
        raise ValueError(f"events: expected at least 2 events (warm-up + test), got {len(events)}")

    order = time_order(events)
    if not np.array_equal(order, np.arange(len(events))):
        events = events[order]
    n_warmup = min(len(events) - 1, max(1, round(len(events) * warmup_fraction)))
    make, loss = model_factory(model, events.labels)
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
    refits = SharedRefits(n_policies=len(set(_REFITS) & set(policies)))
    try:
        runs = {policy: _replay(
            policy, make, stream, n_warmup, batch_size=batch_size, epochs=epochs, refit_epochs=refit_epochs, k=k,
            retrain_every=retrain_every, retrain_period=retrain_period, progress=progress,
            total=len(policies) * n_scored, features=catalogue, diversity=diversity, start=start, refits=refits,
        ) for policy in policies}
    finally:
        refits.close()
    for policy, (recorder, refresh_seconds, seconds, refits_at, refit_seconds, final) in runs.items():
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
            refits_at=refits_at,
            refit_seconds=refit_seconds,
            model=final,
        )
    params = make().get_params()
    config = {
        "batch_size": batch_size,
        "warmup": warmup_fraction,
        "n_warmup": n_warmup,
        "epochs": epochs,
        "refit_epochs": refit_epochs,
        "retrain_every": retrain_every,
        "retrain_period": retrain_period,
        "k": k,
        "diversity": diversity,
        "n_windows": len(spans),
        "positive_threshold": threshold,
        "model": params,
        "protocol": f"test-then-train per micro-batch of {batch_size} events",
        "started_from_saved_model": start is not None,
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
