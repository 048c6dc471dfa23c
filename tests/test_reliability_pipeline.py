"""Issue 8 through the pipeline itself: two tenants sharing its cache stores, budgets under faults.

Tenants: the same workload is replayed as tenant "a", then "b", then "a" again, the three runs
sharing one disk file (or one Redis namespace, each run with a fresh disk file). Each run's
provider calls have request ids of their own (``RunResult.origins``), and every outcome names
the call whose answer it served (``Outcome.origin``): tenant b must be served only from its own
calls, never from a's entries, exactly or semantically, while a's second run is served from
a's first one (so the check can fail). The memory layer and the semantic index belong to one
run, so across runs only the shared stores can carry an answer; a shared semantic index is
covered by ``tests/test_reliability_tenants.py``.

Budgets: a 1,000-request replay with providers failing at 20% against a daily cap well below
what the replay would spend. Every provider call reserves its worst case first; the cap is
never passed, failed and retried calls leave no money held, the settled spend is what the
outcomes report, and each alert fires once.
"""
from __future__ import annotations

import collections
from dataclasses import replace

import pytest

from cfopt.latency.tie import TIE_COPIES
from cfopt.cost.budget import NANO, BudgetConfig, MemoryStore
from cfopt.errors import ConfigError
from cfopt.pipeline import Pipeline, PipelineConfig
from cfopt.providers import Faults
from cfopt.workload import Request, generate

# -- two tenants ---------------------------------------------------------------------------------
N_TENANT = 400
PARAPHRASES = [   # pairs the semantic index matches, so semantic hits happen within each run
    ("Write a blog post about running in winter for beginners.",
     "Write a blog post for beginners about running in winter."),
    ("Write a product description for our new ergonomic office chair.",
     "Write a product description of our new ergonomic office chair."),
]


def _tenant_workload() -> list[Request]:
    # The paraphrase a minute after the original: by then its answer is in the cache.
    extra = [Request(t=600.0 + 60 * j + i, type="text", prompt=pair[j], quality="standard")
             for j in (0, 1) for i, pair in enumerate(PARAPHRASES)]
    return generate(N_TENANT, seed=11, duration_s=600) + extra


def _replay_as(tenant: str, seed: int, requests, **shared):
    config = replace(PipelineConfig(), tenant=tenant)
    return Pipeline(config, seed=seed, **shared).run(requests)


def _sources(run) -> dict[str, int]:
    return dict(collections.Counter(o.source.split(":")[0] for o in run.outcomes))


@pytest.mark.parametrize("store", ["disk", pytest.param("redis", marks=pytest.mark.redis)])
def test_two_tenants_sharing_the_pipelines_stores_never_get_each_others_answers(
        store, tmp_path, request):
    requests = _tenant_workload()
    url = None
    if store == "disk":
        def shared(run: str) -> dict:
            return {"disk_path": str(tmp_path / "shared.sqlite")}
    else:
        url, namespace = (request.getfixturevalue("redis_url"),
                          request.getfixturevalue("redis_namespace"))

        def shared(run: str) -> dict:   # a fresh disk file each run: only Redis is shared
            return {"redis_url": url, "redis_namespace": namespace,
                    "disk_path": str(tmp_path / f"{run}.sqlite")}
    a1 = _replay_as("a", 1, requests, **shared("a1"))
    b = _replay_as("b", 2, requests, **shared("b"))
    a2 = _replay_as("a", 3, requests, **shared("a2"))
    ids = {name: set(run.origins) for name, run in (("a1", a1), ("b", b), ("a2", a2))}
    assert not (ids["a1"] & ids["b"]) and not (ids["a1"] & ids["a2"]), "request ids reused"
    for run in (a1, b, a2):
        assert len(run.outcomes) == len(requests)
        assert not [o for o in run.outcomes if o.source == "error"]
    # Tenant b: every answer, provider or cache (exact or semantic), came from b's own calls.
    crossed = [o for o in b.outcomes if o.origin in ids["a1"]]
    foreign = [o for o in b.outcomes if o.origin not in ids["b"]]
    assert not crossed and not foreign, f"b served from elsewhere: {(crossed or foreign)[:3]}"
    assert _sources(b).get("semantic", 0) > 0, "the semantic path was not tempted"
    # Tenant a again: served from a1's entries, found in the shared store (then kept in memory).
    from_a1 = [o for o in a2.outcomes if o.origin in ids["a1"]]
    assert sum(o.source == store for o in from_a1) > 0 and all(o.from_cache for o in from_a1)
    assert a2.provider_calls < a1.provider_calls
    # Sharing changed nothing for b: the same replay on stores of its own answers alike.
    alone = _replay_as("b", 2, requests, **({} if store == "disk" else {"redis_url": url}))
    assert [(o.source, o.origin) for o in b.outcomes] == \
        [(o.source, o.origin) for o in alone.outcomes]
    print(f"\ntenants via the pipeline ({store} shared), {len(requests)} requests per run: "
          f"a {_sources(a1)}; b {_sources(b)}, {len(crossed)} answers from a, clock "
          f"{b.duration_s:.0f} s; "
          f"a again {_sources(a2)}, {len(from_a1)} answers from a's first run")


def test_shared_store_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="redis_namespace needs a redis_url"):
        Pipeline(redis_namespace="tenants")
    with pytest.raises(ConfigError, match="namespace"):
        Pipeline(redis_url="redis://127.0.0.1:1/0", redis_namespace="bad key*")
    with pytest.raises(ConfigError, match="disk_path"):
        Pipeline(disk_path=3)
    with pytest.raises(ConfigError, match="budget must be a BudgetConfig"):
        Pipeline(budget=5.0)
    # The file stays after the run, with the entries in it.
    path = tmp_path / "kept.sqlite"
    run = Pipeline(disk_path=str(path)).run(_tenant_workload()[:20])
    assert path.exists() and run.cache_layers["disk"]["sets"] > 0


