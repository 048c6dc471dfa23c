"""``cfopt report``: the baseline against the optimized pipeline, in the exercise's shape.

``build_report`` turns two replays (``cfopt.pipeline.core``) and their scores
(``cfopt.pipeline.score``) into the exercise's Expected Output (``optimization_results``,
``performance_metrics``, ``optimizations_applied``, ``recommendations``) plus
``success_criteria`` (the exercise's five, judged by its own targets and nothing else),
``headroom`` (how close each figure is to its physical limit: ``cfopt.pipeline.score.limits``),
``quality``, ``limits`` and ``details``. Every figure is computed from the replays; the targets
in ``Targets`` are the only numbers typed in, and they are the exercise's.

Definitions: response time = arrival to first useful content (first token of streamed text; the
whole answer of analysis, photo searches and small images; the handle of deferred work:
video, audio, images of 1 MP or more, Message Batches jobs), over answered requests (a failed
one is counted in the error rate, not in the latency figures);
``speed_improvement`` = baseline mean response time / optimized mean; ``cache_hit_rate`` = share
of requests a cache layer answered (exactly or as a near-duplicate; a request that shared an
identical call in flight is not a hit, though it made no call: ``headroom.hit_rate`` counts both
against the ceiling); ``api_calls_saved`` = baseline provider calls - optimized ones
(retries count as calls); throughput = answered requests per minute of the replay (an open-loop
replay: it follows the arrival rate).

>>> pct(0.4213), money(145.3), money(-2.5)
('42.1%', '$145.30', '-$2.50')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..cache.normalize import normalize_prompt
from ..cost.optimizer import PREMIUM
from ..monitoring.series import percentile
from .env import STAGE_OF
from .score import QUALITY_BAR, Limits, false_hits, first_of_intent, quality_kept
from .types import RunResult

__all__ = ["Targets", "build_report", "format_table", "pct", "money"]


@dataclass(frozen=True, slots=True)
class Targets:
    """The exercise's success criteria, as the exercise states them: the only numbers typed in."""

    cost_reduction: float = 0.40      # API cost cut by at least 40%...
    quality_kept: float = QUALITY_BAR  # ...at unchanged quality (this share of premium quality)
    response_s: float = 2.0           # response time under 2 s (p95: most requests, not the mean)
    hit_rate: float = 0.60            # cache hit rate above 60%


def pct(x: float) -> str:
    """Format a share as a percentage with one decimal."""
    return f"{x * 100:.1f}%"


def money(x: float) -> str:
    """Format dollars with cents, the sign in front."""
    return f"{'-' if x < 0 else ''}${abs(x):,.2f}"


def _summary(run: RunResult) -> dict[str, float]:
    n = len(run.outcomes)
    ok = [o for o in run.outcomes if o.error is None]
    # Response times of answered requests: a refusal is fast and no answer, so it counts in the
    # error rate, never in the latency figures (as latency SLOs count successful requests).
    rt = np.array([o.response_s for o in ok], dtype=float)
    span = max((o.t + o.response_s for o in run.outcomes), default=0.0) - min(
        (o.t for o in run.outcomes), default=0.0)
    deferred = np.array([o.completed_s for o in ok if o.path != "interactive"], dtype=float)
    p95 = lambda xs: percentile(xs, 95) if xs else 0.0  # noqa: E731
    return {
        "n": n, "avg_s": float(rt.mean()) if len(rt) else 0.0,
        "p50_s": percentile(rt, 50) if len(rt) else 0.0,
        "p95_s": percentile(rt, 95) if len(rt) else 0.0,
        "p99_s": percentile(rt, 99) if len(rt) else 0.0,
        "hit_rate": sum(o.from_cache for o in run.outcomes) / n if n else 0.0,
        "without_call_rate": sum(o.without_call for o in run.outcomes) / n if n else 0.0,
        "error_rate": (n - len(ok)) / n if n else 0.0,
        "throughput_per_min": len(ok) / (span / 60.0) if span > 0 else 0.0,
        "deferred_completion_p50_s": percentile(deferred, 50) if len(deferred) else 0.0,
        "deferred": len(deferred),
        "p95_hit_s": p95([o.response_s for o in ok if o.from_cache]),
        "p95_miss_s": p95([o.response_s for o in ok if not o.from_cache]),
        "p95_interactive_s": p95([o.response_s for o in ok if o.path == "interactive"]),
    }


