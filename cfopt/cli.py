"""The ``cfopt`` command line.

    cfopt workload generate --requests N --seed S --out FILE
    cfopt workload stats FILE [--json]
    cfopt kit build [--check]
    cfopt grade NOTEBOOK|FOLDER [--json] [--csv FILE] [--timeout S]

Each command is a thin layer over the library; errors print one line naming the problem and
exit with status 2 (bad input) or 1 (a check that did not pass).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import CfoptError

__all__ = ["main", "build_parser"]


def _workload_generate(args: argparse.Namespace) -> int:
    from .workload import generate, write_jsonl
    requests = generate(args.requests, seed=args.seed, duration_s=args.duration)
    write_jsonl(requests, args.out)
    print(f"wrote {len(requests)} requests to {args.out}")
    return 0


def _workload_stats(args: argparse.Namespace) -> int:
    from .workload import load, workload_stats
    stats = workload_stats(load(args.file))
    print(json.dumps(stats.as_dict(), indent=2) if args.json else stats.format())
    return 0


def _kit_build(args: argparse.Namespace) -> int:
    from .kit import build_all
    stale = build_all(Path(args.solutions), Path(args.notebooks), check=args.check)
    if args.check and stale:
        print("out of date with solutions/: " + ", ".join(str(p) for p in stale))
        print("run: cfopt kit build")
        return 1
    if not args.check:
        print(f"built {len(stale)} exercise notebook(s) in {args.notebooks}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from .grading import grade_cli
    return grade_cli(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfopt", description="ContentFlow optimization course kit")
    sub = parser.add_subparsers(dest="command", required=True)

    wl = sub.add_parser("workload", help="generate or describe a workload file")
    wl_sub = wl.add_subparsers(dest="workload_command", required=True)
    gen = wl_sub.add_parser("generate", help="write realistic ContentFlow traffic as JSONL")
    gen.add_argument("--requests", type=int, required=True, help="number of requests")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--duration", type=float, default=3600.0, help="seconds of traffic")
    gen.add_argument("--out", required=True, help="output .jsonl file")
    gen.set_defaults(func=_workload_generate)
    st = wl_sub.add_parser("stats", help="counts, distinct prompts and intents, hit-rate ceilings")
    st.add_argument("file")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_workload_stats)

    kit = sub.add_parser("kit", help="course-kit machinery")
    kit_sub = kit.add_subparsers(dest="kit_command", required=True)
    build = kit_sub.add_parser("build", help="write exercise notebooks from solutions/")
    build.add_argument("--solutions", default="solutions")
    build.add_argument("--notebooks", default="notebooks")
    build.add_argument("--check", action="store_true", help="only report stale notebooks")
    build.set_defaults(func=_kit_build)

    gr = sub.add_parser("grade", help="run a notebook (or a folder of them) and score its checks")
    gr.add_argument("target", help="a notebook, or a folder of notebooks")
    gr.add_argument("--json", action="store_true")
    gr.add_argument("--csv", help="write one row per notebook to this CSV file")
    gr.add_argument("--timeout", type=float, default=600.0, help="seconds per notebook")
    gr.add_argument("--solutions", default=None,
                    help="folder of solution notebooks whose check cells are used (default: solutions/)")
    gr.set_defaults(func=_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CfoptError as e:
        print(f"cfopt: error: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as e:
        print(f"cfopt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
