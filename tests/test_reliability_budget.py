"""Budgets that survive store trouble: fail closed, leases, settlements sent again, counter resets.

Issue 17: with Redis, ``reserve`` raised raw redis errors when the default pool ran dry, failed
settlements locked money for 40 days, and a Redis restarted without persistence let a day's
cap be spent twice. Figures printed here (``pytest -s``) are quoted in docs/RELIABILITY.md.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from redis_support import free_port, start_redis

from cfopt.cli import main as cli
from cfopt.clock import VirtualClock
from cfopt.cost.budget import NANO, BudgetConfig, MemoryStore, RedisStore, UsageTracker
from cfopt.cost.budget_redis import reconcile
from cfopt.cost.ledger import read_ledgers, rebuild
from cfopt.errors import BudgetExceeded, BudgetStoreError, ConfigError
from cfopt.pricing import load_catalog
from cfopt.providers import ClaudeProvider
from cfopt.providers.base import Call

CAT = load_catalog()
DAY = BudgetConfig().periods(0.0)["daily"]


def _calls(n, seed=0):
    models, tokens = ["haiku", "sonnet", "opus"], [50, 200, 800]
    return [Call(models[(i + seed) % 3], f"Write about item {i} for run {seed}",
                 max_tokens=tokens[(i * 7 + seed) % 3]) for i in range(n)]


class CountingClaude(ClaudeProvider):
    """Claude that counts the calls that reached it."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.sent = 0

    def send(self, call):
        self.sent += 1
        return self.simulate(call)


class FlakyMemoryStore(MemoryStore):
    """A memory store whose settle fails (before doing anything) on chosen calls."""

    def __init__(self, fail_on, **kw):
        super().__init__(**kw)
        self.fail_on, self.settles = set(fail_on), 0

    def settle(self, *args, **kw):
        self.settles += 1
        if self.settles in self.fail_on:
            raise BudgetStoreError("injected settle failure", reason="unreachable")
        super().settle(*args, **kw)


