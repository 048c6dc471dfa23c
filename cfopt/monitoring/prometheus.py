"""Metrics in Prometheus's text format: what the monitor hears, as counters and histograms.

``PrometheusExporter(bus)`` listens on an ``EventBus``, the one the ``PerformanceMonitor`` hears
(the pipeline's, a replay's, or ``cfopt serve``'s), and keeps the figures Prometheus scrapes, in a
registry of its own (``prometheus-client``'s ``CollectorRegistry``: two exporters in one process
never mix):

=============================================  ================================================
metric                                         from the events
=============================================  ================================================
``cfopt_requests_total{type, outcome}``        ``metric response_time`` (ok), ``error`` (error)
``cfopt_response_time_seconds{type, cache}``   ``metric response_time``: a histogram, buckets
                                               around the course's 2 s target
``cfopt_cost_usd_total{model}``                ``metric cost_usd``
``cfopt_tokens_total{model, kind}``            ``metric tokens`` (input, output, cache_read,
                                               cache_write)
``cfopt_cache_lookups_total{layer, result}``   ``metric cache_lookup`` (1 hit, 0 miss)
``cfopt_errors_total{type}``                   ``error`` events, by the error's name
``cfopt_retries_total``                        ``retry`` events
``cfopt_alerts_total{name}``                   ``alert`` events (budget thresholds...)
``cfopt_anomalies_total{metric}``              ``anomaly`` events
``cfopt_queue_depth``                          ``metric queue_depth`` (a gauge)
=============================================  ================================================

Counters only grow, as Prometheus expects; ``rate()`` and ``histogram_quantile()`` turn them into
the dashboard's figures (``docs/resources/monitoring.md``, ``docs/grafana-dashboard.json``).
A replay on the virtual clock finishes in seconds, so a scrape sees its totals: ``text()`` or
``write(path)`` (node_exporter's textfile format) keep them; ``serve(port)`` serves a live run.

>>> from cfopt.events import Event, EventBus
>>> bus = EventBus(); exporter = PrometheusExporter(bus)
>>> bus.publish(Event(1.0, "metric", "response_time", 0.4, {"type": "text", "cache": "hit"}))
>>> bus.publish(Event(1.0, "metric", "cost_usd", 0.002, {"model": "claude-haiku-4-5"}))
>>> bus.publish(Event(2.0, "error", "RateLimited"))
>>> exporter.value("cfopt_requests_total", type="text", outcome="ok")
1.0
>>> exporter.value("cfopt_errors_total", type="RateLimited")
1.0
>>> 'cfopt_response_time_seconds_bucket{cache="hit",le="0.5",type="text"} 1.0' in exporter.text()
True
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest, start_http_server, write_to_textfile

from ..events import Event, EventBus

__all__ = ["PrometheusExporter", "RESPONSE_TIME_BUCKETS", "TOKEN_KINDS", "CONTENT_TYPE"]

# Seconds. Dense around the course's 2 s response-time target, up to deferred media (minutes).
RESPONSE_TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                         float("inf"))
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NONE = "none"   # a label the event did not carry (Prometheus labels are never missing)


class PrometheusExporter:
    """Counters and histograms of what the events on ``bus`` say, in a registry of its own."""

    def __init__(self, bus: EventBus | None = None, *, registry: CollectorRegistry | None = None,
                 prefix: str = "cfopt") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r, p = self.registry, prefix
        self.requests = Counter(f"{p}_requests", "Requests finished, by type and outcome (ok, error)",
                                ("type", "outcome"), registry=r)
        self.response_time = Histogram(f"{p}_response_time_seconds",
                                       "Response time: arrival to the first useful content",
                                       ("type", "cache"), buckets=RESPONSE_TIME_BUCKETS, registry=r)
        self.cost = Counter(f"{p}_cost_usd", "Provider spend in US dollars", ("model",), registry=r)
        self.tokens = Counter(f"{p}_tokens", "Tokens billed, by model and kind", ("model", "kind"),
                              registry=r)
        self.cache = Counter(f"{p}_cache_lookups", "Cache lookups by layer and result (hit, miss)",
                             ("layer", "result"), registry=r)
        self.errors = Counter(f"{p}_errors", "Failed requests by error type", ("type",), registry=r)
        self.retries = Counter(f"{p}_retries", "Failed attempts that were retried", registry=r)
        self.alerts = Counter(f"{p}_alerts", "Alerts raised (budget thresholds...)", ("name",),
                              registry=r)
        self.anomalies = Counter(f"{p}_anomalies", "Sudden shifts detected", ("metric",), registry=r)
        self.queue_depth = Gauge(f"{p}_queue_depth", "Requests waiting for a free slot", registry=r)
        self._lock = threading.Lock()   # the server publishes from several threads
        self._unsubscribe: Callable[[], None] | None = bus.subscribe(self.handle) if bus else None

    def __repr__(self) -> str:
        return f"PrometheusExporter(listening={self._unsubscribe is not None})"

    def handle(self, e: Event) -> None:
        """Count one event (the bus calls this)."""
        d = e.data
        with self._lock:
            if e.kind == "metric" and e.value is not None:
                self._metric(e.name, float(e.value), d)
            elif e.kind == "error":
                self.errors.labels(e.name).inc()
                self.requests.labels(str(d.get("type", _NONE)), "error").inc()
            elif e.kind == "retry":
                self.retries.inc()
            elif e.kind == "alert":
                self.alerts.labels(e.name).inc()
            elif e.kind == "anomaly":
                self.anomalies.labels(str(d.get("metric", e.name))).inc()

    def _metric(self, name: str, value: float, d: dict[str, Any]) -> None:
        if name == "response_time":
            kind = str(d.get("type", _NONE))
            self.requests.labels(kind, "ok").inc()
            self.response_time.labels(kind, str(d.get("cache", _NONE))).observe(value)
        elif name == "cost_usd" and value >= 0:       # a counter never goes down
            self.cost.labels(str(d.get("model", _NONE))).inc(value)
        elif name == "tokens" and value >= 0:
            self.tokens.labels(str(d.get("model", _NONE)), str(d.get("kind", _NONE))).inc(value)
        elif name == "cache_lookup":
            self.cache.labels(str(d.get("layer", "cache")), "hit" if value else "miss").inc()
        elif name == "queue_depth":
            self.queue_depth.set(value)

    def close(self) -> None:
        """Stop listening to the bus (the figures stay)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- reading --------------------------------------------------------------------------
    def text(self) -> str:
        """Every metric in Prometheus's text exposition format."""
        return generate_latest(self.registry).decode("utf-8")

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value (``cfopt_cost_usd_total``, ``model=...``), None when absent."""
        return self.registry.get_sample_value(name, labels)

    def write(self, path: str | Path) -> Path:
        """Write ``text()`` to ``path`` atomically (node_exporter's textfile collector reads it)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(p), self.registry)
        return p

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> tuple[Any, int]:
        """Serve ``/metrics`` from a background thread; returns the server and its port.

        ``server.shutdown()`` stops it. Loopback by default: metrics say what users asked for.
        """
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server, server.server_address[1]
