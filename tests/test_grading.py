"""Grading: sandboxes, probes and verdicts outside them, hangs and crashes still get a score.

The tests that grade run in sandboxes (bubblewrap) and are skipped where none can be made, except
under CI=true, where a missing sandbox fails them. tests/redteam/ grades the attacks.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cfopt.cli import main
from cfopt.course import kit, sandbox
from cfopt.course.exercises import find_solution, merge_checks
from cfopt.course.grading import grade
from cfopt.course.probe import Poison, ProbeError, to_json
from cfopt.course.redact import Redactor
from cfopt.course.report import GradeReport, student_of
from cfopt.course.scan import scan_cell
from cfopt.course.verdicts import judge
from cfopt.errors import ConfigError, SandboxUnavailable

REPO = Path(__file__).resolve().parents[1]
GRADE_SHAPE = Path(__file__).resolve().parents[2] / "shared/contracts/grade_shape.py"
PLANTED_KEY = "sk-ant-api03-PLANTEDnbval9c41e7d2b8-notareal-key"   # as the root conftest plants
PLANTED_MIDDLE = "PLANTEDnbval9c41e7d2b8"

FUNCS = """\
def double(x):
    ### BEGIN SOLUTION
    # Hint: return x times two
    return 2 * x
    ### END SOLUTION

def greet(name):
    ### BEGIN SOLUTION
    # Hint: an f-string
    return f"hello {name}"
    ### END SOLUTION"""

PROBES = {
    "double doubles": '''from cfopt.course import kit

@kit.probe("double doubles")
def _(probe):
    for x in [21, *(probe.rng.randint(-10**6, 10**6) for _ in range(20))]:
        probe.observe(f"double({x})", lambda: double(x))''',
    "greet greets": '''from cfopt.course import kit

@kit.probe("greet greets")
def _(probe):
    for name in ["ada", *(probe.rng.choice(["bob", "eve", "zoë", ""]) for _ in range(5))]:
        probe.observe(f"greet({name!r})", lambda: greet(name))''',
}


def _check(name: str, body: str, points: float = 1):
    src = f"from cfopt.course import kit\n\n@kit.check({name!r}, points={points!r})\ndef _():\n    {body}"
    return new_code_cell(src, metadata={"cfopt": {"check": name, "points": points}})


def _probe(name: str):
    return new_code_cell(PROBES[name], metadata={"cfopt": {"probe": name}})


def _solution():
    nb = new_notebook(cells=[
        new_markdown_cell("# A tiny course notebook"),
        new_code_cell(FUNCS),
        _check("double doubles", "kit.expect_equal(double(21), 42, what='double(21)')", points=2),
        _probe("double doubles"),
        new_markdown_cell("## Greeting"),
        _check("greet greets", "kit.expect_equal(greet('ada'), 'hello ada', what=\"greet('ada')\")"),
        _probe("greet greets"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["cfopt"] = {"exercise": "01_tiny"}
    return nb


@pytest.fixture(scope="module")
def sandboxed():
    problem = sandbox.sandbox_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"grading needs sandboxes and CI must provide them: {problem}")
        pytest.skip(problem)


@pytest.fixture()
def course(tmp_path, sandboxed):
    """A solutions/ folder with one solved notebook and its built exercise in notebooks/."""
    sol, exe = tmp_path / "solutions", tmp_path / "notebooks"
    sol.mkdir()
    nbformat.write(_solution(), sol / "01_tiny.ipynb")
    kit.build_all(sol, exe)
    return tmp_path


def _learner(course: Path, name: str, edit, file: str = "01_tiny.ipynb") -> Path:
    """A learner's copy of the exercise notebook, changed by ``edit(cells)``, in submissions/NAME/."""
    nb = nbformat.read(course / "notebooks/01_tiny.ipynb", as_version=4)
    nb.cells[1].source = FUNCS   # the exercise solved: the learner's own work
    edit(nb.cells)
    path = course / "submissions" / name / file
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _grade(course: Path, path: Path, **kw) -> GradeReport:
    return grade(path, solutions=course / "solutions", seed=5, **kw)


def _by_name(report: GradeReport) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.feedback) for c in report.checks}


