"""The pipeline's own small parts: the network between ContentFlow and its providers.

Two things the providers' simulated latency leaves out, modelled here with documented figures:

- **Connection set-up**: ``cfopt.latency.pool.ConnectionPool`` (Part 3) pays it per new connection.
- **Local cache look-ups.** A memory hit costs micro-seconds, SQLite and a local Redis about a
  millisecond (``LOOKUP_S``). They are small, and counted all the same.

``CountingSender`` sits right in front of the providers and counts every call that reaches them
(retries included): the "API calls" of the report come from it, not from any other tally.

"""
from __future__ import annotations

from collections import defaultdict

from ..latency.pool import HANDSHAKE_S, NETWORK_RTT_S, ConnectionPool
from ..providers.base import Call, Result, Sender

__all__ = ["NETWORK_RTT_S", "HANDSHAKE_S", "LOOKUP_S", "SEMANTIC_LOOKUP_S", "ConnectionPool",
           "ConnectedSender", "CountingSender"]

# Assumptions: a cachetools read ~0.1 ms with decoding; an indexed SQLite read ~1 ms; a Redis GET
# on the same network ~1 ms; the semantic index look-up well under 1 ms (its benchmark).
LOOKUP_S = {"memory": 0.0001, "disk": 0.001, "redis": 0.001, "cdn": 0.02}
SEMANTIC_LOOKUP_S = 0.0005


class ConnectedSender:
    """Send each call over a connection from ``pool``, paying its set-up time first."""

    def __init__(self, target: Sender, pool: ConnectionPool) -> None:
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

    def __init__(self, target: Sender) -> None:
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
