"""What :func:`~rtrec_native.evaluation.prequential` returns: the report, one result per
policy, and the windows of the metric-over-time view. JSON-serialisable through ``to_dict``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._common import json_number

__all__ = ["PolicyResult", "PrequentialReport", "WindowSpan"]


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
        name: ``"realtime"``, ``"periodic"``, ``"static"`` or ``"hybrid"``.
        metrics: overall metrics over every scored event (see :class:`PrequentialReport`).
        windows: the same metrics per window, in window order.
        events_per_s: scored events per second of this policy's replay, everything
            included (scoring, updates, refits; not the shared warm-up fit).
        update_latency_ms: mean duration of one model refresh — one ``update`` call on a
            micro-batch (realtime) or one full refit (periodic); for hybrid the mean over
            both kinds (see ``refit_seconds``); 0 for static.
        update_us_per_event: total refresh time divided by the scored events (amortised
            cost of freshness per event).
        n_updates: refreshes done (update calls or refits).
        seconds: wall time of the replay.
        refits_at: stream positions (event index) where a refit (periodic, hybrid) happened.
        refit_seconds: the duration of each of those refits (a refit the policy copied from
            another policy's identical one counts with that fit's duration).
        model: the policy's model at the end of the replay (not in :meth:`to_dict`).
    """

    name: str
    metrics: dict[str, float]
    windows: list[dict[str, float]]
    events_per_s: float
    update_latency_ms: float
    update_us_per_event: float
    n_updates: int
    seconds: float
    refits_at: list[int] = field(default_factory=list)
    refit_seconds: list[float] = field(default_factory=list)
    model: Any = field(default=None, repr=False, compare=False)  # the policy's model at the end

    def to_dict(self) -> dict[str, Any]:
        """Flat: the overall metrics next to the cost numbers (NaN as ``None``)."""
        out: dict[str, Any] = {name: json_number(v) for name, v in self.metrics.items()}
        out.update(
            events_per_s=self.events_per_s,
            update_latency_ms=self.update_latency_ms,
            update_us_per_event=self.update_us_per_event,
            n_updates=self.n_updates,
            seconds=self.seconds,
        )
        if self.refits_at:
            out["refits_at"] = list(self.refits_at)
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
                metric: [json_number(w[metric]) for w in result.windows]
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


