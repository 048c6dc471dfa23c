"""Simulated Claude: tokens, answers, lengths, latency, prompt caching, batches, rate limits."""
from __future__ import annotations

import asyncio
import statistics

import pytest

from catalog_support import tight_catalog

from cfopt.clock import VirtualClock
from cfopt.errors import InvalidRequest, NotFound, RateLimited
from cfopt.pricing import load_catalog
from cfopt.providers import Call, ClaudeProvider, DEFAULT_MAX_TOKENS, Faults
from cfopt.tokens import count_tokens

TASKS = ["Write a blog post about {t}.", "Write a tagline for a company that sells {t}.",
         "Summarize the main benefits of {t} in 3 sentences.", "Give me five tips on {t}.",
         "Write a product description for {t} in 120 words.", "Draft a tweet announcing {t}.",
         "Explain {t} to a beginner in a detailed, step-by-step guide.", "What is {t}?",
         "Write a short email to customers about {t}.", "List 7 headline ideas about {t}.",
         "Compare {t} with the alternatives; include pros and cons.",
         "Réécris ce texte sur « {t} » en français, s'il te plaît!"]
TOPICS = ["sustainable coffee farming", "remote work", "electric cargo bikes", "home composting",
          "password managers", "sourdough baking", "rooftop solar panels", "trail running shoes",
          "budget travel in Japan", "indoor plants", "podcast editing", "small business taxes",
          "the Python GIL", "C++ templates", "naïve Bayes classifiers", "São Paulo street food",
          "API rate limits (429 errors)", "GPT-4o vs Claude", "email@example.com deliverability"]
PROMPTS = [task.format(t=topic) for task in TASKS for topic in TOPICS]  # 228 prompts


def claude(seed=0, **kw):
    return ClaudeProvider(seed=seed, clock=kw.pop("clock", VirtualClock()), **kw)


def spaced(p, calls, gap_s=1.0):
    """``simulate`` each call, ``gap_s`` apart: a steady stream well under the tier-4 limits."""
    out = []
    for call in calls:
        out.append(p.simulate(call))
        p.clock.advance(gap_s)
    return out


# --- tokens -------------------------------------------------------------------------------
def test_output_tokens_equal_the_tokens_of_the_content_on_many_prompts():
    assert len(PROMPTS) >= 200
    p = claude(seed=1)
    caps = [None, 16, 64, 300]
    for i, prompt in enumerate(PROMPTS):
        for model in ("haiku", "opus"):
            r = p.simulate(Call(model, prompt, max_tokens=caps[i % 4]))
            assert count_tokens(r.content) == r.usage.output_tokens, (model, prompt)
            p.clock.advance(1.0)


def test_input_tokens_are_prompt_plus_system_plus_framing():
    p = claude()
    system, prompt = "You are a terse copywriter.", "Write a tagline for a bakery."
    r = p.simulate(Call("sonnet", prompt, system=system))
    assert r.usage.input_tokens == count_tokens(system) + count_tokens(prompt) + p.framing_tokens
    assert p.count_tokens("sonnet", prompt, system=system) == r.usage.input_tokens
    assert p.count_tokens("claude-sonnet-5-5", prompt) == count_tokens(prompt) + p.framing_tokens
    with pytest.raises(NotFound):
        p.count_tokens("gpt-4", prompt)


# --- answers: determinism, topic, length --------------------------------------------------
def test_the_answer_depends_on_the_request_not_on_call_order():
    a, b = claude(seed=3), claude(seed=3)
    for prompt in PROMPTS[:5]:
        a.simulate(Call("haiku", prompt))  # a has answered other things first
    call = Call("haiku", PROMPTS[40])
    assert a.simulate(call).content == b.simulate(call).content
    assert claude(seed=4).simulate(call).content != a.simulate(call).content
    assert a.simulate(Call("sonnet", PROMPTS[40])).content != a.simulate(call).content


def test_the_answer_is_on_the_prompts_topic():
    r = claude().simulate(Call("sonnet", "Write a blog post about sustainable coffee farming."))
    words = r.content.lower()
    assert sum(words.count(w) for w in ("sustainable", "coffee", "farming")) >= 2


def test_max_tokens_caps_the_answer_and_says_so():
    p = claude()
    long_call = dict(model="sonnet", prompt="Write an essay on urban gardening in 800 words.")
    capped = p.simulate(Call(**long_call, max_tokens=100))
    assert capped.usage.output_tokens == 100 and capped.stop_reason == "max_tokens"
    assert count_tokens(capped.content) == 100
    full = p.simulate(Call(**long_call, max_tokens=4000))
    assert full.stop_reason == "end_turn" and 800 * 1.33 * 0.85 <= full.usage.output_tokens <= 800 * 1.33 * 1.15
    default = p.simulate(Call(**long_call))   # the 1024 default cap: the whole answer or the cap
    assert default.usage.output_tokens == min(DEFAULT_MAX_TOKENS, full.usage.output_tokens)


