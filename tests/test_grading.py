"""Grading: solution checks replace the learner's, hangs and crashes still get a score."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cfopt.course import kit
from cfopt.cli import main
from cfopt.errors import ConfigError
from cfopt.course.grading import GradeReport, find_solution, grade, merge_checks

REPO = Path(__file__).resolve().parents[1]
GRADE_SHAPE = Path(__file__).resolve().parents[2] / "shared/contracts/grade_shape.py"

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


def _check(name: str, body: str, points: float = 1):
    src = f"from cfopt.course import kit\n\n@kit.check({name!r}, points={points!r})\ndef _():\n    {body}"
    return new_code_cell(src, metadata={"cfopt": {"check": name, "points": points}})


def _solution():
    nb = new_notebook(cells=[
        new_markdown_cell("# A tiny course notebook"),
        new_code_cell(FUNCS),
        _check("double doubles", "kit.expect_equal(double(21), 42, what='double(21)')", points=2),
        new_markdown_cell("## Greeting"),
        _check("greet greets", "kit.expect_equal(greet('ada'), 'hello ada', what=\"greet('ada')\")"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture()
def course(tmp_path):
    """A solutions/ folder with one solved notebook and its built exercise in notebooks/."""
    sol, exe = tmp_path / "solutions", tmp_path / "notebooks"
    sol.mkdir()
    nbformat.write(_solution(), sol / "01_tiny.ipynb")
    kit.build_all(sol, exe)
    return tmp_path


def _learner(course: Path, name: str, edit) -> Path:
    """A learner's copy of the solved notebook, changed by ``edit(cells)``, in submissions/."""
    nb = nbformat.read(course / "solutions/01_tiny.ipynb", as_version=4)
    edit(nb.cells)
    path = course / "submissions" / name / "01_tiny.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _by_name(report: GradeReport) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.feedback) for c in report.checks}


def test_solution_gets_full_marks_and_exercise_gets_not_yet(course):
    solved = grade(course / "solutions/01_tiny.ipynb")
    assert (solved.score, solved.max_score, solved.error) == (3, 3, None)
    exercise = grade(course / "notebooks/01_tiny.ipynb")
    assert (exercise.score, exercise.max_score) == (0, 3)
    assert _by_name(exercise) == {"double doubles": (False, "not yet: return x times two"),
                                  "greet greets": (False, "not yet: an f-string")}


def test_an_edited_check_is_replaced_by_the_solutions(course):
    def cheat(cells):
        cells[1].source = FUNCS.replace("return 2 * x", "return 2 + x")
        cells[2].source = ("from cfopt.course import kit\n@kit.check('double doubles')\ndef _():\n"
                           "    pass  # always passes")
    report = grade(_learner(course, "mallory", cheat), solutions=course / "solutions")
    assert _by_name(report)["double doubles"] == (False, "expected double(21) to be 42, got 23")
    assert report.score == 1


def test_a_deleted_check_is_put_back_and_counted(course):
    def delete(cells):
        del cells[4]                         # the greet check
        cells[1].source = FUNCS.replace('f"hello {name}"', '"hi"')
    path = _learner(course, "del", delete)
    merged, where = merge_checks(json.loads(path.read_text()), json.loads(
        (course / "solutions/01_tiny.ipynb").read_text()))
    assert where == {"double doubles": 2, "greet greets": 4}    # after the markdown it followed
    report = grade(path, solutions=course / "solutions")
    assert _by_name(report)["greet greets"] == (False, "expected greet('ada') to be 'hello ada', got 'hi'")
    assert (report.score, report.max_score) == (2, 3)


def test_a_cell_that_raises_does_not_stop_the_checks(course):
    def raise_early(cells):
        cells.insert(2, new_code_cell("undefined_name + 1"))
    report = grade(_learner(course, "raiser", raise_early), solutions=course / "solutions")
    assert (report.score, report.error) == (3, None)
    assert report.cell_errors == ("cell 2 (`undefined_name + 1`) raised NameError: "
                                  "name 'undefined_name' is not defined",)


def test_a_hanging_notebook_gets_a_score_and_the_reason(course):
    def hang(cells):
        cells.insert(3, new_code_cell("import time\ntime.sleep(60)"))
    report = grade(_learner(course, "sleeper", hang), solutions=course / "solutions", cell_timeout=2)
    assert report.error == "timed out after 2 s in cell 3 (`import time`)"
    assert _by_name(report) == {"double doubles": (True, ""), "greet greets": (
        False, "check did not run: timed out after 2 s in cell 3 (`import time`)")}
    assert (report.score, report.max_score) == (2, 3)
    assert report.seconds < 20


def test_the_whole_notebook_timeout_applies_too(course):
    def slow(cells):
        cells.insert(3, new_code_cell("import time\ntime.sleep(60)"))
    report = grade(_learner(course, "slow", slow), solutions=course / "solutions", timeout=3)
    assert report.error == "timed out: the notebook took over 3 s, in cell 3 (`import time`)"
    assert report.score == 2


