"""UsageTracker: spend accounting, reservations that cannot overspend, alerts, policies, Redis."""
from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cfopt.cost.budget import NANO, BudgetConfig, MemoryStore, RedisStore, UsageTracker
from cfopt.clock import VirtualClock
from cfopt.cost import CostOptimizer
from cfopt.errors import BudgetExceeded, ConfigError, Overloaded
from cfopt.events import EventBus
from cfopt.pricing import Usage, load_catalog
from cfopt.providers import ClaudeProvider, Faults, FalProvider
from cfopt.providers.base import Call, Result
from cfopt.tokens import count_tokens

# The budget's arithmetic is price-agnostic; these tests pin amounts on the exercise's table.
CAT = load_catalog("exercise")


def _tracker(daily=50.0, monthly=1000.0, **kw):
    clock = kw.pop("clock", None) or VirtualClock()
    store = kw.pop("store", None)
    bus = EventBus()
    alerts = []
    bus.subscribe(lambda e: alerts.append(e) if e.kind == "alert" else None)
    t = UsageTracker(CAT, clock=clock, bus=bus, config=BudgetConfig(daily, monthly, **kw),
                     store=store)
    return t, clock, alerts


def _result(model="claude-sonnet-5-5", usage=Usage(input_tokens=100, output_tokens=50),
            provider="anthropic", kind="text"):
    return Result(provider, model, kind, "x", usage, CAT.cost(model, usage), 1.0, 0.5, 0.0)


# --- worst case and accounting -----------------------------------------------------------------
def test_worst_case_is_input_plus_max_tokens_at_the_output_price():
    t, *_ = _tracker()
    call = Call("sonnet", "word " * 100, max_tokens=400, system="Be brief.")
    n = count_tokens(call.prompt) + count_tokens("Be brief.") + t.config.input_overhead_tokens
    assert t.worst_case_usd(call) == pytest.approx((n + 400) * 3.0 / 1e6)
    assert t.worst_case_usd(Call("sonnet", "word " * 100, max_tokens=400, system="Be brief.",
                                 batch=True)) == pytest.approx((n + 400) * 1.5 / 1e6)
    assert t.worst_case_usd(Call("flux_dev", "a mug")) == 0.025
    assert t.worst_case_usd(Call("video_5s", "a mug")) == 0.50
    assert t.worst_case_usd(Call("haiku", "x")) == pytest.approx(
        (count_tokens("x") + 16 + 1024) * 0.25 / 1e6)  # no max_tokens: the API default of 1024


@pytest.mark.parametrize("profile", ["exercise", "list-2026"])
def test_the_worst_case_bounds_what_the_simulated_providers_bill(profile):
    cat = load_catalog(profile)
    clock = VirtualClock()
    claude = ClaudeProvider(seed=3, clock=clock, catalog=cat)
    fal = FalProvider(seed=3, clock=clock, catalog=cat)
    t = UsageTracker(cat, clock=clock)
    rng = random.Random(5)
    system = "You are ContentFlow's writer. " * 200   # long enough to be prompt-cached
    for i in range(300):
        call = Call(rng.choice(["haiku", "sonnet", "opus"]),
                    f"Write {rng.randint(5, 900)} words about topic {i}.",
                    max_tokens=rng.choice([None, 20, 200, 2000]),
                    system=rng.choice([None, system]), batch=rng.random() < 0.3)
        if call.system and rng.random() < 0.5:
            call = Call(call.model, call.prompt, call.max_tokens, call.system, "5m")
        r = claude.send(call)
        assert cat.cost(r.model, r.usage) <= t.worst_case_usd(call) + 1e-12, call
    for w, h in ((1024, 1024), (1920, 1080), (512, 512)):
        call = Call("flux_dev", "a mug", width=w, height=h)
        assert fal.simulate(call).cost_usd <= t.worst_case_usd(call) + 1e-12


