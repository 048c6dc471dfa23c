"""Connection pooling on the virtual clock: what a warm connection saves, counted as httpx counts it.

A new HTTPS connection costs a TCP handshake (one round trip) and a TLS 1.3 handshake (one more)
before the request goes out. ``ConnectionPool`` models httpx's pool as ``cfopt.latency.client``
configures it (``DEFAULT_LIMITS``): keep up to ``max_keepalive`` idle connections per provider for
``keepalive_s`` (20 and 30 s; httpx's own default expiry is 5 s, too short for ContentFlow's gaps
between calls to one provider). A call on a warm connection pays nothing, a call on a new one pays
``handshake_s``. With ``pooled=False`` every call opens (and pays for) its own connection.

``PoolStats`` is the one record of a pool's work, here and in the real HTTP clients.

``ConnectedSender`` is the transport the pipeline's calls travel on: it takes a connection from
the pool (paying the set-up when none is warm), waits for a free slot when ``max_in_flight``
calls are out already (the rest queue, as behind httpx's ``max_connections``), and ships the
answer back, gzipped when that pays (``cfopt.latency.payload``), counting the seconds and bytes.

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

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Callable

from ..clock import Clock
from ..providers.base import Call, Result, Sender
from .payload import compress, transfer_s

__all__ = ["ConnectionPool", "PoolStats", "ConnectedSender", "TransportStats", "NETWORK_RTT_S",
           "HANDSHAKE_S", "MAX_KEEPALIVE", "KEEPALIVE_S"]

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


@dataclass
class TransportStats:
    """What the transport did: calls queued for a slot, payload bytes and what gzip saved."""

    calls: int = 0
    queued: int = 0                 # calls that waited for a free slot (max_in_flight)
    response_bytes: int = 0         # as the provider produced them
    bytes_on_wire: int = 0          # as they travelled (gzipped when that was smaller)

    @property
    def bytes_saved(self) -> int:
        return self.response_bytes - self.bytes_on_wire


class ConnectedSender:
    """Send each call over a connection from ``pool``: set-up, queueing and payload transfer.

    ``target`` answers calls (``for_model(model).name`` names the provider). ``on_event(name,
    value)`` hears ``connection_setup_s`` per call and ``queue_depth`` when the queue changes.
    """

    def __init__(self, target: Sender, pool: ConnectionPool, *, compress_payloads: bool = True,
                 max_in_flight: int | None = None,
                 on_event: Callable[[str, float], None] | None = None) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1 or None, got {max_in_flight}")
        self.target, self.pool = target, pool
        self.clock = pool.clock
        self.catalog = getattr(target, "catalog", None)
        self.compress_payloads, self.max_in_flight = compress_payloads, max_in_flight
        self.on_event = on_event
        self.stats = TransportStats()
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._waiting = 0

    def __repr__(self) -> str:
        return (f"ConnectedSender({self.pool!r}, compress_payloads={self.compress_payloads}, "
                f"max_in_flight={self.max_in_flight})")

    def for_model(self, name: str):
        return self.target.for_model(name)  # type: ignore[attr-defined]

    async def asend(self, call: Call) -> Result:
        if self._gate is None:
            return await self._send(call)
        if self._gate.locked():   # every slot busy: this call joins the queue
            self.stats.queued += 1
            self._waiting += 1
            self._emit("queue_depth", self._waiting)
            async with self._gate:
                self._waiting -= 1
                self._emit("queue_depth", self._waiting)
                return await self._send(call)
        self._emit("queue_depth", self._waiting)   # a 0 keeps the depth chart honest
        async with self._gate:
            return await self._send(call)

    async def _send(self, call: Call) -> Result:
        provider = self.target.for_model(call.model).name  # type: ignore[attr-defined]
        setup = self.pool.acquire(provider)
        self.stats.calls += 1
        self._emit("connection_setup_s", setup)
        try:
            if setup:
                await self.clock.asleep(setup)
            result = await self.target.asend(call)
            size = len(result.content.encode("utf-8"))
            sent = compress(result.content).size if self.compress_payloads else size
            self.stats.response_bytes += size
            self.stats.bytes_on_wire += sent
            await self.clock.asleep(transfer_s(sent))
            return result
        finally:
            self.pool.release(provider)

    def _emit(self, name: str, value: float) -> None:
        if self.on_event is not None:
            self.on_event(name, value)
