"""``cfopt report``: the baseline against the optimized pipeline, in the exercise's shape.

``build_report`` turns two replays (``cfopt.pipeline.core``) and their scores
(``cfopt.pipeline.score``) into the exercise's Expected Output (``optimization_results``,
``performance_metrics``, ``optimizations_applied``, ``recommendations``) plus
``success_criteria``, ``quality``, ``limits`` and ``details``. Every figure is computed from the
replays; the thresholds below are the only numbers typed in, and they are the targets.

Definitions: response time = arrival to first useful content (first token of streamed text; the
whole answer of analysis, photo searches and small images; the handle of deferred work:
video, audio, images of 1 MP or more, Message Batches jobs);
``speed_improvement`` = baseline mean response time / optimized mean; ``cache_hit_rate`` = share
of requests answered without a provider call of their own (any cache layer, a near-duplicate,
or a shared in-flight call); ``api_calls_saved`` = baseline provider calls - optimized ones
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
from .core import PREMIUM, RunResult, TEXT_TYPES
from .score import Limits, false_hits, first_of_intent, quality_kept

__all__ = ["Targets", "build_report", "format_table", "pct", "money"]


@dataclass(frozen=True, slots=True)
class Targets:
    """The course's targets, and the exercise's own in ``exercise_*``."""

    cost_reduction: float = 0.85
    floor_ratio: float = 1.15         # optimized cost within this multiple of the cost floor
    quality_kept: float = 0.95
    hit_rate_gap: float = 0.05        # hit rate >= (1 - gap) x ceiling
    false_hit_rate: float = 0.005
    p95_s: float = 1.0
    exercise_cost_reduction: float = 0.40
    exercise_response_s: float = 2.0
    exercise_hit_rate: float = 0.60


def pct(x: float) -> str:
    """Format a share as a percentage with one decimal."""
    return f"{x * 100:.1f}%"


def money(x: float) -> str:
    """Format dollars with cents, the sign in front."""
    return f"{'-' if x < 0 else ''}${abs(x):,.2f}"


def _times(run: RunResult) -> np.ndarray:
    return np.array([o.response_s for o in run.outcomes], dtype=float)


def _summary(run: RunResult) -> dict[str, float]:
    rt = _times(run)
    n = len(run.outcomes)
    ok = [o for o in run.outcomes if o.error is None]
    hits = sum(o.from_cache for o in run.outcomes)
    span = max((o.t + o.response_s for o in run.outcomes), default=0.0) - min(
        (o.t for o in run.outcomes), default=0.0)
    deferred = np.array([o.completed_s for o in ok if o.path != "interactive"], dtype=float)
    p95 = lambda xs: float(np.percentile(np.array(xs, dtype=float), 95)) if xs else 0.0  # noqa: E731
    return {
        "n": n, "avg_s": float(rt.mean()) if n else 0.0,
        "p50_s": float(np.percentile(rt, 50)) if n else 0.0,
        "p95_s": float(np.percentile(rt, 95)) if n else 0.0,
        "p99_s": float(np.percentile(rt, 99)) if n else 0.0,
        "hit_rate": hits / n if n else 0.0,
        "error_rate": (n - len(ok)) / n if n else 0.0,
        "throughput_per_min": len(ok) / (span / 60.0) if span > 0 else 0.0,
        "deferred_completion_p50_s": float(np.percentile(deferred, 50)) if len(deferred) else 0.0,
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
    text_calls = [o for o in calls if o.type in TEXT_TYPES]
    for name in run.config.applied:
        if name == "routing":
            below = sum(o.model != PREMIUM["text"] for o in text_calls)
            out.append(f"routing: {below} of {len(text_calls)} text/analysis calls on a model "
                       f"cheaper than opus; {sum(o.model == 'flux_schnell' for o in calls)} images "
                       "on flux_schnell")
        elif name == "compression":
            out.append(f"compression: {sum(o.tokens_saved for o in calls):,} prompt tokens saved "
                       f"on {sum(o.tokens_saved > 0 for o in calls)} calls")
        elif name == "cache":
            layers = sorted({o.source for o in os_ if o.from_cache and o.source not in
                             ("coalesced",) and not o.source.startswith("semantic:")})
            out.append("cache: exact hits " + ", ".join(f"{l} {src(l)}" for l in layers))
        elif name == "dedup":
            semantic = sum(o.source.startswith("semantic:") for o in os_)
            out.append(f"semantic dedup: {semantic} near-duplicate hits")
        elif name == "coalescing":
            out.append(f"coalescing: {src('coalesced')} requests shared an identical call in flight")
        elif name == "batching":
            b = [o for o in calls if o.path == "batch"]
            out.append(f"batching: {len(b)} low-priority text calls through Message Batches at half "
                       f"price (${sum(o.cost_usd for o in b):.4f})")
        elif name == "lazy":
            out.append(f"lazy loading: {sum(o.path == 'lazy' for o in os_)} media requests answered "
                       "with a handle")
        elif name == "pooling":
            out.append(f"connection pooling: {run.pool.connections_opened} connections opened, "
                       f"{run.pool.reused} calls on a warm one")
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
    slow = [o for o in run.outcomes if o.response_s > targets.p95_s]
    if s["p95_s"] > targets.p95_s and slow:
        groups: dict[tuple, int] = {}
        for o in slow:
            k = (o.type, o.model or "error", "hit" if o.from_cache else "miss")
            groups[k] = groups.get(k, 0) + 1
        (typ, model, hit), n = max(groups.items(), key=lambda kv: kv[1])
        recs.append(f"p95 {s['p95_s'] * 1000:.0f} ms: {len(slow)} responses over "
                    f"{targets.p95_s:g} s, most ({n}) {typ} {hit}es on {model}")
        if unavoidable / s["n"] > 0.05:
            recs.append(f"{unavoidable} first requests of an intent ({pct(unavoidable / s['n'])} of "
                        f"all) took over {targets.p95_s:g} s: no cache answers a first request, so "
                        "p95 stays above the target until misses get faster (model, streaming, "
                        "deferral)")
    if lim.hit_rate_ceiling and s["hit_rate"] < (1 - targets.hit_rate_gap) * lim.hit_rate_ceiling:
        recs.append(f"hit rate {pct(s['hit_rate'])} against a ceiling of "
                    f"{pct(lim.hit_rate_ceiling)}: repeats still reach the providers")
    return recs


def _criterion(measured: Any, passed: bool, target: str, exercise: str,
               exercise_passed: bool, **extra: Any) -> dict[str, Any]:
    return {"measured": measured, "target": target, "passed": bool(passed),
            "exercise_target": exercise, "exercise_passed": bool(exercise_passed), **extra}


def build_report(requests: Sequence[Any], baseline: RunResult, optimized: RunResult,
                 lim: Limits, *, targets: Targets = Targets(),
                 monitor_events: int = 0, monitor_recs: Sequence[str] = ()) -> dict[str, Any]:
    """The report of ``optimized`` against ``baseline`` on ``requests`` (with their intents)."""
    t = targets
    b, s = _summary(baseline), _summary(optimized)
    reduction = 1 - optimized.cost_usd / baseline.cost_usd if baseline.cost_usd else 0.0
    floor_ratio = (optimized.cost_usd / lim.cost_floor_usd if lim.cost_floor_usd
                   else 1.0 if not optimized.cost_usd else float("inf"))
    quality = quality_kept(requests, optimized)
    fh = false_hits(requests, optimized)
    fh_rate = None if fh is None else fh / s["n"] if s["n"] else 0.0
    ceiling = lim.hit_rate_ceiling
    hit_ok = (ceiling is not None and s["hit_rate"] >= (1 - t.hit_rate_gap) * ceiling
              and (fh_rate or 0.0) < t.false_hit_rate)
    batched = sum(o.path == "batch" for o in optimized.outcomes if o.source == "provider")
    criteria = {
        "cost_reduction": _criterion(
            pct(reduction), reduction >= t.cost_reduction and floor_ratio <= t.floor_ratio
            and quality >= t.quality_kept,
            f">= {pct(t.cost_reduction)}, within {t.floor_ratio:g}x of the cost floor, quality kept "
            f">= {pct(t.quality_kept)}", f">= {pct(t.exercise_cost_reduction)} at unchanged quality",
            reduction >= t.exercise_cost_reduction and quality >= t.quality_kept,
            floor_ratio=round(floor_ratio, 4) if floor_ratio != float("inf") else None,
            quality_kept=round(quality, 4),
            best_possible=(pct(1 - lim.cost_floor_usd / baseline.cost_usd)
                           if baseline.cost_usd else None)),
        "response_time": _criterion(
            f"p95 {s['p95_s'] * 1000:.0f} ms", s["p95_s"] < t.p95_s, f"p95 < {t.p95_s * 1000:.0f} ms",
            f"< {t.exercise_response_s * 1000:.0f} ms", s["p95_s"] < t.exercise_response_s,
            avg_ms=round(s["avg_s"] * 1000, 1)),
        "cache_hit_rate": _criterion(
            pct(s["hit_rate"]), hit_ok,
            f">= {pct(1 - t.hit_rate_gap)} of the ceiling ({pct(ceiling) if ceiling else 'n/a'}), "
            f"false hits < {pct(t.false_hit_rate)}", f"> {pct(t.exercise_hit_rate)}",
            s["hit_rate"] > t.exercise_hit_rate,
            of_ceiling=round(s["hit_rate"] / ceiling, 4) if ceiling else None, false_hit_rate=fh_rate),
        "batch_processing": _criterion(
            f"{batched} calls batched", batched > 0 and "batching" in optimized.config.applied,
            "low-priority text through Message Batches", "batch processing", batched > 0),
        "live_dashboard": _criterion(
            f"{monitor_events} events monitored", monitor_events > 0,
            "the monitor hears every stage during the replay", "a live dashboard", monitor_events > 0),
    }
    saved_calls = baseline.provider_calls - optimized.provider_calls
    repaid = _repaid(requests, optimized)
    slow_first = sum(optimized.outcomes[i].response_s > t.p95_s for i in first_of_intent(requests))
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
        "quality": {"quality_kept": round(quality, 6), "false_hit_rate": fh_rate},
        # Without intent labels no ceiling is known: 1.0 is the trivial bound, and says so.
        "limits": {"hit_rate_ceiling": ceiling if ceiling is not None else 1.0,
                   "hit_rate_ceiling_from": ("intent labels" if ceiling is not None
                                             else "none (no labels)"),
                   "exact_repeat_ceiling": lim.exact_repeat_ceiling,
                   "cost_floor_usd": round(lim.cost_floor_usd, 6), "floor_calls": lim.floor_calls},
        "details": {
            "requests": s["n"], "baseline_cost_usd": round(baseline.cost_usd, 6),
            "optimized_cost_usd": round(optimized.cost_usd, 6), "hit_rate": round(s["hit_rate"], 6),
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
            "first_of_intent_over_p95_target": slow_first,
            "false_hits": fh, "calls_by_model": optimized.calls_by_model,
            "cache_layers": optimized.cache_layers,
            "budget_alerts": optimized.budget_alerts, "baseline_budget_alerts": baseline.budget_alerts,
            "optimizations": list(optimized.config.applied)},
    }


def format_table(report: dict[str, Any]) -> str:
    """A readable table of a report: the headline figures, then each criterion."""
    o, p, d = report["optimization_results"], report["performance_metrics"], report["details"]
    rows = [("", "baseline", "optimized"),
            ("cost", money(d["baseline_cost_usd"]), money(d["optimized_cost_usd"])),
            ("provider calls", f"{d['baseline_calls']:,}", f"{d['optimized_calls']:,}"),
            ("avg response", f"{d['baseline_avg_ms']:,.0f} ms", f"{d['avg_ms']:,.0f} ms"),
            ("p95 response", f"{d['baseline_p95_ms']:,.0f} ms", f"{d['p95_ms']:,.0f} ms"),
            ("error rate", pct(d["baseline_error_rate"]), pct(d["error_rate"]))]
    lines = [f"{a:<18}{b:>14}{c:>14}" for a, b, c in rows]
    lines += ["", f"cost reduction {o['cost_reduction']}, speed {o['speed_improvement']}, "
              f"hit rate {o['cache_hit_rate']}, {o['api_calls_saved']:,} calls saved, "
              f"{o['money_saved']} saved, throughput {p['throughput']}",
              f"quality kept {pct(report['quality']['quality_kept'])}; false hits "
              + ("n/a" if report["quality"]["false_hit_rate"] is None
                 else pct(report["quality"]["false_hit_rate"]))
              + f"; ceiling {pct(report['limits']['hit_rate_ceiling'])}; cost floor "
              f"{money(report['limits']['cost_floor_usd'])}", "", "success criteria:"]
    for name, c in report["success_criteria"].items():
        lines.append(f"  {'PASS' if c['passed'] else 'FAIL'}  {name:<17}{c['measured']:<26}"
                     f"target {c['target']}  (exercise {c['exercise_target']}: "
                     f"{'pass' if c['exercise_passed'] else 'fail'})")
    lines += ["", "optimizations applied:"] + [f"  - {x}" for x in report["optimizations_applied"]]
    lines += ["", "recommendations:"] + [f"  - {x}" for x in report["recommendations"] or ["none"]]
    return "\n".join(lines)

