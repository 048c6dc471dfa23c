"""Anthropic-style per-minute rate limits: requests, input tokens and output tokens per model tier.

Anthropic enforces RPM, ITPM and OTPM with a token bucket each: "your capacity is continuously
replenished up to your maximum limit, rather than being reset at fixed intervals" (Anthropic
docs, Rate limits). So a 4,000 RPM limit allows a burst of 4,000 requests, then one more every
15 ms. A request over any limit gets 429 with a ``retry-after``; here ``retry_after`` is the exact
wait until every bucket it needs holds enough again.

What counts, as the docs say:

- ITPM counts uncached input tokens and cache writes; cache reads do not count
  ("cache-aware ITPM").
- OTPM is *estimated from max_tokens when the request starts and adjusted when it ends*: the
  bucket is charged ``max_tokens`` at admission, and the unused part is given back at the
  moment the answer completes. A large ``max_tokens`` therefore throttles concurrency even when
  the answers are short, as it does on the real API.

``retry_after`` is exact: it counts the refill and the refunds of calls still running.

Time comes from the injected clock; the state is plain data changed without awaiting, so many
concurrent ``asend`` tasks on one event loop see a consistent state.

>>> from cfopt.pricing import RateLimit
>>> lim = RateLimiter()
>>> tier = RateLimit(rpm=2, itpm=1_000, otpm=1_000)
>>> lim.admit("haiku", tier, now=0.0, input_tokens=10, max_tokens=10)
(0.0, '')
>>> lim.admit("haiku", tier, now=0.0, input_tokens=10, max_tokens=10)
(0.0, '')
>>> lim.admit("haiku", tier, now=0.0, input_tokens=10, max_tokens=10)   # third in a burst of 2 RPM
(30.0, 'requests')
>>> lim.admit("haiku", tier, now=30.0, input_tokens=10, max_tokens=10)
(0.0, '')
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from ..pricing import RateLimit

__all__ = ["TokenBucket", "RateLimiter", "LimitStatus"]

_EPS = 1e-9  # float slack, so a caller that waits exactly ``retry_after`` is admitted


class TokenBucket:
    """A bucket of ``capacity`` units refilled continuously at ``capacity`` per ``period_s``."""

    __slots__ = ("capacity", "rate", "level", "updated")

    def __init__(self, capacity: float, period_s: float = 60.0, now: float = 0.0) -> None:
        self.capacity = float(capacity)
        self.rate = self.capacity / period_s
        self.level = self.capacity
        self.updated = now

    def __repr__(self) -> str:
        return f"TokenBucket(level={self.level:.1f}/{self.capacity:g}, rate={self.rate:g}/s)"

    def refill(self, now: float) -> None:
        """Add what flowed in since the last update."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` fits (after ``refill``); ``inf`` if it never can."""
        if amount > self.capacity:
            return math.inf
        short = amount - self.level
        return 0.0 if short <= _EPS * max(1.0, amount) else short / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """What is left now in one tier's buckets (for ``anthropic-ratelimit-*`` headers)."""

    requests_limit: int
    requests_remaining: int
    input_tokens_limit: int
    input_tokens_remaining: int
    output_tokens_limit: int
    output_tokens_remaining: int


class RateLimiter:
    """Requests, input-token and output-token buckets per key (a model tier), on one clock."""

    __slots__ = ("_buckets", "_refunds", "_seq")

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[TokenBucket, ...]] = {}  # (requests, input, output)
        self._refunds: list[tuple[float, int, str, int]] = []  # (due, seq, key, tokens)
        self._seq = 0

    def _get(self, key: str, limit: RateLimit, now: float) -> tuple[TokenBucket, ...]:
        buckets = self._buckets.get(key)
        if buckets is None:
            buckets = (TokenBucket(limit.rpm, now=now), TokenBucket(limit.itpm, now=now),
                       TokenBucket(limit.otpm, now=now))
            self._buckets[key] = buckets
        return buckets

    def _catch_up(self, key: str, buckets: tuple[TokenBucket, ...], now: float) -> None:
        # Refunds fall due in time order; refill up to each one so the cap applies correctly.
        while self._refunds and self._refunds[0][0] <= now:
            due, _, rkey, tokens = heapq.heappop(self._refunds)
            rb = self._buckets[rkey]
            for b in rb:
                b.refill(due)
            rb[2].give(tokens)
        for b in buckets:
            b.refill(now)

    def admit(self, key: str, limit: RateLimit, *, now: float, input_tokens: int,
              max_tokens: int) -> tuple[float, str]:
        """Admit one request now, or say how long to wait and which limit is short.

        Returns ``(0.0, "")`` and charges the buckets when the request fits; otherwise
        ``(wait_s, name)`` with ``name`` one of "requests", "input_tokens", "output_tokens"
        and charges nothing. ``wait_s`` is ``inf`` when the request exceeds a whole minute's
        limit and can never pass.
        """
        buckets = self._get(key, limit, now)
        self._catch_up(key, buckets, now)
        needs = (1, input_tokens, max_tokens)
        waits = [b.wait_s(n) for b, n in zip(buckets, needs)]
        if 0 < waits[2] < math.inf:  # output tokens come back early when running calls end
            waits[2] = self._output_wait(key, buckets[2], max_tokens, now)
        worst = max(range(3), key=waits.__getitem__)
        if waits[worst] > 0:
            return waits[worst], ("requests", "input_tokens", "output_tokens")[worst]
        for b, n in zip(buckets, needs):
            b.take(n)
        return 0.0, ""

    def _output_wait(self, key: str, bucket: TokenBucket, amount: float, now: float) -> float:
        """Seconds until ``amount`` output tokens fit, counting refunds still to come."""
        level, t = bucket.level, now
        for due, _, rkey, tokens in sorted(r for r in self._refunds if r[2] == key):
            fills_at = t + (amount - level) / bucket.rate
            if fills_at <= due:
                break
            level = min(bucket.capacity, level + (due - t) * bucket.rate + tokens)
            t = due
            if amount - level <= _EPS * max(1.0, amount):
                return t - now
        return t + max(0.0, amount - level) / bucket.rate - now

    def settle(self, key: str, *, at: float, estimated: int, actual: int) -> None:
        """Give back the output tokens reserved but not used, at time ``at`` (when the call ends)."""
        if estimated > actual:
            self._seq += 1
            heapq.heappush(self._refunds, (at, self._seq, key, estimated - actual))

    def status(self, key: str, limit: RateLimit, now: float) -> LimitStatus:
        """The limits and what remains of them at ``now``."""
        buckets = self._get(key, limit, now)
        self._catch_up(key, buckets, now)
        r, i, o = (max(0, int(b.level)) for b in buckets)
        return LimitStatus(limit.rpm, r, limit.itpm, i, limit.otpm, o)