def _applied(run: RunResult) -> list[str]:
    """Each optimization that ran, with what it measurably did."""
    out, os_ = [], run.outcomes
    src = lambda s: sum(o.source == s for o in os_)  # noqa: E731
    calls = [o for o in os_ if o.source == "provider"]
    routed = [o for o in calls if o.type in PREMIUM and o.model != PREMIUM[o.type]]
    for name in run.config.applied:
        if name == "routing":
            by_type = {t: sum(o.type == t for o in routed) for t in ("text", "analysis", "image")}
            out.append("routing: " + ", ".join(
                f"{n} of {sum(o.type == t for o in calls)} {t} calls" for t, n in by_type.items())
                + " on a model cheaper than the premium one")
        elif name == "compression":
            out.append(f"compression: {sum(o.tokens_saved for o in calls):,} prompt tokens saved "
                       f"on {sum(o.tokens_saved > 0 for o in calls)} calls")
        elif name == "cache":
            layers = sorted({o.source for o in os_ if o.from_cache
                             and not o.source.startswith("semantic:")})
            out.append("cache: exact hits " + ", ".join(f"{l} {src(l)}" for l in layers))
        elif name == "dedup":
            semantic = sum(o.source.startswith("semantic:") for o in os_)
            v = run.verification
            out.append(f"semantic dedup: {semantic} near-duplicate hits"
                       + (f"; verifying them took {v['calls']} calls (${v['cost_usd']:.4f}, in the "
                          "cost above)" if v.get("calls") else ""))
        elif name == "coalescing":
            out.append(f"coalescing: {src('coalesced')} requests shared an identical call in flight")
        elif name == "batching":
            b = [o for o in calls if o.path == "batch"]
            st = run.batches
            out.append(f"batching: {len(b)} low-priority text calls through Message Batches at half "
                       f"price (${sum(o.cost_usd for o in b):.4f})"
                       + (f"; {st.batches} batches from the priority queue, {st.parallel_calls} "
                          f"media calls in parallel, the queue at most {st.queued_max} deep"
                          if st is not None else ""))
        elif name == "lazy":
            out.append(f"lazy loading: {sum(o.path == 'lazy' for o in os_)} media requests answered "
                       "with a handle")
        elif name == "pooling" and run.pool is not None:
            out.append(f"connection pooling: {run.pool.connections_opened} connections opened, "
                       f"{run.pool.reused} calls on a warm one")
        elif name == "tying":
            t = run.ties
            out.append(f"tied requests: {t.tied} slow interactive calls sent as copies; a later copy "
                       f"showed its first token first {t.later_copy_won} times "
                       f"({t.gained_s:,.1f} s gained in all); {t.closed} copies closed, their input "
                       f"billed ${t.closed_cost_usd:.4f} (in the cost above); the gain assumes the copies' "
                       "speeds independent, an upper bound (docs/resources/performance.md)" if t is not None
                       else "tied requests")
        elif name == "resilience":
            r = run.resilience
            out.append(f"resilience: {r.retries} retries, {r.fallbacks} fallbacks, "
                       f"{r.breaker_opens} breaker openings" if r else "resilience")
    return out


def _repaid(requests: Sequence[Any], run: RunResult) -> int:
    """Count provider calls that repeat an earlier request whose answer was cut at max_tokens."""
    cut: set[tuple] = set()
    repaid = 0
    for o in run.outcomes:
        if o.source != "provider":
            continue
        r = requests[o.index]
        key = (o.model, r.type, r.max_tokens, normalize_prompt(r.prompt))
        repaid += key in cut
        if o.truncated:
            cut.add(key)
    return repaid


