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

import hashlib
import json
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from .exercises import Exercise, Solutions, load_notebook, merge_checks
from .redact import Redactor
from .report import CheckOutcome, GradeReport, student_of
from .sandbox import DEFAULT_LIMITS, Limits, require_sandbox
from .scan import Evidence, scan_notebook
from .verdicts import judge

__all__ = ["GradeOptions", "grade", "grade_folder", "DEFAULT_TIMEOUT_S", "DEFAULT_CELL_TIMEOUT_S"]

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
    try:
        run = Run(job, sandbox=options.sandbox, kit_root=_kit_root())
    except RunFailed as e:
        return _Raw(where, nonce, error=f"the grading run failed: {e}")
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
    """The guard's evidence, from every frame of the run that carries its nonce."""
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
    # what happened at run time first (it names what the code did), then what its source shows
    evidence = [Evidence(r) for r in _phase1_forgeries(raw)] + _evidence(raw) + scan
    checks = []
    for idx, name, points in exercise.checks:
        probe = exercise.probes[name]
        at = raw.where.get(name)
        cases, why, forged = _frame(raw, name)
        evidence[:0] = [Evidence(r) for r in forged]
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
        self.clean = Redactor()
        self.progress = (lambda line: progress(self.clean(line))) if progress else None
        self.solutions = Solutions(options.solutions)
        self._refs: dict[str, Future[_Raw]] = {}

    def run(self, paths: list[Path], folder: Path | None, *, strict: bool = False) -> list[GradeReport]:
        found: list[tuple[Path, dict[str, Any] | None, Exercise | None, str | None]] = []
        for p in paths:
            try:
                nb = load_notebook(p)
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
                if ex is not None and nb is not None:
                    try:
                        report = self._grade(path, nb, ex, folder)
                    except Exception as e:  # noqa: BLE001 - one notebook must not stop the class
                        problem, ex = f"the grader failed on this notebook: {type(e).__name__}: {e}", None
                if ex is None or nb is None:
                    report = GradeReport(str(path), (), error=self.clean(problem or "not graded"),
                                         student=student_of(path, folder), seed=self.seed,
                                         sandboxed=self.options.sandbox)
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


def grade(notebook: Path | str, *, jobs: int = 1, progress: Callable[[str], None] | None = None,
          options: GradeOptions | None = None, **kw: Any) -> GradeReport:
    """Grade one notebook (and run its solution on the same seed); see ``GradeOptions``.

    With ``jobs=2`` the notebook and its solution run at the same time.
    """
    path = Path(notebook)
    if not path.is_file():
        raise ConfigError(f"no notebook at {path}")
    return _Grader(_options(options, kw), jobs, progress).run([path], None, strict=True)[0]


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


