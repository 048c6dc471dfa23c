"""Grade learners' notebooks: each in a sandbox of its own, scored by probes, verdicts outside.

For one submission ``cfopt grade``

1. finds its exercise by the notebook's metadata (``cfopt.exercise``, written by ``cfopt kit
   build``), whatever the file is called, and the solution of that exercise;
2. replaces its check cells with the solution's (like nbgrader) and reads the code the learner
   wrote for signs of tampering (``cfopt.course.scan``);
3. runs it top to bottom in a sandbox (``cfopt.course.sandbox``, ``cfopt.course.runner``), then,
   after its cells finished, sends the seed and the solution's probe cells, which call the
   learner's functions on visible and hidden cases (``cfopt.course.probe``);
4. runs the solution the same way on the same seed (once per exercise), and
5. judges each check outside both sandboxes by comparing the two sets of observations
   (``cfopt.course.verdicts``). The learner's own check cells still run, for the feedback the
   learner saw, but they do not count.

A submission that tampered gets nothing for the checks involved, and ``tampered`` says why.
A notebook that hangs or crashes still gets a report that says what happened and where.
Grading never raises for what a learner wrote; it raises ``ConfigError`` for bad input.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
import secrets
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError
from .cells import check_cells, check_name, exercise_id, probe_cells, probe_name, text
from .redact import Redactor
from .sandbox import DEFAULT_LIMITS, Limits, require_sandbox
from .scan import Evidence, defined_names, scan_notebook
from .verdicts import judge

__all__ = ["CheckOutcome", "GradeReport", "GradeOptions", "Exercise", "grade", "grade_folder",
           "write_csv", "find_solution", "merge_checks", "student_of", "kit_solutions",
           "DEFAULT_TIMEOUT_S", "DEFAULT_CELL_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_CELL_TIMEOUT_S = 120.0
# (solution digest, seed, options) -> its run: grading the same exercise again, in this process,
# reuses the solution's observations instead of running it once more
_SOLUTION_RUNS: dict[tuple[Any, ...], "_Raw"] = {}


@dataclass(frozen=True, slots=True)
class GradeOptions:
    """How to grade: where the solutions are, time limits, the seed, the sandbox and its limits."""

    solutions: Path | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    cell_timeout: float = DEFAULT_CELL_TIMEOUT_S
    seed: int | None = None          # None: a fresh random seed, reported with the grades
    sandbox: bool = True
    limits: Limits = DEFAULT_LIMITS


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One check's verdict: points earned, what to tell the learner, what its own cell said."""

    name: str
    passed: bool
    feedback: str
    points: float = 1
    earned: float = 0.0
    in_notebook: str = ""      # the learner's check cell: "passed", "failed: ...", "not yet: ..."
    tampered: str = ""


