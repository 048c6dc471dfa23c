"""What ``cfopt grade`` reports: a verdict per check, a report per submission, the class's CSV.

>>> r = GradeReport("ada/04.ipynb", (CheckOutcome("ranks", True, "", 2, 2.0), CheckOutcome("backoff", False, "not yet", 1)))
>>> (r.score, r.max_score, round(r.percent, 1))
(2.0, 3, 66.7)
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

__all__ = ["CheckOutcome", "GradeReport", "write_csv", "student_of"]


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