# -- in memory: settlements sent again, leases swept -------------------------------------------
def test_a_failed_settle_is_kept_sent_again_first_and_counted_once():
    store = FlakyMemoryStore(fail_on={1, 2, 3})
    clock = VirtualClock()
    t = UsageTracker(clock=clock, store=store, config=BudgetConfig(daily_usd=1.0))
    claude = CountingClaude(seed=1, clock=clock)
    first = Call("sonnet", "Write a tagline.", max_tokens=200)
    r1 = t.send(claude, first)                       # its settle fails: kept, hold stays
    assert (t.stats.unsettled, t.stats.settle_errors) == (1, 1)
    assert store.get(f"held:daily:{DAY}") == -(-t.worst_case_usd(first) * NANO // 1)
    for _ in range(2):                               # the store still fails: fail closed
        with pytest.raises(BudgetStoreError):
            t.send(claude, Call("haiku", "Write a haiku.", max_tokens=50))
    assert claude.sent == 1 and t.stats.store_errors == 2 and t.stats.unsettled == 1
    r2 = t.send(claude, Call("haiku", "Write a haiku.", max_tokens=50))   # flushed, then sent
    assert claude.sent == 2 and t.stats.unsettled == 0
    cost = round(CAT.cost(r1.model, r1.usage) * NANO) + round(CAT.cost(r2.model, r2.usage) * NANO)
    assert store.get(f"held:daily:{DAY}") == store.get(f"spent:daily:{DAY}") == cost
    assert store.leases() == []


def test_a_store_that_cannot_reserve_fails_closed_and_no_call_is_sent():
    class Down(MemoryStore):
        def try_reserve(self, *a, **kw):
            raise BudgetStoreError("budget store unreachable (injected)", reason="unreachable")

    clock = VirtualClock()
    t = UsageTracker(clock=clock, store=Down())
    claude = CountingClaude(seed=1, clock=clock)
    with pytest.raises(BudgetStoreError) as e:
        t.send(claude, Call("haiku", "hi", max_tokens=10))
    assert e.value.reason == "unreachable" and claude.sent == 0
    assert t.stats.store_errors == 1 and t.stats.reserved_usd == 0


def test_holds_never_settled_are_swept_by_the_next_reserve_after_their_lease():
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    call = Call("opus", "Write a long essay.", max_tokens=1000)
    cap = 1.5 * UsageTracker().worst_case_usd(call)             # room for one hold, not two
    t = UsageTracker(store=store, config=BudgetConfig(daily_usd=cap, lease_s=30))
    t.reserve(call)                                  # never settled: its process "died"
    with pytest.raises(BudgetExceeded):
        t.reserve(call)
    now[0] = 29.0
    with pytest.raises(BudgetExceeded):              # still within its lease
        t.reserve(call)
    now[0] = 30.0
    r = t.reserve(call)                              # the sweep freed the first hold
    assert [lease.id for lease in store.leases()] == [r.lease]
    assert store.get(f"held:daily:{DAY}") == round(r.amount_usd * NANO + 0.5)
    # A settle that comes after its lease ran out counts its actual cost (its hold is gone).
    now[0] = 100.0
    store.try_reserve(["other"], [1], 0)             # any reservation sweeps
    assert store.get(f"held:daily:{DAY}") == 0 and store.leases()[0].keys == ("other",)
    result = ClaudeProvider(seed=2).simulate(call)
    t.settle(r, result)
    actual = round(CAT.cost(result.model, result.usage) * NANO)
    assert store.get(f"held:daily:{DAY}") == store.get(f"spent:daily:{DAY}") == actual


@pytest.mark.parametrize("kw", [dict(lease_s=0), dict(lease_s=float("inf")), dict(batch_lease_s=-1),
                                dict(lease_s=True)])
def test_lease_must_be_a_finite_positive_duration(kw):
    with pytest.raises(ConfigError, match="lease"):
        BudgetConfig(**kw)


# -- Redis: unreachable, saturated ---------------------------------------------------------------
@pytest.mark.redis
def test_an_unreachable_redis_fails_closed_quickly_with_a_cfopt_error(tmp_path):
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix="down", socket_timeout_s=0.5)
    clock = VirtualClock()
    t = UsageTracker(clock=clock, store=store)
    claude = CountingClaude(seed=1, clock=clock)
    t0 = time.perf_counter()
    with pytest.raises(BudgetStoreError, match="unreachable") as e:
        t.send(claude, Call("haiku", "hi", max_tokens=10))
    took = time.perf_counter() - t0
    print(f"\nunreachable Redis: BudgetStoreError after {took * 1000:.0f} ms, 0 calls sent")
    assert e.value.reason == "unreachable" and claude.sent == 0 and took < 3
    assert "redis://" not in str(e.value)


@pytest.mark.redis
def test_a_saturated_pool_gives_budget_store_errors_never_raw_redis_errors(redis_url, redis_namespace):
    """500 threads on a pool of 2 connections that waits 1 ms: some are refused, all cleanly."""
    store = RedisStore(redis_url, prefix=redis_namespace, max_connections=2, pool_timeout_s=0.001)
    limit = 0.30
    t = UsageTracker(clock=VirtualClock(), store=store, config=BudgetConfig(daily_usd=limit))
    calls = _calls(500, seed=3)
    outcome, lock = {"ok": 0, "refused": 0, "store": 0, "other": [], "cost": 0}, threading.Lock()
    gate = threading.Barrier(500)

    def one(call):
        gate.wait()
        try:
            res = t.reserve(call)
        except BudgetExceeded:
            key = "refused"
        except BudgetStoreError as e:
            key = "store" if e.reason == "saturated" else f"other {e.reason}"
        except Exception as e:  # a raw redis error is the bug this test guards against
            with lock:
                outcome["other"].append(type(e).__name__)
            return
        else:
            result = ClaudeProvider(seed=7).simulate(call)
            time.sleep(0.002)
            t.settle(res, result)
            with lock:
                outcome["cost"] += round(CAT.cost(result.model, result.usage) * NANO)
            key = "ok"
        with lock:
            outcome[key] = outcome.get(key, 0) + 1
    threads = [threading.Thread(target=one, args=(c,)) for c in calls]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    while t.stats.unsettled:  # settlements the saturated pool refused go now
        try:
            t.flush()
        except BudgetStoreError:
            time.sleep(0.01)
    print(f"\nsaturated pool (2 connections, 1 ms wait), 500 threads: {outcome['ok']} reserved, "
          f"{outcome['refused']} over the cap, {outcome['store']} BudgetStoreError(saturated), "
          f"{t.stats.settle_errors} settlements sent again, other errors {outcome['other']}")
    assert outcome["other"] == [] and outcome["store"] > 0
    assert outcome["ok"] + outcome["refused"] + outcome["store"] == 500
    spent = store.get(f"spent:daily:{DAY}")
    assert spent == outcome["cost"] <= limit * NANO
    assert store.get(f"held:daily:{DAY}") == spent and store.leases() == []


