"""``cfopt grade`` and ``cfopt kit release`` on the command line (thin layers over the library)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from .sandbox import Limits

__all__ = ["add_grade_arguments", "grade_command", "release_command"]


def add_grade_arguments(gr: argparse.ArgumentParser) -> None:
    """The options of ``cfopt grade``."""
    from .grading import DEFAULT_CELL_TIMEOUT_S, DEFAULT_TIMEOUT_S
    from .sandbox import DEFAULT_LIMITS as L
    gr.add_argument("target", help="a notebook, or a folder of submissions (searched recursively)")
    gr.add_argument("--json", action="store_true", help="print the grades as JSON, feedback included")
    gr.add_argument("--csv", help="write one row per submission to this CSV file")
    gr.add_argument("--seed", type=int, default=None,
                    help="seed of the hidden cases (default: a fresh one, printed with the grades)")
    gr.add_argument("--jobs", type=int, default=1, help="notebooks graded at once")
    gr.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per notebook")
    gr.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT_S,
                    help="seconds per cell, and per hidden check")
    gr.add_argument("--solutions", default=None, help="folder of solution notebooks (default: the kit's)")
    gr.add_argument("--no-sandbox", action="store_true",
                    help="UNSAFE: run learner code as yourself, with your files and network "
                         "(only for notebooks you trust, or where namespaces are unavailable)")
    gr.add_argument("--memory-mb", type=int, default=L.memory_mb, help="address space per process")
    gr.add_argument("--cpu-s", type=int, default=L.cpu_s, help="CPU seconds per process")
    gr.add_argument("--processes", type=int, default=L.processes, help="processes and threads per sandbox")
    gr.add_argument("--file-mb", type=int, default=L.file_mb, help="largest file a notebook may write")
    gr.add_argument("--disk-mb", type=int, default=L.disk_mb, help="size of each writable folder in a sandbox")
    gr.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def grade_command(args: argparse.Namespace) -> int:
    """Run ``cfopt grade``: 0 when graded (whatever the score), 2 on bad input."""
    from .grading import GradeOptions, grade, grade_folder
    from .report import write_csv

    target = Path(args.target)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be 1 or more, got {args.jobs}")
    for name in ("timeout", "cell_timeout"):
        value = getattr(args, name)
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"--{name.replace('_', '-')} must be a number of seconds above 0, got {value}")
    options = GradeOptions(
        solutions=Path(args.solutions) if args.solutions else None, timeout=args.timeout,
        cell_timeout=min(args.cell_timeout, args.timeout), seed=args.seed, sandbox=not args.no_sandbox,
        limits=Limits(memory_mb=args.memory_mb, cpu_s=args.cpu_s, processes=args.processes,
                      file_mb=args.file_mb, disk_mb=args.disk_mb))

    def progress(line: str) -> None:   # a line per finished notebook, terminal or not
        print(line, file=sys.stderr, flush=True)

    show = None if args.quiet else progress
    if target.is_dir():
        reports = grade_folder(target, jobs=args.jobs, progress=show, options=options)
        if not reports:
            raise ConfigError(f"no .ipynb notebooks under {target}")
    elif target.is_file():
        reports = [grade(target, jobs=args.jobs, progress=show, options=options)]
    else:
        raise ConfigError(f"no notebook or folder at {target}")
    if args.csv:
        write_csv(reports, args.csv)
    if args.json:
        out = [r.as_dict() for r in reports]
        print(json.dumps(out[0] if target.is_file() else out, indent=2, ensure_ascii=False))
    else:
        print("\n".join(r.format() for r in reports))
        if args.csv:
            print(f"wrote {len(reports)} row(s) to {args.csv}")
    sys.stdout.flush()
    return 0


def release_command(args: argparse.Namespace) -> int:
    """Run ``cfopt kit release DIR``."""
    from .exercises import kit_solutions
    from .release import release
    root = Path(args.kit) if args.kit else kit_solutions().parent
    written = release(root, args.target)
    print(f"wrote the learners' copy to {args.target}: {len(written)} files "
          f"({sum(p.suffix == '.ipynb' for p in written)} exercise notebooks, no solutions, no probes)")
    return 0
