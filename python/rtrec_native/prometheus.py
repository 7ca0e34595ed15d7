"""``GET /metrics`` in the Prometheus text format, for every server (``rtrec serve``, its
``--follow`` replicas and ``rtrec consume``). Built on ``prometheus-client`` (the ``[serve]``
and ``[stream]`` extras), imported only when a server starts.

Every metric is named ``rtrec_*``. Counters the model keeps (rows, skipped and not-admitted
updates) and the replica's and consumer's lag are read when scraped, so they are never stale.

==================================  =========================================================
metric                              meaning
==================================  =========================================================
rtrec_events_learned_total          events learned (POST /feedback, or the consumer's log)
rtrec_update_seconds                histogram: one POST /feedback's update, or one read batch
rtrec_recommend_seconds             histogram: one recommendation request (single or batch)
rtrec_rows{side}                    rows of users / items
rtrec_skipped_updates_total         steps dropped as non-finite
rtrec_not_admitted_total            events not learned: an ID below ``min_count``
rtrec_replica_lag_deltas            replicas: deltas published and not applied yet
rtrec_replica_lag_seconds           replicas: how long it has been behind (0 when up to date)
rtrec_feedback_forwarded_total      ``serve --follow``: events forwarded to the stream
rtrec_stream_lag_entries            consumer: entries in the stream not learned yet (0: caught up)
rtrec_stream_lag_seconds            consumer: how long the oldest of them has waited (0: caught up)
rtrec_events_learned_per_second     consumer: events learned per second, over the last 10 s
rtrec_seconds_since_last_delta      consumer: since everything learned was last durable (a delta
                                    written, or nothing new to write); grows when writes fail
rtrec_stream_pending_entries        consumer: entries learned, waiting for a durable delta
rtrec_dead_letters_total            consumer: entries copied to the dead-letter stream
rtrec_refits_total                  consumer ``--refit-every``: refits swapped in
rtrec_refit_failures_total          consumer: refits that failed (the live model went on; retried)
rtrec_refit_in_progress             consumer: 1 while a refit is being fitted or caught up
rtrec_seconds_since_last_refit      consumer: since the last refit was swapped in (NaN: none yet)
==================================  =========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ._extras import install_hint

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _client() -> Any:
    try:
        import prometheus_client  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("GET /metrics needs prometheus-client: " + install_hint("serve")) from exc
    return prometheus_client


class ServerMetrics:
    """The metrics of one server, in a registry of its own (two servers in one process never
    share counters).

    Args:
        model: returns the model served now (a replica swaps it on reload).
        replica: a :class:`~rtrec_native.Replica` to report the lag of.
        consumer: a :class:`~rtrec_native.stream.Consumer` to report the stream of.
    """

    def __init__(self, model: Callable[[], Any], *, replica: Any = None, consumer: Any = None) -> None:
        prom = _client()
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415

        self.registry = prom.CollectorRegistry(auto_describe=False)
        self._learned = prom.Counter("rtrec_events_learned", "Events learned.", registry=self.registry) \
            if consumer is None else None
        self.update_seconds = prom.Histogram(
            "rtrec_update_seconds", "Seconds per update call (a POST /feedback, or a batch read from the stream).",
            registry=self.registry, buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0))
        self.recommend_seconds = prom.Histogram(
            "rtrec_recommend_seconds", "Seconds per recommendation request.", registry=self.registry,
            buckets=(1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
        self._forwarded = prom.Counter("rtrec_feedback_forwarded", "Events forwarded to the stream by POST /feedback.",
                                       registry=self.registry) if replica is not None else None

        def collect() -> Iterator[Any]:
            stats = model().stats()
            rows = GaugeMetricFamily("rtrec_rows", "Rows in the embedding table.", labels=["side"])
            rows.add_metric(["user"], stats["n_users"])
            rows.add_metric(["item"], stats["n_items"])
            yield rows
            yield CounterMetricFamily("rtrec_skipped_updates", "Steps dropped because they would write a "
                                      "non-finite value.", value=stats["skipped_updates"])
            yield CounterMetricFamily("rtrec_not_admitted", "Events not learned: an ID below min_count.",
                                      value=stats["not_admitted"])
            if replica is not None:
                deltas, seconds = replica.lag()
                yield GaugeMetricFamily("rtrec_replica_lag_deltas", "Deltas published and not applied yet.",
                                        value=float("nan") if deltas is None else deltas)
                yield GaugeMetricFamily("rtrec_replica_lag_seconds", "Seconds this replica has been behind.",
                                        value=seconds)
            if consumer is not None:
                yield CounterMetricFamily("rtrec_events_learned", "Events learned.", value=consumer.learned)
                yield CounterMetricFamily("rtrec_dead_letters", "Entries copied to the dead-letter stream.",
                                          value=consumer.dead)
                lag = {**consumer.source.lag(), **consumer.lag()}
                for key, name, text in (
                        ("lag_entries", "rtrec_stream_lag_entries", "Entries in the stream not learned yet."),
                        ("pending", "rtrec_stream_pending_entries", "Entries learned and waiting for a durable delta."),
                        ("lag_seconds", "rtrec_stream_lag_seconds",
                         "Seconds the oldest entry not learned yet has waited (0 when caught up)."),
                        ("events_per_second", "rtrec_events_learned_per_second",
                         "Events learned per second over the last 10 s."),
                        ("seconds_since_last_delta", "rtrec_seconds_since_last_delta",
                         "Seconds since everything learned was last in a durable delta.")):
                    value = lag.get(key)
                    yield GaugeMetricFamily(name, text, value=float("nan") if value is None else value)
                refit = getattr(consumer, "refit", None)
                if refit is not None:
                    yield from _refit_metrics(refit, CounterMetricFamily, GaugeMetricFamily)

        self.registry.register(_Collector(collect))
        self._prom = prom

    def learned(self, n: int) -> None:
        """Count ``n`` events learned (POST /feedback)."""
        if self._learned is not None:
            self._learned.inc(n)

    def forwarded(self, n: int) -> None:
        """Count ``n`` events forwarded to the stream (``serve --follow``)."""
        if self._forwarded is not None:
            self._forwarded.inc(n)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return self._prom.generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread (for ``rtrec consume``,
        which has no HTTP server of its own); returns the server (``.server_port``)."""
        started = self._prom.start_http_server(port, addr=host, registry=self.registry)
        return started[0] if started else None  # (server, thread) since prometheus-client 0.20


def _refit_metrics(refit: Any, counter: Any, gauge: Any) -> Iterator[Any]:
    """The consumer's scheduled refits (``rtrec consume --refit-every``)."""
    yield counter("rtrec_refits", "Refits swapped in for the live model.", value=refit.refits)
    yield counter("rtrec_refit_failures", "Refits that failed (the live model went on; retried).",
                  value=refit.failures)
    yield gauge("rtrec_refit_in_progress", "1 while a refit is being fitted or caught up.",
                value=1 if refit.in_progress else 0)
    since = refit.seconds_since_last_refit()
    yield gauge("rtrec_seconds_since_last_refit", "Seconds since the last refit was swapped in (NaN: none yet).",
                value=float("nan") if since is None else since)


class _Collector:
    """A prometheus-client collector from a function yielding metric families."""

    def __init__(self, collect: Callable[[], Iterator[Any]]) -> None:
        self.collect = collect
