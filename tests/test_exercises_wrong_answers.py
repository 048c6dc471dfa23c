"""Every exercise tells a right answer from plausible wrong ones, and says specifically what is wrong.

For each solved notebook, one kernel runs its cells (up to the last check or probe). Then:

- the solution: every check passes;
- each saved wrong answer (``tests/wrong_answers/<notebook>.py``, at least two per check): its
  code replaces the learner's, the check cell runs again and must not pass, its feedback must say
  what the saved answer expects it to say and must not give the solution away, and the check's
  probe (the grader's hidden cases, on ``SEED``) must give less than full credit; then the
  solution's own cells are run again;
- the untouched exercise: every stub gives "not yet" in its check and nothing from its probe.

The grader itself (sandbox, guard, tamper detection) is tested in tests/test_grading.py; this file
tests the exercises, with the same probe and verdict code the grader uses.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cfopt.course.cells import check_cells, check_name, probe_cells, probe_name, text
from cfopt.course.checks import MIME_TYPE as CHECK_MIME
from cfopt.course.kit import BEGIN, stub_source
from cfopt.course.leaks import LeakFinder, solution_regions
from cfopt.course.nbrun import KernelSession
from cfopt.course.verdicts import judge

ROOT = Path(__file__).resolve().parents[1]
WRONG_DIR = Path(os.environ.get("CFOPT_WRONG_ANSWERS", Path(__file__).resolve().parent / "wrong_answers"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
SEED = 1
MIN_WRONG = 2
MARK = "\x1ecfopt-cases "
CELL_TIMEOUT = 300


def _wrong_answers(stem: str) -> list[dict[str, Any]]:
    path = WRONG_DIR / f"{stem}.py"
    assert path.exists(), f"no saved wrong answers for {stem}: write {path.relative_to(ROOT)}"
    spec = importlib.util.spec_from_file_location(f"wrong_answers_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wrong = getattr(module, "WRONG", None)
    assert isinstance(wrong, list) and wrong, f"{path.name}: define WRONG = [dict(check=..., ...), ...]"
    for i, w in enumerate(wrong):
        missing = {"check", "why", "source", "feedback"} - set(w)
        assert not missing, f"{path.name}: WRONG[{i}] lacks {sorted(missing)}"
        assert isinstance(w["feedback"], (list, tuple)) and w["feedback"], \
            f"{path.name}: WRONG[{i}] ({w['why']}): feedback lists what the check must say"
    return wrong


def _defined(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


class Exercise:
    """One solved notebook in a live kernel: run checks and probes, swap learner code in and out."""

    def __init__(self, kernel: KernelSession, nb: dict[str, Any], name: str) -> None:
        self.kernel, self.nb, self.name = kernel, nb, name
        self.checks = {cname: index for index, cname, _ in check_cells(nb, name)}
        self.probes = probe_cells(nb, name)

    def run(self, source: str, what: str) -> list[Any]:
        ex = self.kernel.execute(source, timeout=CELL_TIMEOUT)
        assert ex.error is None, f"{self.name}: {what}: {ex.error}"
        errors = [o for o in ex.outputs if o.get("output_type") == "error"]
        assert not errors, f"{self.name}: {what} raised {errors[0].get('ename')}: {errors[0].get('evalue')}"
        return ex.outputs

    def check(self, cname: str) -> dict[str, Any]:
        source = text(self.nb["cells"][self.checks[cname]]["source"])
        for out in self.run(source, f"check {cname!r}"):
            data = out.get("data", {}) if out.get("output_type") == "display_data" else {}
            if CHECK_MIME in data:
                result = data[CHECK_MIME]
                return json.loads(result) if isinstance(result, str) else result
        raise AssertionError(f"{self.name}: check {cname!r} showed no result")

    def probe(self, cname: str, seed: int = SEED) -> list[dict[str, Any]]:
        cell = self.probes[cname]
        code = (
            "from cfopt.course import probe as _cfopt_probe\n"
            "import json as _cfopt_json\n"
            "_cfopt_probe._collector = []\n"
            "try:\n"
            f"    exec(compile({cell.source!r}, '<probe>', 'exec'), globals())\n"
            "finally:\n"
            "    _cfopt_specs, _cfopt_probe._collector = _cfopt_probe._collector, None\n"
            f"_cfopt_cases = _cfopt_probe.run_probe(_cfopt_specs[-1], {seed}, "
            "_cfopt_probe.Poison.of(_cfopt_specs[-1].references))\n"
            f"print({MARK!r} + _cfopt_json.dumps(_cfopt_cases))\n")
        outputs = self.run(code, f"probe {cname!r}")
        stdout = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
        line = next((ln for ln in reversed(stdout.split("\n")) if ln.startswith(MARK)), None)
        assert line is not None, f"{self.name}: probe {cname!r} printed no cases"
        return json.loads(line[len(MARK):])

    def credit(self, cname: str, got: list[dict[str, Any]], want: list[dict[str, Any]]) -> tuple[float, str]:
        cell = self.probes[cname]
        v = judge(got, want, cell.verdict, cell.params)
        return v.fraction, v.message

    def restore(self, names: set[str]) -> None:
        """Run again the solution's cells that define ``names`` (not checks nor probes)."""
        cells = [c for c in self.nb["cells"] if c["cell_type"] == "code" and check_name(c) is None
                 and probe_name(c) is None and _safe_defined(text(c["source"])) & names]
        assert cells, f"{self.name}: no solution cell defines {sorted(names)}"
        for c in cells:
            self.run(text(c["source"]), f"the solution's cell defining {sorted(names)}")