def test_spend_by_provider_model_user_and_day():
    t, clock, _ = _tracker()
    t.record(_result(), user="ann")
    t.record(_result("claude-haiku-5-5"), user="bob", retry=True)
    t.record(_result(), user="ann", cache_hit=True)          # a cache hit costs nothing
    t.record(_result("flux_dev", Usage(images=1, megapixels=1), "fal", "image"), user="ann")
    clock.advance(86400)
    batch = Usage(input_tokens=100, output_tokens=50, service_tier="batch")
    t.record(_result(usage=batch), user="bob")                # batch at the discounted price
    sonnet = CAT.cost("sonnet", Usage(input_tokens=100, output_tokens=50))
    haiku = CAT.cost("haiku", Usage(input_tokens=100, output_tokens=50))
    assert t.spend_by("model") == pytest.approx({"claude-haiku-5-5": haiku, "claude-sonnet-5-5":
                                                 sonnet * 1.5, "flux_dev": 0.025})
    assert t.spend_by("provider") == pytest.approx({"anthropic": haiku + sonnet * 1.5, "fal": 0.025})
    assert t.spend_by("user") == pytest.approx({"ann": sonnet + 0.025, "bob": haiku + sonnet / 2})
    assert t.spend_by("day") == pytest.approx({"2026-11-01": sonnet + haiku + 0.025,
                                               "2026-11-02": sonnet / 2})
    s = t.stats
    assert (s.calls, s.cache_hits, s.retries) == (5, 1, 1)
    assert s.spend_usd == pytest.approx(sum(t.spend_by("user").values()))
    assert t.spent("daily") == pytest.approx(sonnet / 2)
    assert t.spent("monthly") == pytest.approx(s.spend_usd)
    with pytest.raises(ConfigError, match="dimension"):
        t.spend_by("team")


def test_reserve_then_settle_replaces_the_hold_with_the_actual_cost():
    t, clock, _ = _tracker()
    claude = ClaudeProvider(seed=1, clock=clock, catalog=CAT)
    call = Call("sonnet", "Write a tagline for a bakery.", max_tokens=300)
    res = t.reserve(call, user="ann")
    assert t.stats.reserved_usd == pytest.approx(res.amount_usd)
    assert t.store.get(f"held:daily:{res.periods['daily']}") >= res.amount_usd * NANO
    r = claude.send(call)
    assert t.settle(res, r) == pytest.approx(r.cost_usd)
    assert t.stats.reserved_usd == pytest.approx(0.0)
    assert t.spent() == pytest.approx(r.cost_usd)
    assert t.store.get(f"held:daily:{res.periods['daily']}") == round(r.cost_usd * NANO)
    # a failed call releases its hold and costs nothing
    res2 = t.reserve(call)
    t.settle(res2, None)
    assert t.spent() == pytest.approx(r.cost_usd) and t.stats.failures == 1
    # a call never made (another call answered for it) releases its hold: no spend, no failure
    res3 = t.reserve(call)
    t.release(res3)
    assert t.spent() == pytest.approx(r.cost_usd) and t.stats.failures == 1
    assert t.stats.reserved_usd == pytest.approx(0.0)
    assert t.store.get(f"held:daily:{res.periods['daily']}") == round(r.cost_usd * NANO)


def test_send_releases_the_hold_when_the_provider_fails():
    t, clock, _ = _tracker()
    claude = ClaudeProvider(seed=1, clock=clock, faults=Faults(overloaded=1.0))
    with pytest.raises(Overloaded):
        t.send(claude, Call("haiku", "hi", max_tokens=10))
    assert t.stats.reserved_usd == pytest.approx(0) and t.spent() == 0 and t.stats.failures == 1


# --- budgets and alerts --------------------------------------------------------------------
def test_refusal_names_the_budget():
    t, *_ = _tracker(daily=0.01, monthly=0.02)
    call = Call("opus", "x", max_tokens=500)
    t.reserve(call)
    with pytest.raises(BudgetExceeded, match="daily budget of \\$0.01") as e:
        t.reserve(call)
    assert e.value.budget == "daily" and e.value.limit_usd == 0.01
    t2, clock, _ = _tracker(daily=0.01, monthly=0.012)
    t2.reserve(call)
    clock.advance(86400)                   # a new day, the same month
    with pytest.raises(BudgetExceeded) as e:
        t2.reserve(call)
    assert e.value.budget == "monthly"


