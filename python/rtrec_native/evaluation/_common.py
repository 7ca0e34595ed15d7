"""What both evaluation protocols share: the loss and threshold defaults, argument checks,
the consumed rule, and turning model output into dense item indices and metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import _core, metrics
from .. import _validation as check
from .._batch import BatchRecommendations
from ..events import Events
from ..recommender import Recommender

#: What :func:`~rtrec_native.evaluation.prequential` accepts as the model: keyword arguments
#: for :class:`Recommender`, or a zero-argument callable that returns a fresh, unfitted model
#: (each policy, and each periodic refit, gets its own): a Recommender, or any model with
#: the methods of :data:`MODEL_METHODS`.
ModelSpec = Mapping[str, Any] | Callable[[], Recommender] | None

PAD = -1  # dense item index of an empty top-K slot


def infer_loss(labels: np.ndarray | None, model: str = "mf") -> str:
    """The loss that fits the labels for a model family.

    mf: ``"squared"`` for ratings (any label other than 0/1), ``"bpr"`` otherwise (no
    labels, or 0/1 clicks). 0/1 clicks go to BPR rather than logistic on purpose: ranking the
    next positive is the recommender's job, and BPR (positives against sampled items) ranks
    far better than a click-probability model fitted to the shown items only (on the default
    synthetic stream HitRate@10 is about 0.17 against 0.02). Pass ``loss="logistic"``
    explicitly for calibrated click probabilities.

    two_tower: its own default loss (sampled softmax) whatever the labels: every event with
    a label > 0 is a positive, so ratings count as "consumed" — on MovieLens that ranks the
    next liked movie better than learning from the liked ones only (HitRate@10 .064 vs .057
    in the benchmark replay).
    """
    if model == "two_tower":
        return _core.defaults("two_tower")["loss"]
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
    if not _core.rating_loss(loss) or labels is None or len(labels) == 0:
        return 0.5
    return float(np.round(np.quantile(np.asarray(labels, dtype=np.float64), 0.75) * 2.0) / 2.0)


def check_events(events: Any, name: str = "events") -> Events:
    if not isinstance(events, Events):
        raise TypeError(
            f"{name}: expected rtrec_native.data.Events (e.g. from load_events() or "
            f"synthetic_stream()), got {type(events).__name__}"
        )
    if len(events) == 0:
        raise ValueError(f"{name}: expected at least one event, got 0")
    return events


def check_fraction(value: Any, name: str) -> float:
    """A number strictly between 0 and 1 (the shared real-number check, plus the upper bound)."""
    fraction = check.real(value, name, low=0.0, low_inclusive=False)
    if fraction >= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return fraction


def positive_int_or_none(value: Any, name: str) -> int | None:
    return None if value is None else check.positive_int(value, name)


#: What the evaluations call on a model: a :class:`Recommender` has all of it; a reference
#: model (a popularity counter, a peer library behind an adapter) can be evaluated by the same
#: code if it has these too. ``fit``/``update`` take the keyword arguments of
#: :meth:`Recommender.fit` (``users``, ``items``, ``labels``, ``weights``, ``timestamps``;
#: ``fit`` also ``epochs``) and ``fit`` returns the model; ``recommend_batch`` returns a
#: :class:`~rtrec_native.BatchRecommendations`; ``get_params()["loss"]`` names the loss the
#: labels are read with (which events are consumed, which metrics apply).
MODEL_METHODS: tuple[str, ...] = ("fit", "update", "predict", "recommend_batch", "get_params")


def check_model(model: Any, name: str = "model") -> Any:
    """``model`` if it has what the evaluations call (see :data:`MODEL_METHODS` and
    ``n_items``), else a TypeError naming what is missing."""
    missing = [m for m in MODEL_METHODS if not callable(getattr(model, m, None))]
    if not hasattr(model, "n_items"):
        missing.append("n_items")
    if missing:
        raise TypeError(f"{name}: expected a Recommender or a model with {', '.join(MODEL_METHODS)} and n_items; "
                        f"{type(model).__name__} lacks {', '.join(missing)}")
    return model


def model_factory(model: ModelSpec, labels: np.ndarray | None) -> tuple[Callable[[], Recommender], str]:
    """Return ``(make, loss)``: a callable building a fresh model, and its loss."""
    if callable(model):
        probe = check_model(model(), "model: the callable's result")
        return model, probe.get_params()["loss"]
    params = dict(model or {})
    params.setdefault("loss", infer_loss(labels, params.get("model", "mf")))
    Recommender(**params)  # validate the parameters once, at the boundary
    return (lambda: Recommender(**params)), params["loss"]


def json_number(value: float) -> float | None:
    """NaN (undefined metric) becomes ``None`` so that the JSON stays standard."""
    return None if isinstance(value, float) and math.isnan(value) else value


def learn_args(events: Events, lo: int, hi: int) -> dict[str, Any]:
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


def time_order(events: Events) -> np.ndarray:
    """Stable order by timestamp (positional order when there are no timestamps)."""
    if events.timestamps is None:
        return np.arange(len(events))
    return np.argsort(events.timestamps, kind="stable")


def dense_items(batch: BatchRecommendations, catalogue: np.ndarray) -> np.ndarray:
    """``recommend_batch`` results as indices into ``catalogue`` (``PAD`` = no result).

    What is a result comes from the batch's counts, never from an ID value. IDs the catalogue
    does not hold (cannot happen for a model trained on the stream) are treated as empty
    slots too rather than silently aliasing another item.
    """
    ids, empty = batch.ids, ~batch.mask
    probe = np.where(empty, catalogue[0], ids)
    index = np.minimum(np.searchsorted(catalogue, probe), catalogue.size - 1)
    known = catalogue[index] == probe
    return np.where(empty | ~known, PAD, index).astype(np.int64)


def pointwise(scores: np.ndarray, labels: np.ndarray | None, loss: str) -> dict[str, float]:
    """Pointwise metrics of scores against labels (empty when there is nothing to score)."""
    if labels is None or scores.size == 0:
        return {}
    if _core.rating_loss(loss):
        return {"rmse": metrics.rmse(labels, scores), "mae": metrics.mae(labels, scores)}
    if not np.isin(labels, (0.0, 1.0)).all():
        return {}
    out = {"auc": metrics.auc(labels, scores)}
    if loss == "logistic":
        out["logloss"] = metrics.log_loss(labels, np.clip(scores, 0.0, 1.0))
    return out


