"""Benchmark bonus 2: the online auto-tuner against the best fixed knobs of an offline grid.

    .venv/bin/python benchmarks/bench_autotune.py [--workload datasets/contentflow_1h.jsonl]
                                                  [--window 120] [--processes 2]

On one workload, measured in this run:

1. an offline grid search: every combination of memory_entries x memory_ttl_s x max_batch_size x
   max_wait_s held fixed over a whole replay, scored by the default ``Objective`` averaged
   over the same windows the tuner sees;
2. online runs of ``autotune`` (one replay each, knobs moved after every window) from two
   starts (the library's defaults, and every knob clearly wrong) and three seeds, each with
   paired trials (shadow caches and a split, the default) and without (window against window);
3. side by side: the trajectory of one run window by window, and for each run the ratio of its
   mean objective to the grid best's over the same windows (all windows, and the later half),
   and the score of its final knobs held fixed over the whole replay against the grid best
   (1.00: as good as the best fixed setting; above 1: worse).

Also the noise the tuner works against: the spread of one setting's window scores against the
spread of the difference between two settings on the same windows. The objective's weights are
assumptions (see ``cfopt.bonus.autotune``), not measurements.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cfopt.bonus.autotune import (Knobs, Objective, autotune, fixed_run, grid_search,  # noqa: E402
                                  reference_usd)
from cfopt.workload import load  # noqa: E402

GRID = {"memory_entries": [100, 300, 1000, 3000, 10000],
        "memory_ttl_s": [30.0, 120.0, 300.0, 1200.0, 3600.0],
        "max_batch_size": [1, 4, 16],
        "max_wait_s": [0.05, 0.5]}
STARTS = {"defaults": Knobs(),
          "all wrong": Knobs(memory_entries=20_000, memory_ttl_s=1.0, max_batch_size=32,
                             max_wait_s=2.0)}


def _knobs(k: dict) -> str:
    return (f"entries {k['memory_entries']:>6.0f}  ttl {k['memory_ttl_s']:>7.1f}s  "
            f"batch {k['max_batch_size']:>3.0f}  wait {k['max_wait_s']:>6.3f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default=str(ROOT / "datasets" / "contentflow_1h.jsonl"))
    ap.add_argument("--window", type=float, default=120.0, help="window length, virtual seconds")
    ap.add_argument("--processes", type=int, default=2, help="grid replays in parallel")
    args = ap.parse_args()
    requests = load(args.workload)
    objective = Objective(reference_usd=reference_usd(requests))
    W = args.window
    print(f"workload {Path(args.workload).name}: {len(requests)} requests; windows of {W:g} s; "
          f"{objective!r}\n")

    t = time.perf_counter()
    with Pool(args.processes) as pool:
        grid = grid_search(requests, GRID, objective=objective, window_s=W, map_fn=pool.map)
    best_knobs, best_score = grid.best
    ranked = sorted(grid.runs, key=lambda kv: kv[1])
    print(f"offline grid: {len(grid.runs)} fixed settings, {time.perf_counter() - t:.0f} s wall")
    for knobs, score in ranked[:5]:
        print(f"  {score:.6f} $/request  {knobs!r}")
    print(f"  worst: {ranked[-1][1]:.6f}  {ranked[-1][0]!r}\n")
    best = fixed_run(requests, best_knobs, objective=objective, window_s=W)
    # The runner-up with other cache knobs (batch knobs do nothing at batch size 1).
    other = next(k for k, _ in ranked if (k.memory_entries, k.memory_ttl_s)
                 != (best_knobs.memory_entries, best_knobs.memory_ttl_s))
    second = fixed_run(requests, other, objective=objective, window_s=W)
    diffs = [a - b for a, b in zip(second.objectives, best.objectives)]
    print(f"noise: the grid best's window scores spread sd {statistics.pstdev(best.objectives):.6f} "
          f"around {best.mean_objective():.6f}; {other!r} minus the best on the same windows: "
          f"mean {statistics.mean(diffs):+.6f}, sd {statistics.pstdev(diffs):.6f}\n")

    runs = []
    for label, start in STARTS.items():
        held = fixed_run(requests, start, objective=objective, window_s=W)
        for paired in (True, False):
            for seed in (0, 1, 2):
                t = time.perf_counter()
                r = autotune(requests, start=start, objective=objective, window_s=W, seed=seed,
                             paired=paired)
                wall = time.perf_counter() - t
                final = fixed_run(requests, Knobs(**r.final), objective=objective, window_s=W)
                runs.append((label, paired, seed, r, held, final, wall))

    label, paired, seed, r, held, _, _ = runs[6]   # "all wrong", paired, seed 0: in full
    print(f"trajectory, start '{label}', paired, seed {seed}: the knobs users ran with, their "
          f"objective ($/request), the grid best and the start's knobs held on the same window; "
          f"the trial judged in that window (in a shadow cache or on half the requests) and its score:")
    print(f"{'win':>4}{'t min':>7}  {'action':<7}{'objective':>10}{'grid best':>10}{'start':>10}"
          f"{'hit':>7}{'p95 s':>7}  {'knobs':<58}{'trial':>10}  trial knob")
    for w, b, h in zip(r.windows, best.windows, held.windows):
        moved = ""
        if w.trial is not None:
            moved = ", ".join(f"{k} {w.knobs[k]:g} -> {v:g}" for k, v in w.trial.items()
                              if v != w.knobs[k])
        ts = f"{w.trial_objective:>10.6f}" if w.trial_objective is not None else f"{'':>10}"
        print(f"{w.index:>4}{w.t_end / 60:>7.1f}  {w.action:<7}{w.objective:>10.6f}{b.objective:>10.6f}"
              f"{h.objective:>10.6f}{w.metrics.hit_rate:>7.3f}{w.metrics.p95_s:>7.2f}  "
              f"{_knobs(w.knobs):<58}{ts}  {moved}")
    print()

    print(f"{'start':<10}{'paired':>7}{'seed':>5}{'windows':>8}{'converged':>10}{'vs grid: all':>14}"
          f"{'later half':>11}{'start held':>11}{'final held':>11}{'wall s':>7}  final knobs")
    for label, paired, seed, r, held, final, wall in runs:
        n = len(r.windows)
        h = n // 2
        # Pair each online window with the grid best's window that ends at the same time.
        pair = {w.t_end: w.objective for w in best.windows}
        on = [w.objective for w in r.windows]
        ref = [pair.get(w.t_end, float("nan")) for w in r.windows]
        start_ref = {w.t_end: w.objective for w in held.windows}
        st = [start_ref.get(w.t_end, float("nan")) for w in r.windows]
        conv = "-" if r.converged_at is None else str(r.converged_at)
        print(f"{label:<10}{'yes' if paired else 'no':>7}{seed:>5}{n:>8}{conv:>10}{sum(on) / sum(ref):>14.2f}"
              f"{sum(on[h:]) / sum(ref[h:]):>11.2f}{sum(st[h:]) / sum(ref[h:]):>11.2f}"
              f"{final.mean_objective() / best.mean_objective():>11.2f}{wall:>7.1f}  {_knobs(r.final)}")
    print("\n(ratios: the run's objective summed over its windows / the grid best's on the same "
          "windows; 'start held': the start's knobs never moved, later half; 'final held': the "
          "final knobs replayed fixed over the whole hour / the grid best)")


if __name__ == "__main__":
    main()
