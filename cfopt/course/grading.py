"""Grade a learner's notebook: run it in a fresh kernel with the solution's check cells.

Like nbgrader, the checks that count are the solution's, not the learner's copy: every check
cell of the learner's notebook is replaced by the solution cell of the same name, and a check the
learner deleted is put back where the solution has it. The notebook then runs top to bottom in a
new ``python3`` kernel from this environment (cells that raise do not stop it); each check's
verdict is read from the ``application/vnd.cfopt.check+json`` output ``kit.check`` leaves.

A notebook that hangs or kills its kernel still gets a report: ``error`` says what happened and
where, and the checks that never ran fail with that reason. Grading never raises for what a
learner wrote; it raises ``ConfigError`` only for bad input (no such file, no solution).
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .checks import MIME_TYPE
from ..errors import ConfigError
from .kit import check_cells

__all__ = ["CheckOutcome", "GradeReport", "grade", "grade_folder", "write_csv", "find_solution",
           "merge_checks", "grade_cli", "DEFAULT_TIMEOUT_S", "DEFAULT_CELL_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_CELL_TIMEOUT_S = 120.0
KERNEL_ENV = {"MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "CFOPT_GRADING": "1"}


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One check's verdict in a grade."""

    name: str
    passed: bool
    feedback: str
    points: float = 1

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0


@dataclass(frozen=True, slots=True)
class GradeReport:
    """Every check of one notebook, its score, and what went wrong if the run broke off."""

    notebook: str
    checks: tuple[CheckOutcome, ...]
    error: str | None = None
    cell_errors: tuple[str, ...] = field(default=())
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(c.earned for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form: notebook, checks, score, max_score, error, cell_errors, seconds."""
        return {
            "notebook": self.notebook,
            "checks": [{"name": c.name, "passed": c.passed, "feedback": c.feedback,
                        "points": c.points} for c in self.checks],
            "score": self.score, "max_score": self.max_score, "error": self.error,
            "cell_errors": list(self.cell_errors), "seconds": round(self.seconds, 2),
        }

    def format(self) -> str:
        """Return a report a person reads: the score, then one line per check."""
        lines = [f"{self.notebook}: {self.score:g}/{self.max_score:g}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        for c in self.checks:
            mark = "✅" if c.passed else "❌"
            lines.append(f"  {mark} {c.name}" + (f": {c.feedback}" if c.feedback else ""))
        return "\n".join(lines)


def find_solution(notebook: Path, solutions: Path | str | None = None) -> Path:
    """Return the solution notebook for ``notebook``: same file name in the solutions folder.

    Without ``solutions``, looks for ``solutions/`` next to the notebook's folder, then in the
    folders above it, then in the kit's repository.
    """
    if solutions is not None:
        candidates = [Path(solutions) / notebook.name]
    else:
        here = notebook.resolve().parent
        folders = [here, *here.parents, Path(__file__).resolve().parents[2]]
        candidates = [f / "solutions" / notebook.name for f in folders]
    for c in candidates:
        if c.is_file():  # grading a solution itself is allowed: its own checks are the real ones
            return c
    raise ConfigError(f"no solution notebook {notebook.name} in "
                      f"{solutions or 'any solutions/ folder near ' + str(notebook.parent)}; "
                      f"pass --solutions FOLDER")


def _load(path: Path) -> dict[str, Any]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not a notebook (invalid JSON: {e})") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise ConfigError(f"{path}: not an nbformat 4 notebook")
    return nb


def _check_name(cell: dict[str, Any]) -> str | None:
    meta = cell.get("metadata", {}).get("cfopt", {})
    return meta.get("check") if isinstance(meta, dict) else None


def merge_checks(learner: dict[str, Any], solution: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Return the learner's notebook with the solution's check cells, and where each check is.

    Learner check cells are replaced by the solution's cell of that name; duplicates and checks
    the solution does not know lose their check status; missing checks are inserted after the
    cell the solution has before them (matched by cell id or check name), else at the end.
    """
    sol_cells = solution["cells"]
    sol_checks = {name: sol_cells[i] for i, name, _ in check_cells(solution, "solution")}
    nb = copy.deepcopy(learner)
    cells: list[dict[str, Any]] = []
    placed: set[str] = set()
    for cell in nb["cells"]:
        name = _check_name(cell)
        if name is None:
            cells.append(cell)
        elif name in sol_checks and name not in placed:
            real = copy.deepcopy(sol_checks[name])
            real["outputs"], real["execution_count"] = [], None
            if "id" in cell:
                real["id"] = cell["id"]
            cells.append(real)
            placed.add(name)
        else:  # not a real check: it runs like any learner cell but is never read
            cell = copy.deepcopy(cell)
            cell.setdefault("metadata", {}).pop("cfopt", None)
            cells.append(cell)
    for pos, sol_cell in enumerate(sol_cells):
        name = _check_name(sol_cell)
        if name is None or name in placed:
            continue
        real = copy.deepcopy(sol_cell)
        real["outputs"], real["execution_count"] = [], None
        real.pop("id", None)
        cells.insert(_anchor(cells, sol_cells[:pos]), real)
        placed.add(name)
    nb["cells"] = cells
    where = {name: i for i, c in enumerate(cells) if (name := _check_name(c)) in sol_checks}
    return nb, where


def _anchor(cells: list[dict[str, Any]], before: list[dict[str, Any]]) -> int:
    """Index just after the learner cell matching the nearest solution cell in ``before``."""
    for sol_cell in reversed(before):
        key_id, key_name = sol_cell.get("id"), _check_name(sol_cell)
        for i, c in enumerate(cells):
            if (key_id and c.get("id") == key_id) or (key_name and _check_name(c) == key_name):
                return i + 1
    return len(cells)


def grade(notebook: Path | str, *, solutions: Path | str | None = None,
          timeout: float = DEFAULT_TIMEOUT_S, cell_timeout: float = DEFAULT_CELL_TIMEOUT_S) -> GradeReport:
    """Run ``notebook`` with the solution's checks in a fresh kernel and score it."""
    path = Path(notebook)
    if not path.is_file():
        raise ConfigError(f"no notebook at {path}")
    learner = _load(path)
    solution_path = find_solution(path, solutions)
    solution = _load(solution_path)
    nb, where = merge_checks(learner, solution)
    points = {name: pts for _, name, pts in check_cells(solution, str(solution_path))}
    from .nbrun import cell_label, run_notebook  # nbclient and zmq load only when a grade runs
    run = run_notebook(nb, cwd=path.resolve().parent, timeout=timeout, cell_timeout=cell_timeout,
                       env=KERNEL_ENV)
    checks = tuple(_outcome(name, points[name], run.cells[where[name]], where[name], run)
                   for name in points)
    cell_errors = tuple(f"{cell_label(i, c)} raised {o['ename']}: {o['evalue']}"
                        for i, c in enumerate(run.cells) if _check_name(c) is None
                        for o in c.get("outputs", []) if o.get("output_type") == "error")
    return GradeReport(str(notebook), checks, run.error, cell_errors, run.seconds)


def _outcome(name: str, points: float, cell: dict[str, Any], index: int, run: Any) -> CheckOutcome:
    if run.stopped_at is not None and index >= run.stopped_at:
        verb = "finish" if index == run.stopped_at else "run"
        return CheckOutcome(name, False, f"check did not {verb}: {run.error}", points)
    outputs = cell.get("outputs", [])
    errors = [o for o in outputs if o.get("output_type") == "error"]
    if errors:  # kit.check never raises, so the cell itself broke (or was broken on purpose)
        e = errors[0]
        return CheckOutcome(name, False, f"the check cell raised {e.get('ename')}: {e.get('evalue')}", points)
    results = [o["data"][MIME_TYPE] for o in outputs
               if o.get("output_type") in ("display_data", "execute_result")
               and MIME_TYPE in o.get("data", {})]
    if not results:
        return CheckOutcome(name, False, f"check cell {index} ran but reported no result", points)
    # every result shown in the cell must pass: a fake "passed" printed by learner code cannot
    # outvote the real verdict
    passed = all(bool(r.get("passed")) for r in results)
    feedback = "; ".join(("not yet: " if r.get("status") == "not-yet" else "") + str(r["feedback"])
                         for r in results if r.get("feedback"))
    return CheckOutcome(name, passed, feedback, points)


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def grade_folder(folder: Path | str, *, jobs: int = 1, **kw: Any) -> list[GradeReport]:
    """Grade every ``.ipynb`` under ``folder``, recursively (checkpoints skipped), in name order.

    ``jobs`` > 1 grades that many notebooks at once, each in its own process and kernel. A
    notebook that cannot be graded (no solution, not a notebook) gets a report with the error.
    """
    paths = _notebooks(Path(folder))
    if jobs <= 1 or len(paths) <= 1:
        return [_grade_or_report(p, kw) for p in paths]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # spawn, not fork: the parent may hold threads and zmq sockets a fork would copy mid-use
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_grade_or_report, paths, [kw] * len(paths)))