@pytest.mark.redis
def test_the_default_bounded_pool_serves_500_threads_without_a_store_error(redis_url, redis_namespace):
    store = RedisStore(redis_url, prefix=redis_namespace)
    t = UsageTracker(clock=VirtualClock(), store=store, config=BudgetConfig(daily_usd=0.30))
    errors = []

    def one(call):
        try:
            t.settle(t.reserve(call), ClaudeProvider(seed=7).simulate(call))
        except BudgetExceeded:
            pass
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")
    with ThreadPoolExecutor(500) as ex:
        list(ex.map(one, _calls(1000, seed=4)))
    print(f"\ndefault pool ({store.max_connections} connections), 500 threads x 1,000 calls: "
          f"{len(errors)} errors, {t.stats.store_errors} store errors")
    assert errors == [] and t.stats.store_errors == 0 and t.stats.unsettled == 0
    assert store.get(f"spent:daily:{DAY}") <= 0.30 * NANO


# -- Redis: 2 processes x 500 threads, settlements failing ----------------------------------------
_WORKER = r"""
import json, random, sys, threading, time
from cfopt.cost.budget import BudgetConfig, RedisStore, UsageTracker
from cfopt.clock import VirtualClock
from cfopt.errors import BudgetExceeded, BudgetStoreError
from cfopt.providers import ClaudeProvider
from cfopt.providers.base import Call
url, prefix, ledger, limit, seed, lease_s, fail, abandon = sys.argv[1:9]
seed, fail, abandon = int(seed), float(fail), int(abandon)
rng, rng_lock = random.Random(seed), threading.Lock()

class Flaky(RedisStore):
    # Half the injected failures happen before Redis hears of the settle, half after it
    # applied it (the reply was lost): both are sent again, and must count once.
    def settle(self, *a, **kw):
        with rng_lock:
            roll = rng.random()
        if roll < fail / 2:
            raise BudgetStoreError("injected: settle lost before Redis", reason="unreachable")
        super().settle(*a, **kw)
        if roll < fail:
            raise BudgetStoreError("injected: settle reply lost", reason="timeout")

store = Flaky(url, prefix=prefix, ledger=ledger)
# The calls run against the cap less ROOM, and the abandoned holds against the whole cap: when
# the threads run one after another (a busy machine), the calls fill their cap to within one
# small call, and the holds would find no room left at all.
ROOM = 0.05
t = UsageTracker(clock=VirtualClock(), store=store,
                 config=BudgetConfig(float(limit) - ROOM, 1000.0, lease_s=float(lease_s)))
claude = ClaudeProvider(seed=seed)
models, tokens = ["haiku", "sonnet", "opus"], [50, 200, 800]
calls = [Call(models[i % 3], f"Write about item {i} {seed}", max_tokens=tokens[(i * 7) % 3]) for i in range(500)]
out = {"ok": 0, "refused": 0, "store": 0, "cost": 0, "abandoned_cost": 0}
lock, gate = threading.Lock(), threading.Barrier(500)
def one(call):
    gate.wait()
    try:
        res = t.reserve(call)
    except BudgetExceeded:
        key = "refused"
    except BudgetStoreError:
        key = "store"
    else:
        result = claude.simulate(res.call)
        time.sleep(0.005)   # the call takes real time: reservations overlap
        t.settle(res, result)
        with lock:
            out["cost"] += round(t.catalog.cost(result.model, result.usage) * 1e9)
        key = "ok"
    with lock:
        out[key] += 1
threads = [threading.Thread(target=one, args=(c,)) for c in calls]
for th in threads: th.start()
for th in threads: th.join()
while t.stats.unsettled:
    try:
        t.flush()
    except BudgetStoreError:
        pass
out["settle_errors"] = t.stats.settle_errors
# Both processes' calls are settled before either abandons holds (a barrier on the shared Redis):
# on a busy machine, the other process's threads would otherwise take the room those holds need.
import redis
barrier = redis.Redis.from_url(url)
barrier.incr(prefix + ":settled")
deadline = time.time() + 60
while int(barrier.get(prefix + ":settled") or 0) < 2 and time.time() < deadline:
    time.sleep(0.002)
# Then this process "dies" between sending calls and settling them: holds nobody will settle.
t = UsageTracker(clock=VirtualClock(), store=store,
                 config=BudgetConfig(float(limit), 1000.0, lease_s=float(lease_s)))
for call in calls[:abandon]:
    try:
        res = t.reserve(call)
    except BudgetExceeded:
        continue
    out["abandoned_cost"] += round(t.catalog.cost(*(lambda r: (r.model, r.usage))(claude.simulate(res.call))) * 1e9)
    out["abandoned"] = out.get("abandoned", 0) + 1
print(json.dumps(out))
"""