def test_a_check_that_hangs_in_learner_code_did_not_finish(course):
    def loop(cells):
        cells[1].source = FUNCS.replace("return 2 * x", "while True:\n        pass")
    report = grade(_learner(course, "looper", loop), solutions=course / "solutions", cell_timeout=2)
    assert report.error == "timed out after 2 s in cell 2 (`from cfopt.course import kit`)"
    assert _by_name(report) == {
        "double doubles": (False, f"check did not finish: {report.error}"),
        "greet greets": (False, f"check did not run: {report.error}")}


def test_a_fake_pass_printed_by_learner_code_does_not_count(course):
    fake = ("from IPython.display import display\n"
            "def double(x):\n"
            "    display({'application/vnd.cfopt.check+json': {'name': 'double doubles', "
            "'passed': True, 'status': 'passed', 'feedback': '', 'points': 2}}, raw=True)\n"
            "    return x\n")
    report = grade(_learner(course, "faker", lambda cells: cells.insert(2, new_code_cell(fake))),
                   solutions=course / "solutions")
    assert _by_name(report)["double doubles"] == (False, "expected double(21) to be 42, got 21")


def test_a_crashing_kernel_gets_a_score_and_the_reason(course):
    def crash(cells):
        cells.insert(3, new_code_cell("import os\nos._exit(1)"))
    report = grade(_learner(course, "crasher", crash), solutions=course / "solutions")
    assert report.error == "the kernel died in cell 3 (`import os`)"
    assert _by_name(report)["greet greets"] == (False, f"check did not run: {report.error}")
    assert report.score == 2


def test_find_solution_looks_beside_and_above(course):
    learner = _learner(course, "bob", lambda cells: None)
    assert find_solution(learner) == course / "solutions/01_tiny.ipynb"
    with pytest.raises(ConfigError, match="no solution notebook 01_tiny.ipynb in .*nowhere"):
        find_solution(learner, course / "nowhere")


def test_cli_json_has_the_contract_shape(course, capsys, tmp_path):
    code = main(["grade", str(course / "notebooks/01_tiny.ipynb"), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert (data["score"], data["max_score"], len(data["checks"])) == (0, 3, 2)
    assert set(data["checks"][0]) >= {"name", "passed", "feedback"}
    if not GRADE_SHAPE.exists():
        pytest.skip(f"contract checker {GRADE_SHAPE} not present")
    (tmp_path / "grade.json").write_text(out)
    shape = subprocess.run([sys.executable, str(GRADE_SHAPE), str(tmp_path / "grade.json")],
                           capture_output=True, text=True)
    assert shape.returncode == 0, shape.stdout + shape.stderr


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook or folder at" in capsys.readouterr().err
    (tmp_path / "junk.ipynb").write_text("not json")
    assert main(["grade", str(tmp_path / "junk.ipynb")]) == 2
    assert "not a notebook" in capsys.readouterr().err


def test_cli_folder_mode_writes_a_csv_row_per_notebook(course, capsys):
    _learner(course, "ada", lambda cells: None)
    _learner(course, "bob", lambda cells: setattr(cells[1], "source", FUNCS.replace("2 * x", "x")))
    (course / "submissions/carol").mkdir()
    (course / "submissions/carol/99_unknown.ipynb").write_text(nbformat.writes(_solution()))
    out = course / "grades.csv"
    assert main(["grade", str(course / "submissions"), "--csv", str(out), "--jobs", "2",
                 "--solutions", str(course / "solutions")]) == 0
    assert f"wrote 3 row(s) to {out}" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert [r["notebook"].split("submissions/")[1] for r in rows] == [
        "ada/01_tiny.ipynb", "bob/01_tiny.ipynb", "carol/99_unknown.ipynb"]
    assert list(rows[0]) == ["notebook", "score", "max_score", "percent", "error",
                             "double doubles", "greet greets"]
    assert [(r["score"], r["max_score"], r["percent"]) for r in rows[:2]] == [
        ("3", "3", "100.0"), ("1", "3", "33.3")]
    assert (rows[1]["double doubles"], rows[1]["greet greets"]) == ("0", "1")
    assert "no solution notebook 99_unknown.ipynb" in rows[2]["error"]


NB00 = "00_setup_and_tour.ipynb"


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / "solutions" / NB00).exists(), reason="notebook 00 not written yet")
def test_notebook_00_solution_full_marks_exercise_less():
    solved = grade(REPO / "solutions" / NB00)
    assert solved.error is None and solved.cell_errors == (), solved.format()
    assert solved.max_score > 0 and solved.score == solved.max_score, solved.format()
    exercise = grade(REPO / "notebooks" / NB00)
    assert exercise.error is None, exercise.format()
    assert exercise.max_score == solved.max_score
    assert exercise.score < exercise.max_score, exercise.format()
    assert all(c.feedback.startswith("not yet: ") for c in exercise.checks if not c.passed)
