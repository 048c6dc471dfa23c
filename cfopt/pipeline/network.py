"""The pipeline's own small parts: the network between ContentFlow and its providers.

Two things the providers' simulated latency leaves out, modelled here with documented figures:

- **Connection set-up.** A new HTTPS connection costs a TCP handshake (one round trip) and a
  TLS 1.3 handshake (one more) before the request goes out. ``ConnectionPool`` models httpx's
  pool as ``cfopt.latency.client`` configures it (``DEFAULT_LIMITS``): keep up to ``max_keepalive`` idle
  connections per provider for ``keepalive_s`` (20 and 30 s; httpx's own default expiry is 5 s,
  too short for ContentFlow's gaps between calls to one provider); a call on a warm connection
  pays nothing, a call on a new one pays ``handshake_s``. With ``pooled=False`` every call opens
  (and pays for) its own connection.
- **Local cache look-ups.** A memory hit costs micro-seconds, SQLite and a local Redis about a
  millisecond (``LOOKUP_S``). They are small, and counted all the same.

``CountingSender`` sits right in front of the providers and counts every call that reaches them
(retries included): the "API calls" of the report come from it, not from any other tally.

>>> from cfopt.clock import VirtualClock
>>> clock = VirtualClock()
>>> pool = ConnectionPool(clock, pooled=True)
>>> pool.acquire("anthropic"), pool.release("anthropic"), pool.acquire("anthropic")
(0.1, None, 0.0)
>>> ConnectionPool(clock, pooled=False).acquire("fal")
0.1
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Protocol

from ..latency.client import DEFAULT_LIMITS
from ..clock import Clock
from ..providers.base import Call, Result

__all__ = ["NETWORK_RTT_S", "HANDSHAKE_S", "LOOKUP_S", "SEMANTIC_LOOKUP_S", "ConnectionPool",
           "PoolStats", "ConnectedSender", "CountingSender"]

# Assumption: ContentFlow's servers sit ~50 ms (one round trip) from the providers' edges, a
# typical figure within one continent. TCP (1 RTT) + TLS 1.3 (1 RTT) = 2 RTT per new connection.
NETWORK_RTT_S = 0.05
HANDSHAKE_S = 2 * NETWORK_RTT_S
# Assumptions: a cachetools read ~0.1 ms with decoding; an indexed SQLite read ~1 ms; a Redis GET
# on the same network ~1 ms; the semantic index look-up well under 1 ms (its benchmark).
LOOKUP_S = {"memory": 0.0001, "disk": 0.001, "redis": 0.001, "cdn": 0.02}
SEMANTIC_LOOKUP_S = 0.0005


class _Sender(Protocol):
    async def asend(self, call: Call) -> Result: ...
    def for_model(self, name: str): ...


@dataclass(slots=True)
class PoolStats:
    """Connections opened and reused, all providers together."""

    opened: int = 0
    reused: int = 0


class ConnectionPool:
    """Idle connections per provider, kept for ``keepalive_s``; a new one costs ``handshake_s``."""

    def __init__(self, clock: Clock, *, pooled: bool = True, handshake_s: float = HANDSHAKE_S,
                 max_keepalive: int = DEFAULT_LIMITS.max_keepalive_connections or 20,
                 keepalive_s: float = DEFAULT_LIMITS.keepalive_expiry or 30.0) -> None:
        self.clock, self.pooled, self.handshake_s = clock, pooled, handshake_s
        self.max_keepalive, self.keepalive_s = max_keepalive, keepalive_s
        self.stats = PoolStats()
        self._idle: dict[str, deque[float]] = defaultdict(deque)  # when each went idle

    def __repr__(self) -> str:
        return (f"ConnectionPool(pooled={self.pooled}, handshake_s={self.handshake_s}, "
                f"max_keepalive={self.max_keepalive}, keepalive_s={self.keepalive_s})")

    def acquire(self, provider: str) -> float:
        """Take a connection to ``provider``; return the set-up time it costs (0 if warm)."""
        idle, now = self._idle[provider], self.clock.now()
        while idle and now - idle[0] > self.keepalive_s:  # the oldest expired first
            idle.popleft()
        if self.pooled and idle:
            idle.pop()  # the most recently used one: the likeliest still open
            self.stats.reused += 1
            return 0.0
        self.stats.opened += 1
        return self.handshake_s

    def release(self, provider: str) -> None:
        """Give the connection back: kept idle when pooling, else closed."""
        idle = self._idle[provider]
        if self.pooled and len(idle) < self.max_keepalive:
            idle.append(self.clock.now())


class ConnectedSender:
    """Send each call over a connection from ``pool``, paying its set-up time first."""

    def __init__(self, target: _Sender, pool: ConnectionPool) -> None:
        self.target, self.pool = target, pool
        self.clock = pool.clock
        self.catalog = getattr(target, "catalog", None)

    def __repr__(self) -> str:
        return f"ConnectedSender({self.target!r}, {self.pool!r})"

    async def asend(self, call: Call) -> Result:
        provider = self.target.for_model(call.model).name
        setup = self.pool.acquire(provider)
        try:
            if setup:
                await self.clock.asleep(setup)
            return await self.target.asend(call)
        finally:
            self.pool.release(provider)


class CountingSender:
    """Count every call that reaches ``target`` and add up what the answered ones cost."""

    def __init__(self, target: _Sender) -> None:
        self.target = target
        self.clock = getattr(target, "clock", None)
        self.catalog = getattr(target, "catalog", None)
        self.calls = 0
        self.failed = 0
        self.cost_usd = 0.0
        self.by_model: dict[str, int] = defaultdict(int)

    def __repr__(self) -> str:
        return f"CountingSender(calls={self.calls}, cost_usd={self.cost_usd:.4f})"

    async def asend(self, call: Call) -> Result:
        self.calls += 1
        try:
            result = await self.target.asend(call)
        except Exception:
            self.failed += 1
            raise
        self.cost_usd += result.cost_usd
        self.by_model[result.model] += 1
        return result