def _recommendations(run: RunResult, s: dict, targets: Targets, lim: Limits,
                     monitor_recs: Sequence[str], repaid: int, unavoidable: int) -> list[str]:
    """What to do next, each with the figure behind it (from this replay)."""
    recs = list(monitor_recs)
    calls = [o for o in run.outcomes if o.source == "provider"]
    truncated = sum(o.truncated for o in calls)
    if truncated:
        recs.append(f"{truncated} of {len(calls)} provider answers stopped at max_tokens and were "
                    f"not cached (the cache refuses truncated answers); {repaid} calls "
                    f"({pct(repaid / s['n'])} of requests) repeated one of them and paid again: "
                    "raise max_tokens where answers are cut, or cache complete answers only")
    slow = [o for o in run.outcomes if o.response_s > targets.response_s]
    if s["p95_s"] > targets.response_s and slow:
        groups: dict[tuple, int] = {}
        for o in slow:
            k = (o.type, o.model or "error", "hit" if o.from_cache else "miss")
            groups[k] = groups.get(k, 0) + 1
        (typ, model, hit), n = max(groups.items(), key=lambda kv: kv[1])
        recs.append(f"p95 {s['p95_s'] * 1000:.0f} ms: {len(slow)} responses over "
                    f"{targets.response_s:g} s, most ({n}) {typ} {hit}es on {model}")
        if unavoidable / s["n"] > 0.05:
            recs.append(f"{unavoidable} first requests of an intent ({pct(unavoidable / s['n'])} of "
                        f"all) took over {targets.response_s:g} s: no cache answers a first "
                        "request, so p95 stays above the target until misses get faster (model, "
                        "streaming, deferral)")
    if lim.hit_rate_ceiling and s["without_call_rate"] < 0.95 * lim.hit_rate_ceiling:
        recs.append(f"{pct(s['without_call_rate'])} of requests answered without a call of their "
                    f"own, against a ceiling of {pct(lim.hit_rate_ceiling)}: repeats still reach "
                    "the providers")
    return recs


def _criterion(measured: Any, passed: bool, target: str, **extra: Any) -> dict[str, Any]:
    return {"measured": measured, "target": target, "passed": bool(passed), **extra}


def _ratio(measured: float, limit: float) -> float | None:
    return round(measured / limit, 4) if limit else None


def _stages_heard(run: RunResult) -> tuple[list[str], list[str]]:
    """The stages with a switch on, and those of them the monitor heard nothing from."""
    enabled = sorted({STAGE_OF[name] for name in run.config.applied})
    heard = run.heard_by_monitor or {}
    return enabled, [stage for stage in enabled if not heard.get(stage)]


