"""Query optimization in flight: coalesce identical calls, merge compatible ones.

- **Coalescing** (single-flight): while a call is in flight, an identical call waits for its
  answer instead of paying for another (``cfopt.cache.SingleFlight``, keyed by the whole
  ``Call``: same model, prompt, limits, everything).
- **Merging**: different text calls to the same model, arriving within ``max_wait_s`` of
  each other, go as one grouped call that asks for a JSON array of answers (the format of
  ``cfopt.batching.processor``). One request instead of many saves rate-limit headroom and the
  per-request overhead; a reply that does not split falls back to one call each, so merging
  never costs an answer.

>>> from cfopt.providers import Providers
>>> clock = VirtualClock()
>>> q = QueryOptimizer(Providers(seed=0, clock=clock), merge=False)
>>> async def burst():
...     return await asyncio.gather(*(q.asend(Call("haiku", "Name a cat.")) for _ in range(5)))
>>> len({r.content for r in clock.run(burst())}), q.stats.provider_calls, q.stats.coalesced
(1, 1, 4)
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Sequence

from ..batching.grouping import answer_pieces, group_prompt, split_answers
from ..cache.singleflight import SingleFlight
from ..clock import Clock, VirtualClock
from .microbatch import MicroBatcher
from ..pricing import PriceCatalog, load_catalog
from ..providers.base import DEFAULT_MAX_TOKENS, Call, Result, Sender

__all__ = ["QueryOptimizer", "QueryStats"]


@dataclass
class QueryStats:
    """Calls asked for, provider calls made, and what coalescing and merging saved."""

    requests: int = 0
    coalesced: int = 0          # answered by an identical call already in flight
    provider_calls: int = 0
    merged_calls: int = 0       # grouped calls sent
    merged_requests: int = 0    # requests answered from a grouped call
    split_failures: int = 0


class QueryOptimizer:
    """A sender that coalesces identical in-flight calls and merges compatible text calls."""

    def __init__(self, sender: Sender, *, merge: bool = True, max_batch_size: int = 10,
                 max_wait_s: float = 0.05, clock: Clock | None = None,
                 catalog: PriceCatalog | None = None) -> None:
        self.sender = sender
        self.merge = merge
        self._max_batch_size, self._max_wait_s = max_batch_size, max_wait_s
        self.clock: Clock = clock or getattr(sender, "clock", None) or VirtualClock()
        self.catalog = catalog or getattr(sender, "catalog", None) or load_catalog()
        self.stats = QueryStats()
        self._flight: SingleFlight[Result] = SingleFlight()
        self._batchers: dict[str, MicroBatcher[Call, Result]] = {}

    def __repr__(self) -> str:
        return f"QueryOptimizer(merge={self.merge}, max_batch_size={self.max_batch_size})"

    # The two knobs reach the open micro-batchers too: a window already open keeps its deadline.
    @property
    def max_batch_size(self) -> int:
        return self._max_batch_size

    @max_batch_size.setter
    def max_batch_size(self, value: int) -> None:
        self._max_batch_size = value
        for b in self._batchers.values():
            b.max_batch_size = value

    @property
    def max_wait_s(self) -> float:
        return self._max_wait_s

    @max_wait_s.setter
    def max_wait_s(self, value: float) -> None:
        self._max_wait_s = value
        for b in self._batchers.values():
            b.max_wait_s = value

    async def asend(self, call: Call) -> Result:
        """Answer ``call``, sharing or merging provider calls where that loses nothing."""
        self.stats.requests += 1
        result, shared = await self._flight.run(call, lambda: self._dispatch(call))
        self.stats.coalesced += shared
        return result

    def _mergeable(self, call: Call) -> bool:
        # A system prompt or the batch API would change what the grouped call means.
        return (self.merge and not call.batch and call.system is None
                and self.catalog.model(call.model).kind == "text")

    async def _dispatch(self, call: Call) -> Result:
        if not self._mergeable(call):
            return await self._send(call)
        model = self.catalog.model(call.model).id
        if model not in self._batchers:
            self._batchers[model] = MicroBatcher(self.send_grouped, max_batch_size=self.max_batch_size,
                                                 max_wait_s=self.max_wait_s, clock=self.clock)
        return await self._batchers[model].submit(call)

    async def _send(self, call: Call) -> Result:
        self.stats.provider_calls += 1
        return await self.sender.asend(call)

    async def send_grouped(self, calls: list[Call]) -> Sequence[Result | BaseException]:
        """Answer ``calls`` (one model) with one grouped call; one call each if it does not split."""
        if len(calls) == 1:
            return [await self._send(calls[0])]
        system, prompt = group_prompt([c.prompt for c in calls])
        max_tokens = min(sum(c.max_tokens or DEFAULT_MAX_TOKENS for c in calls), 64000)
        answers = None
        try:
            self.stats.merged_calls += 1
            result = await self._send(Call(calls[0].model, prompt, system=system,
                                           max_tokens=max_tokens))
            answers = split_answers(result.content, len(calls))
        except Exception:
            pass  # fall back below: each call on its own
        if answers is None:
            self.stats.split_failures += 1
            return await asyncio.gather(*(self._send(c) for c in calls), return_exceptions=True)
        self.stats.merged_requests += len(calls)
        return answer_pieces(result, answers)
