"""Tied requests: send a slow model's call twice at once and keep the copy that answers first.

The tail of a latency distribution is set by the unlucky draws. "The Tail at Scale" (Dean and
Barroso, Communications of the ACM 56(2), 2013) cuts it by sending one request to two servers
and cancelling the slower: the answer comes at the *earlier* of two draws. For streamed text
the race is to the first token: the copy whose first token comes first is kept, the others are
closed at that moment, before they showed anything.

What it costs, and what it assumes (both said in the report and the docs):

- Every copy is a call: it counts against the rate limits and in the report's API calls.
- A closed copy is billed its input tokens in full and no output (it had produced none the
  caller saw). Anthropic does not publish how a stream closed before its first token is billed:
  billing the whole input is the upper bound cfopt takes.
- The gain rests on the copies' speeds being independent. The simulated providers draw each
  call's speed on its own (the catalog's ``jitter``); real copies sent together share the
  provider's load, so the gain measured here is an upper bound of what a real deployment sees.

Which calls are tied: interactive text calls to a model whose median time to first token is
over ``over_s`` (default ``TIE_OVER_S``: a model that spends half the 2 s response-time budget
before its first token). Message Batches calls are never tied (nobody waits for them).

>>> import asyncio
>>> from cfopt.clock import VirtualClock
>>> from cfopt.providers import Providers
>>> from cfopt.providers.base import Call
>>> providers = Providers(seed=1)
>>> tied = TiedSender(providers, clock=providers.clock, catalog=providers.catalog)
>>> tied.ties(Call("sonnet", "Write a tagline.")), tied.ties(Call("haiku", "Write a tagline."))
(True, False)
>>> result = providers.clock.run(tied.asend(Call("sonnet", "Write a tagline.", max_tokens=50)))
>>> tied.stats.tied, tied.stats.closed, tied.stats.closed_cost_usd > 0
(1, 1, True)
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..clock import Clock
from ..providers.base import ON_UNDER_WAY, Call, Result, Sender

__all__ = ["TiedSender", "TieStats", "TIE_COPIES", "TIE_OVER_S", "closed_bill"]

TIE_COPIES = 2      # copies of a tied call: the second buys most of the gain (The Tail at Scale)
TIE_OVER_S = 1.0    # tie models whose median first token takes over half of a 2 s budget


@dataclass
class TieStats:
    """What tying did: calls tied, copies closed and their bill, time to first token gained."""

    tied: int = 0                 # calls sent as copies
    copies: int = 0               # copies sent in all (tied * TIE_COPIES when none failed)
    later_copy_won: int = 0       # races a copy other than the first won
    closed: int = 0               # copies closed under way, billed their input
    closed_cost_usd: float = 0.0
    dropped: int = 0              # copies closed before under way (queued, connecting or
                                  # failing): nothing billed
    rescued: int = 0              # copies that failed while another copy answered
    lost: int = 0                 # races every copy lost to an error (the call failed)
    gained_s: float = 0.0         # first token: the first copy's minus the winner's, summed


def closed_bill(result: Result, catalog: Any) -> Result:
    """What a copy closed before its first token is billed: its input tokens, no output."""
    usage = replace(result.usage, output_tokens=0)
    return replace(result, content="", usage=usage, cost_usd=catalog.cost(result.model, usage),
                   stop_reason=None)


class TiedSender:
    """Send each slow interactive text call as ``copies`` copies; answer with the first to show.

    ``target`` is the sender below (the run's transport, with its pool and counter);
    ``over_s`` a number or a function giving the threshold when a call goes (a knob);
    ``bill(closed)`` is told of each closed copy's bill (the run's counter prices it);
    ``on_event(name, value)`` is told of each tie (``tied``, ``tie_gained_s``).
    """

    def __init__(self, target: Sender, *, clock: Clock, catalog: Any,
                 over_s: float | None | Callable[[], float | None] = TIE_OVER_S,
                 copies: int = TIE_COPIES, bill: Callable[[Result], None] | None = None,
                 on_event: Callable[[str, float], None] | None = None) -> None:
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise ValueError(f"copies must be a positive integer, got {copies!r}")
        self.target, self.clock, self.catalog = target, clock, catalog
        self._over_s, self.copies, self.bill, self.on_event = over_s, copies, bill, on_event
        self.stats = TieStats()

    def __repr__(self) -> str:
        return f"TiedSender(copies={self.copies}, over_s={self.over_s})"

    @property
    def over_s(self) -> float | None:
        return self._over_s() if callable(self._over_s) else self._over_s

    def for_model(self, name: str):
        return self.target.for_model(name)  # type: ignore[attr-defined]

    def ties(self, call: Call) -> bool:
        """Whether ``call`` goes as copies: interactive text to a model slower than ``over_s``."""
        over = self.over_s
        if over is None or self.copies < 2 or call.batch:
            return False
        info = self.catalog.model(call.model)
        return info.kind == "text" and float(info["ttft_s"]) > over

    async def asend(self, call: Call) -> Result:
        if not self.ties(call):
            return await self.target.asend(call)
        return await self._race(call)

    async def _race(self, call: Call) -> Result:
        loop = asyncio.get_running_loop()
        won: asyncio.Future[int] = loop.create_future()
        under_way: dict[int, Result] = {}
        watchers: dict[int, asyncio.Task] = {}

        def claim(i: int) -> None:
            if not won.done():
                won.set_result(i)

        async def first_token(i: int, result: Result) -> None:
            await self.clock.asleep(max(0.0, result.started_at + result.first_content_s
                                        - self.clock.now()))
            if under_way.get(i) is result:   # still the attempt under way for this copy
                claim(i)

        async def copy(i: int) -> Result:
            def told(result: Result | None) -> None:
                if won.done():
                    return   # the race is decided: later news changes nothing
                old = watchers.pop(i, None)
                if old is not None:
                    old.cancel()
                if result is None:   # that attempt was cut off (a retry may follow)
                    under_way.pop(i, None)
                    return
                under_way[i] = result
                watchers[i] = asyncio.ensure_future(first_token(i, result))
            ON_UNDER_WAY.set(told)   # this task's own context: its copy alone
            result = await self.target.asend(call)
            claim(i)   # a sender that never tells (a real HTTP client): the first answer wins
            return result

        tasks = [asyncio.ensure_future(copy(i)) for i in range(self.copies)]
        self.stats.tied += 1
        self.stats.copies += self.copies
        try:
            while not won.done():
                left = [t for t in tasks if not t.done()]
                if not left:   # every copy failed: the first copy's error
                    self.stats.lost += 1
                    return tasks[0].result()
                await asyncio.wait([won, *left], return_when=asyncio.FIRST_COMPLETED)
            winner = won.result()
            others = self._close(tasks, under_way, winner)
            result = await tasks[winner]
        finally:
            for t in (*tasks, *watchers.values()):
                if not t.done():
                    t.cancel()
                elif not t.cancelled():
                    t.exception()   # a failed copy's error is taken, not left unretrieved
        self._tell(winner, under_way)
        if not others:
            return result
        # The answer carries what its copies were billed, so whoever prices it from its usage
        # (a budget) and whoever reads its cost (the report) agree with the provider's bill.
        return replace(result, usage=sum((o.usage for o in others), result.usage),
                       cost_usd=result.cost_usd + sum(o.cost_usd for o in others))

    def _close(self, tasks: list[asyncio.Task], under_way: dict[int, Result],
               winner: int) -> list[Result]:
        """Close the copies but ``winner``; bill those under way (their input); return the
        bills, with the whole answer of a copy that finished too."""
        bills: list[Result] = []
        for i, task in enumerate(tasks):
            if i == winner:
                continue
            if task.done():
                if task.cancelled():
                    continue
                if task.exception() is None:
                    bills.append(task.result())   # it answered too: billed in full already
                else:
                    self.stats.rescued += 1       # failed (unbilled); another copy answers
                continue
            task.cancel()
            if i not in under_way:
                self.stats.dropped += 1   # not under way at a provider: nothing to bill
                continue
            bill = closed_bill(under_way[i], self.catalog)
            self.stats.closed += 1
            self.stats.closed_cost_usd += bill.cost_usd
            bills.append(bill)
            if self.bill is not None:
                self.bill(bill)
        return bills

    def _tell(self, winner: int, under_way: dict[int, Result]) -> None:
        if winner != 0:
            self.stats.later_copy_won += 1
        first, best = under_way.get(0), under_way.get(winner)
        gained = 0.0
        if first is not None and best is not None and winner != 0:
            gained = ((first.started_at + first.first_content_s)
                      - (best.started_at + best.first_content_s))
        if gained > 0:
            self.stats.gained_s += gained
        if self.on_event is not None:
            self.on_event("tied", 1.0)
            self.on_event("tie_gained_s", max(gained, 0.0))