# --- graded in sandboxes ---------------------------------------------------------------------

def test_solution_gets_full_marks_and_exercise_gets_not_yet(course):
    solved = _grade(course, course / "solutions/01_tiny.ipynb")
    assert (solved.score, solved.max_score, solved.error, solved.tampered) == (3, 3, None, ())
    assert solved.sandboxed and solved.exercise == "01_tiny" and solved.seed == 5
    exercise = _grade(course, course / "notebooks/01_tiny.ipynb")
    assert (exercise.score, exercise.max_score) == (0, 3)
    assert _by_name(exercise) == {
        "double doubles": (False, "not yet: return x times two (case 1 of 21: double(21))"),
        "greet greets": (False, "not yet: an f-string (case 1 of 6: greet('ada'))")}
    assert [c.in_notebook for c in exercise.checks] == ["not yet: return x times two", "not yet: an f-string"]


def test_an_edited_check_counts_for_nothing_the_probe_grades(course):
    def cheat(cells):
        cells[1].source = FUNCS.replace("return 2 * x", "return 2 + x")
        cells[2].source = "from cfopt.course import kit\n@kit.check('double doubles')\ndef _():\n    pass"
    report = _grade(course, _learner(course, "mallory", cheat))
    assert _by_name(report)["double doubles"] == (False, "case 1 of 21: double(21) gave 23; expected 42")
    assert report.checks[0].in_notebook == "failed: expected double(21) to be 42, got 23"
    assert report.score == 1 and report.tampered == ()


def test_hard_coded_visible_answers_fail_the_hidden_cases(course):
    def hardcode(cells):
        cells[1].source = FUNCS.replace("return 2 * x", "return 42 if x == 21 else 0")
    report = _grade(course, _learner(course, "lazy", hardcode))
    passed, feedback = _by_name(report)["double doubles"]
    assert not passed and report.checks[0].in_notebook == "passed"
    assert feedback.startswith("case 2 of 21: double(") and feedback.endswith(
        "(the notebook's own check passed: the hidden cases go further)")


def test_the_hidden_cases_follow_the_seed(course):
    first = _grade(course, _learner(course, "lazy", lambda c: setattr(c[1], "source", FUNCS.replace("2 * x", "42"))))
    other = grade(course / "submissions/lazy/01_tiny.ipynb", solutions=course / "solutions", seed=6)
    assert first.checks[0].feedback.split(":")[1] != other.checks[0].feedback.split(":")[1]


def test_a_cell_that_raises_does_not_stop_the_checks(course):
    report = _grade(course, _learner(course, "raiser", lambda cells: cells.insert(2, new_code_cell("undefined_name + 1"))))
    assert (report.score, report.error) == (3, None)
    assert report.cell_errors == ("cell 2 raised NameError: name 'undefined_name' is not defined",)


def test_a_hanging_notebook_gets_a_score_and_the_reason(course):
    def hang(cells):
        cells.insert(4, new_code_cell("import time\ntime.sleep(60)"))
    report = _grade(course, _learner(course, "sleeper", hang), cell_timeout=2)
    assert report.error == "timed out after 2 s in cell 4 (`import time`)"
    assert _by_name(report) == {"double doubles": (True, ""), "greet greets": (
        False, "check did not run: timed out after 2 s in cell 4 (`import time`)")}
    assert (report.score, report.max_score) == (2, 3)
    assert report.seconds < 30


def test_the_whole_notebook_timeout_applies_too(course):
    report = _grade(course, _learner(course, "slow", lambda cells: cells.insert(4, new_code_cell("import time\ntime.sleep(60)"))),
                    timeout=4)
    assert report.error.startswith("timed out: the notebook took over 4 s")
    assert report.score == 2


