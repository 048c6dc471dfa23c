"""Response time, baseline vs optimized: p50/p95/p99 for cache hits and misses apart.

Replays a workload (default ``datasets/contentflow_1h.jsonl``) on the virtual clock through
``cfopt.pipeline``'s baseline (premium models, no cache, no batching, a new connection per call)
and its optimized pipeline (every optimization of Parts 1-4, including the full cache of
``cfopt.cache``; no stage reads ``intent``). Response time is the time to the first useful
content (``cfopt.latency``): the first token of streamed text, the whole answer of analysis,
photo searches and images under 1 MP, the handle of deferred video, audio and full-size images,
whose completion is reported apart. Every figure is computed from the replay.

The exercise asks for under 2 s; the course aims at p95 under 1 s.

    .venv/bin/python benchmarks/bench_latency.py [--workload FILE] [--seed S] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

from cfopt.latency import Percentiles, latency_summary
from cfopt.pipeline import run_both
from cfopt.workload import load

TARGET_S = 2.0   # the exercise's "response time under 2 s", judged on p95


def summarize(run) -> dict:
    s = latency_summary((o.response_s, o.from_cache) for o in run.outcomes)
    by_type = defaultdict(list)
    for o in run.outcomes:
        by_type[o.type].append(o.response_s)
    # completion of deferred work, for the requests that started it (not those a cache answered)
    done = {path: [o.completed_s for o in run.outcomes if o.path == path and o.source == "provider"]
            for path in ("lazy", "batch")}
    return {"summary": s, "by_type": {k: Percentiles.of(v) for k, v in sorted(by_type.items())},
            "deferred_completion": {k: Percentiles.of(v) for k, v in done.items() if v},
            "errors": sum(o.error is not None for o in run.outcomes),
            "requests": len(run.outcomes), "provider_calls": run.provider_calls,
            "wall_s": run.wall_s}


def as_json(d: dict) -> dict:
    def pct(p):
        return None if p is None else {"count": p.count, "p50_ms": round(p.p50 * 1e3, 1),
                                       "p95_ms": round(p.p95 * 1e3, 1), "p99_ms": round(p.p99 * 1e3, 1),
                                       "mean_ms": round(p.mean * 1e3, 1)}
    s = d["summary"]
    return {"all": pct(s.all), "hits": pct(s.hits), "misses": pct(s.misses),
            "by_type": {k: pct(v) for k, v in d["by_type"].items()},
            "deferred_completion": {k: pct(v) for k, v in d["deferred_completion"].items()},
            "errors": d["errors"],
            "requests": d["requests"], "provider_calls": d["provider_calls"],
            "replay_wall_s": round(d["wall_s"], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="datasets/contentflow_1h.jsonl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    requests = load(args.workload)
    t0 = time.perf_counter()
    base, opt = run_both(requests, seed=args.seed)
    wall = time.perf_counter() - t0
    out = {"baseline": summarize(base), "optimized": summarize(opt)}
    if args.json:
        print(json.dumps({"workload": args.workload, "seed": args.seed,
                          **{k: as_json(v) for k, v in out.items()}}, indent=2))
        return 0
    print(f"workload {args.workload}: {len(requests)} requests, seed {args.seed}, "
          f"both replays in {wall:.1f} s wall")
    print("response time = first useful content (TTFT of streamed text, whole answer of "
          "analysis/image/photo, handle of video/audio); cache: cfopt.cache via cfopt.pipeline\n")
    for name, d in out.items():
        print(f"{name}: {d['requests']} requests, {d['provider_calls']} provider calls, "
              f"{d['errors']} errors")
        print("  " + d["summary"].format().replace("\n", "\n  "))
        for kind, p in d["by_type"].items():
            print(f"    {kind:<9}{p.ms()}")
        for path, p in d["deferred_completion"].items():
            what = "lazy media" if path == "lazy" else "batch API"
            print(f"    {what} completes (apart): {p.ms()}")
        print()
    p95 = out["optimized"]["summary"].all.p95
    b95 = out["baseline"]["summary"].all.p95
    print(f"p95 all requests: baseline {b95 * 1e3:.0f} ms -> optimized {p95 * 1e3:.0f} ms "
          f"({b95 / p95:.1f}x); exercise target {TARGET_S:g} s: "
          f"{'met' if p95 < TARGET_S else 'MISSED'}")
    miss95 = out["optimized"]["summary"].misses.p95
    print(f"p95 cache misses alone, optimized: {miss95 * 1e3:.0f} ms "
          f"({'under' if miss95 < TARGET_S else 'over'} the {TARGET_S:g} s target: the misses set "
          "the tail)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
