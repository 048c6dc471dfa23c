"""How much cost any optimizer could cut: the cost floor of generated workloads, seed by seed.

    .venv/bin/python benchmarks/bench_floor.py [--seeds 1 2 ...] [--requests 5000] [--prices exercise]

Two floors (``cfopt.pipeline.score.limits``): the router floor (every distinct intent made
once, on the model the router picks for it, with every allowed discount) and the cost floor
(the same intents on the cheapest mix of models that keeps the mean quality at the bar, a
relaxation no router keeping the bar can beat). ``1 - floor / baseline`` is the best cost
reduction a workload allows. This prints both per seed, with the share of the floor that media
(video, audio, images) takes: the workload's media mix, not the optimizer, decides how far any
cut can go.
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
from cfopt.pricing import DEFAULT_PROFILE, PROFILES  # noqa: E402
from cfopt.workload import generate  # noqa: E402

MEDIA = ("video", "audio", "image")


def media_floor(requests, *, prices: str) -> float:
    """The router floor of the media requests alone (their distinct intents, made once)."""
    return limits([r for r in requests if r.type in MEDIA], profile=prices).router_floor_usd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=list(range(1, 13)))
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--prices", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    args = ap.parse_args()
    print(f"{'seed':>4} {'baseline $':>11} {'router $':>9} {'floor $':>8} {'router cut':>11} "
          f"{'best cut':>9} {'media share':>12} {'videos':>7} {'distinct':>9}")
    cuts, router_cuts = [], []
    for seed in args.seeds:
        reqs = generate(args.requests, seed=seed)
        base = Pipeline(PipelineConfig.baseline(), profile=args.prices).run(reqs).cost_usd
        lim = limits(reqs, profile=args.prices)
        media = media_floor(reqs, prices=args.prices)
        videos = [r for r in reqs if r.type == "video"]
        cut, router_cut = 1 - lim.cost_floor_usd / base, 1 - lim.router_floor_usd / base
        cuts.append(cut)
        router_cuts.append(router_cut)
        print(f"{seed:>4} {base:>11.2f} {lim.router_floor_usd:>9.2f} {lim.cost_floor_usd:>8.2f} "
              f"{router_cut:>11.1%} {cut:>9.1%} {media / lim.router_floor_usd:>12.1%} "
              f"{len(videos):>7} {len({r.intent for r in videos}):>9}")
    print(f"\nbest possible cut over {len(cuts)} seeds: median {statistics.median(cuts):.1%}, "
          f"min {min(cuts):.1%}, max {max(cuts):.1%} (router floor: median "
          f"{statistics.median(router_cuts):.1%}); {sum(c >= 0.40 for c in cuts)} of {len(cuts)} "
          "allow the exercise's 40%")


if __name__ == "__main__":
    main()