def test_a_check_that_hangs_in_learner_code_did_not_finish(course):
    report = _grade(course, _learner(course, "looper", lambda cells: setattr(
        cells[1], "source", FUNCS.replace("return 2 * x", "while True:\n        pass"))), cell_timeout=2)
    assert report.error == "timed out after 2 s in cell 2 (`from cfopt.course import kit`)"
    assert _by_name(report) == {
        "double doubles": (False, f"check did not finish: {report.error}"),
        "greet greets": (False, f"check did not run: {report.error}")}


def test_a_fake_check_result_is_tampering(course):
    fake = ("from IPython.display import display\n"
            "display({'application/vnd.cfopt.check+json': {'name': 'double doubles', "
            "'passed': True, 'status': 'passed', 'feedback': '', 'points': 2}}, raw=True)\n")
    report = _grade(course, _learner(course, "faker", lambda cells: cells.insert(2, new_code_cell(fake))))
    assert report.tampered == ("cell 2 showed a fake check result (grader output)",)
    assert report.score == 0 and all(c.feedback.startswith("no credit: cell 2 showed") for c in report.checks)


def test_patching_the_check_machinery_is_tampering(course):
    patch = "import cfopt.course.checks as c\nc._run = lambda name, points, fn: c.CheckResult(name, 'passed', '', points)"
    report = _grade(course, _learner(course, "patcher", lambda cells: cells.insert(1, new_code_cell(patch))))
    assert report.tampered[0] == "patched the check machinery: cfopt.course.checks._run"
    assert "cell 1, line 1 imports cfopt.course.checks, the grader's machinery" in report.tampered
    assert report.score == 0


def test_a_crashing_kernel_gets_a_score_and_the_reason(course):
    report = _grade(course, _learner(course, "crasher", lambda cells: cells.insert(4, new_code_cell("import os\nos._exit(1)"))))
    assert report.error == "the kernel died in cell 4 (`import os`)"
    assert _by_name(report)["greet greets"] == (False, f"check did not run: {report.error}")
    assert report.score == 2


def test_submissions_are_matched_by_metadata_not_by_file_name(course):
    renamed = _learner(course, "ada", lambda cells: None, file="01_tiny (1).ipynb")
    assert find_solution(renamed, course / "solutions") == course / "solutions/01_tiny.ipynb"
    assert _grade(course, renamed).score == 3
    bare = json.loads(renamed.read_text())
    del bare["metadata"]["cfopt"]
    (course / "old.ipynb").write_text(json.dumps(bare))
    with pytest.raises(ConfigError, match="no exercise id in its metadata"):
        find_solution(course / "old.ipynb", course / "solutions")
    (course / "01_tiny.ipynb").write_text(json.dumps(bare))        # no metadata: its own name still works
    assert find_solution(course / "01_tiny.ipynb", course / "solutions") == course / "solutions/01_tiny.ipynb"
    bare["metadata"]["cfopt"] = {"exercise": "99_other"}
    (course / "other.ipynb").write_text(json.dumps(bare))
    with pytest.raises(ConfigError, match="exercise '99_other' has no solution"):
        find_solution(course / "other.ipynb", course / "solutions")


def test_cli_json_has_the_contract_shape(course, capsys, tmp_path):
    code = main(["grade", str(course / "notebooks/01_tiny.ipynb"), "--json", "--seed", "5",
                 "--solutions", str(course / "solutions")])
    captured = capsys.readouterr()
    assert code == 0
    data = json.loads(captured.out)
    assert (data["score"], data["max_score"], len(data["checks"]), data["seed"]) == (0, 3, 2, 5)
    assert set(data["checks"][0]) >= {"name", "passed", "feedback", "points", "earned", "in_notebook", "tampered"}
    assert "[1/1] " in captured.err
    if not GRADE_SHAPE.exists():
        pytest.skip(f"contract checker {GRADE_SHAPE} not present")
    (tmp_path / "grade.json").write_text(captured.out)
    shape = subprocess.run([sys.executable, str(GRADE_SHAPE), str(tmp_path / "grade.json")],
                           capture_output=True, text=True)
    assert shape.returncode == 0, shape.stdout + shape.stderr


