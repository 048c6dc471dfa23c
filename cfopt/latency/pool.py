"""Connection pooling on the virtual clock: what a warm connection saves, counted as httpx counts it.

A new HTTPS connection costs a TCP handshake (one round trip) and a TLS 1.3 handshake (one more)
before the request goes out. ``ConnectionPool`` models httpx's pool as ``cfopt.latency.client``
configures it (``DEFAULT_LIMITS``): keep up to ``max_keepalive`` idle connections per provider for
``keepalive_s`` (20 and 30 s; httpx's own default expiry is 5 s, too short for ContentFlow's gaps
between calls to one provider). A call on a warm connection pays nothing, a call on a new one pays
``handshake_s``. With ``pooled=False`` every call opens (and pays for) its own connection.

``PoolStats`` is the one record of a pool's work, here and in the real HTTP clients.

>>> from cfopt.clock import VirtualClock
>>> pool = ConnectionPool(VirtualClock(), pooled=True)
>>> pool.acquire("anthropic"), pool.release("anthropic"), pool.acquire("anthropic")
(0.1, None, 0.0)
>>> pool.stats
PoolStats(requests=2, connections_opened=1, reused=1)
>>> ConnectionPool(VirtualClock(), pooled=False).acquire("fal")
0.1
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

from ..clock import Clock

__all__ = ["ConnectionPool", "PoolStats", "NETWORK_RTT_S", "HANDSHAKE_S", "MAX_KEEPALIVE",
           "KEEPALIVE_S"]

# Assumption: ContentFlow's servers sit ~50 ms (one round trip) from the providers' edges, a
# typical figure within one continent. TCP (1 RTT) + TLS 1.3 (1 RTT) = 2 RTT per new connection.
NETWORK_RTT_S = 0.05
HANDSHAKE_S = 2 * NETWORK_RTT_S
MAX_KEEPALIVE = 20      # idle connections kept per provider (httpx's default, kept)
KEEPALIVE_S = 30.0      # seconds an idle connection is kept (httpx's default is 5 s)


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Requests sent and TCP connections opened for them; the rest reused a pooled connection."""

    requests: int
    connections_opened: int

    @property
    def reused(self) -> int:
        return self.requests - self.connections_opened

    def __repr__(self) -> str:
        return (f"PoolStats(requests={self.requests}, connections_opened={self.connections_opened}, "
                f"reused={self.reused})")


class ConnectionPool:
    """Idle connections per provider, kept for ``keepalive_s``; a new one costs ``handshake_s``."""

    def __init__(self, clock: Clock, *, pooled: bool = True, handshake_s: float = HANDSHAKE_S,
                 max_keepalive: int = MAX_KEEPALIVE, keepalive_s: float = KEEPALIVE_S) -> None:
        self.clock, self.pooled, self.handshake_s = clock, pooled, handshake_s
        self.max_keepalive, self.keepalive_s = max_keepalive, keepalive_s
        self._requests = self._opened = 0
        self._idle: dict[str, deque[float]] = defaultdict(deque)  # when each went idle

    def __repr__(self) -> str:
        return (f"ConnectionPool(pooled={self.pooled}, handshake_s={self.handshake_s}, "
                f"max_keepalive={self.max_keepalive}, keepalive_s={self.keepalive_s})")

    @property
    def stats(self) -> PoolStats:
        return PoolStats(self._requests, self._opened)

    def acquire(self, provider: str) -> float:
        """Take a connection to ``provider``; return the set-up time it costs (0 if warm)."""
        idle, now = self._idle[provider], self.clock.now()
        while idle and now - idle[0] > self.keepalive_s:  # the oldest expired first
            idle.popleft()
        self._requests += 1
        if self.pooled and idle:
            idle.pop()  # the most recently used one: the likeliest still open
            return 0.0
        self._opened += 1
        return self.handshake_s

    def release(self, provider: str) -> None:
        """Give the connection back: kept idle when pooling, else closed."""
        idle = self._idle[provider]
        if self.pooled and len(idle) < self.max_keepalive:
            idle.append(self.clock.now())
