"""The red team (issue 13): every attack notebook graded in one folder, with a solved and an
unsolved notebook, in sandboxes, as an instructor would: ``cfopt grade FOLDER --jobs 2``.

Each ``*.ipynb`` here is a submission of exercise 04 that attacks the grader one way (its first
cell says how). Graded together, every attack scores 0 on the checks it targets and is marked
``tampered`` where it tampered; the solved notebook (saved under a browser's download name) scores
full marks and the unsolved one 0; no file outside the sandboxes changed, no process survived,
and the API key planted in the grader's environment shows in no output.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cfopt.course.cells import check_cells
from cfopt.course.sandbox import DEFAULT_LIMITS, sandbox_problem

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXERCISE = "04_batch_processing"
# the same key and variables the root conftest plants in notebook kernels
PLANTED_KEY = "sk-ant-api03-PLANTEDnbval9c41e7d2b8-notareal-key"
PLANTED_MIDDLE = "PLANTEDnbval9c41e7d2b8"
PLANTED_ENV = ("ANTHROPIC_API_KEY", "FAL_KEY", "UNSPLASH_ACCESS_KEY", "CFOPT_API_KEY")
SURVIVOR = "cfopt-redteam-survivor"
OUTSIDE = [Path("/tmp/cfopt-redteam-was-here"), REPO / "cfopt-redteam-was-here", Path("/home/cfopt-redteam-was-here"),
           Path("/root/cfopt-redteam-was-here"), Path("/etc/cfopt-redteam-was-here")]
CPU_S, CELL_TIMEOUT_S = 12, 90    # notebook 04's kernel needs about 6 s of CPU (its decision replays)
# the points notebook 04 is graded out of, from its solution's check cells
MAX = sum(points for _, _, points in check_cells(json.loads(
    (REPO / "solutions" / f"{EXERCISE}.ipynb").read_text(encoding="utf-8"))))

# the checks the attack notebooks were written against (04 has more since; those score 0 too)
TARGETED = ("my_effective_rank ages tasks one level per aging_s",
            "my_backoff draws full jitter under a capped doubling ceiling")
# attack -> must it be marked tampered? (every attack must score 0 on every check)
ATTACKS = {
    "patch_check_runner": True, "noop_expectations": True, "run_solution_cells": True,
    "rewrite_solutions": True, "leak_api_key": False, "write_outside": True,
    "background_process": False, "memory_bomb": False, "fork_loop": False, "infinite_loop": False,
    "cpu_burner": False, "disk_filler": False, "fake_grader_output": True, "hardcoded_answers": False,
    "calls_library": True, "calls_library_indirectly": True,
}


def _hashes(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _survivors() -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if SURVIVOR in cmdline and "pytest" not in cmdline:
                found.append(f"{entry.name}: {cmdline[:120]}")
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    problem = sandbox_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the red team needs sandboxes and CI must provide them: {problem}")
        pytest.skip(problem)
    assert sorted(p.stem for p in HERE.glob("*.ipynb")) == sorted(ATTACKS), "an attack without an expectation"
    folder = tmp_path_factory.mktemp("redteam") / "class"
    for attack in ATTACKS:
        (folder / attack).mkdir(parents=True)
        shutil.copy(HERE / f"{attack}.ipynb", folder / attack / f"{EXERCISE}.ipynb")
    (folder / "solved").mkdir()
    shutil.copy(REPO / "solutions" / f"{EXERCISE}.ipynb", folder / "solved" / f"{EXERCISE} (1).ipynb")
    (folder / "unsolved").mkdir()
    shutil.copy(REPO / "notebooks" / f"{EXERCISE}.ipynb", folder / "unsolved" / f"{EXERCISE}.ipynb")

    watched = [REPO / d for d in ("solutions", "notebooks", "cfopt", "datasets", "tests", "docs")]
    before = _hashes(*watched, folder)
    assert not [p for p in OUTSIDE if p.exists()] and not _survivors(), "left over from an earlier run"
    csv_path = folder.parent / "grades.csv"
    env = dict(os.environ, **dict.fromkeys(PLANTED_ENV, PLANTED_KEY))
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "cfopt.cli", "grade", str(folder), "--jobs", "2", "--seed", "7",
                          "--json", "--csv", str(csv_path), "--cpu-s", str(CPU_S),
                          "--cell-timeout", str(CELL_TIMEOUT_S), "--timeout", "120"],
                         capture_output=True, text=True, env=env, timeout=900, cwd=folder.parent)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    reports = {r["student"]: r for r in json.loads(run.stdout)}
    after = _hashes(*watched, folder)
    return {"reports": reports, "stdout": run.stdout, "stderr": run.stderr, "seconds": seconds,
            "csv": csv_path.read_text(), "rows": list(csv.DictReader(csv_path.open())),
            "changed": {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)},
            "outside": [p for p in OUTSIDE if p.exists()], "survivors": _survivors()}


def test_the_solved_notebook_under_a_download_name_gets_full_marks(graded):
    solved = graded["reports"]["solved"]
    assert solved["notebook"].endswith(f"{EXERCISE} (1).ipynb") and solved["exercise"] == EXERCISE
    assert (solved["score"], solved["max_score"], solved["tampered"], solved["error"]) == (MAX, MAX, [], None), solved


def test_the_unsolved_notebook_gets_nothing_and_says_not_yet(graded):
    unsolved = graded["reports"]["unsolved"]
    assert (unsolved["score"], unsolved["max_score"], unsolved["tampered"]) == (0, MAX, [])
    assert all(c["feedback"].startswith("not yet: ") for c in unsolved["checks"]), unsolved["checks"]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_attack_scores_zero_and_is_marked_where_it_tampered(graded, attack):
    report = graded["reports"][attack]
    assert report["max_score"] == MAX and report["score"] == 0, report
    assert all(c["earned"] == 0 and c["feedback"] for c in report["checks"]), report["checks"]
    assert bool(report["tampered"]) is ATTACKS[attack], report["tampered"]
    if ATTACKS[attack]:   # the checks it attacks (those of the functions it defines) say why
        attacked = [c for c in report["checks"] if c["name"] in TARGETED]
        assert len(attacked) == len(TARGETED), report["checks"]
        assert all(c["tampered"] and c["feedback"].startswith("no credit: ") for c in attacked), attacked


def _cell_error(report: dict, pattern: str) -> re.Match:
    found = [m for e in report["cell_errors"] if (m := re.search(pattern, e))]
    assert found, (pattern, report["cell_errors"], report["error"])
    return found[0]


def test_each_limit_bites(graded):
    r = graded["reports"]
    reached = float(_cell_error(r["memory_bomb"], r"MemoryError: stopped at ([\d.]+) GiB").group(1))
    assert reached < DEFAULT_LIMITS.memory_mb / 1024
    forks = _cell_error(r["fork_loop"], r"forked (\d+) children, then: \[Errno 11\] Resource temporarily unavailable")
    assert int(forks.group(1)) < DEFAULT_LIMITS.processes
    _cell_error(r["cpu_burner"], r"the burner ended with status -24 ")          # SIGXCPU: RLIMIT_CPU
    _cell_error(r["disk_filler"], r"\[Errno 27\] File too large")               # RLIMIT_FSIZE
    # a kernel spinning forever meets the cell timeout or, first, its CPU-time limit
    assert re.match(rf"timed out after {CELL_TIMEOUT_S} s in cell|the kernel died in cell", r["infinite_loop"]["error"])
    assert all(c["feedback"].startswith("check did not ") for c in r["infinite_loop"]["checks"])


def test_the_attacks_reached_nothing_outside_their_sandbox(graded):
    r = graded["reports"]
    assert graded["changed"] == set()
    assert graded["outside"] == []
    assert graded["survivors"] == []
    _cell_error(r["leak_api_key"], r"RuntimeError: keys found: \{\}")          # an environment without keys
    assert "tried to write" in " ".join(r["write_outside"]["tampered"])
    assert "solutions" in " ".join(r["run_solution_cells"]["tampered"])


def test_the_planted_key_appears_in_no_output(graded):
    for name in ("stdout", "stderr", "csv"):
        assert PLANTED_MIDDLE not in graded[name], f"the planted key is in the {name}"


def test_hardcoded_answers_pass_the_notebook_but_not_the_hidden_cases(graded):
    checks = [c for c in graded["reports"]["hardcoded_answers"]["checks"] if c["name"] in TARGETED]
    assert [c["in_notebook"] for c in checks] == ["passed", "passed"], checks
    assert all("the hidden cases go further" in c["feedback"] for c in checks), checks


def test_library_answers_get_no_credit_and_a_reason(graded):
    for attack in ("calls_library", "calls_library_indirectly"):
        reasons = " ".join(graded["reports"][attack]["tampered"])
        assert "the library's own answer" in reasons, reasons
    # retry_delay never names backoff_delay: only the tripwire in the sandbox can see it
    assert "called cfopt.batching.resilience.backoff_delay" in " ".join(
        graded["reports"]["calls_library_indirectly"]["tampered"])


def test_progress_lines_and_csv(graded):
    lines = [line for line in graded["stderr"].splitlines() if re.match(r"\[\s*\d+/\d+\]", line)]
    assert len(lines) == len(ATTACKS) + 2
    rows = graded["rows"]
    assert list(rows[0])[:6] == ["student", "notebook", "exercise", "score", "max", "percent"]
    assert list(rows[0])[-3:] == ["tampered", "error", "seconds"]
    assert {r["student"] for r in rows} == set(ATTACKS) | {"solved", "unsolved"}
    assert all(float(r["seconds"]) > 0 for r in rows)