def test_alerts_fire_at_50_80_100_percent_once_per_period():
    t, clock, alerts = _tracker(daily=1.0, monthly=1000.0)
    usage = Usage(input_tokens=100_000, output_tokens=0)      # $0.30 on sonnet
    for _ in range(6):                     # 0.3, 0.6 (50%), 0.9 (80%), then refused
        try:
            res = t.reserve(Call("sonnet", "x", max_tokens=100_000))
        except BudgetExceeded:
            continue
        t.settle(res, _result(usage=usage))
    names = [a.name for a in alerts]
    assert names == ["daily budget 50%", "daily budget 80%", "daily budget 100%"]
    # the alert comes when the second call's hold (its worst case, a hair over $0.30) lands
    assert alerts[0].value == pytest.approx(0.6, abs=1e-3) and alerts[0].data["period"] == "2026-11-01"
    assert alerts[2].data["why"].startswith("the budget cannot take a call")
    assert all(a.kind == "alert" and a.data["limit_usd"] == 1.0 for a in alerts)
    assert t.stats.overruns == 0 and t.stats.refused == 3
    clock.advance(86400)                   # the next day: the same alerts may fire again, once
    for _ in range(3):
        t.settle(t.reserve(Call("sonnet", "x", max_tokens=100_000)), _result(usage=usage))
    assert [a.name for a in alerts[3:]] == ["daily budget 50%", "daily budget 80%"]
    assert alerts[3].data["period"] == "2026-11-02"


def test_monthly_alerts_follow_the_calendar():
    t, clock, alerts = _tracker(daily=1000.0, monthly=1.0, start_date="2026-11-30")
    usage = Usage(input_tokens=200_000, output_tokens=0)      # $0.60
    t.record(_result(usage=usage))
    clock.advance(86400)                                      # 2026-12-01: a new month
    t.record(_result(usage=usage))
    assert [(a.name, a.data["period"]) for a in alerts] == [
        ("monthly budget 50%", "2026-11"), ("monthly budget 50%", "2026-12")]


def test_downgrade_policy_moves_to_the_cheapest_adequate_model():
    opt = CostOptimizer()
    t, clock, alerts = _tracker(daily=0.017, monthly=10.0, on_exhausted="downgrade")
    task = {"type": "text", "task": "blog_post", "prompt": "Write a blog post about rain.",
            "max_tokens": 1000}
    call = Call(opt.select_optimal_model(task).llm, task["prompt"], max_tokens=1000)   # sonnet
    critical = {**task, "quality": "critical"}
    t.reserve(Call("opus", task["prompt"], max_tokens=1000))      # $0.0154 of $0.017 held
    res = t.reserve(call, fallbacks=opt.adequate_models({**task, "quality": "low"}))
    assert res.call.model == "claude-haiku-5-5" and res.downgraded_from == "claude-sonnet-5-5"
    assert t.stats.downgraded == 1 and alerts[-1].data["policy"] == "downgrade"
    # a critical task has no cheaper adequate model: refused, never sent below its need
    with pytest.raises(BudgetExceeded):
        t.reserve(Call("opus", task["prompt"], max_tokens=1000),
                  fallbacks=opt.adequate_models(critical))
    # standard quality at medium complexity: haiku is not adequate, so no downgrade to it
    assert "claude-haiku-5-5" not in opt.adequate_models(task)
    with pytest.raises(BudgetExceeded):
        t.reserve(call, fallbacks=opt.adequate_models(task))


@pytest.mark.parametrize("kw, match", [
    (dict(daily_usd=0), "budgets must be positive"), (dict(thresholds=(0.5, 1.5)), "thresholds"),
    (dict(on_exhausted="panic"), "on_exhausted"), (dict(start_date="soon"), "start_date")])
def test_bad_budget_config_is_named(kw, match):
    with pytest.raises(ConfigError, match=match):
        BudgetConfig(**kw)