def _safe_defined(source: str) -> set[str]:
    try:
        return _defined(source)
    except SyntaxError:
        return set()


def _exercise_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"
            and any(line.strip() == BEGIN for line in text(c["source"]).split("\n"))]


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_right_wrong_and_untouched_answers_get_what_they_deserve(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    checks = check_cells(nb, path.name)
    wrong = _wrong_answers(path.stem)
    known = {cname for _, cname, _ in checks}
    unknown = sorted({w["check"] for w in wrong} - known)
    assert not unknown, f"{path.stem}: wrong answers for checks that do not exist: {unknown}"
    thin = {c: n for c in known if (n := sum(w["check"] == c for w in wrong)) < MIN_WRONG}
    assert not thin, f"{path.stem}: fewer than {MIN_WRONG} wrong answers for {thin}"

    finder = LeakFinder(solution_regions(nb))
    probes = probe_cells(nb, path.name)
    last = max([i for i, _, _ in checks] + [p.index for p in probes.values()])
    head = dict(nb, cells=nb["cells"][: last + 1])
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("CFOPT_GRADING", None)
    problems: list[str] = []
    with KernelSession(head, cwd=path.parent, env=env) as kernel:
        run = kernel.run_cells(timeout=900, cell_timeout=CELL_TIMEOUT)
        assert run.error is None, f"{path.name}: {run.error}"
        failed = [(i, o) for i, c in enumerate(run.cells) if c.cell_type == "code"
                  for o in c.outputs if o.get("output_type") == "error"]
        assert not failed, f"{path.name}: cell {failed[0][0]} raised {failed[0][1].get('ename')}"
        ex = Exercise(kernel, nb, path.name)

        want = {}
        for _, cname, _ in checks:
            result = ex.check(cname)
            if result["status"] != "passed":
                problems.append(f"the solution fails {cname!r}: {result['feedback']}")
            want[cname] = ex.probe(cname)
            fraction, message = ex.credit(cname, want[cname], want[cname])
            if fraction < 1:
                problems.append(f"the solution gets {fraction:.0%} from its own probe {cname!r}: {message}")

        for w in wrong:
            label = f"wrong answer for {w['check']!r} ({w['why']})"
            ex.run(w["source"], label)
            result = ex.check(w["check"])
            feedback = result.get("feedback", "")
            if result["status"] == "passed":
                problems.append(f"{label}: the check passes it")
            elif result["status"] == "not-yet":
                problems.append(f"{label}: 'not yet' is for stubs; a wrong answer needs a specific failure, "
                                f"got {feedback!r}")
            missing = [s for s in w["feedback"] if s not in feedback]
            if missing:
                problems.append(f"{label}: the feedback does not say {missing}; it says {feedback!r}")
            own = "".join(w["source"].split())   # quoting the learner's own line gives nothing away
            problems += [f"{label}: {leak} in {feedback!r}" for leak in finder.find(feedback, "its feedback")
                         if "".join(leak.found.split()) not in own]
            fraction, _ = ex.credit(w["check"], ex.probe(w["check"]), want[w["check"]])
            if fraction >= 1:
                problems.append(f"{label}: the grader's probe gives it full credit")
            ex.restore(_defined(w["source"]))

        stubbed = _exercise_cells(nb)
        for cell in stubbed:    # a stub at top level raises when it runs, as in the exercise
            out = kernel.execute(stub_source(text(cell["source"])), timeout=CELL_TIMEOUT)
            errors = [o.get("ename") for o in out.outputs if o.get("output_type") == "error"]
            assert out.error is None and set(errors) <= {"NotImplementedError"}, \
                f"{path.name}: an untouched exercise cell failed: {out.error or errors}"
        for _, cname, _ in checks:
            result = ex.check(cname)
            if result["status"] != "not-yet":
                problems.append(f"the untouched exercise gets {result['status']!r} from {cname!r}, not 'not yet'")
            fraction, _ = ex.credit(cname, ex.probe(cname), want[cname])
            if fraction > 0:
                problems.append(f"the untouched exercise gets {fraction:.0%} from the probe of {cname!r}")
    assert not problems, f"{path.stem}:\n- " + "\n- ".join(problems)