@pytest.mark.redis
def test_two_processes_500_threads_with_failing_settles_never_overspend_and_leases_expire(
        redis_url, redis_namespace, tmp_path):
    limit, lease_s, fail_rate = 0.60, 6.0, 0.10
    ledger = tmp_path / "usage.jsonl"   # one file shared by both processes (O_APPEND)
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, redis_url, redis_namespace, str(ledger),
                               str(limit), str(seed), str(lease_s), str(fail_rate), "40"],
                              stdout=subprocess.PIPE, text=True) for seed in (1, 2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    ran = time.monotonic() - t0
    assert all(p.returncode == 0 for p in procs)
    store = RedisStore(redis_url, prefix=redis_namespace)
    spent = store.get(f"spent:daily:{DAY}")
    settled = sum(o["cost"] for o in outs)
    abandoned = sum(o["abandoned_cost"] for o in outs)
    # No overspend: every call that reached a provider, settled or not, fits in the cap.
    assert settled + abandoned <= limit * NANO
    assert spent == settled, "each settlement counted exactly once, retried or not"
    assert sum(o["settle_errors"] for o in outs) > 20 and sum(o["refused"] for o in outs) > 0
    live = store.leases()
    assert len(live) == sum(o.get("abandoned", 0) for o in outs) > 0
    assert store.get(f"held:daily:{DAY}") == spent + sum(lease.amount for lease in live)
    # After the lease, the next reservation sweeps every abandoned hold.
    time.sleep(max(0.0, max(lease.expires_at for lease in live) - store.server_time()) + 0.2)
    probe = UsageTracker(clock=VirtualClock(), store=store, config=BudgetConfig(limit, 1000.0))
    probe.settle(probe.reserve(Call("haiku", "x", max_tokens=5)), None)
    assert store.leases() == [] and store.get(f"held:daily:{DAY}") == spent
    # The ledger has every settlement once (retries included) and the abandoned holds as expired.
    rebuilt = rebuild(read_ledgers([ledger], prefix=redis_namespace), now=store.server_time())
    assert rebuilt.counters[f"{redis_namespace}:spent:daily:{DAY}"] == spent
    assert rebuilt.expired == len(live)
    print(f"\n2 processes x 500 threads, {fail_rate:.0%} of settles failing: "
          f"{sum(o['ok'] for o in outs)} calls, {sum(o['refused'] for o in outs)} refused at the "
          f"${limit} cap, {sum(o['settle_errors'] for o in outs)} settles sent again; spent "
          f"${spent / NANO:.6f} (+ ${abandoned / NANO:.6f} by {len(live)} abandoned holds) <= "
          f"${limit}; abandoned holds gone {lease_s:.0f} s after their lease; run {ran:.1f} s")


# -- Redis restarted without persistence -----------------------------------------------------------
@pytest.fixture
def throwaway_redis():
    port = free_port()
    procs = [start_redis(port)]

    def restart():
        procs[-1].terminate()
        procs[-1].wait(timeout=10)
        procs.append(start_redis(port))
    yield f"redis://127.0.0.1:{port}/0", restart
    procs[-1].terminate()
    procs[-1].wait(timeout=10)


@pytest.mark.redis
def test_redis_restarted_without_persistence_refuses_until_reconciled_and_never_overspends(
        throwaway_redis, tmp_path, capsys):
    url, restart = throwaway_redis
    limit = 0.05
    config = BudgetConfig(daily_usd=limit, monthly_usd=1000.0)
    ledgers = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]   # one file per process this time
    trackers = [UsageTracker(clock=VirtualClock(), config=config,
                             store=RedisStore(url, prefix="shop", ledger=path)) for path in ledgers]
    claude = ClaudeProvider(seed=5)
    calls, costs = iter(_calls(400, seed=5)), []

    def spend(t, n):
        for _ in range(n):
            call = next(calls)
            r = t.reserve(call)
            result = claude.simulate(r.call)
            t.settle(r, result)
            costs.append(CAT.cost(result.model, result.usage))
    spend(trackers[0], 6)
    spend(trackers[1], 6)
    before = sum(costs)
    in_flight = trackers[0].reserve(next(calls))   # a call under way while Redis restarts
    restart()                                      # mid-day, no RDB, no AOF: every key is gone
    for t in trackers:
        with pytest.raises(BudgetStoreError, match="reconcile") as e:
            t.reserve(next(calls))
        assert e.value.reason == "reset"
    # A process started after the restart is refused too: the reset marker, and its ledger.
    late = UsageTracker(clock=VirtualClock(), config=config,
                        store=RedisStore(url, prefix="shop", ledger=ledgers[0]))
    with pytest.raises(BudgetStoreError, match="reset"):
        late.reserve(next(calls))
    result = claude.simulate(in_flight.call)       # the call in flight ends during the reset
    trackers[0].settle(in_flight, result)
    costs.append(CAT.cost(result.model, result.usage))
    assert trackers[0].stats.unsettled == 0        # the ledger has it; reconcile will count it
    # The operator reconciles from both ledgers.
    assert cli(["budget", "reconcile", "--redis", url, "--prefix", "shop",
                "--ledger", str(ledgers[0]), "--ledger", str(ledgers[1])]) == 0
    report = capsys.readouterr().out
    assert "reset (no epoch: the counters are gone)" in report and "allowed again" in report
    store = trackers[0].store
    assert store.get(f"spent:daily:{DAY}") == sum(round(c * NANO) for c in costs)
    refused = 0
    for t in (*trackers, late):          # every process goes on; the cap still holds
        try:
            spend(t, 200)
        except BudgetExceeded:
            refused += 1
    spent = store.get(f"spent:daily:{DAY}")
    assert refused == 3 and spent == sum(round(c * NANO) for c in costs) <= limit * NANO
    print(f"\nRedis restarted without persistence after ${before:.6f} of ${limit}: 3 of 3 "
          f"processes refused (BudgetStoreError reset) until `cfopt budget reconcile`; after it "
          f"spent ${spent / NANO:.6f} <= ${limit} (without the epoch check the day could have "
          f"spent ${before + limit:.6f})")


