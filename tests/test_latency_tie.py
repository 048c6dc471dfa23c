"""Tied requests (cfopt.latency.tie): the earlier first token wins, the other copy is closed and
billed its input, and the pipeline, the budget and the latency floor all count the copies."""
from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from statistics import NormalDist

import pytest

from cfopt import CostOptimizer
from cfopt.clock import VirtualClock
from cfopt.cost.budget import BudgetConfig, UsageTracker
from cfopt.errors import ServerError
from cfopt.latency.tie import TIE_COPIES, TiedSender, closed_bill
from cfopt.pipeline import Pipeline, PipelineConfig
from cfopt.pipeline.network import CountingSender
from cfopt.pipeline.score import limits
from cfopt.pricing import Usage
from cfopt.providers import Providers
from cfopt.providers.base import Call, Result
from cfopt.workload import Request, generate

SONNET = Call("sonnet", "Write a product description for a ceramic pour-over kettle.", max_tokens=200)


def _tied(seed: int = 3, **kw) -> tuple[TiedSender, CountingSender, Providers]:
    providers = Providers(seed=seed)
    counter = CountingSender(providers)
    return (TiedSender(counter, clock=providers.clock, catalog=providers.catalog,
                       bill=counter.bill, **kw), counter, providers)


@pytest.mark.parametrize("seed", range(6))
def test_the_earlier_first_token_wins_and_the_other_copy_is_billed_its_input(seed):
    tied, counter, providers = _tied(seed)
    twin = Providers(seed=seed)   # the same seed draws the same two copies, in order
    a, b = twin.claude.simulate(SONNET), twin.claude.simulate(SONNET)
    win, lose = (a, b) if a.first_content_s <= b.first_content_s else (b, a)
    result = providers.clock.run(tied.asend(SONNET))
    assert (result.content, result.first_content_s, result.latency_s) == \
        (win.content, win.first_content_s, win.latency_s)
    assert providers.clock.now() == pytest.approx(win.latency_s)   # the loser was not waited for
    bill = closed_bill(lose, providers.catalog)
    assert bill.usage.output_tokens == 0 and 0 < bill.cost_usd < lose.cost_usd
    assert result.cost_usd == pytest.approx(win.cost_usd + bill.cost_usd)
    assert counter.calls == 2 and counter.cost_usd == pytest.approx(result.cost_usd)
    assert tied.stats.tied == 1 and tied.stats.closed == 1
    assert tied.stats.later_copy_won == (win is b)
    assert tied.stats.gained_s == pytest.approx(max(0.0, a.first_content_s - b.first_content_s))


@pytest.mark.parametrize("call, over_s", [
    (Call("haiku", "Write a tagline.", max_tokens=50), 1.0),          # fast enough alone
    (Call("sonnet", "Write a tagline.", max_tokens=50, batch=True), 1.0),   # nobody waits
    (Call("sonnet", "Write a tagline.", max_tokens=50), None),        # tying off
    (Call("flux_schnell", "a lighthouse", width=512, height=512), 0.0),  # not text
])
def test_what_is_not_tied_goes_once(call, over_s):
    tied, counter, providers = _tied(over_s=over_s)
    providers.clock.run(tied.asend(call))
    assert counter.calls == 1 and tied.stats.tied == 0


def test_the_threshold_is_read_when_the_call_goes():
    knob = {"over_s": 5.0}
    tied, counter, providers = _tied(over_s=lambda: knob["over_s"])
    assert not tied.ties(SONNET)
    knob["over_s"] = 1.0
    assert tied.ties(SONNET)


class _Scripted:
    """A sender that fails the calls it is told to, and sends the others to real providers."""

    def __init__(self, providers: Providers, fail: set[int]) -> None:
        self.providers, self.fail, self.n = providers, fail, 0
        self.clock, self.catalog = providers.clock, providers.catalog

    async def asend(self, call: Call) -> Result:
        self.n += 1
        if self.n in self.fail:
            await self.clock.asleep(0.2)
            raise ServerError("injected", provider="anthropic", model=call.model, after_s=0.2)
        return await self.providers.asend(call)


def test_a_failed_copy_leaves_the_race_to_the_other():
    providers = Providers(seed=1)
    tied = TiedSender(_Scripted(providers, {1}), clock=providers.clock, catalog=providers.catalog)
    result = providers.clock.run(tied.asend(SONNET))
    assert result.content and tied.stats.closed == 0 and tied.stats.later_copy_won == 1


def test_when_every_copy_fails_the_error_is_raised():
    providers = Providers(seed=1)
    tied = TiedSender(_Scripted(providers, {1, 2}), clock=providers.clock, catalog=providers.catalog)
    with pytest.raises(ServerError):
        providers.clock.run(tied.asend(SONNET))


class _Silent:
    """A sender that never says a call is under way (as a real HTTP client): fixed latencies."""

    def __init__(self, clock: VirtualClock, latencies: list[float]) -> None:
        self.clock, self.latencies, self.cancelled = clock, latencies, 0
        self.catalog = Providers().catalog

    async def asend(self, call: Call) -> Result:
        latency = self.latencies.pop(0)
        try:
            await self.clock.asleep(latency)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return Result("anthropic", "claude-sonnet-5-5", "text", f"after {latency}", Providers().claude
                      .simulate(SONNET).usage, 0.01, latency, latency / 2, 0.0)