def build_report(requests: Sequence[Any], baseline: RunResult, optimized: RunResult,
                 lim: Limits, *, targets: Targets = Targets(),
                 monitor_recs: Sequence[str] = ()) -> dict[str, Any]:
    """The report of ``optimized`` against ``baseline`` on ``requests`` (with their intents).

    ``success_criteria`` judges the exercise's five criteria by its own targets and nothing
    else; ``headroom`` says how far each figure is from its physical limit on this workload
    (measured / limit: 1.0 is the limit itself).
    """
    t = targets
    b, s = _summary(baseline), _summary(optimized)
    reduction = 1 - optimized.cost_usd / baseline.cost_usd if baseline.cost_usd else 0.0
    quality = quality_kept(requests, optimized)
    fh = false_hits(requests, optimized)
    fh_rate = None if fh is None else fh / s["n"] if s["n"] else 0.0
    ceiling = lim.hit_rate_ceiling
    st = optimized.batches
    batched = st.batches if st is not None and "batching" in optimized.config.applied else 0
    enabled, unheard = _stages_heard(optimized)
    heard = optimized.heard_by_monitor
    criteria = {
        "cost_reduction": _criterion(
            pct(reduction), reduction >= t.cost_reduction and quality >= t.quality_kept,
            f">= {pct(t.cost_reduction)} at unchanged quality (quality kept >= "
            f"{pct(t.quality_kept)})", quality_kept=round(quality, 4)),
        "response_time": _criterion(
            f"p95 {s['p95_s'] * 1000:.0f} ms", s["p95_s"] < t.response_s,
            f"< {t.response_s * 1000:.0f} ms (p95)", avg_ms=round(s["avg_s"] * 1000, 1)),
        "cache_hit_rate": _criterion(
            pct(s["hit_rate"]), s["hit_rate"] > t.hit_rate, f"> {pct(t.hit_rate)}",
            false_hit_rate=fh_rate),
        "batch_processing": _criterion(
            f"{batched} batches, {st.batch_api_calls if st else 0} Message Batches requests in "
            f"{st.batch_api_jobs if st else 0} jobs",
            batched > 0, "non-urgent work processed in batches"),
        "live_dashboard": _criterion(
            "no monitor listened" if heard is None else
            f"monitor heard {', '.join(f'{k} {v:,}' for k, v in sorted(heard.items()))}",
            heard is not None and not unheard and bool(enabled),
            "the monitor hears every enabled stage during the replay",
            stages=enabled, unheard=unheard),
    }
    floor_ms = lim.latency_floor_p95_s * 1000
    headroom = {
        "cost": {"ratio": _ratio(optimized.cost_usd, lim.cost_floor_usd),
                 "floor_usd": round(lim.cost_floor_usd, 6),
                 "router_floor_usd": round(lim.router_floor_usd, 6),
                 "router_ratio": _ratio(optimized.cost_usd, lim.router_floor_usd),
                 "best_reduction": (pct(1 - lim.cost_floor_usd / baseline.cost_usd)
                                    if baseline.cost_usd else None)},
        "hit_rate": {"ratio": _ratio(s["without_call_rate"], ceiling or 0.0),
                     "ceiling": ceiling, "measured": round(s["without_call_rate"], 6),
                     "counts": "cache hits and shared in-flight calls: every repeat answered "
                               "without a call of its own"},
        "p95": {"ratio": _ratio(s["p95_s"] * 1000, floor_ms), "floor_ms": round(floor_ms, 1),
                "one_call_floor_ms": round(lim.latency_floor_one_call_p95_s * 1000, 1)},
    }
    saved_calls = baseline.provider_calls - optimized.provider_calls
    repaid = _repaid(requests, optimized)
    slow_first = sum(optimized.outcomes[i].response_s > t.response_s
                     for i in first_of_intent(requests))
    speed = b["avg_s"] / s["avg_s"] if s["avg_s"] else 0.0
    return {
        "optimization_results": {
            "cost_reduction": pct(reduction), "speed_improvement": f"{speed:.1f}x",
            "cache_hit_rate": pct(s["hit_rate"]), "api_calls_saved": int(saved_calls),
            "money_saved": money(baseline.cost_usd - optimized.cost_usd)},
        "performance_metrics": {
            "avg_response_time": round(s["avg_s"] * 1000, 1),
            "p95_response_time": round(s["p95_s"] * 1000, 1),
            "throughput": f"{s['throughput_per_min']:,.1f} req/min",
            "error_rate": round(s["error_rate"], 6)},
        "optimizations_applied": _applied(optimized),
        "recommendations": _recommendations(optimized, s, t, lim, monitor_recs, repaid, slow_first),
        "success_criteria": criteria,
        "headroom": headroom,
        "quality": {"quality_kept": round(quality, 6), "false_hit_rate": fh_rate},
        # Without intent labels no ceiling is known: 1.0 is the trivial bound, and says so.
        "limits": {"hit_rate_ceiling": ceiling if ceiling is not None else 1.0,
                   "hit_rate_ceiling_from": ("intent labels" if ceiling is not None
                                             else "none (no labels)"),
                   "exact_repeat_ceiling": lim.exact_repeat_ceiling,
                   "cost_floor_usd": round(lim.cost_floor_usd, 6),
                   "router_floor_usd": round(lim.router_floor_usd, 6), "floor_calls": lim.floor_calls,
                   "latency_floor_p95_ms": round(floor_ms, 1),
                   "latency_floor_one_call_p95_ms": round(lim.latency_floor_one_call_p95_s * 1000, 1)},
        "details": {
            "requests": s["n"], "baseline_cost_usd": round(baseline.cost_usd, 6),
            "optimized_cost_usd": round(optimized.cost_usd, 6), "hit_rate": round(s["hit_rate"], 6),
            "answered_without_call": round(s["without_call_rate"], 6),
            "p50_ms": round(s["p50_s"] * 1000, 1), "p95_ms": round(s["p95_s"] * 1000, 1),
            "p99_ms": round(s["p99_s"] * 1000, 1), "avg_ms": round(s["avg_s"] * 1000, 1),
            "p95_hit_ms": round(s["p95_hit_s"] * 1000, 1),
            "p95_miss_ms": round(s["p95_miss_s"] * 1000, 1),
            "p95_interactive_ms": round(s["p95_interactive_s"] * 1000, 1),
            "baseline_p95_ms": round(b["p95_s"] * 1000, 1),
            "baseline_avg_ms": round(b["avg_s"] * 1000, 1),
            "baseline_calls": baseline.provider_calls, "optimized_calls": optimized.provider_calls,
            "error_rate": round(s["error_rate"], 6), "baseline_error_rate": round(b["error_rate"], 6),
            "throughput_per_min": round(s["throughput_per_min"], 2),
            "deferred_requests": s["deferred"],
            "deferred_completion_p50_s": round(s["deferred_completion_p50_s"], 1),
            "truncated_uncached": sum(o.truncated for o in optimized.outcomes if o.source == "provider"),
            "calls_repeating_truncated": repaid,
            "first_of_intent_over_target": slow_first,
            "tied_calls": optimized.ties.tied if optimized.ties is not None else 0,
            "tied_closed_cost_usd": (round(optimized.ties.closed_cost_usd, 6)
                                     if optimized.ties is not None else 0.0),
            "false_hits": fh, "calls_by_model": optimized.calls_by_model,
            "cache_layers": optimized.cache_layers,
            "events_by_stage": optimized.events_by_stage,
            "verification": optimized.verification,
            "budget_alerts": optimized.budget_alerts, "baseline_budget_alerts": baseline.budget_alerts,
            "optimizations": list(optimized.config.applied)},
    }


