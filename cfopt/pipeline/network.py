"""The pipeline's own small parts: local look-up times and the one counter of provider calls.

- **Local cache look-ups.** A memory hit costs micro-seconds, SQLite and a local Redis about a
  millisecond (``LOOKUP_S``). They are small, and counted all the same. (Connection set-up and
  payload transfer are the latency stage's: ``cfopt.latency.pool``.)

``CountingSender`` sits right in front of the providers and counts every call that reaches them
(retries included): the "API calls" of the report come from it, not from any other tally.

"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable

from ..latency.pool import NETWORK_RTT_S
from ..providers.base import Call, Result, Sender

__all__ = ["NETWORK_RTT_S", "LOOKUP_S", "SEMANTIC_LOOKUP_S", "CountingSender"]

# Assumptions: a cachetools read ~0.1 ms with decoding; an indexed SQLite read ~1 ms; a Redis GET
# on the same network ~1 ms; the semantic index look-up well under 1 ms (its benchmark).
LOOKUP_S = {"memory": 0.0001, "disk": 0.001, "redis": 0.001, "cdn": 0.02}
SEMANTIC_LOOKUP_S = 0.0005


class CountingSender:
    """Count every call that reaches ``target`` and add up what the answered ones cost."""

    def __init__(self, target: Sender, on_result: Callable[[Result], None] | None = None) -> None:
        self.target, self.on_result = target, on_result
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
        if self.on_result is not None:
            self.on_result(result)
        return result

    def bill(self, closed: Result) -> None:
        """Price a call counted already that the caller closed early, at what ``closed`` bills
        (a tied copy that lost the race: ``cfopt.latency.tie``)."""
        self.cost_usd += closed.cost_usd
        self.by_model[closed.model] += 1
        if self.on_result is not None:
            self.on_result(closed)

    def for_model(self, name: str):
        return self.target.for_model(name)  # type: ignore[attr-defined]