# --- concurrency: 1,000 calls, zero overspend ----------------------------------------------------
class _Watched(MemoryStore):
    """A memory store that checks after every reservation that no hold passes its limit."""

    def __init__(self, limits):
        super().__init__()
        self.limits, self.worst = limits, 0

    def try_reserve(self, keys, limits, amount, **kw):
        out = super().try_reserve(keys, limits, amount, **kw)
        with self._lock:
            for key, limit in zip(keys, limits):
                assert self._values[key] <= limit, "a reservation passed the budget"
                self.worst = max(self.worst, self._values[key])
        return out


class _SlowClaude(ClaudeProvider):
    """Claude whose calls also take a little real time, so that threads really overlap."""

    def send(self, call):
        time.sleep(0.0005)
        return super().send(call)


def _calls(n=1000, seed=11):
    rng = random.Random(seed)
    return [Call(rng.choice(["haiku", "sonnet", "opus"]), f"Write about item {i} " * rng.randint(1, 30),
                 max_tokens=rng.choice([50, 200, 800])) for i in range(n)]


def _fire_threads(tracker, provider, calls):
    outcome = {"ok": 0, "refused": 0, "cost": 0.0}
    lock = threading.Lock()

    def one(call):
        try:
            r = tracker.send(provider, call)
        except BudgetExceeded:
            with lock:
                outcome["refused"] += 1
            return
        with lock:
            outcome["ok"] += 1
            outcome["cost"] += CAT.cost(r.model, r.usage)
    with ThreadPoolExecutor(64) as ex:
        list(ex.map(one, calls))
    return outcome


def test_1000_concurrent_threads_never_overspend():
    limit = 0.50
    store = _Watched({})
    t, clock, alerts = _tracker(daily=limit, monthly=1000.0, store=store)
    calls = _calls()
    demand = sum(t.worst_case_usd(c) for c in calls)
    assert demand > 4 * limit, "the budget must bind for the test to mean anything"
    out = _fire_threads(t, _SlowClaude(seed=2, clock=clock), calls)
    assert out["ok"] + out["refused"] == 1000 and out["refused"] > 0 and out["ok"] > 50
    assert t.spent() <= limit and out["cost"] == pytest.approx(t.spent())
    assert store.worst <= limit * NANO
    assert t.stats.reserved_usd == pytest.approx(0.0, abs=1e-9)
    assert t.stats.overruns == 0 and t.stats.refused == out["refused"]
    assert [a.name for a in alerts][:2] == ["daily budget 50%", "daily budget 80%"]


def test_1000_concurrent_asyncio_calls_never_overspend():
    limit = 0.50
    clock = VirtualClock()
    store = _Watched({})
    t, _, alerts = _tracker(daily=limit, monthly=1000.0, clock=clock, store=store)
    claude = ClaudeProvider(seed=4, clock=clock)
    calls = _calls(seed=12)
    started = []

    async def one(call):
        started.append(clock.now())
        try:
            r = await t.asend(claude, call)
            return CAT.cost(r.model, r.usage)
        except BudgetExceeded:
            return None

    async def main():
        return await asyncio.gather(*(one(c) for c in calls))
    costs = clock.run(main())
    ok = [c for c in costs if c is not None]
    assert len(costs) == 1000 and 50 < len(ok) < 1000
    assert max(started) == 0.0                 # all 1,000 were in flight together
    assert t.spent() <= limit and sum(ok) == pytest.approx(t.spent())
    assert store.worst <= limit * NANO
    # without reservations, checking spend before each call would have let all of them through
    assert sum(t.worst_case_usd(c) for c in calls) > 4 * limit


