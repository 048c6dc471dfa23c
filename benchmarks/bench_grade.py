"""What the sandbox costs ``cfopt grade``: the eight solved notebooks, sandboxed and not, side by side.

Two measurements, in one run:

1. **The class.** ``grade_folder(solutions/, jobs=2)`` on the kit's eight solved notebooks, once in
   sandboxes (bubblewrap) and once with ``--no-sandbox``, the order alternating by round. For each
   notebook: its own run's seconds in each mode and the difference; then the whole run's wall time
   (the solutions' reference runs included: each exercise's solution runs once per grading). Every
   notebook must get full marks with nothing tampered, in both modes.
2. **The sandbox alone.** A one-cell notebook run ``--runs`` times through the same machinery
   (``cfopt.course.runner.Run``: a runner, a kernel through the guard, one probe phase), sandboxed
   and not in turns: the difference of the medians is what making and tearing down a sandbox adds
   to a notebook, without the notebook's own work and its noise.

On a machine shared with other work, wall times move with the load; the load average is printed
before and after, and the modes take turns so that load falls on both.

    .venv/bin/python benchmarks/bench_grade.py [--rounds 1] [--runs 8] [--jobs 2] [--seed 2027]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import nbformat

from cfopt.course.grading import GradeOptions, grade_folder
from cfopt.course.runner import Job, Run
from cfopt.course.sandbox import sandbox_problem

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def grade_class(sandbox: bool, jobs: int, seed: int) -> tuple[float, dict[str, float]]:
    options = GradeOptions(seed=seed, sandbox=sandbox)
    started = time.monotonic()
    reports = grade_folder(REPO / "solutions", jobs=jobs, options=options)
    wall = time.monotonic() - started
    for r in reports:
        if r.score != r.max_score or r.tampered or r.error:
            raise SystemExit(f"{r.notebook} ({'sandboxed' if sandbox else 'no sandbox'}): {r.format()}")
    return wall, {Path(r.notebook).stem: r.seconds for r in reports}


def one_cell_run(sandbox: bool) -> float:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6 * 7")])
    job = Job(json.loads(nbformat.writes(nb)), "one_cell.ipynb", timeout=120, cell_timeout=60)
    started = time.monotonic()
    with Run(job, sandbox=sandbox, kit_root=REPO) as run:
        run.phase1()
        run.phase2({"nonce": "bench", "seed": 0, "probe_timeout": 60, "probes": []}, timeout=120)
    if run.survivors:
        raise SystemExit(f"{run.survivors} process(es) survived a sandbox")
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="gradings of the class per mode")
    ap.add_argument("--runs", type=int, default=8, help="one-cell runs per mode")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2027)
    args = ap.parse_args()
    problem = sandbox_problem()
    if problem:
        raise SystemExit(f"no sandbox here: {problem}")
    print(f"{os.cpu_count()} CPUs, load average {load()} at the start; cfopt grade --jobs {args.jobs} --seed {args.seed}")

    walls: dict[bool, list[float]] = {True: [], False: []}
    seconds: dict[bool, dict[str, list[float]]] = {True: {}, False: {}}
    for r in range(args.rounds):
        for sandbox in ((True, False) if r % 2 == 0 else (False, True)):
            wall, per = grade_class(sandbox, args.jobs, args.seed)
            walls[sandbox].append(wall)
            for name, s in per.items():
                seconds[sandbox].setdefault(name, []).append(s)
    print(f"\n== the eight solved notebooks, {args.rounds} round(s) per mode (seconds of each notebook's own run)")
    print(f"  {'notebook':<28} {'sandboxed':>10} {'no sandbox':>11} {'difference':>11}")
    diffs = []
    for name in sorted(seconds[True]):
        a, b = statistics.median(seconds[True][name]), statistics.median(seconds[False][name])
        diffs.append(a - b)
        print(f"  {name:<28} {a:>10.2f} {b:>11.2f} {a - b:>+11.2f}")
    total_a = sum(statistics.median(v) for v in seconds[True].values())
    total_b = sum(statistics.median(v) for v in seconds[False].values())
    print(f"  {'all eight':<28} {total_a:>10.2f} {total_b:>11.2f} {total_a - total_b:>+11.2f}"
          f"   ({(total_a - total_b) / len(diffs):+.2f} s per notebook, median {statistics.median(diffs):+.2f} s)")
    print(f"  whole run (8 solutions + 8 submissions, --jobs {args.jobs}): sandboxed "
          f"{statistics.median(walls[True]):.1f} s, no sandbox {statistics.median(walls[False]):.1f} s")

    runs: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.runs):
        for sandbox in ((True, False) if i % 2 == 0 else (False, True)):
            runs[sandbox].append(one_cell_run(sandbox))
    a, b = statistics.median(runs[True]), statistics.median(runs[False])
    print(f"\n== one-cell notebook, {args.runs} runs per mode, in turns (runner + kernel + probe phase)")
    print(f"  sandboxed   median {a:.2f} s  (min {min(runs[True]):.2f}, max {max(runs[True]):.2f})")
    print(f"  no sandbox  median {b:.2f} s  (min {min(runs[False]):.2f}, max {max(runs[False]):.2f})")
    print(f"  the sandbox adds {a - b:+.2f} s per notebook (difference of the medians)")
    print(f"\nload average {load()} at the end")


if __name__ == "__main__":
    main()