@dataclass(frozen=True, slots=True)
class GradeReport:
    """Every check of one submission, its score, and what went wrong if anything did."""

    notebook: str
    checks: tuple[CheckOutcome, ...]
    error: str | None = None
    cell_errors: tuple[str, ...] = field(default=())
    seconds: float = 0.0
    student: str = ""
    exercise: str = ""
    tampered: tuple[str, ...] = field(default=())
    seed: int | None = None
    sandboxed: bool = True

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
        """The JSON form: notebook, student, exercise, checks, score, max_score, tampered, ..."""
        return {
            "notebook": self.notebook, "student": self.student, "exercise": self.exercise,
            "checks": [{"name": c.name, "passed": c.passed, "feedback": c.feedback, "points": c.points,
                        "earned": _num(c.earned), "in_notebook": c.in_notebook, "tampered": c.tampered}
                       for c in self.checks],
            "score": _num(self.score), "max_score": _num(self.max_score),
            "percent": round(self.percent, 1), "tampered": list(self.tampered), "error": self.error,
            "cell_errors": list(self.cell_errors), "seconds": round(self.seconds, 2),
            "seed": self.seed, "sandboxed": self.sandboxed,
        }

    def format(self) -> str:
        """A report a person reads: the score, then one line per check."""
        lines = [f"{self.notebook}: {self.score:g}/{self.max_score:g}"
                 + (f" ({self.exercise})" if self.exercise else "")]
        if self.tampered:
            lines.append(f"  tampered: {'; '.join(self.tampered)}")
        if self.error:
            lines.append(f"  error: {self.error}")
        for c in self.checks:
            mark = "✅" if c.passed else "❌"
            lines.append(f"  {mark} {c.name}" + (f": {c.feedback}" if c.feedback else ""))
        return "\n".join(lines)

    def progress(self) -> str:
        """One line for stderr when the grade is done."""
        line = (f"{self.student or '-'}  {Path(self.notebook).name}  {self.score:g}/{self.max_score:g} "
                f"({self.percent:.0f}%)  {self.seconds:.1f} s")
        if self.tampered:
            line += f"  TAMPERED: {self.tampered[0]}" + (f" (+{len(self.tampered) - 1})" if len(self.tampered) > 1 else "")
        if self.error:
            line += f"  error: {self.error[:120]}"
        return line


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 4)


# --- exercises and their solutions ---------------------------------------------------------

def kit_solutions() -> Path:
    """The kit's own ``solutions/`` folder (next to the installed package)."""
    return Path(__file__).resolve().parents[2] / "solutions"


@dataclass(frozen=True, slots=True)
class Exercise:
    """A solution notebook read once: its checks, probes, and the exercise the learner got."""

    id: str
    path: Path
    nb: dict[str, Any]
    checks: tuple[tuple[int, str, float], ...]
    probes: Mapping[str, Any]
    authored: Mapping[str, str]       # cell id -> the author's source (exercise cells, probe cells)
    defined: frozenset[str]           # functions and classes the exercise defines

    @classmethod
    def load(cls, path: Path) -> "Exercise":
        from .kit import build_notebook
        nb = _load(path)
        where = str(path)
        probes = probe_cells(nb, where)
        exercise = build_notebook(nb, name=where)
        # a learner who copied the solution's probe cells copied author code: not theirs to scan
        authored = {str(c.get("id")): text(c.get("source", "")) for c in
                    [*exercise["cells"], *(nb["cells"][p.index] for p in probes.values())] if c.get("id")}
        return cls(exercise_id(nb) or path.stem, path, nb, tuple(check_cells(nb, where)), probes, authored,
                   frozenset(defined_names(exercise["cells"])))

    @property
    def references(self) -> list[str]:
        return sorted({r for p in self.probes.values() for r in p.references})

    def where(self, nb: Mapping[str, Any]) -> dict[str, int]:
        """Where each check of this exercise sits in ``nb``."""
        names = {name for _, name, _ in self.checks}
        return {name: i for i, c in enumerate(nb["cells"]) if (name := check_name(c)) in names}