# --- Redis: atomic reservations shared between trackers ----------------------------------------
@pytest.mark.redis
def test_redis_store_shared_by_two_trackers_never_overspends(redis_url, redis_namespace):
    limit = 0.40
    clock = VirtualClock()
    trackers = [UsageTracker(CAT, clock=clock, config=BudgetConfig(limit, 1000.0),
                             store=RedisStore(redis_url, prefix=redis_namespace)) for _ in range(2)]
    assert redis_url not in repr(trackers[0]) and "redis://" not in repr(trackers[0].store)
    claude = _SlowClaude(seed=6, clock=clock)
    calls = _calls(seed=13)
    outs = []

    def half(i):
        outs.append(_fire_threads(trackers[i], claude, calls[i::2]))
    threads = [threading.Thread(target=half, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    spent = trackers[0].spent()
    assert spent == trackers[1].spent() <= limit
    assert sum(o["ok"] for o in outs) > 20 and sum(o["refused"] for o in outs) > 0
    assert sum(o["cost"] for o in outs) == pytest.approx(spent)
    period = trackers[0].config.periods(0.0)["daily"]
    assert trackers[0].store.get(f"held:daily:{period}") == round(spent * NANO) or \
        abs(trackers[0].store.get(f"held:daily:{period}") - spent * NANO) <= 2000


@pytest.mark.redis
def test_redis_alerts_fire_once_across_trackers(redis_url, redis_namespace):
    bus = EventBus()
    seen = []
    bus.subscribe(seen.append)
    ts = [UsageTracker(CAT, bus=bus, config=BudgetConfig(1.0, 1000.0),
                       store=RedisStore(redis_url, prefix=redis_namespace)) for _ in range(2)]
    usage = Usage(input_tokens=100_000, output_tokens=0)
    for t in (ts * 2)[:3]:              # $0.90 in all, each tracker checking the thresholds
        t.record(_result(usage=usage))
    assert [e.name for e in seen] == ["daily budget 50%", "daily budget 80%"]


_WORKER = r"""
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
from cfopt.cost.budget import BudgetConfig, RedisStore, UsageTracker
from cfopt.clock import VirtualClock
from cfopt.errors import BudgetExceeded
from cfopt.providers import ClaudeProvider
from cfopt.providers.base import Call
url, prefix, limit, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
clock = VirtualClock()
t = UsageTracker(clock=clock, config=BudgetConfig(limit, 1000.0), store=RedisStore(url, prefix=prefix))
claude = ClaudeProvider(seed=seed, clock=clock)
calls = [Call(["haiku", "sonnet", "opus"][i % 3], f"Write about item {i} {seed}", max_tokens=[50, 200, 800][i % 3])
         for i in range(500)]
lock, out = threading.Lock(), {"ok": 0, "refused": 0, "cost": 0.0}
def one(call):
    try:
        r = t.send(claude, call)
    except BudgetExceeded:
        with lock: out["refused"] += 1
        return
    with lock:
        out["ok"] += 1; out["cost"] += t.catalog.cost(r.model, r.usage)
import time, redis
# both processes start together: a barrier on the shared Redis (a wall-clock start time is not
# enough when the machine is busy and one process is still importing)
barrier = redis.Redis.from_url(url)
def meet(name):
    barrier.incr(prefix + name)
    deadline = time.time() + 60
    while int(barrier.get(prefix + name) or 0) < 2 and time.time() < deadline:
        time.sleep(0.002)
meet(":barrier")
# Each process's first calls go before the other's rush: on a busy machine, one process's 32
# threads could otherwise spend the whole cap while the other waits for a CPU, and the test
# would show one process alone, not two sharing a budget.
for call in calls[:3]:
    one(call)
meet(":rush")
with ThreadPoolExecutor(32) as ex:
    list(ex.map(one, calls[3:]))
print(json.dumps(out))
"""


@pytest.mark.redis
def test_two_processes_sharing_redis_never_overspend(redis_url, redis_namespace):
    import json
    import subprocess
    import sys
    limit = 0.30
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, redis_url, redis_namespace, str(limit),
                               str(seed)], stdout=subprocess.PIPE, text=True)
             for seed in (1, 2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    store = RedisStore(redis_url, prefix=redis_namespace)
    period = BudgetConfig().periods(0.0)["daily"]
    spent = store.get(f"spent:daily:{period}") / NANO
    assert sum(o["cost"] for o in outs) == pytest.approx(spent) and spent <= limit
    assert all(o["ok"] > 0 for o in outs) and sum(o["refused"] for o in outs) > 0
    assert store.get(f"held:daily:{period}") == store.get(f"spent:daily:{period}")  # nothing left held
