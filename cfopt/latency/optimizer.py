"""PerformanceOptimizer: the exercise's Part 3, and how response time is measured.

Response time is the time until the caller has the first *useful* content:

- streamed text: the first token (time to first token, TTFT);
- short tasks read whole (analysis, photo search, images under 1 MP): the whole answer;
- deferred media (video, audio, images of 1 MP or more): the handle, with completion reported
  apart (``cfopt.latency.lazy.LARGE_IMAGE_MP``).

``latency_summary`` reports p50/p95/p99 for cache hits and misses apart, because a mean over
both hides everything: 70% hits at 1 ms and 30% misses at 3 s "average" 0.9 s.

The parts, each in its own module, behind the exercise's names:

- ``lazy_load_content``  ``cfopt.latency.lazy``: critical parts now, the rest behind handles;
- ``batch_processor``    ``cfopt.latency.microbatch``: max_batch_size and max_wait_s on the clock;
- ``connection_pool``    ``cfopt.latency.client``: one pooled ``httpx.AsyncClient`` per provider
                         (``cfopt.latency.pool`` is its twin on the virtual clock);
- ``optimize_queries``   ``cfopt.latency.coalesce``: single-flight coalescing and merging;
- ``compress``           ``cfopt.latency.payload``: gzip for payloads over 1,000 characters.

>>> latency_summary([(0.001, True), (0.002, True), (1.0, False), (3.0, False)]).misses.p50
2.0
>>> c = compress("ContentFlow " * 200)
>>> c.encoding, c.original_size, c.size < 100, decompress(c) == "ContentFlow " * 200
('gzip', 2400, True, True)
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Hashable, Iterable, Mapping, Sequence

import httpx

from ..batching.types import DEFAULT_MODELS
from ..cache.singleflight import SingleFlight
from ..clock import Clock, VirtualClock
from ..errors import ConfigError
from ..pricing import load_catalog
from ..providers.base import Call, Result
from ._client_base import DEFAULT_LIMITS
from .coalesce import QueryOptimizer
from .lazy import LARGE_IMAGE_MP, LazyContent, LazyLoader, is_deferred
from .microbatch import MicroBatcher
from .payload import COMPRESS_THRESHOLD, Compressed, compress, decompress
from .pool import KEEPALIVE_S, MAX_KEEPALIVE, ConnectedSender, ConnectionPool
from .tie import TIE_OVER_S, TiedSender
from ..monitoring.series import percentile  # the monitor's percentile: one definition for the kit

__all__ = ["PerformanceOptimizer", "Percentiles", "LatencySummary", "latency_summary",
           "percentile", "response_time", "Compressed", "compress", "decompress",
           "COMPRESS_THRESHOLD"]



@dataclass(frozen=True, slots=True)
class Percentiles:
    """Response-time percentiles of one group, in seconds."""

    count: int
    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Percentiles":
        mean = sum(values) / len(values) if values else math.nan
        return cls(len(values), percentile(values, 50), percentile(values, 95),
                   percentile(values, 99), mean)

    def ms(self) -> str:
        return (f"n={self.count:>5}  p50 {self.p50 * 1e3:8.1f} ms  p95 {self.p95 * 1e3:8.1f} ms  "
                f"p99 {self.p99 * 1e3:8.1f} ms  mean {self.mean * 1e3:8.1f} ms")


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles for every request, for cache hits and for misses."""

    all: Percentiles
    hits: Percentiles
    misses: Percentiles

    def format(self) -> str:
        return "\n".join(f"{name:<7}{getattr(self, name).ms()}" for name in ("all", "hits", "misses"))


def latency_summary(samples: Iterable[tuple[float, bool]]) -> LatencySummary:
    """Summarize ``(response_time_s, cache_hit)`` samples: all, hits and misses apart."""
    pairs = list(samples)
    return LatencySummary(Percentiles.of([s for s, _ in pairs]),
                          Percentiles.of([s for s, hit in pairs if hit]),
                          Percentiles.of([s for s, hit in pairs if not hit]))


def response_time(result: Result, request_type: str, *, deferred: bool = False,
                  streamed: bool = True) -> float:
    """Return the time to first useful content of ``result`` for a request of ``request_type``."""
    if deferred:
        return 0.0  # the handle is the answer; callers add their own overhead to hand it out
    # analysis, images and photo searches are useless half-done: the whole answer counts
    return result.first_content_s if streamed and request_type == "text" else result.latency_s


