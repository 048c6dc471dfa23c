"""Retries, fallbacks, a circuit breaker per provider and timeouts, around any provider.

``Resilience(target)`` wraps anything with ``asend(call) -> Result`` (a provider, the
``Providers`` bundle) and answers the same way, after doing what a careful client does:

- retry only what a retry can fix: ``ProviderError.retryable`` (429, 500, 529, timeouts);
  never 400/401/404, never ``BudgetExceeded`` (not a provider error: it passes straight through);
- wait with exponential backoff and full jitter, ``uniform(0, min(cap, base * 2**n))``, so a
  crowd of clients spreads out instead of retrying in lock-step; a 429's ``retry_after`` is a
  floor (the provider said when to come back) plus a little jitter;
- when the wait would be long (a ``retry_after`` over ``fallback_after_s``, or an open breaker),
  switch to the next model of the fallback chain at once instead of waiting;
- stop a provider that keeps failing: a circuit breaker per provider (closed, open, half-open on
  the clock) turns calls away fast while it is open;
- bound everything: ``max_attempts`` per request across all models, a per-attempt ``timeout_s``
  and a per-request ``deadline_s``, so a request never loops and a fault never becomes a storm.

>>> policy = RetryPolicy(base_s=0.5, cap_s=8.0)
>>> [round(policy.base_s * 2 ** n, 1) for n in range(5)]   # the ceilings full jitter draws under
[0.5, 1.0, 2.0, 4.0, 8.0]
>>> 0.0 <= backoff_delay(3, base_s=0.5, cap_s=8.0, rng=random.Random(0)) <= 4.0
True
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from .breaker import BreakerConfig, CircuitBreaker
from ..clock import Clock, VirtualClock
from ..errors import ConfigError, ProviderError, ProviderTimeout, RateLimited
from ..events import Event, EventBus
from ..pricing import PriceCatalog, load_catalog
from ..providers.base import Call, Result, Sender

__all__ = ["RetryPolicy", "BreakerConfig", "CircuitBreaker", "CircuitOpen", "ResilienceStats",
           "Resilience", "backoff_delay", "retry_delay", "DEFAULT_FALLBACKS"]

# Fallbacks step down to a cheaper, faster model: an answer now beats a better answer later,
# and a downgrade never surprises the budget.
DEFAULT_FALLBACKS: Mapping[str, tuple[str, ...]] = {
    "claude-opus-5-5": ("claude-sonnet-5-5", "claude-haiku-5-5"),
    "claude-sonnet-5-5": ("claude-haiku-5-5",),
    "flux_dev": ("flux_schnell",),
}


class CircuitOpen(ProviderError):
    """503: the provider's circuit breaker is open; ``retry_after`` says when it lets a probe in."""

    status, error_type, retryable = 503, "overloaded_error", True

    def __init__(self, message: str, *, retry_after: float, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one request: attempts, backoff, when to fall back, time limits."""

    max_attempts: int = 4               # per request, all models together (first try included)
    base_s: float = 0.5                 # first backoff ceiling; doubles with each retry
    cap_s: float = 8.0                  # no backoff ceiling above this
    fallback_after_s: float = 5.0       # a longer retry-after or open breaker: fall back now
    timeout_s: float | None = 30.0      # one attempt; None waits for the provider's own timeout
    # Renders take minutes (a 5 s video ~75 s, queue included): a 30 s timeout would cut every
    # one of them off and retry it. Message Batches calls get no timeout: the API expires a
    # batch itself after 24 h.
    media_timeout_s: float | None = 600.0   # one attempt of a video or audio call
    deadline_s: float | None = 120.0    # the whole request, waits included

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_s < 0 or self.cap_s < self.base_s or self.fallback_after_s < 0:
            raise ConfigError("need 0 <= base_s <= cap_s and fallback_after_s >= 0")
        for name in ("timeout_s", "media_timeout_s", "deadline_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or None, got {value}")


def backoff_delay(retry: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Draw the wait before retry number ``retry`` (0 first): full jitter under an exponential cap."""
    return rng.uniform(0.0, min(cap_s, base_s * 2.0 ** retry))


def retry_delay(error: ProviderError, retry: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Return how long to wait after ``error``: its retry-after plus jitter, else backoff."""
    after = getattr(error, "retry_after", None)
    if after is not None and after > 0:
        # Everyone told "come back in 2 s" would come back in the same instant: spread them.
        return after + rng.uniform(0.0, policy.base_s)
    return backoff_delay(retry, base_s=policy.base_s, cap_s=policy.cap_s, rng=rng)


@dataclass
class ResilienceStats:
    """What the resilience layer did, for dashboards and checks."""

    requests: int = 0
    attempts: int = 0          # calls sent, plus calls turned away by an open breaker
    retries: int = 0           # waits followed by another attempt
    fallbacks: int = 0
    timeouts: int = 0          # attempts cut off by timeout_s
    rejected: int = 0          # attempts refused by an open breaker
    breaker_opens: int = 0
    succeeded: int = 0
    failed: int = 0            # requests that ended with an error
    cancelled: int = 0         # requests their caller closed (a tied copy that lost its race)
    waited_s: float = 0.0      # total backoff time, all requests
    max_attempts_per_request: int = 0


@dataclass
class _Request:
    call: Call
    started: float
    chain: list[str]           # fallback models not tried yet, in order
    attempts: int = 0
    retries: int = 0


class Resilience:
    """Send calls through ``target`` with retries, fallbacks, breakers and timeouts."""

    def __init__(self, target: Sender, *, policy: RetryPolicy | None = None,
                 breaker: BreakerConfig | None = None,
                 fallbacks: Mapping[str, Sequence[str]] = DEFAULT_FALLBACKS,
                 clock: Clock | None = None, catalog: PriceCatalog | None = None,
                 seed: int = 0, bus: EventBus | None = None) -> None:
        self.target = target
        self.policy = policy if policy is not None else RetryPolicy()
        self.breaker_config = breaker if breaker is not None else BreakerConfig()
        self.clock: Clock = clock or getattr(target, "clock", None) or VirtualClock()
        self.catalog = catalog or getattr(target, "catalog", None) or load_catalog()
        self.fallbacks = {self.catalog.model(k).id: tuple(self.catalog.model(m).id for m in v)
                          for k, v in fallbacks.items()}
        self.bus = bus
        self.stats = ResilienceStats()
        self.breakers: dict[str, CircuitBreaker] = {}
        self._rng = random.Random(seed)

    def __repr__(self) -> str:
        return f"Resilience({self.target!r}, policy={self.policy!r})"

    def breaker(self, provider: str) -> CircuitBreaker:
        """The circuit breaker of ``provider`` (created closed on first use)."""
        if provider not in self.breakers:
            self.breakers[provider] = CircuitBreaker(provider, self.breaker_config, self.clock)
        return self.breakers[provider]

    def send(self, call: Call) -> Result:
        """Blocking form of ``asend`` for scripts: run it on the clock's own loop."""
        if isinstance(self.clock, VirtualClock):
            return self.clock.run(self.asend(call))
        return asyncio.run(self.asend(call))

    async def asend(self, call: Call) -> Result:
        """Send ``call``; return the first result, or raise the error that ended the tries."""
        model = self.catalog.model(call.model).id
        req = _Request(call, self.clock.now(), list(self.fallbacks.get(model, ())))
        self.stats.requests += 1
        try:
            return await self._tries(req)
        except asyncio.CancelledError:   # closed by its caller, while sent or waiting to retry
            self.stats.cancelled += 1
            raise

    async def _tries(self, req: "_Request") -> Result:
        while True:
            try:
                result = await self._attempt(req)
            except ProviderError as error:
                step, value = self._decide(req, error)
                if step == "raise":
                    self.stats.failed += 1
                    self._publish("gave_up", req, error)
                    raise
                if step == "fallback":
                    self._publish("fallback", req, error, to=value)
                    req.call = replace(req.call, model=value)
                    continue
                self.stats.retries += 1
                self.stats.waited_s += value
                req.retries += 1
                self._publish("retry", req, error, wait_s=value)
                await self.clock.asleep(value)
            else:
                self.stats.succeeded += 1
                return result
            finally:
                self.stats.max_attempts_per_request = max(self.stats.max_attempts_per_request,
                                                          req.attempts)

    async def _attempt(self, req: _Request) -> Result:
        call = req.call
        provider = self.catalog.model(call.model).provider
        breaker = self.breaker(provider)
        req.attempts += 1
        self.stats.attempts += 1
        if not breaker.allow():
            self.stats.rejected += 1
            raise CircuitOpen(f"{provider} circuit open; next probe in {breaker.retry_in():.1f} s",
                              retry_after=breaker.retry_in(), provider=provider, model=call.model)
        timeout = self._timeout(call)
        if timeout is not None:
            timeout /= getattr(self.clock, "time_scale", 1.0)  # loop time runs unscaled
        try:
            result = await asyncio.wait_for(self.target.asend(call), timeout)
        except asyncio.TimeoutError:
            self.stats.timeouts += 1
            self._record(breaker, False)
            limit = self._timeout(call) or 0.0
            raise ProviderTimeout(f"{provider} {call.model}: no answer within {limit:g} s",
                                  provider=provider, model=call.model, after_s=limit) from None
        except ProviderError as error:
            # Only server-side trouble speaks about the provider's health (see CircuitBreaker).
            if error.retryable and not isinstance(error, RateLimited):
                self._record(breaker, False)
            elif breaker.state == breaker.HALF_OPEN:
                self._record(breaker, True)   # it answered: release the probe slot
            raise
        except BaseException:  # cancelled, or a local error such as BudgetExceeded
            breaker.release()
            raise
        self._record(breaker, True)
        return result

    def _timeout(self, call: Call) -> float | None:
        if call.batch:
            return None
        if self.catalog.model(call.model).kind in ("video", "audio"):
            return self.policy.media_timeout_s
        return self.policy.timeout_s

    def _record(self, breaker: CircuitBreaker, ok: bool) -> None:
        if breaker.record(ok):
            self.stats.breaker_opens += 1
            if self.bus is not None:
                self.bus.publish(Event(self.clock.now(), "alert", "breaker_open",
                                       data={"provider": breaker.name}))

    def _decide(self, req: _Request, error: ProviderError) -> tuple[str, Any]:
        """Choose what follows ``error``: ("raise", None), ("fallback", model) or ("wait", s)."""
        if not error.retryable:
            return "raise", None
        if req.attempts >= self.policy.max_attempts:
            return "raise", None
        after = getattr(error, "retry_after", None)
        if isinstance(error, CircuitOpen):  # the same provider's models share its breaker
            req.chain = [m for m in req.chain if self.catalog.model(m).provider != error.provider]
        if after is not None and after > self.policy.fallback_after_s and req.chain:
            self.stats.fallbacks += 1
            return "fallback", req.chain.pop(0)
        wait = retry_delay(error, req.retries, self.policy, self._rng)
        deadline = self.policy.deadline_s
        if deadline is not None and self.clock.now() + wait - req.started > deadline:
            return "raise", None
        return "wait", wait

    def _publish(self, name: str, req: _Request, error: ProviderError, **data: Any) -> None:
        if self.bus is not None:
            # kind "retry": one attempt failed; whether the request failed is its caller's event
            self.bus.publish(Event(self.clock.now(), "retry", name, data={
                "stage": "batching", "model": req.call.model, "status": error.status,
                "attempt": req.attempts, **data}))