@pytest.mark.parametrize("prompt, low, high", [
    ("Describe the ocean in 50 words.", 50 * 1.33 * 0.85, 50 * 1.33 * 1.15),
    ("Summarize cloud storage in 3 sentences.", 3 * 22 * 0.85, 3 * 22 * 1.15),
    ("Write a tagline for a vegan bakery.", 8, 15),
    ("Write one line about autumn.", 8, 15),
    ("Give me 4 tips for better sleep.", 4 * 18 * 0.85, 4 * 18 * 1.15),
    ("Write a tweet under 280 characters about our launch.", 70 * 0.85, 70 * 1.15),
])
def test_length_requests_in_the_prompt_are_honoured(prompt, low, high):
    for seed in range(5):
        n = claude(seed=seed).simulate(Call("sonnet", prompt)).usage.output_tokens
        assert low <= n <= high, (prompt, n)


def test_free_lengths_follow_the_azure_trace():
    # Patel et al., "Splitwise", ISCA 2024: conv output median 129, p95 451 tokens.
    p = claude(seed=2)
    n = [r.usage.output_tokens for r in spaced(p, (
        Call("sonnet", f"Tell me something interesting about item {i} in our catalog", max_tokens=4000)
        for i in range(3000)))]
    qs = statistics.quantiles(n, n=20)
    assert 129 * 0.85 <= statistics.median(n) <= 129 * 1.15
    assert 451 * 0.9 <= qs[18] <= 451 * 1.1


def test_short_and_detailed_shift_free_lengths_and_bigger_models_write_longer():
    p = claude(seed=2)

    def mean(template, model="sonnet", n=600):
        calls = (Call(model, template.format(i), max_tokens=8000) for i in range(n))
        return statistics.mean(r.usage.output_tokens for r in spaced(p, calls, gap_s=2.0))
    free = mean("Tell me about product {}")
    assert mean("Give a short answer about product {}") < 0.6 * free
    assert mean("Write a detailed answer about product {}") > 1.6 * free
    by_model = [mean("Tell me about product {}", m, n=1500) for m in ("haiku", "sonnet", "opus")]
    assert by_model == sorted(by_model)


# --- validation ---------------------------------------------------------------------------
CATALOG_MAX_OUTPUT = load_catalog().model("haiku")["max_output_tokens"]


def test_max_tokens_past_the_models_limit_is_an_invalid_request():
    with pytest.raises(InvalidRequest, match="max_tokens") as e:
        claude().simulate(Call("haiku", "hi", max_tokens=CATALOG_MAX_OUTPUT + 1))
    assert e.value.status == 400 and not e.value.retryable


def test_a_prompt_past_the_context_window_is_an_invalid_request():
    huge = "lorem ipsum dolor " * 70_000  # ~200k tokens: past Opus 4.5's 200k window
    with pytest.raises(InvalidRequest, match="prompt is too long"):
        claude().simulate(Call("claude-opus-4-5", huge, max_tokens=4096))


def test_unknown_model_names_the_known_ones():
    with pytest.raises(NotFound, match="claude-haiku-5-5.*claude-sonnet-5-5.*claude-opus-5-5"):
        claude().simulate(Call("claude-2", "hi"))


# --- latency ------------------------------------------------------------------------------
def test_haiku_is_fastest_and_opus_slowest_on_average():
    p = claude(seed=5)
    mean = {}
    for model in ("haiku", "sonnet", "opus"):
        rs = spaced(p, (Call(model, f"Write a blog post about topic {i}.", max_tokens=4000) for i in range(300)))
        mean[model] = (statistics.mean(r.latency_s for r in rs), statistics.mean(r.first_content_s for r in rs))
    assert mean["haiku"][0] < mean["sonnet"][0] < mean["opus"][0]
    assert mean["haiku"][1] < mean["sonnet"][1] < mean["opus"][1]


def test_latency_is_ttft_plus_tokens_over_speed_around_the_catalog_medians():
    p = claude(seed=6)
    info = load_catalog().model("sonnet")
    rs = spaced(p, (Call("sonnet", f"Question {i}?") for i in range(2000)))
    assert statistics.median(r.first_content_s for r in rs) == pytest.approx(info["ttft_s"], rel=0.05)
    speeds = [r.usage.output_tokens / (r.latency_s - r.first_content_s) for r in rs]
    assert statistics.median(speeds) == pytest.approx(info["tokens_per_s"], rel=0.05)