def test_without_word_from_the_sender_the_first_answer_wins():
    clock = VirtualClock()
    silent = _Silent(clock, [3.0, 1.5])
    tied = TiedSender(silent, clock=clock, catalog=silent.catalog)
    result = clock.run(tied.asend(SONNET))
    assert result.content == "after 1.5" and clock.now() == 1.5
    assert silent.cancelled == 1 and tied.stats.closed == 0   # nothing known to bill


def test_the_pipeline_counts_every_copy_and_its_bill():
    requests = generate(400, seed=5, duration_s=300)
    tied = Pipeline(PipelineConfig(), seed=0).run(requests)
    single = Pipeline(PipelineConfig.select(without=["tying"]), seed=0).run(requests)
    t = tied.ties
    assert t is not None and t.tied > 0 and t.closed == t.tied and single.ties is None
    # Every dollar the providers billed is on some request (or the cache's verifications).
    assert tied.cost_usd == pytest.approx(sum(o.cost_usd for o in tied.outcomes)
                                          + tied.verification["cost_usd"], abs=1e-6)
    # The same models answer: the copies change when answers come, not which model gives them.
    models = lambda run: sorted(o.model or "" for o in run.outcomes if o.source == "provider")  # noqa: E731
    assert models(tied) == models(single)
    sonnet = lambda run: [o.response_s for o in run.outcomes   # noqa: E731
                          if o.source == "provider" and o.path == "interactive"
                          and (o.model or "").startswith("claude-sonnet") and o.type == "text"]
    assert sorted(sonnet(tied))[len(sonnet(tied)) // 2] < sorted(sonnet(single))[len(sonnet(single)) // 2]


def test_a_budget_holds_every_copy_and_is_never_overspent():
    providers = Providers(seed=0)
    tracker = UsageTracker(providers.catalog, clock=providers.clock)
    once, twice = tracker.worst_case_usd(SONNET), tracker.worst_case_usd(SONNET, copies=2)
    output = providers.catalog.cost("claude-sonnet-5-5", Usage(output_tokens=SONNET.max_tokens))
    assert twice == pytest.approx(once + (once - output))   # one more copy's input
    requests = [r for r in generate(300, seed=2, duration_s=300) if r.type == "text"]
    cap = 0.05
    run = Pipeline(PipelineConfig(), seed=0, budget=BudgetConfig(daily_usd=cap)).run(requests)
    assert run.ties is not None and run.ties.tied > 0
    assert run.usage.refused > 0 and run.usage.overruns == 0   # the cap was reached, and held
    assert run.cost_usd <= cap + 1e-9


def test_the_latency_floor_counts_the_earliest_of_the_copies():
    request = Request(t=0.0, type="text", task="blog_post", quality="standard", priority="high",
                      max_tokens=300, prompt="Write a blog post introduction about pour-over ratios.",
                      intent="blog:pour-over")
    catalog = Providers(seed=0).catalog
    adequate = [catalog.model(m) for m in CostOptimizer(catalog).adequate_models(request)]
    z = NormalDist().inv_cdf(1 - 0.5 ** (1 / TIE_COPIES))   # the median of the least of k draws
    fastest = min(float(m["ttft_s"]) * math.exp(float(m["jitter"]) * z) for m in adequate)
    lim = limits([request], seed=0)
    assert lim.latency_floor_p95_s == pytest.approx(fastest)
    one_call = min(float(m["ttft_s"]) for m in adequate)   # one call each: the median itself
    assert lim.latency_floor_one_call_p95_s == pytest.approx(one_call) and fastest < one_call


class _CutOff:
    """Copy 0's first attempt is cut off under way before its first token (as a per-attempt
    timeout does) and its retry comes late; copy 1 answers in between."""

    def __init__(self, providers: Providers) -> None:
        self.providers, self.clock, self.catalog, self.n = providers, providers.clock, providers.catalog, 0

    async def asend(self, call: Call) -> Result:
        self.n += 1
        n = self.n
        if n == 1:   # under way at once, first token due at 5 s, cut off at 2 s
            task = asyncio.ensure_future(self._under_way(call, first=5.0, whole=6.0))
            await self.clock.asleep(2.0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.n += 1   # the retry: under way again, first token at 2 + 9 s
            return await self._under_way(call, first=9.0, whole=10.0)
        return await self._under_way(call, first=3.5, whole=4.0)   # copy 1: first token at 3.5 s

    async def _under_way(self, call: Call, *, first: float, whole: float) -> Result:
        from cfopt.providers.base import ON_UNDER_WAY
        base = self.providers.claude.simulate(call)
        result = replace(base, started_at=self.clock.now(), first_content_s=first, latency_s=whole)
        listener = ON_UNDER_WAY.get()
        if listener is not None:
            listener(result)
        try:
            await self.clock.asleep(whole)
        except BaseException:
            if listener is not None:
                listener(None)
            raise
        return result


def test_an_attempt_cut_off_under_way_cannot_win_the_race():
    # Copy 0's first attempt would have shown its first token at 5 s but was cut off at 2 s:
    # copy 1's first token at 3.5 s wins, not a stale 5 s claim for an attempt that is gone.
    providers = Providers(seed=1)
    tied = TiedSender(_CutOff(providers), clock=providers.clock, catalog=providers.catalog)
    result = providers.clock.run(tied.asend(SONNET))
    assert result.first_content_s == 3.5 and providers.clock.now() == pytest.approx(4.0)
    assert tied.stats.later_copy_won == 1 and tied.stats.closed == 1
