"""Hints teach without giving the answer: three folded levels per check, and no hint, stub message,
docstring or check message of any notebook contains its own solution's code.

The feedback a check writes at run time is held against the solution too, in
tests/test_exercises_wrong_answers.py (it runs the checks on wrong answers).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cfopt.course.cells import check_cells, text
from cfopt.course.leaks import LeakFinder, find_leaks, solution_regions

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
LEVELS = ("Hint 1", "Hint 2", "Hint 3")
_DETAILS = re.compile(r"<details>\s*<summary>(.*?)</summary>(.*?)</details>", re.S)


def _nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_no_hint_or_message_gives_the_solution_away(path):
    leaks = find_leaks(_nb(path), path.name)
    assert not leaks, "\n".join(map(str, leaks))


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_check_has_three_folded_hints_before_it(path):
    nb = _nb(path)
    checks = check_cells(nb, path.name)
    assert checks, f"{path.name} has no checks"
    hinted: dict[str, int] = {}
    problems = []
    for i, cell in enumerate(nb["cells"]):
        names = cell.get("metadata", {}).get("cfopt", {}).get("hints")
        if names is None:
            continue
        names = [names] if isinstance(names, str) else names
        if cell["cell_type"] != "markdown":
            problems.append(f"cell {i}: hints belong in a markdown cell")
            continue
        blocks = _DETAILS.findall(text(cell["source"]))
        summaries = [s.strip() for s, _ in blocks]
        if len(blocks) != 3 or not all(s.startswith(level) for s, level in zip(summaries, LEVELS)):
            problems.append(f"cell {i}: expected three <details> blocks summarised {LEVELS}, got {summaries}")
        for summary, body in blocks:
            if len(body.strip()) < 20:
                problems.append(f"cell {i}: {summary!r} says almost nothing")
        for name in names:
            hinted[name] = i
    for index, name, _ in checks:
        if name not in hinted:
            problems.append(f"check {name!r} (cell {index}) has no hints cell (metadata cfopt.hints)")
        elif hinted[name] > index:
            problems.append(f"the hints of {name!r} come after its check (cell {hinted[name]} > {index})")
    unknown = set(hinted) - {name for _, name, _ in checks}
    problems += [f"hints for {name!r}, which is not a check of this notebook" for name in sorted(unknown)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_stub_says_what_to_do(path):
    nb = _nb(path)
    for i, cell in enumerate(nb["cells"]):
        lines = text(cell.get("source", "")).split("\n")
        for n, line in enumerate(lines):
            if line.strip() == "### BEGIN SOLUTION" and cell["cell_type"] == "code":
                after = lines[n + 1].strip() if n + 1 < len(lines) else ""
                assert after.startswith("# Hint:") and len(after) > 20, \
                    f"{path.name}, cell {i}, line {n + 2}: the stub's '# Hint:' line is its 'not yet' message"


def test_the_finder_catches_copies_and_leaves_teaching_alone():
    solution = ["for model in CHEAPEST_FIRST:\n    if QUALITY.score(model, analysis.complexity) >= analysis.need:\n"
                "        return model\nreturn QUALITY.premium",
                "return min(cap_s, base_s * 2 ** retry)"]
    finder = LeakFinder(solution)
    leaked = [
        "return the first model of CHEAPEST_FIRST with QUALITY.score(model, analysis.complexity) >= analysis.need",
        "Cap it: `min(cap_s,base_s*2**retry)`",
        "the ceiling is base_s * 2 ** retry",
        "finally `return QUALITY.premium`",
        "min(\n    cap_s, base_s * 2 ** retry\n)",
    ]
    for body in leaked:
        assert finder.find(body), body
    teaching = [
        "Walk the models from the cheapest; the first whose score meets the need is the answer.",
        "A model whose score equals the need exactly is good enough.",
        "The delay doubles with each retry and never passes the cap; draw it uniformly below that.",
        "Look at `analysis.need` and `QUALITY.score`.",
    ]
    for body in teaching:
        assert not finder.find(body), body


def test_solution_regions_leave_hint_lines_and_markers_out():
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source":
                     "def f(x):\n    ### BEGIN SOLUTION\n    # Hint: double it\n    return 2 * x\n    ### END SOLUTION\n"}]}
    assert solution_regions(nb) == ["    return 2 * x"]
