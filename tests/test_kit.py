"""The course kit: exercise notebooks built from solutions, check cells, the repo's notebooks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cfopt.course import kit
from cfopt.course.checks import MIME_TYPE
from cfopt.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _check_cell(name: str, body: str, points: float = 1) -> nbformat.NotebookNode:
    src = f"from cfopt.course import kit\n@kit.check({name!r}, points={points!r})\ndef _():\n    {body}"
    return new_code_cell(src, metadata={"cfopt": {"check": name, "points": points}})


def _probe_cell(name: str, body: str = "probe.observe('f(2)', lambda: f(2))", **args) -> nbformat.NotebookNode:
    extra = "".join(f", {k}={v!r}" for k, v in args.items())
    src = f"from cfopt.course import kit\n@kit.probe({name!r}{extra})\ndef _(probe):\n    {body}"
    return new_code_cell(src, metadata={"cfopt": {"probe": name}})


def _source(cell) -> str:
    return "".join(cell["source"])


# --- stubbing ------------------------------------------------------------------------------

def test_stub_keeps_indentation_and_hint_and_code_outside_the_region():
    solved = ("def cost(n):\n    total = 0\n    ### BEGIN SOLUTION\n    # Hint: price is 0.25\n"
              "    # Hint: per million tokens\n    total = n * 0.25 / 1e6\n    ### END SOLUTION\n"
              "    return total")
    assert kit.stub_source(solved) == (
        "def cost(n):\n    total = 0\n    # Hint: price is 0.25\n    # Hint: per million tokens\n"
        "    raise NotImplementedError('price is 0.25; per million tokens')\n    return total")


def test_hint_lines_ending_in_punctuation_run_on():
    solved = "def f():\n    ### BEGIN SOLUTION\n    # Hint: use the catalog,\n    # Hint: not a constant.\n    # Hint: Then return it\n    return 1\n    ### END SOLUTION"
    assert kit.stub_source(solved).endswith(
        "raise NotImplementedError('use the catalog, not a constant. Then return it')")


def test_stub_without_hint_has_a_default_message_and_nested_bodies_keep_their_depth():
    solved = "class A:\n    def f(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION"
    assert kit.stub_source(solved).splitlines()[-1] == \
        "        raise NotImplementedError('write your code here')"


def test_only_hint_lines_right_after_begin_are_kept():
    solved = "def f():\n    ### BEGIN SOLUTION\n    x = 1\n    # Hint: not a hint here\n    return x\n    ### END SOLUTION"
    assert "not a hint" not in kit.stub_source(solved)


def test_two_regions_in_one_cell_become_two_stubs():
    solved = ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
              "def g():\n    ### BEGIN SOLUTION\n    # Hint: two\n    return 2\n    ### END SOLUTION")
    assert kit.stub_source(solved).count("raise NotImplementedError") == 2


@pytest.mark.parametrize("src, problem", [
    ("### BEGIN SOLUTION\nx = 1", "line 1 has no matching"),
    ("x = 1\n### END SOLUTION", "line 2 has no '### BEGIN SOLUTION' before it"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "cannot nest"),
])
def test_unbalanced_markers_name_notebook_cell_and_line(tmp_path, src, problem):
    sol = tmp_path / "solutions"
    sol.mkdir()
    nbformat.write(_notebook(new_markdown_cell("# x"), new_code_cell(src)), sol / "01_bad.ipynb")
    with pytest.raises(ConfigError, match=problem) as err:
        kit.build_all(sol, tmp_path / "notebooks")
    assert "01_bad.ipynb, cell 1" in str(err.value)
    assert not (tmp_path / "notebooks").exists()


def test_unbalanced_markdown_markers_are_an_error():
    nb = _notebook(new_markdown_cell("<!-- BEGIN SOLUTION -->\nanswer"))
    with pytest.raises(ConfigError, match="cell 0.*no matching"):
        kit.build_notebook(nb, name="m.ipynb")


# --- whole notebooks -----------------------------------------------------------------------

def _solved() -> nbformat.NotebookNode:
    fn = new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    # Hint: double it\n    return 2 * x\n"
                       "    ### END SOLUTION", execution_count=3,
                       outputs=[new_output("stream", text="hi\n")],
                       metadata={"execution": {"iopub.status.busy": "2026-11-26T07:00:00"}})
    top = new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION", metadata={"tags": ["keep"]})
    md = new_markdown_cell("Why?\n<!-- BEGIN SOLUTION -->\nBecause.\n<!-- END SOLUTION -->")
    return _notebook(new_markdown_cell("# Title"), fn, top, md,
                     _check_cell("f doubles", "kit.expect_equal(f(2), 4, what='f(2)')", points=2),
                     _probe_cell("f doubles"))


def test_build_clears_outputs_keeps_metadata_and_tags_top_level_stubs():
    solved = _solved()
    out = kit.build_notebook(solved, name="t.ipynb")
    assert [c["id"] for c in out["cells"]] == [c["id"] for c in solved["cells"][:-1]]   # no probe
    assert out["metadata"]["cfopt"] == {"exercise": "t"}
    assert solved["cells"][1]["outputs"], "the source notebook must be left untouched"
    _, fn, top, md, chk = out["cells"]
    assert fn["outputs"] == [] and fn["execution_count"] is None
    assert "execution" not in fn["metadata"]
    assert _source(fn).endswith("    raise NotImplementedError('double it')")
    assert top["metadata"]["tags"] == ["keep", kit.ALLOW_ERROR_TAG]
    assert "raises-exception" not in fn["metadata"].get("tags", [])   # body stubs raise only when called
    assert "Because" not in _source(md) and kit.MD_PLACEHOLDER in _source(md)
    assert chk["metadata"]["cfopt"] == {"check": "f doubles", "points": 2}
    assert _source(chk) == _source(_solved()["cells"][4])


def test_build_all_is_byte_identical_on_rebuild_and_check_reports_stale(tmp_path):
    sol, exe = tmp_path / "solutions", tmp_path / "notebooks"
    sol.mkdir()
    nbformat.write(_solved(), sol / "01_t.ipynb")
    assert kit.build_all(sol, exe, check=True) == [exe / "01_t.ipynb"]       # missing
    assert kit.build_all(sol, exe) == [exe / "01_t.ipynb"]
    first = (exe / "01_t.ipynb").read_bytes()
    assert kit.build_all(sol, exe, check=True) == []
    kit.build_all(sol, exe)
    assert (exe / "01_t.ipynb").read_bytes() == first
    nbformat.validate(nbformat.reads(first.decode(), as_version=4))
    (exe / "01_t.ipynb").write_text(first.decode().replace("double it", "triple it"))
    assert kit.build_all(sol, exe, check=True) == [exe / "01_t.ipynb"]       # hand-edited


@pytest.mark.slow
def test_nbval_accepts_a_built_exercise_and_the_tag_is_what_makes_it_pass(tmp_path):
    """Run nbval 0.11 itself: the built exercise passes; without the tag, its stub cell fails.

    (nbval counts code cells only: its "Cell 1" is the notebook's cell 2.)
    """
    sol = tmp_path / "solutions"
    sol.mkdir()
    nbformat.write(_solved(), sol / "01_t.ipynb")
    kit.build_all(sol, tmp_path / "notebooks")
    untagged = nbformat.read(tmp_path / "notebooks/01_t.ipynb", as_version=4)
    untagged.cells[2].metadata["tags"].remove(kit.ALLOW_ERROR_TAG)
    nbformat.write(untagged, tmp_path / "untagged.ipynb")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval-lax",
         "--nbval-current-env", "-o", "addopts=", "--rootdir", str(tmp_path),
         str(tmp_path / "notebooks/01_t.ipynb"), str(tmp_path / "untagged.ipynb")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "untagged.ipynb::Cell 1" in failed[0], run.stdout[-3000:]
    assert "5 passed" in run.stdout, run.stdout[-3000:]


def test_cells_without_ids_get_stable_ids(tmp_path):
    nb = json.loads(nbformat.writes(_solved()))
    for c in nb["cells"]:
        del c["id"]
    a = kit.build_notebook(nb, name="n.ipynb")
    b = kit.build_notebook(nb, name="n.ipynb")
    assert [c["id"] for c in a["cells"]] == [c["id"] for c in b["cells"]]
    assert len({c["id"] for c in a["cells"]}) == len(a["cells"])


def test_duplicate_check_names_are_an_error():
    nb = _notebook(_check_cell("same", "pass"), _check_cell("same", "pass"))
    with pytest.raises(ConfigError, match="cell 1: check name 'same' is also used by cell 0"):
        kit.build_notebook(nb, name="d.ipynb")


@pytest.mark.parametrize("src, problem", [
    ("print('no check here')", "check cell 'c' never calls kit.check"),
    ("@kit.check('other name')\ndef _(): pass", r"kit.check\('other name'\) but the cell metadata names the check 'c'"),
    ("@kit.check('c', points=3)\ndef _(): pass", "points=3 in kit.check but 2 in the cell metadata"),
    ("@kit.check('c')\ndef _(): pass", "points=1 in kit.check but 2"),
])
def test_check_cell_must_call_kit_check_with_the_metadata_name_and_points(src, problem):
    cell = new_code_cell(src, metadata={"cfopt": {"check": "c", "points": 2}})
    with pytest.raises(ConfigError, match=problem):
        kit.build_notebook(_notebook(cell), name="x.ipynb")


def test_a_computed_check_name_is_accepted():
    cell = new_code_cell("NAME = 'c'\n@kit.check(NAME, points=2)\ndef _(): pass",
                         metadata={"cfopt": {"check": "c", "points": 2}})
    assert kit.check_cells(_notebook(cell)) == [(0, "c", 2)]


@pytest.mark.parametrize("cells, problem", [
    ([_check_cell("c", "pass")], r"check 'c' \(cell 0\) has no probe cell"),
    ([_check_cell("c", "pass"), _probe_cell("c"), _probe_cell("c")], "a second probe cell for 'c'"),
    ([_probe_cell("c")], "probe cell for 'c', but no check cell has that name"),
    ([_check_cell("c", "pass"), new_code_cell("@kit.probe(NAME)\ndef _(p): pass", metadata={"cfopt": {"probe": "c"}})],
     "arguments must be literals"),
    ([_check_cell("c", "pass"), _probe_cell("c", reference="cfopt.nowhere.thing")], "has no attribute .nowhere."),
    ([_check_cell("c", "pass"), _probe_cell("c", reference="nowhere.thing")], "no module of that name"),
    ([_check_cell("c", "pass"), _probe_cell("c", reference="math.sqrt")], "not a Python function or class"),
    ([_check_cell("c", "pass"), _probe_cell("c", verdict="vibes")], "verdict 'vibes' is not one of"),
    ([_check_cell("c", "pass"), new_code_cell("x = 1", metadata={"cfopt": {"probe": "c"}})], "never calls kit.probe"),
])
def test_every_check_has_one_probe_with_literal_arguments(cells, problem):
    with pytest.raises(ConfigError, match=problem):
        kit.build_notebook(_notebook(*cells), name="p.ipynb")


def test_a_probe_reads_its_reference_and_verdict_without_running():
    nb = _notebook(_check_cell("c", "pass"), _probe_cell("c", reference=["cfopt.batching.priority.effective_rank"],
                                                           verdict="share", rel=1e-6))
    (probe,) = kit.probe_cells(nb).values()
    assert (probe.index, probe.references, probe.verdict, dict(probe.params)) == (
        1, ("cfopt.batching.priority.effective_rank",), "share", {"rel": 1e-6})


def test_a_solution_names_its_own_exercise(tmp_path):
    sol = tmp_path / "solutions"
    sol.mkdir()
    nb = _solved()
    nb.metadata["cfopt"] = {"exercise": "02_other"}
    nbformat.write(nb, sol / "01_t.ipynb")
    with pytest.raises(ConfigError, match="cfopt.exercise is '02_other' but the file is 01_t.ipynb"):
        kit.build_all(sol, tmp_path / "notebooks")


def test_release_writes_the_learners_copy_without_solutions_or_probes(tmp_path, capsys):
    from cfopt.cli import main
    out = tmp_path / "class-2027"
    assert main(["kit", "release", str(out)]) == 0
    assert "no solutions, no probes" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"notebooks", "cfopt", "datasets", "pyproject.toml", "README.md"}
    assert not (out / "solutions").exists() and not (out / "tests").exists() and not (out / ".git").exists()
    assert sorted(p.name for p in (out / "notebooks").glob("*.ipynb")) == \
        sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    for p in (out / "notebooks").glob("*.ipynb"):
        assert p.read_text() == (REPO / "notebooks" / p.name).read_text()      # the exercises, as built
        assert '"probe"' not in p.read_text() and "BEGIN SOLUTION" not in p.read_text()
    assert not list(out.rglob("__pycache__"))
    assert main(["kit", "release", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["kit", "release", str(REPO / "build" / "x")]) == 2
    assert "inside the kit" in capsys.readouterr().err


def test_missing_solutions_folder_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no solutions folder"):
        kit.build_all(tmp_path / "nope", tmp_path / "out")


# --- check cells ---------------------------------------------------------------------------

def _quiet(name, fn, capsys, points=1):
    result = kit.check(name, points=points)(fn)
    printed = capsys.readouterr().out
    assert printed.strip() == result.line()
    return result


def test_check_passes(capsys):
    r = _quiet("ok", lambda: kit.expect(True, "never shown"), capsys, points=3)
    assert (r.passed, r.status, r.earned) == (True, "passed", 3)
    assert r.line().startswith("✅") and "3/3 points" in r.line()


def test_check_fails_with_the_checks_own_message(capsys):
    def body():
        kit.expect_close(15.02, 12.40, rel=0.01, what="daily cost in USD",
                         hint="the router sent critical tasks to haiku")
    r = _quiet("cost", body, capsys)
    assert r.status == "failed"
    assert r.feedback == ("expected daily cost in USD ≈ 12.4 (within 1%), got 15.02 (1.21x too high): "
                          "the router sent critical tasks to haiku")


def test_not_implemented_is_not_yet_with_the_hint(capsys):
    def learner():
        raise NotImplementedError("price is per million tokens")
    r = _quiet("stub", lambda: learner(), capsys)
    assert (r.status, r.feedback) == ("not-yet", "price is per million tokens")
    assert "NOT YET" in r.line()


def test_unexpected_exception_names_type_message_and_learner_line(capsys):
    def learner(x):
        return x / 0
    r = _quiet("boom", lambda: learner(1), capsys)
    assert r.status == "failed"
    assert r.feedback.startswith("your code raised ZeroDivisionError: division by zero (in learner(), line ")
    assert "return x / 0" in r.feedback


def test_bare_assert_in_the_check_is_a_failure_and_learner_asserts_are_their_code():
    def own():  # a raise, not `assert`: pytest rewrites asserts in this file
        raise AssertionError("one is not two")
    assert kit.check("a")(own).feedback == "one is not two"

    def learner():
        assert False, "oops"
    assert kit.check("b")(lambda: learner()).feedback.startswith("your code raised AssertionError: oops")


def test_expect_helpers_explain_type_and_value_mistakes():
    with pytest.raises(kit.CheckFailed, match=r"to be an int or float, got NoneType None \(did you forget"):
        kit.expect_close(None, 1.0, what="the cost")
    with pytest.raises(kit.CheckFailed, match=r"expected the tier to be 'opus', got 'haiku': critical"):
        kit.expect_equal("haiku", "opus", what="the tier", hint="critical tasks need opus")
    with pytest.raises(kit.CheckFailed, match=r"got 0.5 \(2x too low\)"):
        kit.expect_close(0.5, 1.0, rel=0.01)
    kit.expect_close(1.0, 1.0049, rel=0.005)


def test_check_rejects_bad_arguments_early():
    with pytest.raises(ValueError, match="non-empty name"):
        kit.check("")
    with pytest.raises(ValueError, match="points"):
        kit.check("x", points=-1)


def test_check_results_are_recorded_in_order():
    before = len(kit.results())
    kit.check("r1")(lambda: None)
    kit.check("r2")(lambda: kit.expect(False, "no"))
    assert [(r.name, r.passed) for r in kit.results()[before:]] == [("r1", True), ("r2", False)]
    assert kit.results()[-1].as_dict() == {"name": "r2", "status": "failed", "feedback": "no",
                                           "points": 1, "passed": False}
    assert MIME_TYPE == "application/vnd.cfopt.check+json"


def test_repo_path_finds_datasets_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CFOPT_ROOT", raising=False)
    monkeypatch.chdir(REPO / "cfopt")
    assert kit.repo_path("pyproject.toml") == REPO / "pyproject.toml"
    monkeypatch.chdir(tmp_path)
    assert kit.repo_path("pyproject.toml") == REPO / "pyproject.toml"   # next to the package
    (tmp_path / "datasets").mkdir()
    monkeypatch.setenv("CFOPT_ROOT", str(tmp_path))
    assert kit.repo_path("datasets") == tmp_path / "datasets"
    with pytest.raises(ConfigError, match="cannot find no/such.file"):
        kit.repo_path("no/such.file")


# --- the repository's own notebooks --------------------------------------------------------

def test_exercise_notebooks_are_up_to_date_with_solutions():
    stale = kit.build_all(REPO / "solutions", REPO / "notebooks", check=True)
    assert not stale, (f"out of date with solutions/: {', '.join(p.name for p in stale)}; "
                       f"run `cfopt kit build` (or .venv/bin/cfopt kit build) and commit notebooks/")


def test_every_exercise_notebook_has_a_solution_source():
    orphans = {p.name for p in (REPO / "notebooks").glob("*.ipynb")} - \
              {p.name for p in (REPO / "solutions").glob("*.ipynb")}
    assert not orphans, f"notebooks/ without a source in solutions/ (edit solutions, then build): {orphans}"


@pytest.mark.parametrize("path", sorted((REPO / "solutions").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_solution_has_uniquely_named_check_cells_each_with_a_probe(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    checks = kit.check_cells(nb, str(path))   # raises on duplicate names
    assert checks, f"{path.name} has no check cell (metadata cfopt.check); every notebook needs one"
    assert set(kit.probe_cells(nb, str(path))) == {name for _, name, _ in checks}
    assert nb["metadata"]["cfopt"]["exercise"] == path.stem
    for idx, name, _ in checks:
        src = _source(nb["cells"][idx])
        assert "kit.check(" in src, f"{path.name}, cell {idx}: check {name!r} never calls kit.check"