def _load(path: Path) -> dict[str, Any]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not a notebook (invalid JSON: {e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a notebook (not UTF-8 text)") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise ConfigError(f"{path}: not an nbformat 4 notebook")
    return nb


class Solutions:
    """The solutions folder, indexed by exercise id; each solution is read when first needed."""

    def __init__(self, folder: Path | str | None) -> None:
        self.folder = Path(folder) if folder is not None else kit_solutions()
        if not self.folder.is_dir():
            raise ConfigError(f"no solutions folder at {self.folder}; pass --solutions FOLDER")
        self._paths: dict[str, Path] = {}
        for p in sorted(self.folder.glob("*.ipynb")):
            try:
                ident = exercise_id(json.loads(p.read_text(encoding="utf-8"))) or p.stem
            except (ValueError, OSError):
                continue
            self._paths.setdefault(ident, p)
        self._loaded: dict[str, Exercise] = {}
        self._lock = threading.Lock()

    def find(self, nb: Mapping[str, Any], path: Path) -> Exercise:
        """The exercise of ``nb``: by its metadata, else (no metadata) by the file's own name."""
        ident = exercise_id(nb)
        if ident is None and path.stem in self._paths:
            ident = path.stem
        if ident is None:
            raise ConfigError(f"{path.name}: no exercise id in its metadata (cfopt.exercise; notebooks "
                              f"made by `cfopt kit build` have one) and no solution named {path.name} "
                              f"in {self.folder}")
        if ident not in self._paths:
            raise ConfigError(f"{path.name}: exercise {ident!r} has no solution in {self.folder}")
        with self._lock:
            if ident not in self._loaded:
                self._loaded[ident] = Exercise.load(self._paths[ident])
            return self._loaded[ident]


def find_solution(notebook: Path | str, solutions: Path | str | None = None) -> Path:
    """Return the solution notebook of ``notebook`` (matched by metadata, see ``Solutions``)."""
    path = Path(notebook)
    return Solutions(solutions).find(_load(path), path).path


def merge_checks(learner: Mapping[str, Any], solution: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Return the learner's notebook with the solution's check cells, and where each check is.

    Learner check cells are replaced by the solution's cell of that name; duplicates, checks
    the solution does not know, and probe cells lose their status and run as plain code;
    missing checks are inserted after the cell the solution has before them (matched by cell
    id or check name), else at the end. Probe cells of the solution are never added.
    """
    sol_cells = [c for c in solution["cells"] if probe_name(c) is None]
    sol_checks = {name: sol_cells[i] for i, name, _ in check_cells({"cells": sol_cells}, "solution")}
    nb = copy.deepcopy(dict(learner))
    cells: list[dict[str, Any]] = []
    placed: set[str] = set()
    for cell in nb["cells"]:
        name = check_name(cell)
        if name in sol_checks and name not in placed and probe_name(cell) is None:
            real = copy.deepcopy(sol_checks[name])
            real["outputs"], real["execution_count"] = [], None
            if "id" in cell:
                real["id"] = cell["id"]
            cells.append(real)
            placed.add(name)
        else:
            if name is not None or probe_name(cell) is not None:  # not a real check: never read
                cell = copy.deepcopy(cell)
                cell.setdefault("metadata", {}).pop("cfopt", None)
            cells.append(cell)
    for pos, sol_cell in enumerate(sol_cells):
        name = check_name(sol_cell)
        if name is None or name in placed:
            continue
        real = copy.deepcopy(sol_cell)
        real["outputs"], real["execution_count"] = [], None
        real.pop("id", None)
        cells.insert(_anchor(cells, sol_cells[:pos]), real)
        placed.add(name)
    nb["cells"] = cells
    where = {name: i for i, c in enumerate(cells) if (name := check_name(c)) in sol_checks}
    return nb, where


def _anchor(cells: list[dict[str, Any]], before: list[dict[str, Any]]) -> int:
    """Index just after the learner cell matching the nearest solution cell in ``before``."""
    for sol_cell in reversed(before):
        key_id, key_name = sol_cell.get("id"), check_name(sol_cell)
        for i, c in enumerate(cells):
            if (key_id and c.get("id") == key_id) or (key_name and check_name(c) == key_name):
                return i + 1
    return len(cells)


def student_of(path: Path, folder: Path | None, exercise: str = "") -> str:
    """The student a submission belongs to: its first folder under ``folder``, else its file name.

    >>> student_of(Path("subs/ada/04_batch_processing.ipynb"), Path("subs"))
    'ada'
    >>> student_of(Path("subs/bob_04_batch_processing (1).ipynb"), Path("subs"), "04_batch_processing")
    'bob'
    """
    if folder is not None:
        try:
            rel = path.relative_to(folder)
        except ValueError:
            rel = Path(path.name)
        if len(rel.parts) > 1:
            return rel.parts[0]
    stem = re.sub(r"\s*(\(\d+\)|-?\s*Copy\d*|copy)$", "", path.stem, flags=re.I)
    if exercise and exercise in stem:
        stem = stem.replace(exercise, "")
    return stem.strip(" _-.") or path.stem


# --- one run in a sandbox, and what came back -------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Raw:
    """What a run of one notebook gave: phase answers, or why there are none."""

    where: Mapping[str, int]
    nonce: str
    phase1: Mapping[str, Any] | None = None
    phase2: Mapping[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    survivors: int = 0


def _execute(nb: dict[str, Any], name: str, exercise: Exercise, where: Mapping[str, int],
             seed: int, options: GradeOptions) -> _Raw:
    from .runner import Job, Run, RunFailed
    nonce = secrets.token_hex(16)
    job = Job(nb, name, exercise.references, options.timeout, options.cell_timeout, options.limits)
    start = time.monotonic()
    p1 = p2 = None
    error = None
    run = Run(job, sandbox=options.sandbox, kit_root=_kit_root())
    try:
        p1 = run.phase1()
        stopped = p1.get("stopped_at")
        # after a dead kernel the runner reruns the cells before the one that killed it
        wanted = [n for _, n, _ in exercise.checks if where.get(n, 1 << 30) < stopped] if stopped is not None \
            else [n for _, n, _ in exercise.checks] if p1.get("alive") else []
        probes = [{"check": n, "source": exercise.probes[n].source,
                   "references": list(exercise.probes[n].references)} for n in wanted]
        budget = options.timeout + len(probes) * options.cell_timeout   # a safety net: the runner times itself
        p2 = run.phase2({"nonce": nonce, "seed": seed, "probe_timeout": options.cell_timeout,
                         "probes": probes}, timeout=budget)
    except RunFailed as e:
        error = f"the grading run failed: {e}"
    finally:
        run.close()
    return _Raw(where, nonce, p1, p2, error, time.monotonic() - start, run.survivors)


def _kit_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "datasets").is_dir() else None


def _frame(raw: _Raw, check: str) -> tuple[list[Any] | None, str | None, list[str]]:
    """The cases the probe of ``check`` observed in ``raw``, why there are none, and forgeries."""
    if raw.phase2 is None:
        return None, raw.error or "the probes did not run", []
    entry = (raw.phase2.get("probes") or {}).get(check)
    if not isinstance(entry, dict):
        return None, None, []
    frames = [f for f in entry.get("frames") or [] if isinstance(f, dict)]
    good = [f for f in frames if f.get("nonce") == raw.nonce and f.get("check") == check]
    forged = []
    if len(frames) > len(good):
        forged.append(f"showed a fake probe result while check {check!r} was probed")
    if len(good) > 1:
        forged.append(f"showed {len(good)} results for the probe of {check!r}, where the grader shows one")
    if entry.get("error"):
        return None, f"the hidden check did not finish: {entry['error']}", forged
    if len(good) != 1:
        if not good:
            forged.append(f"the grader's probe of {check!r} showed no result: something replaced or silenced it")
        return None, None, forged
    cases = good[0].get("cases")
    if good[0].get("error"):
        return (cases if isinstance(cases, list) else []), str(good[0]["error"]), forged
    return (cases if isinstance(cases, list) else None), None, forged


def _evidence(raw: _Raw) -> list[Evidence]:
    """The guard's evidence: from the last nonce-carrying frame of the run."""
    if raw.phase2 is None:
        return []
    frames = [f for entry in [*(raw.phase2.get("probes") or {}).values(), raw.phase2.get("final") or {}]
              if isinstance(entry, dict) for f in entry.get("frames") or []
              if isinstance(f, dict) and f.get("nonce") == raw.nonce]
    out, seen = [], set()
    for f in frames:
        for e in f.get("evidence") or []:
            if isinstance(e, dict) and isinstance(e.get("reason"), str) and e["reason"] not in seen:
                seen.add(e["reason"])
                out.append(Evidence(e["reason"][:300], str(e.get("scope", "*"))))
    return out


def _phase1_forgeries(raw: _Raw) -> list[str]:
    """Outputs only the grader makes, made by the notebook's own cells."""
    out = []
    checks_at = set(raw.where.values())
    for i, cell in enumerate((raw.phase1 or {}).get("cells") or []):
        if cell.get("probe_outputs"):
            out.append(f"cell {i} showed a fake probe result (grader output)")
        results = cell.get("results") or []
        if results and i not in checks_at:
            out.append(f"cell {i} showed a fake check result (grader output)")
        elif len(results) > 1:
            out.append(f"check cell {i} showed {len(results)} check results, where kit.check shows one")
    return out


# --- the grade ---------------------------------------------------------------------------------

def _report(path: Path, student: str, exercise: Exercise, raw: _Raw, ref: _Raw, scan: list[Evidence],
            seed: int, options: GradeOptions, clean: Redactor) -> GradeReport:
    error = raw.error or (raw.phase1 or {}).get("error")
    cells = (raw.phase1 or {}).get("cells") or []
    stopped = (raw.phase1 or {}).get("stopped_at")
    ref_error = _reference_problem(ref)
    evidence = scan + _evidence(raw) + [Evidence(r) for r in _phase1_forgeries(raw)]
    checks = []
    for idx, name, points in exercise.checks:
        probe = exercise.probes[name]
        at = raw.where.get(name)
        cases, why, forged = _frame(raw, name)
        evidence += [Evidence(r) for r in forged]
        involved = [e.reason for e in evidence if e.scope == "*" or e.scope in probe.references]
        own = _own_result(cells, at)
        if involved:
            checks.append(CheckOutcome(name, False, f"no credit: {involved[0]}", points, 0.0, own, involved[0]))
            continue
        if stopped is not None and at is not None and at >= stopped:
            verb = "finish" if at == stopped else "run"
            checks.append(CheckOutcome(name, False, f"check did not {verb}: {error}", points, 0.0, own))
            continue
        if ref_error:
            checks.append(CheckOutcome(name, False, f"not graded: {ref_error}", points, 0.0, own))
            continue
        want, want_why, _ = _frame(ref, name)
        if cases is None or why:
            checks.append(CheckOutcome(name, False, why or error or "the hidden check did not run",
                                       points, 0.0, own))
            continue
        if want is None or want_why:
            checks.append(CheckOutcome(name, False, f"not graded: the solution's probe failed: {want_why}",
                                       points, 0.0, own))
            continue
        v = judge(cases, want, probe.verdict, probe.params)
        feedback = v.message
        if not v.passed and own == "passed":
            feedback += " (the notebook's own check passed: the hidden cases go further)"
        checks.append(CheckOutcome(name, v.passed, feedback, points, points * v.fraction, own))
    cell_errors = tuple(f"cell {i} raised {e['ename']}: {e['evalue']}" for i, cell in enumerate(cells)
                        if i not in raw.where.values() for e in cell.get("errors") or [])
    tampered = tuple(dict.fromkeys(e.reason for e in evidence))
    if raw.survivors:
        error = (error + "; " if error else "") + f"{raw.survivors} process(es) outlived the run and were killed"
    report = GradeReport(str(path), tuple(checks), error, cell_errors, raw.seconds, student, exercise.id,
                         tampered, seed, options.sandbox)
    return _redacted(report, clean)


def _own_result(cells: list[Mapping[str, Any]], at: int | None) -> str:
    if at is None or at >= len(cells):
        return ""
    results = cells[at].get("results") or []
    if not results:
        return "did not report" if cells[at].get("errors") else ""
    r = results[0]
    status = {"passed": "passed", "not-yet": "not yet"}.get(str(r.get("status")), "failed")
    return status + (f": {r['feedback']}" if r.get("feedback") and status != "passed" else "")


def _reference_problem(ref: _Raw) -> str | None:
    if ref.error:
        return f"the solution's own run failed ({ref.error})"
    if (ref.phase1 or {}).get("error"):
        return f"the solution's own run failed ({ref.phase1['error']})"
    tampered = _evidence(ref) + [Evidence(r) for r in _phase1_forgeries(ref)]
    if tampered:
        return f"the solution's own run tripped the guard ({tampered[0].reason}); fix the solution"
    return None


def _redacted(report: GradeReport, clean: Redactor) -> GradeReport:
    checks = tuple(replace(c, feedback=clean(c.feedback), in_notebook=clean(c.in_notebook),
                           tampered=clean(c.tampered)) for c in report.checks)
    return replace(report, checks=checks, error=clean(report.error) if report.error else None,
                   cell_errors=tuple(clean(e) for e in report.cell_errors),
                   tampered=tuple(clean(t) for t in report.tampered))


# --- a class at a time ---------------------------------------------------------------------------

class _Grader:
    """Grades a list of notebooks ``jobs`` at a time; each exercise's solution runs once."""

    def __init__(self, options: GradeOptions, jobs: int, progress: Callable[[str], None] | None) -> None:
        if options.sandbox:
            require_sandbox()
        self.options = options
        self.seed = options.seed if options.seed is not None else secrets.randbelow(1 << 31)
        self.jobs = max(1, jobs)
        self.progress = progress
        self.clean = Redactor()
        self.solutions = Solutions(options.solutions)
        self._refs: dict[str, Future[_Raw]] = {}

    def run(self, paths: list[Path], folder: Path | None, *, strict: bool = False) -> list[GradeReport]:
        found: list[tuple[Path, dict[str, Any] | None, Exercise | None, str | None]] = []
        for p in paths:
            try:
                nb = _load(p)
                found.append((p, nb, self.solutions.find(nb, p), None))
            except ConfigError as e:
                if strict:
                    raise
                found.append((p, None, None, str(e)))
        if self.progress:
            n_ex = len({ex.id for _, _, ex, _ in found if ex})
            self.progress(f"grading {len(paths)} notebook(s) of {n_ex} exercise(s), {self.jobs} at a time, "
                          f"seed {self.seed}, " + ("in sandboxes (bubblewrap)" if self.options.sandbox
                                                   else "WITHOUT a sandbox (--no-sandbox)"))
        done = [0]
        lock = threading.Lock()
        reports: list[GradeReport | None] = [None] * len(found)
        with ThreadPoolExecutor(self.jobs) as pool:
            # solutions first: the pool is FIFO, so a submission never waits for one not started
            for _, _, ex, _ in found:
                if ex is not None and ex.id not in self._refs:
                    # time limits are left out: a solution run that finished is valid under any
                    key = (hashlib.sha256(json.dumps(ex.nb, sort_keys=True).encode()).hexdigest(),
                           self.seed, self.options.sandbox, self.options.limits)
                    if key in _SOLUTION_RUNS:
                        self._refs[ex.id] = done_future = Future()
                        done_future.set_result(_SOLUTION_RUNS[key])
                    else:
                        self._refs[ex.id] = pool.submit(self._reference, ex, key)

            def one(i: int) -> None:
                path, nb, ex, problem = found[i]
                if ex is None or nb is None:
                    report = GradeReport(str(path), (), error=self.clean(problem or "not graded"),
                                         student=student_of(path, folder), seed=self.seed,
                                         sandboxed=self.options.sandbox)
                else:
                    report = self._grade(path, nb, ex, folder)
                reports[i] = report
                with lock:
                    done[0] += 1
                    if self.progress:
                        width = len(str(len(found)))
                        self.progress(f"[{done[0]:>{width}}/{len(found)}] {report.progress()}")

            list(pool.map(one, range(len(found))))
        return [r for r in reports if r is not None]

    def _reference(self, ex: Exercise, key: tuple[Any, ...]) -> _Raw:
        raw = _execute(ex.nb, ex.path.name, ex, ex.where(ex.nb), self.seed, self.options)
        problem = _reference_problem(raw)
        if problem is None:
            while len(_SOLUTION_RUNS) >= 32:
                _SOLUTION_RUNS.pop(next(iter(_SOLUTION_RUNS)))
            _SOLUTION_RUNS[key] = raw
        if self.progress:
            self.progress(f"[solution] {ex.id}: {raw.seconds:.1f} s" + (f"  PROBLEM: {problem}" if problem else ""))
        return raw

    def _grade(self, path: Path, nb: dict[str, Any], ex: Exercise, folder: Path | None) -> GradeReport:
        merged, where = merge_checks(nb, ex.nb)
        scan = scan_notebook(merged["cells"], ex.authored, ex.references, skip=where.values(),
                             defined=ex.defined)
        raw = _execute(merged, path.name, ex, where, self.seed, self.options)
        ref = self._refs[ex.id].result()
        return _report(path, student_of(path, folder, ex.id), ex, raw, ref, scan, self.seed,
                       self.options, self.clean)


def _options(options: GradeOptions | None, kw: Mapping[str, Any]) -> GradeOptions:
    opts = options or GradeOptions()
    if kw:
        opts = replace(opts, **{k: (Path(v) if k == "solutions" and v is not None else v) for k, v in kw.items()})
    if opts.cell_timeout > opts.timeout:
        opts = replace(opts, cell_timeout=opts.timeout)
    return opts


def grade(notebook: Path | str, *, options: GradeOptions | None = None, **kw: Any) -> GradeReport:
    """Grade one notebook (and run its solution on the same seed); see ``GradeOptions``."""
    path = Path(notebook)
    if not path.is_file():
        raise ConfigError(f"no notebook at {path}")
    return _Grader(_options(options, kw), 1, None).run([path], None, strict=True)[0]


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def grade_folder(folder: Path | str, *, jobs: int = 1, progress: Callable[[str], None] | None = None,
                 options: GradeOptions | None = None, **kw: Any) -> list[GradeReport]:
    """Grade every ``.ipynb`` under ``folder`` (checkpoints skipped), ``jobs`` at a time.

    A notebook that cannot be graded (not a notebook, no solution) gets a report with the error.
    ``progress`` receives one line per finished notebook.
    """
    root = Path(folder)
    return _Grader(_options(options, kw), jobs, progress).run(_notebooks(root), root)


# --- output ---------------------------------------------------------------------------------

def write_csv(reports: Iterable[GradeReport], path: Path | str) -> None:
    """One row per submission: student, notebook, exercise, score, max, percent, one column per
    check (points earned), tampered, error, seconds."""
    reports = list(reports)
    columns: dict[tuple[str, str], str] = {}
    owners: dict[str, set[str]] = {}
    for r in reports:
        for c in r.checks:
            owners.setdefault(c.name, set()).add(r.exercise)
    for r in reports:
        for c in r.checks:
            label = c.name if len(owners[c.name]) == 1 else f"{r.exercise}: {c.name}"
            columns.setdefault((r.exercise, c.name), label)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "notebook", "exercise", "score", "max", "percent", *columns.values(),
                    "tampered", "error", "seconds"])
        for r in reports:
            got = {(r.exercise, c.name): f"{c.earned:g}" for c in r.checks}
            w.writerow([r.student, r.notebook, r.exercise, f"{r.score:g}", f"{r.max_score:g}",
                        f"{r.percent:.1f}", *(got.get(k, "") for k in columns),
                        "; ".join(r.tampered), r.error or "", f"{r.seconds:.1f}"])
