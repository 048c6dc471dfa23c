"""The pipeline is made of the exercise's classes: each stage can be replaced, and it shows."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from cfopt import (BatchProcessor, CacheManager, ContentDeduplication, CostOptimizer,
                   PerformanceMonitor, PerformanceOptimizer, Pipeline, PipelineConfig)
from cfopt.errors import ConfigError
from cfopt.pipeline import build_report, limits, run_both
from cfopt.workload import load
from cfopt.course.kit import repo_path


@pytest.fixture(scope="module")
def tiny():
    return load(repo_path("datasets/tiny.jsonl"))


def counting(cls, *methods):
    """A subclass of ``cls`` that counts calls of ``methods`` (class-wide, in ``calls``)."""
    calls: Counter[str] = Counter()

    def wrap(name):
        original = getattr(cls, name)

        def counted(self, *a, **k):
            calls[name] += 1
            return original(self, *a, **k)
        return counted
    sub = type(f"Counting{cls.__name__}", (cls,), {m: wrap(m) for m in methods})
    sub.calls = calls
    return sub


def test_each_of_the_six_classes_is_called_when_it_replaces_its_default(tiny):
    Cost = counting(CostOptimizer, "select_optimal_model", "optimize_prompt", "bind")
    Cache = counting(CacheManager, "lookup", "store", "bind")
    Dedup = counting(ContentDeduplication, "find", "add")
    Latency = counting(PerformanceOptimizer, "send", "share", "is_deferred", "bind")
    Batch = counting(BatchProcessor, "submit", "process_batch", "bind")
    Monitor = counting(PerformanceMonitor, "handle", "bind")
    run = Pipeline(PipelineConfig(), cost=Cost(), cache=Cache(dedup=Dedup()), latency=Latency(),
                   batching=Batch(), monitor=Monitor(), seed=3).run(tiny)
    assert len(run.outcomes) == len(tiny)
    for stage in (Cost, Cache, Dedup, Latency, Batch, Monitor):
        missing = [m for m, n in stage.calls.items() if n == 0]
        assert stage.calls and not missing, (stage.__name__, dict(stage.calls))
    # Each was called as often as the traffic says: one look-up per request, one route per
    # distinct request view, one batch submission per deferred provider call.
    assert Cache.calls["lookup"] == len(tiny)
    deferred_calls = sum(o.source == "provider" and o.path != "interactive" for o in run.outcomes)
    assert Batch.calls["submit"] == deferred_calls > 0
    # The monitor heard every event each stage published, and the pipeline's own on top
    # (response times, costs).
    assert run.heard_by_monitor == run.events_by_stage
    assert Monitor.calls["handle"] > sum(run.events_by_stage.values())


class PremiumOnly(CostOptimizer):
    """A learner's router that plays safe: every task to the premium model of its type."""

    def select_optimal_model(self, task):
        choice = super().select_optimal_model(task)
        return replace(choice, model=self.default_model(task.type), rationale="always premium")


def test_a_replaced_stage_changes_the_report(tiny):
    lim = limits(tiny, seed=3)
    reports = {}
    for name, stages in (("library", {}), ("premium", {"cost": PremiumOnly()})):
        base, opt = run_both(tiny, seed=3, monitor=PerformanceMonitor(), stages=stages)
        reports[name] = build_report(tiny, base, opt, lim)
    lib, mine = reports["library"], reports["premium"]
    assert mine["details"]["optimized_cost_usd"] > lib["details"]["optimized_cost_usd"]
    assert mine["quality"]["quality_kept"] > lib["quality"]["quality_kept"]
    assert mine["headroom"]["cost"]["ratio"] > lib["headroom"]["cost"]["ratio"]
    assert "opus" in " ".join(mine["details"]["calls_by_model"])


def test_knobs_are_set_by_name_and_reach_the_running_stage(tiny):
    p = Pipeline(seed=3)
    params = p.get_params()
    assert params["cache__memory_entries"] == 10_000 and params["latency__max_batch_size"] == 1
    seen = []

    def tick(k):
        if k == 1:
            p.set_params(cache__memory_entries=7, cost__quality_bar=p.cost.quality_bar)
        seen.append(p.cache.layers[0].max_entries)
    p.run(tiny, every_s=60.0, on_tick=tick)
    assert seen[0] == 7 and set(seen) == {7}
    with pytest.raises(ConfigError, match="no knob 'size'"):
        p.set_params(cache__size=3)
    with pytest.raises(ConfigError, match="unknown stage 'router'"):
        p.set_params(router__x=1)


def test_stages_must_be_bound_to_be_used_alone_they_say_so():
    with pytest.raises(ConfigError, match="no sender"):
        import asyncio
        asyncio.run(PerformanceOptimizer().send(None))   # type: ignore[arg-type]


def test_a_pipeline_run_twice_continues_on_its_clock(tiny):
    p = Pipeline(PipelineConfig(), seed=3)
    first = p.run(tiny[:40])
    start = p.clock.now()
    second = p.run(tiny[:40])
    assert start > 0 and min(o.t for o in second.outcomes) == min(o.t for o in first.outcomes)
    # Fresh per-run layers: the second run starts cold again, so it pays the same calls.
    assert second.provider_calls == first.provider_calls
