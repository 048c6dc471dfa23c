"""Contract tests every simulated provider passes, injected fault rates, concurrency, the bundle."""
from __future__ import annotations

import asyncio
import math

import pytest

from cfopt.clock import VirtualClock
from cfopt.errors import (ConfigError, NotFound, Overloaded, ProviderError, ProviderTimeout,
                          RateLimited, ServerError)
from cfopt.pricing import load_catalog
from cfopt.providers import (Call, ClaudeProvider, FalProvider, Faults, Provider, Providers,
                             Result, UnsplashProvider)

CASES = {
    "claude": (ClaudeProvider, Call("haiku", "Write a product description for a steel water bottle.")),
    "fal-image": (FalProvider, Call("flux_schnell", "a steel water bottle on a rock", width=768, height=768)),
    "fal-video": (FalProvider, Call("video_5s", "a steel water bottle rolling downhill")),
    "fal-audio": (FalProvider, Call("audio_minute", "upbeat ukulele jingle", minutes=0.5)),
    "unsplash": (UnsplashProvider, Call("unsplash-search", "water bottle")),
}


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]


def outcomes(cls, call, seed, n=5, faults=None):
    """The results (or error classes) of ``n`` sends of ``call``, on a fresh clock."""
    p = cls(seed=seed, clock=VirtualClock(), faults=faults)
    out = []
    for _ in range(n):
        try:
            out.append(p.send(call))
        except ProviderError as e:
            out.append((type(e).__name__, round(e.after_s, 9)))
    return out


# --- the contract -------------------------------------------------------------------------
def test_a_result_is_complete_and_priced_by_the_catalog(case):
    cls, call = case
    clock = VirtualClock(start=100.0)
    p = cls(seed=1, clock=clock)
    r = p.send(call)
    assert isinstance(r, Result) and isinstance(p, Provider)
    assert r.provider == p.name and r.kind in p.kinds
    assert r.model == p.catalog.model(call.model).id
    assert r.started_at == 100.0
    assert 0 < r.first_content_s <= r.latency_s
    assert clock.now() == pytest.approx(100.0 + r.latency_s)  # send waits on the clock
    assert r.cost_usd == p.catalog.cost(r.model, r.usage)
    assert r.content and r.request_id


def test_same_seed_same_outcomes_other_seed_differs(case):
    cls, call = case
    faults = Faults(server_error=0.3)
    a, b = outcomes(cls, call, 7, faults=faults), outcomes(cls, call, 7, faults=faults)
    assert a == b
    c = outcomes(cls, call, 8, faults=faults)
    assert a != c


def test_same_request_gets_the_same_content(case):
    cls, call = case
    p = cls(seed=5, clock=VirtualClock())
    first, second = p.send(call), p.send(call)
    assert first.content == second.content
    assert first.latency_s != second.latency_s  # the weather differs per call, the answer does not


def test_an_unknown_model_is_not_found_and_named(case):
    cls, _ = case
    with pytest.raises(NotFound, match="'gpt-5'.*known") as e:
        cls().simulate(Call("gpt-5", "hello"))
    assert e.value.status == 404 and not e.value.retryable


def test_a_model_of_another_provider_is_not_found(case):
    cls, call = case
    other = "unsplash-search" if cls is not UnsplashProvider else "haiku"
    with pytest.raises(NotFound):
        cls().simulate(Call(other, call.prompt))


def test_simulate_does_not_move_the_clock(case):
    cls, call = case
    clock = VirtualClock()
    cls(clock=clock).simulate(call)
    assert clock.now() == 0.0


def test_slowdown_multiplies_latency(case):
    cls, call = case
    normal = cls(seed=2, clock=VirtualClock()).simulate(call)
    slow = cls(seed=2, clock=VirtualClock(), faults=Faults(slowdown=3.0)).simulate(call)
    assert slow.latency_s == pytest.approx(3 * normal.latency_s)


# --- injected faults ----------------------------------------------------------------------
def _observed_rates(provider: Provider, call: Call, n: int, gap_s: float) -> dict[str, int]:
    counts = {"RateLimited": 0, "Overloaded": 0, "ServerError": 0, "ProviderTimeout": 0, "ok": 0}
    for _ in range(n):
        try:
            provider.simulate(call)
            counts["ok"] += 1
        except ProviderError as e:
            counts[type(e).__name__] += 1
        provider.clock.advance(gap_s)
    return counts


@pytest.mark.parametrize("cls, call", [CASES["claude"], CASES["fal-image"], CASES["unsplash"]],
                         ids=["claude", "fal", "unsplash"])
def test_injected_error_rates_land_within_four_sigma(cls, call):
    n = 20_000
    faults = Faults(rate_limited=0.05, overloaded=0.20, server_error=0.02, timeout=0.01)
    # 0.1 s apart: 600 calls a minute, far under every real rate limit, so only faults fail
    # (Unsplash's list limit is 50 an hour: the exercise profile, which only bills past it, here).
    extra = {"catalog": load_catalog("exercise")} if cls is UnsplashProvider else {}
    counts = _observed_rates(cls(seed=11, clock=VirtualClock(), faults=faults, **extra), call, n, gap_s=0.1)
    for name, rate in [("RateLimited", 0.05), ("Overloaded", 0.20), ("ServerError", 0.02),
                       ("ProviderTimeout", 0.01), ("ok", 1 - faults.total)]:
        sigma = math.sqrt(n * rate * (1 - rate))
        assert abs(counts[name] - n * rate) <= 4 * sigma, (name, counts[name], n * rate)