# -- budgets during a faulted replay ----------------------------------------------------------------
N_BUDGET, FAULT_RATE, CAP_SHARE = 1_000, 0.20, 0.4


class WatchedStore(MemoryStore):
    """A ``MemoryStore`` that remembers the most it ever held and spent per budget."""

    def __init__(self) -> None:
        super().__init__()
        self.peak: dict[str, int] = collections.defaultdict(int)

    def _watch(self) -> None:
        for key, value in list(self._values.items()):
            self.peak[key] = max(self.peak[key], value)

    def try_reserve(self, keys, limits, amount, **kw):
        out = super().try_reserve(keys, limits, amount, **kw)
        self._watch()
        return out

    def settle(self, lease, held_keys, spent_keys, actual):
        super().settle(lease, held_keys, spent_keys, actual)
        self._watch()


def _faults(rate: float) -> Faults:
    q = rate / 4   # as in test_reliability_faults.py: 429, 529, 500 and timeouts
    return Faults(rate_limited=q, overloaded=q, server_error=q, timeout=q)


@pytest.mark.parametrize("name, config, policy", [
    ("optimized", PipelineConfig(), "refuse"),                # retries inside each reservation
    ("no retries", PipelineConfig.select(without=["resilience"]), "refuse"),  # failures free holds
    ("baseline", PipelineConfig.baseline(), "downgrade"),     # premium calls moved to routed ones
], ids=["optimized-refuse", "no-retries-refuse", "baseline-downgrade"])
def test_budget_holds_under_faults_leaks_nothing_and_alerts_once(name, config, policy):
    requests = generate(N_BUDGET, seed=3, duration_s=900)
    free = Pipeline(config, seed=1, faults=_faults(FAULT_RATE)).run(requests)
    cap = round(CAP_SHARE * free.cost_usd, 4)   # well below what the replay would spend
    assert free.usage.refused == 0 and free.cost_usd > cap
    store = WatchedStore()
    budget = BudgetConfig(daily_usd=cap, monthly_usd=1000.0, on_exhausted=policy)
    run = Pipeline(config, seed=1, faults=_faults(FAULT_RATE), budget=budget,
                   budget_store=store).run(requests)
    day, month = "daily:2026-11-01", "monthly:2026-11"
    spent, held = store.get(f"spent:{day}"), store.get(f"held:{day}")
    # Nothing lost: one outcome per request, each an answer or a typed error.
    assert sorted(o.index for o in run.outcomes) == list(range(N_BUDGET))
    refused = [o for o in run.outcomes if o.error == "BudgetExceeded"]
    assert refused and run.usage.refused > 0
    # The cap was never passed, not even for a moment, and the worst case was never wrong.
    assert store.peak[f"held:{day}"] <= round(cap * NANO) and spent <= round(cap * NANO)
    assert run.usage.overruns == 0
    # No money left held: every reservation, failed and retried calls' included, was settled.
    assert held == spent and store.get(f"held:{month}") == store.get(f"spent:{month}")
    assert abs(run.usage.reserved_usd) < 1e-9
    # Settled spend is what the outcomes report, with what the cache paid to verify
    # near-duplicates (a judge's calls, audits' fresh answers), and what reached the providers.
    assert spent == pytest.approx(sum(round(o.cost_usd * NANO) for o in run.outcomes)
                                  + round(run.verification["cost_usd"] * NANO), abs=len(run.outcomes))
    assert spent == round(run.cost_usd * NANO)
    # Each threshold alerted once, in order.
    assert run.budget_alerts == ["daily budget 50%", "daily budget 80%", "daily budget 100%"]
    provider_errors = [o for o in run.outcomes if o.error and o.error != "BudgetExceeded"]
    if name == "optimized":
        assert run.resilience.retries > 0 and run.failed_calls > 0
    if run.resilience is None:   # each failed call was one reservation, released ...
        t = run.ties   # ... but a tied copy's, rescued by another copy or failing with it
        lone = run.failed_calls - (t.rescued + (TIE_COPIES - 1) * t.lost if t is not None else 0)
        assert provider_errors and run.usage.failures == lone > 0
    if name == "baseline":
        assert run.usage.downgraded > 0
        assert {o.model for o in run.outcomes if o.model} - set(free.calls_by_model), \
            "downgraded calls went to models the baseline never calls"
    print(f"\nbudget ({name}, {policy}) at {FAULT_RATE:.0%} faults: {N_BUDGET} requests, cap "
          f"${cap} ({CAP_SHARE:.0%} of ${free.cost_usd:.4f} unbudgeted); spent "
          f"${spent / NANO:.6f}, peak committed ${store.peak[f'held:{day}'] / NANO:.6f}, held at end "
          f"${(held - spent) / NANO:.6f}; refused {run.usage.refused} calls "
          f"({len(refused)} requests), downgraded {run.usage.downgraded}, failed calls freed "
          f"{run.usage.failures}, provider calls {run.provider_calls} ({run.failed_calls} failed), "
          f"retries {run.resilience.retries if run.resilience else 0}; alerts {run.budget_alerts}")


def test_budget_alerts_are_budget_alerts_only():
    """Open circuit breakers are alerts on the bus too, but not budget alerts (a bug, fixed)."""
    run = Pipeline(PipelineConfig(), seed=1, faults=Faults(overloaded=0.3, server_error=0.3)).run(
        generate(300, seed=3, duration_s=300))
    assert run.resilience.breaker_opens > 0 and run.budget_alerts == []
