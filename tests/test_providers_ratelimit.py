"""The Anthropic-style token buckets on their own."""
from __future__ import annotations

import math

import pytest

from cfopt.pricing import RateLimit
from cfopt.providers.ratelimit import RateLimiter, TokenBucket

TIER = RateLimit(rpm=60, itpm=6_000, otpm=1_200)


def test_bucket_refills_continuously_up_to_capacity():
    b = TokenBucket(60, now=0.0)
    b.take(60)
    b.refill(10.0)
    assert b.level == pytest.approx(10.0)
    b.refill(1_000.0)
    assert b.level == 60.0
    assert b.wait_s(61) == math.inf


def test_wait_is_exact():
    b = TokenBucket(120, now=0.0)   # 2 per second
    b.take(120)
    assert b.wait_s(5) == pytest.approx(2.5)
    b.refill(2.5)
    assert b.wait_s(5) == 0.0


def test_limiter_names_the_limit_that_is_short():
    lim = RateLimiter()
    assert lim.admit("m", TIER, now=0, input_tokens=5_900, max_tokens=10) == (0.0, "")
    wait, which = lim.admit("m", TIER, now=0, input_tokens=200, max_tokens=10)
    assert which == "input_tokens" and wait == pytest.approx((200 - 100) / 100)  # 100 tokens/s refill
    wait, which = lim.admit("m", TIER, now=0, input_tokens=10, max_tokens=1_500)
    assert which == "output_tokens" and wait == math.inf


def test_refused_requests_are_not_charged():
    lim = RateLimiter()
    lim.admit("m", TIER, now=0, input_tokens=6_000, max_tokens=10)
    for _ in range(10):
        assert lim.admit("m", TIER, now=0, input_tokens=100, max_tokens=10)[0] > 0
    assert lim.status("m", TIER, 0).requests_remaining == 59


def test_output_refund_arrives_when_the_call_ends():
    lim = RateLimiter()
    lim.admit("m", TIER, now=0, input_tokens=10, max_tokens=1_000)
    lim.settle("m", at=5.0, estimated=1_000, actual=100)
    assert lim.status("m", TIER, 4.0).output_tokens_remaining == 200 + 80   # refill 20/s only
    assert lim.status("m", TIER, 5.0).output_tokens_remaining == 200 + 100 + 900


def test_keys_are_independent():
    lim = RateLimiter()
    for _ in range(60):
        lim.admit("haiku", TIER, now=0, input_tokens=1, max_tokens=1)
    assert lim.admit("haiku", TIER, now=0, input_tokens=1, max_tokens=1)[1] == "requests"
    assert lim.admit("sonnet", TIER, now=0, input_tokens=1, max_tokens=1) == (0.0, "")


def test_waiting_exactly_retry_after_is_enough():
    lim = RateLimiter()
    t = 0.0
    for _ in range(500):
        wait, _ = lim.admit("m", TIER, now=t, input_tokens=37, max_tokens=11)
        if wait:
            t += wait
            assert lim.admit("m", TIER, now=t, input_tokens=37, max_tokens=11) == (0.0, "")


def test_retry_after_counts_refunds_still_to_come():
    lim = RateLimiter()
    lim.admit("m", TIER, now=0, input_tokens=10, max_tokens=1_200)   # all of OTPM reserved
    lim.settle("m", at=3.0, estimated=1_200, actual=200)              # 1,000 back at t=3
    wait, which = lim.admit("m", TIER, now=1.0, input_tokens=10, max_tokens=500)
    assert which == "output_tokens" and wait == pytest.approx(2.0)   # not 500 / 20 = 25 s
    assert lim.admit("m", TIER, now=1.0 + wait, input_tokens=10, max_tokens=500) == (0.0, "")
    lim2 = RateLimiter()
    lim2.admit("m", TIER, now=0, input_tokens=10, max_tokens=1_200)
    lim2.settle("m", at=30.0, estimated=1_200, actual=1_100)          # too late and too small
    wait, _ = lim2.admit("m", TIER, now=0, input_tokens=10, max_tokens=200)
    assert wait == pytest.approx(10.0)                                # refill alone: 200 / 20