# --- prompt caching -----------------------------------------------------------------------
SYSTEM = "You are ContentFlow's editor. Keep the brand voice warm, plain and exact. " * 100  # ~1,500 tokens


def test_prompt_cache_writes_then_reads_within_the_ttl():
    clock = VirtualClock()
    p = claude(clock=clock)
    sys_t = count_tokens(SYSTEM)
    first = p.send(Call("sonnet", "Tagline for a bakery.", system=SYSTEM, cache_system="5m"))
    assert first.usage.cache_creation_input_tokens == sys_t and first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == count_tokens("Tagline for a bakery.") + p.framing_tokens
    second = p.send(Call("sonnet", "Tagline for a florist.", system=SYSTEM, cache_system="5m"))
    assert second.usage.cache_read_input_tokens == sys_t and second.usage.cache_creation_input_tokens == 0
    total = second.usage.input_tokens + second.usage.cache_read_input_tokens
    assert total == p.count_tokens("sonnet", "Tagline for a florist.", system=SYSTEM)
    assert second.cost_usd < first.cost_usd


def test_each_hit_refreshes_the_ttl_and_an_idle_cache_expires():
    clock = VirtualClock()
    p = claude(clock=clock)
    call = Call("sonnet", "Tagline for a bakery.", system=SYSTEM, cache_system="5m")
    kinds = []
    for gap in (0, 240, 240, 240, 301):  # hits 4 minutes apart keep it alive; then 5 min idle
        clock.advance(gap)
        kinds.append(p.simulate(call).extra["cache"])
    assert kinds == ["write", "read", "read", "read", "write"]


def test_one_hour_cache_is_billed_as_such_and_lives_an_hour():
    clock = VirtualClock()
    p = claude(clock=clock)
    call = Call("sonnet", "Tagline for a bakery.", system=SYSTEM, cache_system="1h")
    first = p.send(call)
    assert first.usage.cache_creation_1h_input_tokens == count_tokens(SYSTEM)
    assert first.usage.cache_creation_input_tokens == 0
    clock.advance(50 * 60)
    assert p.simulate(call).usage.cache_read_input_tokens == count_tokens(SYSTEM)


def test_a_system_prompt_below_the_minimum_is_not_cached():
    p = claude()
    short = "You are brief."
    for _ in range(2):
        u = p.send(Call("sonnet", "hello", system=short, cache_system="5m")).usage
        assert u.cache_creation_input_tokens == u.cache_read_input_tokens == 0
    # Haiku 4.5 needs 4,096 tokens: SYSTEM (~1,700) is enough for the 5.5 models (512), not for it
    u = p.send(Call("claude-haiku-4-5", "hello", system=SYSTEM, cache_system="5m")).usage
    assert u.cache_creation_input_tokens == 0
    assert u.input_tokens == p.count_tokens("claude-haiku-4-5", "hello", SYSTEM)
    assert p.send(Call("haiku", "hello", system=SYSTEM, cache_system="5m")).usage.cache_creation_input_tokens > 0


def test_concurrent_first_calls_all_write_the_cache():
    clock = VirtualClock()
    p = claude(clock=clock)
    calls = [Call("sonnet", f"Tagline number {i}.", system=SYSTEM, cache_system="5m") for i in range(3)]

    async def main():
        return await asyncio.gather(*(p.asend(c) for c in calls))
    burst = clock.run(main())
    assert [r.extra["cache"] for r in burst] == ["write"] * 3  # sent before any answer started
    assert p.simulate(calls[0]).extra["cache"] == "read"


def test_cache_reads_shorten_ttft_on_average():
    clock = VirtualClock()
    p = claude(seed=8, clock=clock)
    cold, warm = [], []
    for i in range(400):
        cold.append(p.simulate(Call("sonnet", f"Question {i}", system=SYSTEM)).first_content_s)
        warm.append(p.send(Call("sonnet", f"Question {i}", system=SYSTEM, cache_system="5m")).first_content_s)
    assert statistics.mean(warm) < 0.85 * statistics.mean(cold)