def format_table(report: dict[str, Any]) -> str:
    """A readable table of a report: the headline figures, the criteria, the headroom."""
    o, p, d = report["optimization_results"], report["performance_metrics"], report["details"]
    rows = [("", "baseline", "optimized"),
            ("cost", money(d["baseline_cost_usd"]), money(d["optimized_cost_usd"])),
            ("provider calls", f"{d['baseline_calls']:,}", f"{d['optimized_calls']:,}"),
            ("avg response", f"{d['baseline_avg_ms']:,.0f} ms", f"{d['avg_ms']:,.0f} ms"),
            ("p95 response", f"{d['baseline_p95_ms']:,.0f} ms", f"{d['p95_ms']:,.0f} ms"),
            ("error rate", pct(d["baseline_error_rate"]), pct(d["error_rate"]))]
    lines = [f"{a:<18}{b:>14}{c:>14}" for a, b, c in rows]
    fh = report["quality"]["false_hit_rate"]
    lines += ["", f"cost reduction {o['cost_reduction']}, speed {o['speed_improvement']}, "
              f"hit rate {o['cache_hit_rate']}, {o['api_calls_saved']:,} calls saved, "
              f"{o['money_saved']} saved, throughput {p['throughput']}",
              f"quality kept {pct(report['quality']['quality_kept'])}; false hits "
              + ("n/a" if fh is None else pct(fh)), "", "success criteria (the exercise's):"]
    for name, c in report["success_criteria"].items():
        lines.append(f"  {'PASS' if c['passed'] else 'FAIL'}  {name:<17}{c['measured']}")
        lines.append(f"        {'':<17}target {c['target']}")
    h, lim = report["headroom"], report["limits"]
    ratio = lambda x: "n/a" if x is None else f"{x:.2f}x"  # noqa: E731
    lines += ["", "headroom (measured / physical limit on this workload; 1.00x is the limit):",
              f"  cost      {ratio(h['cost']['ratio'])} the floor {money(h['cost']['floor_usd'])} "
              f"(router floor {money(h['cost']['router_floor_usd'])}: "
              f"{ratio(h['cost']['router_ratio'])})",
              f"  hit rate  {ratio(h['hit_rate']['ratio'])} the ceiling "
              f"{pct(lim['hit_rate_ceiling'])} ({pct(h['hit_rate']['measured'])} answered "
              "without a call of their own)",
              f"  p95       {ratio(h['p95']['ratio'])} the floor {h['p95']['floor_ms']:,.0f} ms "
              f"(two tied copies; one call each: {h['p95']['one_call_floor_ms']:,.0f} ms)"]
    lines += ["", "optimizations applied:"] + [f"  - {x}" for x in report["optimizations_applied"]]
    lines += ["", "recommendations:"] + [f"  - {x}" for x in report["recommendations"] or ["none"]]
    return "\n".join(lines)
