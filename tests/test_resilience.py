"""Resilience: what is retried, how long it waits, when it falls back, breakers and bounds."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from cfopt.clock import VirtualClock
from cfopt.errors import (BudgetExceeded, ConfigError, InvalidRequest, NotFound, Overloaded,
                          ProviderError, ProviderTimeout, RateLimited, ServerError)
from cfopt.events import EventBus
from cfopt.pricing import Usage, load_catalog
from cfopt.providers.base import Call, Result
from cfopt.batching.resilience import (BreakerConfig, CircuitBreaker, Resilience, RetryPolicy,
                              backoff_delay, retry_delay)

CATALOG = load_catalog()


class Scripted:
    """A provider whose outcomes the test writes: per model, a list of errors or "ok"."""

    def __init__(self, clock, script=None, latency=0.5, default="ok"):
        self.clock, self.catalog = clock, CATALOG
        self.script = {CATALOG.model(k).id: list(v) for k, v in (script or {}).items()}
        self.latency, self.default = latency, default
        self.calls: list[tuple[float, str]] = []

    async def asend(self, call: Call) -> Result:
        model = CATALOG.model(call.model)
        self.calls.append((self.clock.now(), model.id))
        queue = self.script.get(model.id, [])
        outcome = queue.pop(0) if queue else self.default
        if isinstance(outcome, ProviderError):
            await self.clock.asleep(outcome.after_s)
            raise outcome
        if isinstance(outcome, (int, float)):  # a hang of this many seconds, then an answer
            await self.clock.asleep(outcome)
        else:
            await self.clock.asleep(self.latency)
        return Result(model.provider, model.id, model.kind, f"answer to {call.prompt}", Usage(),
                      0.0, self.latency, self.latency, self.clock.now() - self.latency)


def run(clock, coro):
    return clock.run(coro)


def test_policy_and_breaker_config_refuse_impossible_values():
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError):
        RetryPolicy(base_s=2, cap_s=1)
    with pytest.raises(ConfigError):
        BreakerConfig(window_s=0)
    assert "max_attempts=4" in repr(RetryPolicy())


def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling():
    rng = random.Random(1)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 8.0)]:
        draws = [backoff_delay(retry, base_s=0.5, cap_s=8.0, rng=rng) for _ in range(2000)]
        assert 0 <= min(draws) and max(draws) <= ceiling
        assert max(draws) > 0.95 * ceiling and min(draws) < 0.05 * ceiling   # the full range
        assert abs(sum(draws) / len(draws) - ceiling / 2) < 0.05 * ceiling   # uniform mean


def test_retry_after_is_a_floor_with_a_little_jitter():
    rng, policy = random.Random(2), RetryPolicy(base_s=0.5)
    e = RateLimited("slow down", retry_after=3.0)
    waits = [retry_delay(e, 0, policy, rng) for _ in range(500)]
    assert min(waits) >= 3.0 and max(waits) <= 3.5 and len(set(waits)) > 400


def test_transient_errors_are_retried_until_success():
    clock = VirtualClock()
    fake = Scripted(clock, {"haiku": [ServerError("boom", after_s=1.0), Overloaded("busy", after_s=0.2)]})
    res = Resilience(fake, clock=clock, seed=0)
    result = run(clock, res.asend(Call("haiku", "hi")))
    assert result.model == "claude-haiku-5-5"
    assert (res.stats.attempts, res.stats.retries, res.stats.succeeded) == (3, 2, 1)
    # the clock moved by the failures, the two backoff waits and the answer: nothing is free
    assert clock.now() == pytest.approx(1.0 + 0.2 + res.stats.waited_s + 0.5)


@pytest.mark.parametrize("error", [InvalidRequest("bad", after_s=0.1), NotFound("no model"),
                                   ProviderError("401 key", after_s=0.1)])
def test_client_errors_are_never_retried(error):
    clock = VirtualClock()
    fake = Scripted(clock, {"haiku": [error]})
    res = Resilience(fake, clock=clock)
    with pytest.raises(type(error)):
        run(clock, res.asend(Call("haiku", "hi")))
    assert len(fake.calls) == 1 and res.stats.retries == 0 and res.stats.failed == 1


def test_budget_exceeded_passes_straight_through():
    clock = VirtualClock()

    class Broke(Scripted):
        async def asend(self, call):
            self.calls.append((clock.now(), call.model))
            raise BudgetExceeded("daily", 50.0, 50.0, 0.01)
    fake = Broke(clock)
    res = Resilience(fake, clock=clock)
    with pytest.raises(BudgetExceeded):
        run(clock, res.asend(Call("haiku", "hi")))
    assert len(fake.calls) == 1


def test_retries_are_bounded_per_request():
    clock = VirtualClock()
    fake = Scripted(clock, default=ServerError("down", after_s=0.1))
    res = Resilience(fake, clock=clock, policy=RetryPolicy(max_attempts=3, deadline_s=None),
                     breaker=BreakerConfig(min_calls=100))
    with pytest.raises(ServerError):
        run(clock, res.asend(Call("haiku", "hi")))
    assert len(fake.calls) == 3 and res.stats.max_attempts_per_request == 3


def test_deadline_stops_retrying_before_a_wait_that_would_pass_it():
    clock = VirtualClock()
    fake = Scripted(clock, default=RateLimited("429", retry_after=4.0, after_s=0.1))
    res = Resilience(fake, clock=clock, policy=RetryPolicy(max_attempts=50, deadline_s=10.0),
                     fallbacks={})
    with pytest.raises(RateLimited):
        run(clock, res.asend(Call("haiku", "hi")))
    assert clock.now() <= 10.0 and len(fake.calls) == 3   # t=0, ~4.1, ~8.3; a 4th would pass 10 s


def test_long_retry_after_falls_back_to_the_next_model_instead_of_waiting():
    clock = VirtualClock()
    fake = Scripted(clock, {"sonnet": [RateLimited("429", retry_after=60.0, after_s=0.1)]})
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    res = Resilience(fake, clock=clock, bus=bus, policy=RetryPolicy(fallback_after_s=5.0))
    result = run(clock, res.asend(Call("sonnet", "hi")))
    assert result.model == "claude-haiku-5-5" and res.stats.fallbacks == 1
    assert clock.now() == pytest.approx(0.1 + 0.5)        # no 60 s wait
    assert [e.name for e in seen] == ["fallback"] and seen[0].data["to"] == "claude-haiku-5-5"


def test_short_retry_after_waits_on_the_same_model():
    clock = VirtualClock()
    fake = Scripted(clock, {"sonnet": [RateLimited("429", retry_after=2.0, after_s=0.1)]})
    res = Resilience(fake, clock=clock)
    result = run(clock, res.asend(Call("sonnet", "hi")))
    assert result.model == "claude-sonnet-5-5" and res.stats.fallbacks == 0
    assert fake.calls[1][0] >= 2.1


def test_long_retry_after_without_fallback_waits_if_the_deadline_allows():
    clock = VirtualClock()
    fake = Scripted(clock, {"haiku": [RateLimited("429", retry_after=20.0, after_s=0.1)]})
    res = Resilience(fake, clock=clock)
    assert run(clock, res.asend(Call("haiku", "hi"))).model == "claude-haiku-5-5"
    assert fake.calls[1][0] >= 20.1


def test_a_hung_call_is_cut_off_by_the_timeout_and_retried():
    clock = VirtualClock()
    fake = Scripted(clock, {"haiku": [300.0]})      # the first call hangs for 5 minutes
    res = Resilience(fake, clock=clock, policy=RetryPolicy(timeout_s=10.0))
    result = run(clock, res.asend(Call("haiku", "hi")))
    assert result.model == "claude-haiku-5-5" and res.stats.timeouts == 1
    assert clock.now() < 10.0 + 0.5 + 0.5 + 0.01     # timeout + first backoff (<= 0.5) + answer


def test_breaker_opens_after_failures_half_opens_on_the_clock_and_closes_on_a_probe():
    clock = VirtualClock()
    b = CircuitBreaker("anthropic", BreakerConfig(window_s=10, min_calls=4, failure_ratio=0.5,
                                                   open_s=30), clock)
    for ok in (True, False, True):
        assert b.allow() and not b.record(ok)
    assert b.allow() and b.record(False) and b.state == "open" and b.opens == 1  # 2 of 4 sent
    assert not b.allow() and b.retry_in() == 30
    clock.advance(29.9)
    assert b.state == "open"
    clock.advance(0.1)
    assert b.state == "half-open" and b.allow() and not b.allow()    # one probe at a time
    assert b.record(False) and b.state == "open" and b.opens == 2    # a failed probe reopens
    clock.advance(30)
    assert b.allow() and not b.record(True) and b.state == "closed"


def test_failures_older_than_the_window_are_forgotten():
    clock = VirtualClock()
    b = CircuitBreaker("fal", BreakerConfig(window_s=10, min_calls=4, failure_ratio=0.5), clock)
    for _ in range(3):
        assert b.allow() and not b.record(False)       # 3 failures of 3 sent: too few to judge
    clock.advance(11)
    for _ in range(4):
        assert b.allow()
    assert not b.record(False) and b.state == "closed"   # 1 of 4 sent in the window


def test_a_burst_whose_errors_come_back_first_does_not_open_the_breaker():
    clock = VirtualClock()
    b = CircuitBreaker("anthropic", BreakerConfig(min_calls=20), clock)
    for _ in range(2000):
        assert b.allow()
    # 15% fail, and every failure returns before any answer does
    assert not any(b.record(False) for _ in range(300)) and b.state == "closed"


def test_rate_limits_and_client_errors_do_not_open_the_breaker():
    clock = VirtualClock()
    script = [RateLimited("429", retry_after=0.1), InvalidRequest("bad")] * 20
    fake = Scripted(clock, {"haiku": script})
    res = Resilience(fake, clock=clock, breaker=BreakerConfig(min_calls=4))

    async def many():
        for _ in range(20):
            try:
                await res.asend(Call("haiku", "hi"))
            except ProviderError:
                pass
    run(clock, many())
    assert res.stats.breaker_opens == 0 and res.breaker("anthropic").state == "closed"


def test_open_breaker_turns_calls_away_without_reaching_the_provider():
    clock = VirtualClock()
    fake = Scripted(clock, default=ServerError("down", after_s=0.1))
    res = Resilience(fake, clock=clock, fallbacks={},
                     policy=RetryPolicy(max_attempts=2, fallback_after_s=5.0, deadline_s=20.0),
                     breaker=BreakerConfig(min_calls=4, open_s=60))

    async def many():
        outcomes = []
        for _ in range(10):
            try:
                await res.asend(Call("haiku", "hi"))
            except ProviderError as e:
                outcomes.append(type(e).__name__)
        return outcomes
    outcomes = run(clock, many())
    assert res.stats.breaker_opens == 1 and len(fake.calls) == 4
    assert Counter(outcomes) == Counter({"ServerError": 2, "CircuitOpen": 8})
    # each of the 8 is turned away once: a 60 s wait for the probe would pass the 20 s deadline
    assert res.stats.rejected == 8 and res.stats.retries == 2


def test_open_breaker_skips_fallbacks_behind_the_same_breaker():
    clock = VirtualClock()
    fake = Scripted(clock, {"flux_dev": [ServerError("down", after_s=0.1)] * 4})
    res = Resilience(fake, clock=clock, policy=RetryPolicy(max_attempts=2),
                     breaker=BreakerConfig(min_calls=4, open_s=60))

    async def go():
        for _ in range(2):
            with pytest.raises(ServerError):
                await res.asend(Call("flux_dev", "a cat"))
        return await res.asend(Call("flux_dev", "a cat"))
    result = run(clock, go())
    # fal's breaker is open; flux_schnell is also fal, so falling back there would only be
    # turned away too: the request waits for the half-open probe and gets flux_dev's answer.
    assert res.breaker("fal").opens == 1 and res.stats.fallbacks == 0
    assert result.model == "flux_dev" and fake.calls[-1][0] >= 60
    assert [m for _, m in fake.calls] == ["flux_dev"] * 5


def test_fault_storm_stays_bounded_and_every_request_ends_once():
    clock = VirtualClock()
    rng = random.Random(7)

    class Flaky(Scripted):
        async def asend(self, call):
            self.calls.append((clock.now(), call.model))
            await clock.asleep(0.2)
            u = rng.random()
            if u < 0.1:
                raise RateLimited("429", retry_after=rng.choice([1.0, 30.0]), provider="anthropic")
            if u < 0.2:
                raise Overloaded("529", provider="anthropic")
            if u < 0.25:
                raise ProviderTimeout("timeout", provider="anthropic")
            return await Scripted.asend(self, call)
    fake = Flaky(clock)
    policy = RetryPolicy(max_attempts=4)
    res = Resilience(fake, clock=clock, policy=policy, seed=3)

    async def one(i):
        try:
            return await res.asend(Call("sonnet", f"q{i}"))
        except ProviderError as e:
            return e
    import asyncio

    async def all_():
        return await asyncio.gather(*(one(i) for i in range(2000)))
    outs = run(clock, all_())
    ok = sum(isinstance(o, Result) for o in outs)
    assert len(outs) == 2000 and ok + res.stats.failed == 2000 == res.stats.requests
    assert res.stats.max_attempts_per_request <= policy.max_attempts
    assert res.stats.attempts <= 2000 * policy.max_attempts
    assert ok / 2000 > 0.99          # 25% failing per attempt, 4 attempts: ~0.4% lost at most
    assert res.stats.fallbacks > 0 and res.stats.retries > 0


def test_same_seed_same_waits():
    def waits(seed):
        clock = VirtualClock()
        fake = Scripted(clock, {"haiku": [ServerError("x")] * 3})
        res = Resilience(fake, clock=clock, seed=seed)
        run(clock, res.asend(Call("haiku", "hi")))
        return [t for t, _ in fake.calls]
    assert waits(1) == waits(1) != waits(2)


def test_slow_media_and_batch_calls_get_the_timeouts_their_kind_needs():
    clock = VirtualClock()
    fake = Scripted(clock, {"video_5s": [75.0, 700.0], "haiku": [900.0]})
    res = Resilience(fake, clock=clock, policy=RetryPolicy(timeout_s=30, media_timeout_s=600))

    async def go():
        video = await res.asend(Call("video_5s", "waves"))              # a 75 s render is normal
        batch = await res.asend(Call("haiku", "digest", batch=True))     # a 15 min batch too
        return video, batch, res.stats.timeouts
    video, batch, timeouts = run(clock, go())
    assert video.model == "video_5s" and batch.model == "claude-haiku-5-5" and timeouts == 0
    with pytest.raises(ProviderTimeout):       # 700 s: cut at 600, and the 120 s deadline is past
        run(clock, res.asend(Call("video_5s", "waves")))
    assert res.stats.timeouts == 1 and len(fake.calls) == 3
