"""What a running server remembers: its providers and clock, its counters, and planned faults.

``ServerStats`` counts what reached the server (connections, requests per route, statuses, cost)
so a benchmark can ask the server how many connections a client really opened, and a test can
count how often the SDK retried. ``FaultPlan`` makes the next few calls fail in a chosen way,
which random fault rates cannot promise (a test needs "the first call fails, the retry works").

>>> plan = FaultPlan()
>>> plan.add(["overloaded"], provider="anthropic")
>>> type(plan.take("anthropic", model="claude-haiku-5-5")).__name__
'Overloaded'
>>> plan.take("anthropic", model="claude-haiku-5-5") is None
True
>>> stats = ServerStats(); stats.count_request("messages", 200, cost_usd=0.002)
>>> stats.snapshot()["requests"], stats.snapshot()["by_route"]
(1, {'messages': 1})
"""
from __future__ import annotations

import hashlib
import itertools
import threading
import time
import uuid
from datetime import datetime, timezone
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..clock import Clock, RealClock
from ..errors import (ConfigError, Overloaded, ProviderError, ProviderTimeout, RateLimited,
                      ServerError)
from ..providers.sampling import short_id
from .config import ServerConfig

if TYPE_CHECKING:
    from ..providers import Providers

__all__ = ["ServerState", "ServerStats", "FaultPlan", "FAULT_KINDS"]

FAULT_KINDS = ("rate_limited", "overloaded", "server_error", "timeout")
# Planned only (no random rate): a streamed answer that starts, then fails with an ``error`` event
# (Anthropic: "an error event may be sent mid-stream", e.g. overloaded_error); unstreamed, a 529.
STREAM_FAULT_KINDS = ("overloaded_mid_stream",)


@dataclass
class ServerStats:
    """Counters of one server's life; ``snapshot()`` is what ``GET /_cfopt/stats`` returns."""

    connections_opened: int = 0
    nodelay_connections: int = 0      # of those, how many had TCP_NODELAY set
    requests: int = 0
    by_route: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_connection(self, *, nodelay: bool = False) -> None:
        with self._lock:
            self.connections_opened += 1
            self.nodelay_connections += nodelay

    def count_request(self, route: str, status: int, *, cost_usd: float = 0.0) -> None:
        with self._lock:
            self.requests += 1
            self.by_route[route] += 1
            self.by_status[status] += 1
            self.cost_usd += cost_usd

    def add_cost(self, cost_usd: float) -> None:
        with self._lock:
            self.cost_usd += cost_usd

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain JSON-ready data."""
        with self._lock:
            return {"connections_opened": self.connections_opened,
                    "nodelay_connections": self.nodelay_connections, "requests": self.requests,
                    "by_route": dict(self.by_route),
                    "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                    "cost_usd": round(self.cost_usd, 9)}


class FaultPlan:
    """Failures to serve next, in order, per provider ("anthropic", "fal", "unsplash")."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[tuple[str, float]]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FaultPlan(pending={self.pending()})"

    def add(self, kinds: Iterable[str], *, provider: str = "anthropic",
            retry_after_s: float = 1.0) -> None:
        """Queue one failure per item of ``kinds`` for the next calls to ``provider``."""
        kinds = list(kinds)
        known = FAULT_KINDS + STREAM_FAULT_KINDS
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise ConfigError(f"unknown fault kind(s) {unknown}; known: {', '.join(known)}")
        if retry_after_s < 0:
            raise ConfigError(f"retry_after_s must not be negative, got {retry_after_s}")
        with self._lock:
            q = self._queues.setdefault(provider, deque())
            q.extend((k, float(retry_after_s)) for k in kinds)

    def pending(self) -> dict[str, list[str]]:
        with self._lock:
            return {p: [k for k, _ in q] for p, q in self._queues.items() if q}

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()

    def take(self, provider: str, *, model: str) -> ProviderError | None:
        """The next planned failure for ``provider`` as an error to raise, or None."""
        with self._lock:
            q = self._queues.get(provider)
            if not q:
                return None
            kind, retry_after = q.popleft()
        where = dict(provider=provider, model=model)
        if kind == "rate_limited":
            return RateLimited(f"{provider} {model}: rate limited (planned)",
                               retry_after=retry_after, **where)
        if kind == "overloaded":
            return Overloaded(f"{provider} {model}: overloaded (planned)", **where)
        if kind == "overloaded_mid_stream":
            e = Overloaded(f"{provider} {model}: overloaded (planned, mid-stream)", **where)
            e.mid_stream = True   # the stream starts, then fails with an error event
            return e
        if kind == "timeout":
            return ProviderTimeout(f"{provider} {model}: timed out (planned)", **where)
        return ServerError(f"{provider} {model}: internal server error (planned)", **where)


class ServerState:
    """One server's providers (on a real, possibly sped-up clock), counters, jobs and batches."""

    def __init__(self, config: ServerConfig | None = None, *, providers: "Providers | None" = None,
                 clock: Clock | None = None) -> None:
        self.config = config if config is not None else ServerConfig()
        self.clock: Clock = clock if clock is not None else RealClock(self.config.time_scale)
        if providers is None:
            from ..providers import Providers  # the bundle of simulated providers
            providers = Providers(seed=self.config.seed, clock=self.clock, profile=self.config.profile,
                                  faults=self.config.faults, rate_tier=self.config.rate_tier,
                                  speeds=self.config.speeds)
        self.providers = providers
        self.stats = ServerStats()
        self.fault_plan = FaultPlan()
        self.batches: dict[str, Any] = {}
        self.fal_jobs: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._epoch = time.time() - self.clock.now()  # wall time when the clock read zero

    def __repr__(self) -> str:
        return f"ServerState(config={self.config!r}, clock={self.clock!r})"

    def new_id(self, prefix: str, length: int = 24) -> str:
        """A fresh id such as ``msg_...``: the same seed gives the same ids in the same order."""
        return f"{prefix}{short_id(length, self.config.seed, prefix, next(self._ids))}"

    def new_uuid(self) -> str:
        """A fresh UUID-shaped id (fal.ai's request ids), seeded like ``new_id``."""
        digest = hashlib.blake2b(repr((self.config.seed, "uuid", next(self._ids))).encode(),
                                 digest_size=16).digest()
        return str(uuid.UUID(bytes=digest, version=4))

    def timestamp(self, t: float) -> str:
        """Clock time ``t`` as an RFC 3339 string (sped-up clocks run ahead of the wall)."""
        return datetime.fromtimestamp(self._epoch + t, tz=timezone.utc).isoformat().replace("+00:00", "Z")
