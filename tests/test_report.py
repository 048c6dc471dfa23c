"""``cfopt report``: the contract shape, determinism, and figures that agree with each other."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cfopt.pipeline import PipelineConfig, run_both
from cfopt.pipeline.score import false_hits, limits, quality_kept
from cfopt.pipeline.report import Targets, build_report, format_table, money, pct
from cfopt.workload import generate

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "datasets" / "tiny.jsonl"
SHAPE = ROOT.parent / "shared" / "contracts" / "report_shape.py"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cfopt.cli", "report", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONHASHSEED": "0"})


@pytest.fixture(scope="module")
def tiny_json(tmp_path_factory) -> Path:
    if not TINY.exists():
        pytest.skip("datasets/tiny.jsonl is absent")
    done = _cli("--workload", str(TINY), "--json", "--seed", "5")
    assert done.returncode == 0, done.stderr
    path = tmp_path_factory.mktemp("report") / "tiny.json"
    path.write_text(done.stdout)
    return path


def test_json_passes_the_contract(tiny_json):
    if not SHAPE.exists():
        pytest.skip("the shared report contract is absent")
    done = subprocess.run([sys.executable, str(SHAPE), str(tiny_json)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_same_seed_same_json(tiny_json):
    again = _cli("--workload", str(TINY), "--json", "--seed", "5")
    assert again.stdout == tiny_json.read_text()


def test_figures_agree(tiny_json):
    rep = json.loads(tiny_json.read_text())
    o, d, lim = rep["optimization_results"], rep["details"], rep["limits"]
    assert o["api_calls_saved"] == d["baseline_calls"] - d["optimized_calls"]
    assert 0.0 <= d["hit_rate"] <= 1.0 and d["hit_rate"] <= lim["hit_rate_ceiling"] + 1e-9
    assert lim["cost_floor_usd"] <= d["optimized_cost_usd"] + 1e-9
    assert o["cost_reduction"] == pct(1 - d["optimized_cost_usd"] / d["baseline_cost_usd"])
    assert o["money_saved"] == money(d["baseline_cost_usd"] - d["optimized_cost_usd"])
    assert d["p95_ms"] == rep["performance_metrics"]["p95_response_time"]
    assert set(rep["success_criteria"]) == {"cost_reduction", "response_time", "cache_hit_rate",
                                            "batch_processing", "live_dashboard"}
    for c in rep["success_criteria"].values():
        assert isinstance(c["passed"], bool) and c["measured"]
    # Headroom: each ratio is the measured figure over its limit, and the limits are ordered.
    h = rep["headroom"]
    assert h["cost"]["ratio"] == pytest.approx(d["optimized_cost_usd"] / h["cost"]["floor_usd"], rel=1e-3)
    assert h["cost"]["floor_usd"] <= h["cost"]["router_floor_usd"] + 1e-9
    assert h["hit_rate"]["ceiling"] == lim["hit_rate_ceiling"] and h["hit_rate"]["ratio"] <= 1 + 1e-9
    assert h["hit_rate"]["measured"] >= d["hit_rate"]            # hits, plus shared calls
    assert h["p95"]["ratio"] == pytest.approx(d["p95_ms"] / h["p95"]["floor_ms"], rel=1e-3)


HOUR = ROOT / "datasets" / "contentflow_1h.jsonl"


def test_the_bundled_hour_against_the_exercise_criteria():
    if not HOUR.exists():
        pytest.skip("datasets/contentflow_1h.jsonl is absent")
    done = _cli("--workload", str(HOUR), "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    rep = json.loads(done.stdout)
    c = rep["success_criteria"]
    # Four of the five pass on the bundled hour. Response time is judged on p95, which at the
    # catalog's median speeds sits near 2 s (its floor is Sonnet's median time to first token):
    # whatever the verdict, it must be the target's, read from the figure.
    failed = {k: v for k, v in c.items() if not v["passed"] and k != "response_time"}
    assert not failed, failed
    assert c["response_time"]["passed"] == (rep["details"]["p95_ms"] < 2000)
    assert c["live_dashboard"]["unheard"] == []
    assert set(c["live_dashboard"]["stages"]) == {"cost", "cache", "latency", "batching"}
    h = rep["headroom"]
    assert h["cost"]["ratio"] >= 1 - 1e-9 and h["p95"]["ratio"] > 0 and 0 < h["hit_rate"]["ratio"] <= 1
    # Nothing the exercise does not ask for is judged: no other PASS/FAIL anywhere.
    judged = [k for k, v in rep.items() if isinstance(v, dict) and any(
        isinstance(x, dict) and "passed" in x for x in v.values())]
    assert judged == ["success_criteria"]


def test_table_and_only_flag():
    if not TINY.exists():
        pytest.skip("datasets/tiny.jsonl is absent")
    done = _cli("--workload", str(TINY), "--only", "cache", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "success criteria" in done.stdout and "headroom" in done.stdout
    assert "cache: exact hits" in done.stdout and "FAIL  batch_processing" in done.stdout
    assert "routing:" not in done.stdout
    bad = _cli("--workload", str(TINY), "--without", "magic")
    assert bad.returncode == 2 and "unknown optimization magic" in bad.stderr


@pytest.fixture(scope="module")
def replay():
    reqs = generate(300, seed=21, duration_s=900)
    base, opt = run_both(reqs, seed=2)
    return reqs, base, opt, limits(reqs, seed=2)


def test_scores_read_intent_only_after_the_replay(replay):
    reqs, base, opt, lim = replay
    assert quality_kept(reqs, base) == pytest.approx(1.0)        # premium everywhere
    assert 0.9 <= quality_kept(reqs, opt) <= 1.0
    assert false_hits(reqs, opt) is not None
    stripped = [r.__class__(**{**r.to_dict(), "intent": None}) for r in reqs]
    assert false_hits(stripped, opt) is None
    assert lim.floor_calls == len({r.intent for r in reqs})
    assert lim.cost_floor_usd <= opt.cost_usd + 1e-9


def test_a_false_hit_is_counted_and_costs_quality(replay):
    reqs, _base, opt, _lim = replay
    hit = next(o for o in opt.outcomes if o.from_cache and reqs[o.index].type == "text")
    before = quality_kept(reqs, opt)
    relabelled = list(reqs)
    relabelled[hit.index] = relabelled[hit.index].__class__(
        **{**reqs[hit.index].to_dict(), "intent": "something else entirely"})
    assert false_hits(relabelled, opt) == false_hits(reqs, opt) + 1
    assert quality_kept(relabelled, opt) < before


def test_criteria_follow_the_targets(replay):
    reqs, base, opt, lim = replay
    easy = build_report(reqs, base, opt, lim, targets=Targets(cost_reduction=0.0, response_s=1e9,
                                                               hit_rate=0.0, quality_kept=0.0))
    hard = build_report(reqs, base, opt, lim, targets=Targets(cost_reduction=1.0, response_s=0.0,
                                                               hit_rate=1.0))
    for name in ("cost_reduction", "response_time", "cache_hit_rate"):
        assert easy["success_criteria"][name]["passed"] and not hard["success_criteria"][name]["passed"]
    assert not easy["success_criteria"]["live_dashboard"]["passed"]   # no monitor listened
    assert "no monitor" in easy["success_criteria"]["live_dashboard"]["measured"]
    assert "success criteria" in format_table(easy)


def test_a_monitor_deaf_to_one_stage_fails_the_dashboard_criterion():
    from cfopt.monitoring import PerformanceMonitor

    class DeafToBatching(PerformanceMonitor):
        def handle(self, e):
            if e.data.get("stage") != "batching":
                super().handle(e)
    reqs = generate(300, seed=21, duration_s=900)
    heard = {}
    for name, monitor in (("all", PerformanceMonitor()), ("deaf", DeafToBatching())):
        base, opt = run_both(reqs, seed=2, monitor=monitor)
        heard[name] = build_report(reqs, base, opt, limits(reqs, seed=2))["success_criteria"]["live_dashboard"]
    assert heard["all"]["passed"] and heard["all"]["unheard"] == []
    assert not heard["deaf"]["passed"] and heard["deaf"]["unheard"] == ["batching"]


def test_the_cost_floor_is_the_cheapest_fractional_choice_at_the_quality_bar():
    import itertools
    import random
    from cfopt.pipeline.score import cheapest_at_quality
    rng = random.Random(4)
    for _ in range(200):
        items = [[(rng.uniform(0, 10), rng.uniform(0, 5)) for _ in range(rng.randint(1, 4))]
                 for _ in range(rng.randint(1, 5))]
        best_q = sum(max(q for _, q in opts) for opts in items)
        need = rng.uniform(0, best_q)
        lp = cheapest_at_quality(items, need)
        # No whole choice that meets the bar is cheaper than the relaxation...
        whole = min(sum(c for c, _ in pick) for pick in itertools.product(*items)
                    if sum(q for _, q in pick) >= need - 1e-12)
        assert lp <= whole + 1e-9
        # ...and the relaxation is never below the cheapest choice of all (the bar at zero).
        assert lp >= sum(min(c for c, _ in opts) for opts in items) - 1e-9


def test_without_cache_the_hit_rate_falls(replay):
    reqs, base, opt, lim = replay
    _b, nocache = run_both(reqs, PipelineConfig.select(without=["cache"]), seed=2)
    with_cache = build_report(reqs, base, opt, lim)["details"]
    without = build_report(reqs, base, nocache, lim)["details"]
    assert without["hit_rate"] < with_cache["hit_rate"]
    assert without["optimized_calls"] > with_cache["optimized_calls"]


def test_html_and_redis_layer(tmp_path, redis_url):
    if not TINY.exists():
        pytest.skip("datasets/tiny.jsonl is absent")
    page = tmp_path / "report.html"
    done = _cli("--workload", str(TINY), "--json", "--seed", "5", "--html", str(page),
                "--redis", redis_url)
    assert done.returncode == 0, done.stderr
    assert page.read_text().startswith("<!doctype html>")
    rep = json.loads(done.stdout)
    assert rep["optimization_results"]["api_calls_saved"] > 0
    assert rep["details"]["cache_layers"]["redis"]["sets"] > 0
    import redis
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match="cfopt-replay-*", count=1000))  # cleaned up after


def test_contributions_replay_without_each():
    if not TINY.exists():
        pytest.skip("datasets/tiny.jsonl is absent")
    done = _cli("--workload", str(TINY), "--json", "--contributions", "--without", "resilience")
    assert done.returncode == 0, done.stderr
    c = json.loads(done.stdout)["contributions"]
    assert set(c) == {"all on"} | {f"without {n}" for n in ("routing", "compression", "cache",
                                                            "dedup", "coalescing", "batching",
                                                            "lazy", "pooling", "tying")}
    assert c["without cache"]["optimized_calls"] > c["all on"]["optimized_calls"]
    assert c["without tying"]["optimized_calls"] < c["all on"]["optimized_calls"]   # no copies
    assert c["without routing"]["optimized_cost_usd"] > c["all on"]["optimized_cost_usd"]
    assert c["without lazy"]["avg_ms"] > c["all on"]["avg_ms"]
