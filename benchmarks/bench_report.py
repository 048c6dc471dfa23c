"""End to end: how long a replay takes, and what each optimization contributes.

    .venv/bin/python benchmarks/bench_report.py [--workload datasets/contentflow_1h.jsonl]
        [--prices exercise|list-2026] [--seed 0] [--contributions] [--generated SEED ...]
        [--sizes N ...] [--fault-rate R]

Prints the wall time of the baseline and the optimized replay (virtual clock: an hour of
traffic), the scoring (floors and ceilings), the headline figures, the exercise's five criteria
and the headroom to each physical limit. ``--contributions`` also replays
the optimized pipeline without each optimization in turn (one replay each) and prints how cost,
calls, hit rate, p95 and mean response time move. ``--generated S`` also runs the whole report on
a freshly generated workload of seed S (5,000 requests in one hour, or each of ``--sizes``,
spread over the hour), to check the targets hold beyond the bundled file.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cfopt.monitoring import MonitorConfig, PerformanceMonitor  # noqa: E402
from cfopt.pipeline import OPTIMIZATIONS, Pipeline, PipelineConfig  # noqa: E402
from cfopt.pricing import DEFAULT_PROFILE, PROFILES  # noqa: E402
from cfopt.pipeline.score import limits  # noqa: E402
from cfopt.providers import Faults  # noqa: E402
from cfopt.pipeline.report import build_report  # noqa: E402
from cfopt.tokens import count_tokens  # noqa: E402
from cfopt.workload import generate, load  # noqa: E402


def _headline(rep: dict) -> str:
    o, d, c, h = (rep["optimization_results"], rep["details"], rep["success_criteria"],
                  rep["headroom"])
    verdict = " ".join(f"{k}={'PASS' if v['passed'] else 'FAIL'}" for k, v in c.items())
    return (f"cost {o['cost_reduction']}, hit {o['cache_hit_rate']}, p95 {d['p95_ms']:.0f} ms, "
            f"quality {rep['quality']['quality_kept']:.1%}, false hits {rep['quality']['false_hit_rate']}"
            f"\n  exercise criteria: {verdict}"
            f"\n  headroom: cost x{h['cost']['ratio']} the floor ${h['cost']['floor_usd']:.2f} "
            f"(x{h['cost']['router_ratio']} the router floor ${h['cost']['router_floor_usd']:.2f}; "
            f"best cut {h['cost']['best_reduction']}), hit rate x{h['hit_rate']['ratio']} the ceiling "
            f"{h['hit_rate']['ceiling']:.1%}, p95 x{h['p95']['ratio']} the floor "
            f"{h['p95']['floor_ms']:.0f} ms")


def one(requests, *, seed: int, prices: str, label: str, faults=None) -> tuple:
    timings = {}
    t0 = time.perf_counter()
    base = Pipeline(PipelineConfig.baseline(), seed=seed, profile=prices, faults=faults).run(requests)
    timings["baseline replay"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    opt = Pipeline(PipelineConfig(), seed=seed, profile=prices, faults=faults,
                   monitor=PerformanceMonitor(config=MonitorConfig(retention_s=None))).run(requests)
    timings["optimized replay"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lim = limits(requests, seed=seed, profile=prices)
    timings["scoring (floors)"] = time.perf_counter() - t0
    rep = build_report(requests, base, opt, lim)
    print(f"\n== {label}: {len(requests):,} requests, prices {prices}, seed {seed}")
    for k, v in timings.items():
        print(f"  {k:<22}{v:7.2f} s wall")
    print("  " + _headline(rep))
    return base, opt, lim


def contributions(requests, base, opt, lim, *, seed: int, prices: str, faults=None) -> None:
    full = build_report(requests, base, opt, lim)["details"]
    print(f"\n  {'without':<13}{'cost $':>10}{'calls':>8}{'hit rate':>10}{'p95 ms':>9}"
          f"{'avg ms':>9}{'errors':>8}")
    print(f"  {'(nothing)':<13}{full['optimized_cost_usd']:>10.3f}{full['optimized_calls']:>8}"
          f"{full['hit_rate']:>10.1%}{full['p95_ms']:>9.0f}{full['avg_ms']:>9.0f}"
          f"{full['error_rate']:>8.1%}")
    for name in OPTIMIZATIONS:
        run = Pipeline(PipelineConfig.select(without=[name]), seed=seed, profile=prices,
                       faults=faults).run(requests)
        d = build_report(requests, base, run, lim)["details"]
        print(f"  {name:<13}{d['optimized_cost_usd']:>10.3f}{d['optimized_calls']:>8}"
              f"{d['hit_rate']:>10.1%}{d['p95_ms']:>9.0f}{d['avg_ms']:>9.0f}{d['error_rate']:>8.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default=str(ROOT / "datasets" / "contentflow_1h.jsonl"))
    ap.add_argument("--prices", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--contributions", action="store_true")
    ap.add_argument("--generated", type=int, nargs="*", default=[])
    ap.add_argument("--sizes", type=int, nargs="*", default=[5000],
                    help="requests per generated workload (each seed at each size)")
    ap.add_argument("--fault-rate", type=float, default=0.0,
                    help="share of provider calls failing (429, 529, 500 evenly)")
    args = ap.parse_args()
    third = args.fault_rate / 3
    faults = Faults(rate_limited=third, overloaded=third, server_error=third) if third else None
    t0 = time.perf_counter()
    count_tokens("warm up")  # loading the BPE ranks takes ~2 s once per process: not a replay cost
    print(f"tokenizer load {time.perf_counter() - t0:.2f} s wall")
    requests = load(args.workload)
    base, opt, lim = one(requests, seed=args.seed, prices=args.prices, faults=faults,
                         label=Path(args.workload).name)
    if args.contributions:
        contributions(requests, base, opt, lim, seed=args.seed, prices=args.prices, faults=faults)
    for s in args.generated:
        for n in args.sizes:
            one(generate(n, seed=s, duration_s=3600), seed=args.seed, prices=args.prices,
                faults=faults, label=f"generated seed {s}, {n:,} requests")


if __name__ == "__main__":
    main()
