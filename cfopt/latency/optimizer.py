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
- ``connection_pool``    ``cfopt.latency.client``: one pooled ``httpx.AsyncClient`` per provider;
- ``optimize_queries``   ``cfopt.latency.coalesce``: single-flight coalescing and merging;
- ``compress``           gzip for payloads over 1,000 characters, here.

>>> latency_summary([(0.001, True), (0.002, True), (1.0, False), (3.0, False)]).misses.p50
2.0
>>> c = compress("ContentFlow " * 200)
>>> c.encoding, c.original_size, c.size < 100, decompress(c) == "ContentFlow " * 200
('gzip', 2400, True, True)
"""
from __future__ import annotations

import asyncio
import gzip
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import httpx

from ..batching.processor import DEFAULT_MODELS
from ..clock import Clock, VirtualClock
from .coalesce import QueryOptimizer
from ..errors import ConfigError
from .lazy import LARGE_IMAGE_MP, LazyContent, LazyLoader
from .microbatch import MicroBatcher
from ..providers.base import Call, Result
from ..monitoring.series import percentile  # the monitor's percentile: one definition for the kit

__all__ = ["PerformanceOptimizer", "Percentiles", "LatencySummary", "latency_summary",
           "percentile", "response_time", "Compressed", "compress", "decompress",
           "COMPRESS_THRESHOLD"]

COMPRESS_THRESHOLD = 1_000        # characters; below it gzip's ~20-byte header eats the gain


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


@dataclass(frozen=True, slots=True)
class Compressed:
    """A payload as sent: its bytes, their encoding and the real sizes before and after."""

    data: bytes
    encoding: str                 # "gzip" or "identity"
    original_size: int            # bytes of the UTF-8 payload
    size: int

    @property
    def ratio(self) -> float:
        return self.size / self.original_size if self.original_size else 1.0


def compress(data: str | bytes, threshold: int = COMPRESS_THRESHOLD) -> Compressed:
    """Gzip ``data`` when it is longer than ``threshold`` characters and gzip makes it smaller."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(data) > threshold:
        # mtime=0: the same payload gives the same bytes (stable ETags, stable tests)
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        if len(packed) < len(raw):
            return Compressed(packed, "gzip", len(raw), len(packed))
    return Compressed(raw, "identity", len(raw), len(raw))


def decompress(payload: Compressed) -> str:
    """Return the text a ``Compressed`` payload carries."""
    raw = gzip.decompress(payload.data) if payload.encoding == "gzip" else payload.data
    return raw.decode("utf-8")


class PerformanceOptimizer:
    """Part 3's toolbox around one sender (a provider, ``Providers``, or ``Resilience``)."""

    def __init__(self, sender: Any, *, clock: Clock | None = None, max_batch_size: int = 10,
                 max_wait_s: float = 0.05, large_image_mp: float = LARGE_IMAGE_MP,
                 limits: httpx.Limits | None = None) -> None:
        self.sender = sender
        self.clock: Clock = clock or getattr(sender, "clock", None) or VirtualClock()
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_s
        self.limits = limits
        self.loader = LazyLoader(sender, clock=self.clock, large_image_mp=large_image_mp)
        self.queries = QueryOptimizer(sender, max_batch_size=max_batch_size,
                                      max_wait_s=max_wait_s, clock=self.clock)
        self._pools: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"PerformanceOptimizer(max_batch_size={self.max_batch_size}, "
                f"max_wait_s={self.max_wait_s}, pools={sorted(self._pools)})")

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
        return await self.loader.load(parts)

    def batch_processor(self, handler: Any = None, *, max_batch_size: int | None = None,
                        max_wait_s: float | None = None) -> MicroBatcher:
        """Return a micro-batcher; by default it answers text ``Call``s with grouped calls."""
        return MicroBatcher(handler or self.queries.send_grouped,
                            max_batch_size=max_batch_size or self.max_batch_size,
                            max_wait_s=self.max_wait_s if max_wait_s is None else max_wait_s,
                            clock=self.clock)

    def connection_pool(self, provider: str, base_url: str, *, api_key: str | None = None) -> Any:
        """Return the one pooled async client of ``provider``, made on first use.

        Without ``api_key`` the client reads ``ANTHROPIC_API_KEY`` (``cfopt.latency.client.API_KEY_ENV``)."""
        from .client import DEFAULT_LIMITS, AsyncCfoptClient  # httpx set-up only when pooling
        if provider not in self._pools:
            self._pools[provider] = AsyncCfoptClient(base_url, api_key=api_key,
                                                     limits=self.limits or DEFAULT_LIMITS)
        return self._pools[provider]

    def pool_stats(self) -> dict[str, Any]:
        """Requests sent and connections opened, per provider pool."""
        return {name: client.pool_stats() for name, client in self._pools.items()}

    async def aclose(self) -> None:
        """Close every pooled client."""
        for client in self._pools.values():
            await client.aclose()
        self._pools.clear()

    async def optimize_queries(self, calls: Sequence[Call]) -> list[Result | BaseException]:
        """Send ``calls`` together, coalescing identical ones and merging compatible text."""
        return await asyncio.gather(*(self.queries.asend(c) for c in calls), return_exceptions=True)

    def compress(self, data: str | bytes) -> Compressed:
        """Gzip ``data`` when it is over 1,000 characters; sizes are real bytes."""
        return compress(data)