class PerformanceOptimizer:
    """Part 3's toolbox: lazy loading, coalescing and micro-batching, pooled connections, payloads.

    On its own it wraps ``sender`` (a provider, ``Providers``, or ``Resilience``). As the
    pipeline's ``latency`` stage, ``bind(env)`` gives it the run's clock and catalog, and it
    lays the run's transport (``env.transport``: its connection pool, payload compression and
    in-flight cap over the counted providers); it then sends through ``env.sender``.

    Knobs (``set_params(latency__...)`` changes them while a run goes on): ``max_batch_size``
    and ``max_wait_s`` (micro-batching of interactive text: 1 sends each call at once),
    ``large_image_mp`` (what lazy loading defers), ``max_in_flight`` (calls out at once; None:
    no cap), ``compress_payloads``, ``tie_over_s`` (with the ``tying`` switch: interactive
    text to a model whose median first token is slower than this goes as two tied copies,
    ``cfopt.latency.tie``; None: never), ``limits`` (httpx's, for the real HTTP clients and
    the simulated pool's keep-alive).
    """

    KNOBS = ("max_batch_size", "max_wait_s", "large_image_mp", "max_in_flight", "compress_payloads",
             "tie_over_s")

    def __init__(self, sender: Any = None, *, clock: Clock | None = None, max_batch_size: int = 10,
                 max_wait_s: float = 0.05, large_image_mp: float = LARGE_IMAGE_MP,
                 limits: httpx.Limits | None = None, max_in_flight: int | None = None,
                 compress_payloads: bool = True, tie_over_s: float | None = TIE_OVER_S) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        if not max_wait_s >= 0:
            raise ConfigError(f"max_wait_s must be >= 0 seconds, got {max_wait_s!r}")
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise ConfigError(f"max_in_flight must be a positive integer or None, got {max_in_flight!r}")
        if tie_over_s is not None and not tie_over_s >= 0:
            raise ConfigError(f"tie_over_s must be >= 0 seconds or None, got {tie_over_s!r}")
        self.tie_over_s = tie_over_s
        self.tie: TiedSender | None = None   # the run's tied requests (the ``tying`` switch)
        self.sender = sender
        self.clock: Clock = clock or getattr(sender, "clock", None) or VirtualClock()
        self._max_batch_size, self._max_wait_s = max_batch_size, max_wait_s
        self.large_image_mp, self.limits = large_image_mp, limits
        self.max_in_flight, self.compress_payloads = max_in_flight, compress_payloads
        self.catalog = getattr(sender, "catalog", None)
        self.env: Any = None
        self.pool: ConnectionPool | None = None
        self.transport: ConnectedSender | None = None
        self.loader = LazyLoader(sender, clock=self.clock, large_image_mp=large_image_mp) if sender else None
        self.queries = (QueryOptimizer(sender, max_batch_size=max_batch_size, max_wait_s=max_wait_s,
                                       clock=self.clock) if sender else None)
        self._flights: dict[str, SingleFlight[Result]] = {}
        self._pools: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"PerformanceOptimizer(max_batch_size={self.max_batch_size}, "
                f"max_wait_s={self.max_wait_s}, large_image_mp={self.large_image_mp}, "
                f"max_in_flight={self.max_in_flight}, compress_payloads={self.compress_payloads}, "
                f"tie_over_s={self.tie_over_s})")

    # -- knobs that reach the running parts ---------------------------------------------------
    @property
    def max_batch_size(self) -> int:
        return self._max_batch_size

    @max_batch_size.setter
    def max_batch_size(self, value: int) -> None:
        self._max_batch_size = value
        if self.queries is not None:
            self.queries.max_batch_size = value

    @property
    def max_wait_s(self) -> float:
        return self._max_wait_s

    @max_wait_s.setter
    def max_wait_s(self, value: float) -> None:
        self._max_wait_s = value
        if self.queries is not None:
            self.queries.max_wait_s = value

    # -- as the pipeline's stage ----------------------------------------------------------------
    def bind(self, env: Any) -> None:
        """Take ``env``'s clock and catalog; lay ``env.transport`` over ``env.counter``."""
        self.env, self.clock, self.catalog = env, env.clock, env.catalog
        keepalive = self.limits or DEFAULT_LIMITS
        self.pool = ConnectionPool(env.clock, pooled=env.config.pooling,
                                   max_keepalive=keepalive.max_keepalive_connections or MAX_KEEPALIVE,
                                   keepalive_s=keepalive.keepalive_expiry or KEEPALIVE_S)
        self.transport = env.transport = ConnectedSender(
            env.counter, self.pool, compress_payloads=self.compress_payloads,
            max_in_flight=self.max_in_flight,
            on_event=lambda name, value: env.publish("latency", name, value))
        via: Any = _EnvSender(env)
        self.tie = None
        if getattr(env.config, "tying", False):
            via = self.tie = TiedSender(via, clock=env.clock, catalog=env.catalog,
                                        over_s=lambda: self.tie_over_s, bill=env.counter.bill,
                                        on_event=lambda name, value: env.publish("latency", name, value))
        self.sender = via
        self.loader = LazyLoader(via, clock=env.clock, catalog=env.catalog,
                                 large_image_mp=self.large_image_mp)
        self.queries = QueryOptimizer(via, max_batch_size=self.max_batch_size,
                                      max_wait_s=self.max_wait_s, clock=env.clock, catalog=env.catalog)
        self._flights = {"interactive": SingleFlight(), "deferred": SingleFlight()}

    def is_deferred(self, call: Call) -> bool:
        """Whether lazy loading answers ``call`` with a handle (video, audio, large images)."""
        return is_deferred(call, self.catalog or load_catalog(), self.large_image_mp)

    async def share(self, key: Hashable, lane: str, send: Callable[[], Awaitable[Result]]
                    ) -> tuple[Result, bool]:
        """Run ``send`` once per ``key`` in flight; say whether the answer was shared.

        Deferred work may join an interactive call in flight; an interactive request never
        waits for deferred work (a Message Batches job may take an hour).
        """
        flights = self._flights or {"interactive": SingleFlight(), "deferred": SingleFlight()}
        self._flights = flights
        if lane != "interactive" and flights["interactive"].in_flight(key):
            return await flights["interactive"].run(key, send)
        return await flights["interactive" if lane == "interactive" else "deferred"].run(key, send)

    async def send(self, call: Call) -> Result:
        """Send an interactive ``call``: merged with others when micro-batching is on."""
        if self.max_batch_size > 1 and self.queries is not None:
            return await self.queries.asend(call)
        if self.sender is None:
            raise ConfigError("this PerformanceOptimizer has no sender: pass one, or bind it to a run")
        return await self.sender.asend(call)

    # -- the exercise's methods -------------------------------------------------------------------
    async def lazy_load_content(self, request: Any) -> LazyContent:
        """Return critical content at once and handles for the rest.

        ``request`` is a mapping of part name to ``Call``, or one workload ``Request``.
        """
        if isinstance(request, Mapping):
            parts = dict(request)
        elif hasattr(request, "type") and hasattr(request, "prompt"):
            parts = {request.type: Call(DEFAULT_MODELS[request.type], request.prompt,
                                        max_tokens=getattr(request, "max_tokens", None))}
        else:
            raise ConfigError(f"lazy_load_content needs a mapping of Calls or a Request, got {request!r}")
        if self.loader is None:
            raise ConfigError("this PerformanceOptimizer has no sender: pass one, or bind it to a run")
        return await self.loader.load(parts)

    def batch_processor(self, handler: Any = None, *, max_batch_size: int | None = None,
                        max_wait_s: float | None = None) -> MicroBatcher:
        """Return a micro-batcher; by default it answers text ``Call``s with grouped calls."""
        if handler is None and self.queries is None:
            raise ConfigError("this PerformanceOptimizer has no sender: pass a handler or a sender")
        return MicroBatcher(handler or self.queries.send_grouped,  # type: ignore[union-attr]
                            max_batch_size=max_batch_size or self.max_batch_size,
                            max_wait_s=self.max_wait_s if max_wait_s is None else max_wait_s,
                            clock=self.clock)

    def connection_pool(self, provider: str, base_url: str, *, api_key: str | None = None) -> Any:
        """Return the one pooled async client of ``provider``, made on first use.

        Without ``api_key`` the client reads ``ANTHROPIC_API_KEY`` (``cfopt.latency.client.API_KEY_ENV``)."""
        from .client import AsyncCfoptClient  # httpx set-up only when pooling real clients
        if provider not in self._pools:
            self._pools[provider] = AsyncCfoptClient(base_url, api_key=api_key,
                                                     limits=self.limits or DEFAULT_LIMITS)
        return self._pools[provider]

    def pool_stats(self) -> dict[str, Any]:
        """Requests sent and connections opened: per real client pool, and the simulated one."""
        out = {name: client.pool_stats() for name, client in self._pools.items()}
        if self.pool is not None:
            out["simulated"] = self.pool.stats
        return out

    async def aclose(self) -> None:
        """Close every pooled client."""
        for client in self._pools.values():
            await client.aclose()
        self._pools.clear()

    async def optimize_queries(self, calls: Sequence[Call]) -> list[Result | BaseException]:
        """Send ``calls`` together, coalescing identical ones and merging compatible text."""
        if self.queries is None:
            raise ConfigError("this PerformanceOptimizer has no sender: pass one, or bind it to a run")
        return await asyncio.gather(*(self.queries.asend(c) for c in calls), return_exceptions=True)

    def compress(self, data: str | bytes) -> Compressed:
        """Gzip ``data`` when it is over 1,000 characters; sizes are real bytes."""
        return compress(data)


class _EnvSender:
    """Send through whatever ``env.sender`` is when the call goes (the batching stage sets it)."""

    def __init__(self, env: Any) -> None:
        self.env, self.clock, self.catalog = env, env.clock, env.catalog

    async def asend(self, call: Call) -> Result:
        return await (self.env.sender or self.env.transport).asend(call)

    def for_model(self, name: str):
        return self.env.providers.for_model(name)