# --- batches ------------------------------------------------------------------------------
def test_batch_calls_are_half_price_and_take_minutes():
    p = claude(seed=9)
    std = p.simulate(Call("opus", "Write a blog post about tea."))
    rs = [p.simulate(Call("opus", "Write a blog post about tea.", batch=True)) for _ in range(500)]
    assert all(r.usage.service_tier == "batch" for r in rs)
    assert rs[0].usage.output_tokens == std.usage.output_tokens
    assert rs[0].cost_usd == pytest.approx(std.cost_usd / 2)
    lat = [r.latency_s for r in rs]
    assert 5 * 60 < statistics.median(lat) < 60 * 60  # "most batches finish within an hour"
    assert max(lat) <= 24 * 3600
    assert all(r.first_content_s == r.latency_s for r in rs)


# --- rate limits --------------------------------------------------------------------------
def test_a_burst_past_rpm_is_refused_until_retry_after():
    clock = VirtualClock()
    p = claude(clock=clock, catalog=tight_catalog())  # 50 RPM
    call = Call("haiku", "hi", max_tokens=50)
    for _ in range(50):
        p.simulate(call)
    with pytest.raises(RateLimited, match="requests per minute") as e:
        p.simulate(call)
    assert e.value.retry_after == pytest.approx(60 / 50)  # one request's worth of refill
    clock.advance(e.value.retry_after * 0.9)
    with pytest.raises(RateLimited):
        p.simulate(call)
    clock.advance(e.value.retry_after * 0.1 + 1e-9)
    p.simulate(call)


def test_otpm_is_charged_max_tokens_up_front_and_refunded_at_the_end():
    clock = VirtualClock()
    p = claude(clock=clock, catalog=tight_catalog())  # sonnet OTPM 8,000
    call = Call("sonnet", "Write a tagline for a bakery.", max_tokens=4000)
    first, second = p.simulate(call), p.simulate(call)
    with pytest.raises(RateLimited, match="output tokens") as e:
        p.simulate(call)  # 2 x 4,000 reserved, though each answer is ~12 tokens
    # Not the 30 s a bucket refill alone would take: the first answer to end gives back ~3,990.
    assert e.value.retry_after == pytest.approx(min(first.latency_s, second.latency_s))
    clock.advance(e.value.retry_after)
    p.simulate(call)
    clock.advance(60)
    assert p.rate_limit_status("sonnet").output_tokens_remaining > 7_900


def test_itpm_counts_uncached_input_but_not_cache_reads():
    clock = VirtualClock()
    p = claude(clock=clock, catalog=tight_catalog())  # sonnet ITPM 30,000
    sys_t = count_tokens(SYSTEM)
    call = Call("sonnet", "hi", system=SYSTEM, cache_system="5m", max_tokens=10)
    p.send(call)
    before = p.rate_limit_status("sonnet").input_tokens_remaining
    p.simulate(call)  # a read: only the prompt and framing count
    after = p.rate_limit_status("sonnet").input_tokens_remaining
    assert before - after < 20 < sys_t
    status = p.rate_limit_status("sonnet")
    assert (status.requests_limit, status.input_tokens_limit, status.output_tokens_limit) == (50, 30_000, 8_000)


def test_a_request_larger_than_a_minutes_limit_can_never_pass():
    p = claude(catalog=tight_catalog())
    with pytest.raises(InvalidRequest, match="per-minute limit"):
        p.simulate(Call("sonnet", "hi", max_tokens=9_000))  # OTPM is 8,000


def test_batch_calls_do_not_count_against_the_messages_rate_limits():
    p = claude(catalog=tight_catalog())
    for _ in range(200):
        p.simulate(Call("haiku", "hi", batch=True, max_tokens=20))


def test_rate_limits_hold_for_concurrent_asends_and_retry_after_works():
    clock = VirtualClock()
    p = claude(clock=clock, catalog=tight_catalog())  # 50 RPM

    async def with_retries(i):
        while True:
            try:
                return await p.asend(Call("haiku", f"note {i}", max_tokens=100))
            except RateLimited as e:
                await clock.asleep(e.retry_after)

    async def main():
        return await asyncio.gather(*(with_retries(i) for i in range(120)))
    results = clock.run(main())
    starts = sorted(r.started_at for r in results)
    assert len(results) == 120
    # a burst of 50, then one every 1.2 s: the 120th starts ~(120 - 50) * 1.2 s in
    assert starts[49] < 0.5 and starts[-1] == pytest.approx(70 * 1.2, abs=0.5)
    for i in range(len(starts)):  # a token bucket: at most the burst + the refill in any minute
        in_minute = sum(1 for s in starts if starts[i] <= s < starts[i] + 60)
        assert in_minute <= 50 + 50


def test_faults_apply_to_claude_too():
    p = claude(faults=Faults(overloaded=1.0))
    from cfopt.errors import Overloaded
    with pytest.raises(Overloaded):
        p.simulate(Call("haiku", "hi"))
