"""Benchmark bonus 1: next-request prediction and cache warming on a time split.

    .venv/bin/python benchmarks/bench_predict.py [--workload datasets/contentflow_1h.jsonl]

Trains ``RequestPredictor`` on the first half of the workload and tests on the second half,
learning online. Prints precision@k (share of predictions the user asked within 5 minutes) and
next-hit@k (share of requests that were among the k predicted just before them) for k = 1, 3, 5;
then, for a memory cache with the default TTLs (text 5 min, media 2 h) and for a small one
(200 entries), the hit rate without and with warming, the lift, what warming cost, how much of
it was wasted (entries never read), the net saving (warming buys time, not money: see
``cfopt.bonus.warming``), and the mean provider time a request waited without and with warming.
Every figure is measured in this run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cfopt.bonus.warming import WarmingConfig, evaluate_warming  # noqa: E402
from cfopt.workload import load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default=str(ROOT / "datasets" / "contentflow_1h.jsonl"))
    args = ap.parse_args()
    requests = load(args.workload)
    print(f"workload {Path(args.workload).name}: {len(requests)} requests; train on the first "
          f"half, test on the second (online)\n")
    print(f"{'cache':<18}{'k':>2}{'thr':>5}{'prec@k':>8}{'next@k':>8}{'hit cold':>10}"
          f"{'hit warm':>10}{'lift':>8}{'warmed':>8}{'used':>6}{'wasted $':>10}{'warm $':>9}"
          f"{'net saved $':>12}{'wait cold s':>12}{'wait warm s':>12}")
    for label, entries in (("default TTLs", 10_000), ("200 entries", 200)):
        for k, threshold in ((1, 0.2), (3, 0.2), (5, 0.2), (3, 0.5)):
            r = evaluate_warming(requests, WarmingConfig(k=k, threshold=threshold,
                                                         max_entries=entries))
            print(f"{label:<18}{k:>2}{threshold:>5.1f}{r.precision_at_k:>8.3f}"
                  f"{r.next_hit_at_k:>8.3f}{r.cold.hit_rate:>10.3f}{r.warm.hit_rate:>10.3f}"
                  f"{r.lift:>+8.3f}{r.warm.warmed:>8}{r.warm.warm_used:>6}"
                  f"{r.warm.wasted_cost_usd:>10.4f}{r.warm.warm_cost_usd:>9.4f}"
                  f"{r.net_saving_usd:>+12.4f}{r.cold.mean_wait_s:>12.3f}{r.warm.mean_wait_s:>12.3f}")


if __name__ == "__main__":
    main()