@pytest.mark.redis
def test_counters_rolled_back_to_an_older_snapshot_are_detected(redis_url, redis_namespace):
    import redis
    store = RedisStore(redis_url, prefix=redis_namespace)
    t = UsageTracker(clock=VirtualClock(), store=store, config=BudgetConfig(daily_usd=1.0))
    r = redis.Redis.from_url(redis_url)
    for call in _calls(2):
        t.settle(t.reserve(call), ClaudeProvider(seed=1).simulate(call))
    snapshot = {k: r.dump(k) for k in r.scan_iter(match=f"{redis_namespace}:*")}
    for call in _calls(5, seed=1):
        t.settle(t.reserve(call), ClaudeProvider(seed=1).simulate(call))
    for k, v in snapshot.items():      # an RDB snapshot from before those calls comes back
        r.restore(k, 0, v, replace=True)
    with pytest.raises(BudgetStoreError, match="rolled back"):
        t.reserve(Call("haiku", "x", max_tokens=5))
    assert "older generation" in store.reset_state()["why"]


@pytest.mark.redis
def test_reconcile_refuses_a_live_budget_and_needs_a_ledger(redis_url, redis_namespace):
    store = RedisStore(redis_url, prefix=redis_namespace)
    with pytest.raises(ConfigError, match="--ledger"):
        reconcile(store)
    with pytest.raises(ConfigError, match="not marked reset"):
        reconcile(store, from_zero=True)
    assert cli(["budget", "reconcile", "--redis", redis_url, "--prefix", redis_namespace,
                "--from-zero"]) == 2