def test_injected_errors_carry_their_status_and_timing():
    faults = Faults(rate_limited=0.25, overloaded=0.25, server_error=0.25, timeout=0.25,
                    retry_after_s=7.5, timeout_s=30.0)
    p = ClaudeProvider(seed=4, clock=VirtualClock(), faults=faults)
    seen: dict[type, ProviderError] = {}
    for _ in range(200):
        try:
            p.simulate(Call("sonnet", "hello"))
        except ProviderError as e:
            seen.setdefault(type(e), e)
        p.clock.advance(1.0)
    assert set(seen) == {RateLimited, Overloaded, ServerError, ProviderTimeout}
    assert seen[RateLimited].retry_after == 7.5 and seen[RateLimited].status == 429
    assert seen[Overloaded].status == 529 and seen[ServerError].status == 500
    assert seen[ProviderTimeout].after_s == 30.0
    assert all(e.retryable and e.after_s > 0 and e.model == "claude-sonnet-5-5" for e in seen.values())


def test_a_failed_send_still_costs_its_time():
    clock = VirtualClock()
    p = ClaudeProvider(clock=clock, faults=Faults(timeout=1.0, timeout_s=45.0))
    with pytest.raises(ProviderTimeout):
        p.send(Call("haiku", "hello"))
    assert clock.now() == pytest.approx(45.0)


def test_zero_fault_rates_never_fail():
    counts = _observed_rates(FalProvider(seed=1, clock=VirtualClock()), CASES["fal-image"][1], 2_000, 0.1)
    assert counts["ok"] == 2_000


def test_impossible_fault_rates_are_refused():
    with pytest.raises(ConfigError):
        Faults(overloaded=0.7, server_error=0.5)
    with pytest.raises(ConfigError):
        Faults(slowdown=0)


# --- concurrency on virtual time ----------------------------------------------------------
def test_concurrent_asends_overlap_instead_of_adding_up():
    clock = VirtualClock()
    providers = Providers(seed=3, clock=clock)
    calls = [Call(("haiku", "sonnet", "opus")[i % 3], f"Write a short note about topic number {i}.")
             for i in range(100)]

    async def main():
        return await asyncio.gather(*(providers.asend(c) for c in calls))
    results = clock.run(main())
    longest = max(r.latency_s for r in results)
    assert clock.now() == pytest.approx(longest)
    assert clock.now() < sum(r.latency_s for r in results) / 20


def test_concurrent_asends_with_errors_raise_for_those_calls_only():
    clock = VirtualClock()
    fal = FalProvider(seed=1, clock=clock, faults=Faults(server_error=0.5))

    async def main():
        return await asyncio.gather(*(fal.asend(Call("flux_schnell", f"cat {i}")) for i in range(50)),
                                    return_exceptions=True)
    out = clock.run(main())
    errors = [o for o in out if isinstance(o, ServerError)]
    assert 10 < len(errors) < 40 and len(errors) + sum(isinstance(o, Result) for o in out) == 50


# --- the bundle ---------------------------------------------------------------------------
def test_bundle_routes_models_to_their_providers():
    p = Providers(seed=0)
    assert p.for_model("haiku") is p.claude and p.for_model("claude-opus-5-5") is p.claude
    assert p.for_model("flux_dev") is p.fal and p.for_model("video_5s") is p.fal
    assert p.for_model("unsplash-search") is p.unsplash
    assert list(p) == [p.claude, p.fal, p.unsplash]
    with pytest.raises(NotFound, match="'dall-e'"):
        p.for_model("dall-e")


def test_bundle_shares_one_clock_and_catalog():
    clock = VirtualClock()
    p = Providers(seed=0, clock=clock, profile="list-2026", rate_tier="start")
    assert all(q.clock is clock and q.catalog is p.catalog for q in p)
    assert p.catalog.profile == "list-2026" and p.catalog.rate_tier == "start"
    r = p.send(Call("flux_schnell", "a kite"))
    assert clock.now() == pytest.approx(r.latency_s)
    assert "profile='list-2026'" in repr(p)


def test_bundle_derives_distinct_seeds_and_is_reproducible():
    a, b = Providers(seed=9), Providers(seed=9)
    assert len({a.claude.seed, a.fal.seed, a.unsplash.seed}) == 3
    assert (a.claude.seed, a.fal.seed) == (b.claude.seed, b.fal.seed)
    assert Providers(seed=10).claude.seed != a.claude.seed
    call = Call("sonnet", "Explain prompt caching.")
    assert a.send(call) == b.send(call)


def test_bundle_takes_faults_per_provider():
    only_fal = Faults(server_error=1.0)
    p = Providers(seed=0, faults={"fal": only_fal, "claude": Faults(overloaded=1.0)})
    assert p.fal.faults is only_fal and p.unsplash.faults == Faults()
    with pytest.raises(Overloaded):
        p.send(Call("haiku", "hi"))
    with pytest.raises(ServerError):
        p.send(Call("flux_dev", "hi"))
    p.send(Call("unsplash-search", "hi"))
    everyone = Providers(faults=Faults(timeout=0.5))
    assert all(q.faults == Faults(timeout=0.5) for q in everyone)
    with pytest.raises(ConfigError, match="unknown provider 'openai'"):
        Providers(faults={"openai": Faults()})
    with pytest.raises(ConfigError, match="must be a Faults"):
        Providers(faults={"fal": 0.5})


def test_bundle_rejects_an_unknown_profile_or_tier():
    with pytest.raises(ConfigError, match="profile"):
        Providers(profile="list-1999")
    with pytest.raises(ConfigError, match="rate tier"):
        Providers(rate_tier="tier-9")


def test_catalog_is_shared_not_reloaded():
    assert Providers().catalog is load_catalog()