def test_cli_folder_mode_writes_a_row_and_a_progress_line_per_notebook(course, capsys):
    _learner(course, "ada", lambda cells: None)
    _learner(course, "bob", lambda cells: setattr(cells[1], "source", FUNCS.replace("2 * x", "x")))
    (course / "submissions/carol").mkdir()
    other = _solution()
    other.metadata["cfopt"] = {"exercise": "99_unknown"}
    nbformat.write(other, course / "submissions/carol/99_unknown.ipynb")
    (course / "submissions/dan").mkdir()
    (course / "submissions/dan/01_tiny.ipynb").write_text("not json")
    out = course / "grades.csv"
    assert main(["grade", str(course / "submissions"), "--csv", str(out), "--jobs", "2", "--seed", "5",
                 "--solutions", str(course / "solutions")]) == 0
    captured = capsys.readouterr()
    assert f"wrote 4 row(s) to {out}" in captured.out
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len([line for line in progress if line[1].isdigit()]) == 4 and "[solution] 01_tiny" in captured.err
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["student", "notebook", "exercise", "score", "max", "percent",
                             "double doubles", "greet greets", "tampered", "error", "seconds"]
    assert [r["student"] for r in rows] == ["ada", "bob", "carol", "dan"]
    assert [(r["score"], r["max"], r["percent"]) for r in rows[:2]] == [("3", "3", "100.0"), ("1", "3", "33.3")]
    assert (rows[1]["double doubles"], rows[1]["greet greets"]) == ("0", "1")
    assert "exercise '99_unknown' has no solution" in rows[2]["error"]
    assert "not a notebook" in rows[3]["error"]
    assert float(rows[0]["seconds"]) > 0


