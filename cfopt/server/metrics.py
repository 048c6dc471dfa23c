"""``GET /metrics``: the server's live figures in Prometheus's text format (``prometheus-client``).

Two sources feed one registry per server:

- HTTP, measured by ``HttpMetrics`` (ASGI middleware) on the wall clock:
  ``cfopt_http_requests_total{route, status}`` and ``cfopt_http_request_duration_seconds{route}``
  (route: the handler's name, such as ``messages`` or ``create_batch``);
- the simulated providers, as events on the server's ``EventBus`` that
  ``cfopt.monitoring.prometheus.PrometheusExporter`` counts, the same metrics a monitored replay
  exports: requests, ``cfopt_response_time_seconds`` (simulated time to first content),
  ``cfopt_cost_usd_total``, ``cfopt_tokens_total``, prompt-cache lookups
  (``cfopt_cache_lookups_total{layer="prompt_cache"}``) and ``cfopt_errors_total{type}``, every
  error answer by its wire type (``rate_limit_error``, ``overloaded_error``, ...).

Every route asks a provider through its ``simulate(call)``; ``ServerMetrics`` wraps that one
door on the server's own provider instances, so the routes need no change to be counted. Errors
are counted where the app turns them into answers (``count_error``, called by its handlers).
Cost counts what was decided: a canceled batch request stays counted here, while
``/_cfopt/stats`` subtracts it (a Prometheus counter never goes down).

>>> from starlette.testclient import TestClient
>>> from cfopt.server.app import create_app
>>> from cfopt.server.config import ServerConfig
>>> with TestClient(create_app(ServerConfig(time_scale=1000))) as client:
...     _ = client.post("/v1/messages", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
...                     json={"model": "claude-haiku-4-5", "max_tokens": 20,
...                           "messages": [{"role": "user", "content": "A tagline for tea"}]})
...     page = client.get("/metrics").text
>>> 'cfopt_http_requests_total{route="messages",status="200"} 1.0' in page
True
>>> 'cfopt_tokens_total{kind="output",model="claude-haiku-4-5' in page
True
"""
from __future__ import annotations

import functools
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..events import Event, EventBus
from ..monitoring.prometheus import CONTENT_TYPE, PrometheusExporter
from ..providers.base import Call, Result
from .state import ENDED_BY

if TYPE_CHECKING:
    from .state import ServerState

__all__ = ["ServerMetrics", "HttpMetrics", "metrics_endpoint", "count_error", "result_events",
           "install"]

_BY_STATE: "weakref.WeakKeyDictionary[ServerState, ServerMetrics]" = weakref.WeakKeyDictionary()


def result_events(t: float, call: Call, r: Result) -> list[Event]:
    """The events one simulated answer publishes: response time, cost, tokens, prompt cache."""
    events = [Event(t, "metric", "response_time", r.first_content_s,
                    {"type": r.kind, "model": r.model, "provider": r.provider}),
              Event(t, "metric", "cost_usd", r.cost_usd, {"model": r.model})]
    if r.provider == "anthropic":
        u = r.usage
        for kind, n in (("input", u.input_tokens), ("output", u.output_tokens),
                        ("cache_read", u.cache_read_input_tokens),
                        ("cache_write", u.cache_creation_input_tokens
                         + u.cache_creation_1h_input_tokens)):
            events.append(Event(t, "metric", "tokens", float(n), {"model": r.model, "kind": kind}))
        if call.cache_system is not None:   # a cacheable system prompt: read from the cache or not
            events.append(Event(t, "metric", "cache_lookup",
                                1.0 if u.cache_read_input_tokens else 0.0, {"layer": "prompt_cache"}))
    return events


class ServerMetrics:
    """One server's registry: HTTP counters plus a ``PrometheusExporter`` on its event bus."""

    def __init__(self, state: "ServerState") -> None:
        self.state = state
        self.bus = EventBus()
        self.exporter = PrometheusExporter(self.bus)
        registry = self.registry = self.exporter.registry
        self.http_requests = Counter("cfopt_http_requests", "HTTP requests by route and status",
                                     ("route", "status"), registry=registry)
        self.http_duration = Histogram("cfopt_http_request_duration_seconds",
                                       "Wall time from request to the last byte of the answer",
                                       ("route",), registry=registry)
        for provider in state.providers:
            provider.simulate = self._observed(provider.simulate)  # type: ignore[method-assign]

    @classmethod
    def of(cls, state: "ServerState") -> "ServerMetrics":
        """The metrics of ``state``, made on first use (one set per state, however many apps)."""
        metrics = _BY_STATE.get(state)
        if metrics is None:
            metrics = _BY_STATE[state] = cls(state)
        return metrics

    def __repr__(self) -> str:
        return f"ServerMetrics(state={self.state!r})"

    def _observed(self, simulate: Callable[[Call], Result]) -> Callable[[Call], Result]:
        @functools.wraps(simulate)
        def observed(call: Call) -> Result:
            result = simulate(call)     # a failure raises through: the app counts its answer
            for e in result_events(self.state.clock.now(), call, result):
                self.bus.publish(e)
            return result
        return observed

    def count_error(self, error_type: str) -> None:
        """Count one error answer by its wire type."""
        self.bus.publish(Event(self.state.clock.now(), "error", error_type))

    def count_http(self, route: str, status: int | str, seconds: float) -> None:
        self.http_requests.labels(route, str(status)).inc()
        self.http_duration.labels(route).observe(seconds)

    def text(self) -> str:
        return self.exporter.text()


def count_error(request: Request, error_type: str) -> None:
    """Count an error answer of ``request``'s app (the app's error handlers call this)."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.count_error(error_type)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: every metric in Prometheus's text exposition format."""
    return Response(request.app.state.metrics.text(), media_type=CONTENT_TYPE)


class HttpMetrics:
    """ASGI middleware: count each HTTP request by route and status, and time it (wall clock)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status = time.perf_counter(), 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("endpoint"), "__name__", "unrouted")
            # No answer reached the client (it left, or was too slow): the reason, never a status.
            self.metrics.count_http(route, scope.get(ENDED_BY) or status or 500, time.perf_counter() - t0)


def install(app: Any, state: "ServerState") -> None:
    """Add ``/metrics`` and the counting middleware to ``app`` (``create_app`` calls this)."""
    from starlette.routing import Route
    metrics = app.state.metrics = ServerMetrics.of(state)
    app.router.routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    app.add_middleware(HttpMetrics, metrics=metrics)