def _grade_or_report(path: Path, kw: dict[str, Any]) -> GradeReport:
    try:
        return grade(path, **kw)
    except ConfigError as e:
        return GradeReport(str(path), (), error=str(e))


def write_csv(reports: Iterable[GradeReport], path: Path | str) -> None:
    """Write one row per notebook: notebook, score, max_score, percent, error, one column per check."""
    reports = list(reports)
    names: list[str] = []
    for r in reports:
        names += [c.name for c in r.checks if c.name not in names]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["notebook", "score", "max_score", "percent", "error", *names])
        for r in reports:
            got = {c.name: f"{c.earned:g}" for c in r.checks}
            w.writerow([r.notebook, f"{r.score:g}", f"{r.max_score:g}", f"{r.percent:.1f}",
                        r.error or "", *(got.get(n, "") for n in names)])


def grade_cli(args: argparse.Namespace) -> int:
    """Run ``cfopt grade``: 0 when graded (whatever the score), 2 on bad input."""
    target = Path(args.target)
    cell_timeout = getattr(args, "cell_timeout", None) or DEFAULT_CELL_TIMEOUT_S
    kw = {"solutions": args.solutions, "timeout": args.timeout,
          "cell_timeout": min(cell_timeout, args.timeout)}
    if target.is_dir():
        reports = grade_folder(target, jobs=getattr(args, "jobs", 1) or 1, **kw)
        if not reports:
            raise ConfigError(f"no .ipynb notebooks under {target}")
    elif target.is_file():
        reports = [grade(target, **kw)]
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