def test_without_a_sandbox_the_key_the_learner_reads_is_still_redacted(course, tmp_path):
    # Unsandboxed, learner code can read the grader's own /proc/PID/environ: the key must still
    # not come out. (Sandboxed, it cannot read it at all: tests/redteam/.)
    steal = ("import os\n"
             "def _ancestors_env():\n"
             "    pid, out = os.getpid(), []\n"
             "    while pid > 1:\n"
             "        try:\n"
             "            out.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))\n"
             "            pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
             "        except (OSError, ValueError):\n"
             "            break\n"
             "    return ' '.join(v for e in out for v in e.split(chr(0)) if 'API_KEY' in v)\n"
             "def double(x):\n"
             "    raise ValueError(_ancestors_env())\n"
             "print(_ancestors_env())\n"
             "raise KeyError(_ancestors_env())")
    path = _learner(course, "thief", lambda cells: cells.insert(2, new_code_cell(steal)))
    env = dict(os.environ, ANTHROPIC_API_KEY=PLANTED_KEY, CFOPT_API_KEY=PLANTED_KEY)
    run = subprocess.run([sys.executable, "-m", "cfopt.cli", "grade", str(path), "--no-sandbox", "--json",
                          "--seed", "5", "--solutions", str(course / "solutions")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["sandboxed"] is False and "WITHOUT a sandbox" in run.stderr
    assert "[redacted]" in report["checks"][0]["feedback"] and "[redacted]" in report["cell_errors"][0]
    assert PLANTED_MIDDLE not in run.stdout + run.stderr


def test_no_sandbox_here_means_a_plain_refusal(course, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bwrap not found (Debian: apt-get install bubblewrap)")
    with pytest.raises(SandboxUnavailable, match="cannot isolate submissions: bwrap not found.*--no-sandbox"):
        _grade(course, course / "notebooks/01_tiny.ipynb")
    assert main(["grade", str(course / "notebooks/01_tiny.ipynb"), "--solutions", str(course / "solutions")]) == 2
    assert "cfopt: error: cannot isolate submissions" in capsys.readouterr().err


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook or folder at" in capsys.readouterr().err
    assert main(["grade", str(tmp_path), "--jobs", "0"]) == 2
    assert "--jobs must be 1 or more" in capsys.readouterr().err
    assert main(["grade", str(tmp_path), "--memory-mb", "0"]) == 2
    assert "Limits.memory_mb must be a positive whole number" in capsys.readouterr().err


def test_a_deleted_check_is_put_back_where_the_solution_has_it():
    solution = json.loads(nbformat.writes(_solution()))
    learner = kit.build_notebook(solution, name="01_tiny.ipynb")
    del learner["cells"][4]                                    # the greet check
    merged, where = merge_checks(learner, solution)
    assert where == {"double doubles": 2, "greet greets": 4}   # after the markdown it followed
    assert not any("probe" in c["metadata"].get("cfopt", {}) for c in merged["cells"])


def test_student_names_come_from_folders_or_file_names():
    assert student_of(Path("c/ada/x/04_batch_processing.ipynb"), Path("c")) == "ada"
    assert student_of(Path("c/bob - 04_batch_processing (2).ipynb"), Path("c"), "04_batch_processing") == "bob"
    assert student_of(Path("c/04_batch_processing-Copy1.ipynb"), Path("c"), "04_batch_processing") == \
        "04_batch_processing-Copy1"


# --- the parts, without a kernel ----------------------------------------------------------------

def test_verdicts_compare_cases_with_the_reference():
    want = [{"case": "f(1)", "value": 0.1 + 0.2}, {"case": "f(2)", "error": "ValueError", "message": "no"}]
    assert judge([{"case": "f(1)", "value": 0.3}, {"case": "f(2)", "error": "ValueError", "message": "x"}], want).passed
    assert judge([{"case": "f(1)", "value": True}, *want[1:]], [{"case": "f(1)", "value": 1}, *want[1:]]).message == \
        "case 1 of 2: f(1) gave true; expected 1"
    assert judge([{"case": "f(1)", "value": 0.3}, {"case": "f(2)", "value": 5}], want).message == \
        "case 2 of 2: f(2) gave 5; expected it to raise ValueError"
    assert "here but f(1) for the reference" in judge([{"case": "g(1)", "value": 0.3}], want).message
    assert judge([want[0]], want).message == "the probe stopped after 1 of 2 cases"
    assert judge([{"case": "f(1)", "error": "NotImplementedError", "message": "write f"}, want[1]], want).message \
        == "not yet: write f (case 1 of 2: f(1))"
    costs = [{"case": f"run {i}", "value": v} for i, v in enumerate([10.0, 10.0])]
    assert judge([{"case": "run 0", "value": 10.4}, {"case": "run 1", "value": 12.5}], costs, "outcome",
                 {"within": 0.05, "zero_at": 0.5}).fraction == pytest.approx(0.5 + 0.5 * (1 - 0.2 / 0.45))
    with pytest.raises(ConfigError, match="unknown verdict 'nope'"):
        judge(costs, costs, "nope")


def test_the_redactor_removes_whole_and_partial_keys():
    clean = Redactor({"ANTHROPIC_API_KEY": PLANTED_KEY, "PATH": "/usr/bin:/bin", "MY_TOKEN": "short"})
    assert clean(f"key={PLANTED_KEY}.") == "key=[redacted]."
    assert clean(f"...{PLANTED_KEY[10:40]}...") == "...[redacted]..."
    assert clean("/usr/bin:/bin short") == "/usr/bin:/bin short"      # not secrets
    assert clean.data({"a": [PLANTED_KEY]}) == {"a": ["[redacted]"]}


def test_poison_swaps_the_code_of_every_alias_and_restores_it():
    import functools

    from cfopt.batching import priority
    alias, bound = priority.effective_rank, functools.partial(priority.effective_rank, "low")
    with Poison.of(["cfopt.batching.priority.effective_rank"]):
        for call in (lambda: alias("low", 1.0, 2.0), lambda: bound(1.0, 2.0)):
            with pytest.raises(RuntimeError, match="must not call cfopt.batching.priority.effective_rank"):
                call()
    assert alias("low", 1.0, 2.0) == 1.5
    with pytest.raises(ConfigError, match="is a builtin_function_or_method, not a Python function"):
        Poison.of(["math.sqrt"])


def test_a_probe_outside_grading_tries_itself_and_catches_a_solution_that_calls_its_reference(capsys, monkeypatch):
    from cfopt.batching.priority import effective_rank
    monkeypatch.delenv("CFOPT_GRADING", raising=False)

    @kit.probe("rank", reference="cfopt.batching.priority.effective_rank")
    def _(probe):
        for w in range(3):
            probe.observe(f"rank({w})", lambda: 2 - w / 10)
    assert capsys.readouterr().out.startswith("🔒 hidden check for 'rank': 3 cases observed at seed 0")
    with pytest.raises(ProbeError, match="calls a reference it poisons"):
        @kit.probe("cheat", reference="cfopt.batching.priority.effective_rank")
        def _(probe):
            probe.observe("x", lambda: effective_rank("low", 1.0, 2.0))


def test_to_json_keeps_plain_values_and_describes_the_rest():
    import numpy as np
    assert to_json([np.float64(1.5), (1, 2), {"k": np.int64(3)}, None, float("inf")]) == \
        [1.5, [1, 2], {"k": 3}, None, {"float": "inf"}]
    assert to_json(object())["type"] == "object"


@pytest.mark.parametrize("source, found", [
    ("from cfopt.batching.priority import effective_rank", "imports cfopt.batching.priority.effective_rank"),
    ("import cfopt.batching.priority as p\np.effective_rank('low', 1, 2)", "uses cfopt.batching.priority.effective_rank"),
    ("f = getattr(mod, 'effective_rank')", "uses cfopt.batching.priority.effective_rank"),
    ("from cfopt.course import kit\nkit.expect = print", "changes kit.expect"),
    ("import cfopt.course.checks", "imports cfopt.course.checks"),
    ("code = f.__code__", "uses __code__"),
    ("import ctypes", "uses ctypes"),
    ("exec(src)", "runs code made at run time (exec)"),
    ("open('../solutions/04.ipynb')", "refers to a solutions folder"),
    ("opt.select_optimal_model(r)", "uses cfopt.cost.optimizer.CostOptimizer.select_optimal_model"),
])
def test_the_scan_finds_tampering_in_learner_code(source, found):
    refs = {"cfopt.batching.priority.effective_rank", "cfopt.cost.optimizer.CostOptimizer.select_optimal_model"}
    reasons = [e.reason for e in scan_cell(source, "", refs)]
    assert any(found in r for r in reasons), reasons


@pytest.mark.parametrize("source, original", [
    ("def percentile(v, q):\n    return sorted(v)[0]\nx = percentile([1], 50)", ""),   # the learner's own name
    ("ipaddress.ip_address(h).is_loopback", ""),                                      # another object's attribute
    ("from cfopt.batching.priority import effective_rank\nprint(1)", "from cfopt.batching.priority import effective_rank"),
    ("from cfopt.course import kit\nkit.check('x')(lambda: None)", ""),
    ("print('see 04_batch_processing.ipynb for the demo')", ""),
])
def test_the_scan_leaves_honest_code_alone(source, original):
    refs = {"cfopt.monitoring.series.percentile", "cfopt.server.config.is_loopback",
            "cfopt.batching.priority.effective_rank"}
    assert scan_cell(source, original, refs) == []


def test_the_sandbox_binds_the_kit_read_only_and_never_the_solutions(tmp_path):
    argv = sandbox.bwrap_argv(["python"], read_only=sandbox.read_only_paths(REPO), uid=1_600_000_000)
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]
    assert str(REPO / "cfopt") in binds and str(REPO / "datasets") in binds
    assert not any(b == str(REPO) or "solutions" in b or "tests" in b for b in binds), binds
    assert "--bind" not in argv                      # nothing of the host is writable
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"] == ["/tmp", sandbox.HOME]
    assert argv[argv.index(sandbox.HOME) - 3:argv.index(sandbox.HOME)] == ["--size", str(256 << 20), "--tmpfs"]
    for flag in ("--unshare-pid", "--unshare-net", "--die-with-parent", "--new-session", "--no-new-privs",
                 "--reuid=1600000000", "--bounding-set=-all"):
        assert flag in argv
    env = sandbox.kernel_env(sandbox.HOME, kit_root=REPO)
    assert not [k for k in env if "KEY" in k or "TOKEN" in k or "SECRET" in k]
    assert env["CFOPT_GRADING"] == "1" and env["HOME"] == sandbox.HOME


def test_limits_are_positive_whole_numbers_with_a_readable_repr():
    assert repr(sandbox.Limits(processes=64)) == \
        "Limits(memory_mb=2048, cpu_s=600, processes=64, file_mb=64, disk_mb=256)"
    with pytest.raises(ConfigError, match="Limits.cpu_s must be a positive whole number, got 1.5"):
        sandbox.Limits(cpu_s=1.5)
    assert sandbox.Limits().rlimits()["RLIMIT_AS"] == 2048 << 20


NB00 = "00_setup_and_tour.ipynb"


@pytest.mark.slow
def test_notebook_00_solution_full_marks_exercise_less(sandboxed):
    solved = grade(REPO / "solutions" / NB00, seed=11)
    assert solved.error is None and solved.cell_errors == () and solved.tampered == (), solved.format()
    assert solved.max_score > 0 and solved.score == solved.max_score, solved.format()
    exercise = grade(REPO / "notebooks" / NB00, seed=11)
    assert exercise.error is None and exercise.tampered == (), exercise.format()
    assert exercise.max_score == solved.max_score
    assert exercise.score == 0, exercise.format()
    assert all(c.feedback.startswith("not yet: ") for c in exercise.checks), exercise.format()


def test_an_outcome_the_reference_could_not_reach_is_no_loss_for_an_answer_that_ran():
    from cfopt.course.verdicts import judge
    want = [{"case": "hidden day 1", "value": None}, {"case": "hidden day 2", "value": 10.0}]
    ran = [{"case": "hidden day 1", "value": None}, {"case": "hidden day 2", "value": 12.0}]
    stub = [{"case": "hidden day 1", "error": "NotImplementedError"},
            {"case": "hidden day 2", "error": "NotImplementedError"}]
    assert judge(ran, want, "outcome", {"zero_at": 0.5}).fraction == pytest.approx((1.0 + 0.6) / 2)
    assert judge(stub, want, "outcome").fraction == 0.0


def test_a_kit_kept_under_tmp_is_still_seen_inside_the_sandbox(tmp_path):
    # the sandbox's /tmp is a fresh in-memory folder: a kit or venv under the host's /tmp (a CI
    # checkout, a workshop's scratch copy) is bound on top of it, read-only
    problem = sandbox.sandbox_problem()
    if problem is not None:
        (pytest.fail if os.environ.get("CI", "").lower() in ("1", "true", "yes") else pytest.skip)(problem)
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "marker.txt").write_text("here")
    assert str(kit).startswith("/tmp/"), kit
    uid = sandbox.allocate_uid() if os.geteuid() == 0 else None
    argv = sandbox.bwrap_argv(["/bin/sh", "-c", f"cat {kit}/marker.txt && ! touch {kit}/x 2>/dev/null"],
                              read_only=[kit], uid=uid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert (done.returncode, done.stdout) == (0, "here"), done.stderr
