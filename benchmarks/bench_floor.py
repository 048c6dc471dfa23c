"""How much cost any optimizer could cut: the cost floor of generated workloads, seed by seed.

    .venv/bin/python benchmarks/bench_floor.py [--seeds 1 2 ...] [--requests 5000] [--prices exercise]

The cost floor (``cfopt.pipeline.score.limits``) is every distinct intent made once, at the
cheapest model that meets its quality need, with every allowed discount. No pipeline can cost
less, so ``1 - floor / baseline`` is the best cost reduction a workload allows. This prints it
per seed, with the share of the floor that media (video, audio, images) takes: a distinct
video costs $0.50 with the one video model, so a workload's media mix, not the optimizer,
decides whether a target such as "85% cheaper" is reachable at all.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cfopt.pipeline import Pipeline, PipelineConfig  # noqa: E402
from cfopt.pipeline.score import limits  # noqa: E402
from cfopt.workload import generate  # noqa: E402

MEDIA = ("video", "audio", "image")


def media_floor(requests, *, prices: str) -> float:
    """The floor of the media requests alone (their distinct intents, made once)."""
    return limits([r for r in requests if r.type in MEDIA], profile=prices).cost_floor_usd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=list(range(1, 13)))
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--prices", default="exercise", choices=["exercise", "list-2026"])
    args = ap.parse_args()
    print(f"{'seed':>4} {'baseline $':>11} {'floor $':>8} {'best cut':>9} {'media share':>12} "
          f"{'videos':>7} {'distinct':>9}")
    cuts = []
    for seed in args.seeds:
        reqs = generate(args.requests, seed=seed)
        base = Pipeline(PipelineConfig.baseline(), profile=args.prices).run(reqs).cost_usd
        floor = limits(reqs, profile=args.prices).cost_floor_usd
        media = media_floor(reqs, prices=args.prices)
        videos = [r for r in reqs if r.type == "video"]
        cut = 1 - floor / base
        cuts.append(cut)
        print(f"{seed:>4} {base:>11.2f} {floor:>8.2f} {cut:>9.1%} {media / floor:>12.1%} "
              f"{len(videos):>7} {len({r.intent for r in videos}):>9}")
    print(f"\nbest possible cut over {len(cuts)} seeds: median {statistics.median(cuts):.1%}, "
          f"min {min(cuts):.1%}, max {max(cuts):.1%}; "
          f"{sum(c >= 0.85 for c in cuts)} of {len(cuts)} allow 85% or more")


if __name__ == "__main__":
    main()
