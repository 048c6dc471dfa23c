"""The first run: `make lab` from a fresh clone (as root in CI), the Binder specification installed
into that fresh venv running notebook 00, `cfopt doctor`, and links that work in JupyterLab rooted
at the repository.

The slow test clones the repository's committed HEAD, so it tests what a learner gets. Its
install uses pip's cache (CI: seconds per package instead of a download); the timings it
prints are in the report of issue 18.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE_MAP = ROOT / "course_map.ipynb"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("0*.ipynb"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _links(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return [u for u in LINK.findall(text) if not re.match(r"[a-z]+:", u) and not u.startswith("#")]


@pytest.mark.parametrize("notebook", [COURSE_MAP, *NOTEBOOKS, *SOLUTIONS], ids=lambda p: p.name)
def test_every_relative_link_resolves_inside_the_repository(notebook):
    links = _links(notebook)
    assert links, f"{notebook.name} links nowhere"
    for url in links:
        target = (notebook.parent / url.split("#")[0]).resolve()
        assert target.is_relative_to(ROOT), f"{notebook.name}: {url} leaves the repository root"
        assert target.exists(), f"{notebook.name}: {url} does not exist"
    if notebook != COURSE_MAP:
        assert "../course_map.ipynb" in links, f"{notebook.name} does not link back to the course map"


def test_the_course_map_lists_every_notebook_and_its_solution():
    links = _links(COURSE_MAP)
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.name}" in links and f"solutions/{nb.name}" in links, nb.name
    for guide in (ROOT / "docs" / "resources").glob("*.md"):
        assert f"docs/resources/{guide.name}" in links, guide.name


def _course_rows(markdown: str) -> dict[str, tuple[str, str, str]]:
    """notebook number -> (what you learn, needs, time) from a course-map table."""
    rows = {}
    for line in markdown.split("\n"):
        m = re.match(r"^\| (?:\[(\d\d) · [^]]*\]\([^)]*\)|`(\d\d)_[a-z_]+`) \| (.*)$", line)
        if m:
            cols = [c.strip() for c in m.group(3).rstrip(" |").split(" | ")]
            rows[m.group(1) or m.group(2)] = tuple(cols[:3])
    return rows


def test_the_readme_and_the_course_map_give_the_same_goals_and_times():
    nb = json.loads(COURSE_MAP.read_text(encoding="utf-8"))
    in_map = _course_rows("".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"))
    in_readme = _course_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    assert sorted(in_map) == [p.name[:2] for p in NOTEBOOKS], sorted(in_map)
    assert in_readme == in_map
    for number, (goal, _, time) in in_map.items():
        assert re.fullmatch(r"\d+ min", time), (number, time)
        if "01" <= number <= "07":   # the decision exercises (issue 15) are named in the goals
            assert "**decide**" in goal, (number, goal)


def test_python_m_cfopt_and_doctor_list_every_check():
    run = subprocess.run([sys.executable, "-m", "cfopt", "doctor", "--json"], capture_output=True,
                         text=True, timeout=60)
    checks = json.loads(run.stdout)
    assert [c["name"] for c in checks] == ["Python", "venv", "kernel", "Redis", "Chromium", "sandbox"]
    for c in checks:
        assert c["state"] in ("ok", "warn", "fail") and c["detail"]
        assert (c["state"] == "ok") == (not c["fix"]), c
    assert run.returncode == (1 if any(c["state"] == "fail" for c in checks) else 0)
    text = subprocess.run([str(Path(sys.executable).parent / "cfopt"), "doctor"], capture_output=True,
                          text=True, timeout=60).stdout
    for c in checks:
        assert re.search(rf"^{c['state']}\s+{c['name']}\s", text, re.M), text


def test_doctor_names_the_fix_for_what_is_missing(monkeypatch):
    from cfopt import doctor
    nothing = lambda name: None  # noqa: E731
    assert doctor.check_sandbox(which=nothing).fix == "apt-get install -y bubblewrap"
    assert doctor.check_redis(port=1, which=nothing).fix.startswith("apt-get install -y redis-server")
    assert doctor.check_chromium("/nonexistent/chromium").fix == "apt-get install -y chromium"
    old = doctor.check_python((3, 10, 4), "/usr/bin/python3")
    assert old.failed and "3.11" in old.detail
    outside = doctor.check_venv(prefix="/usr", base_prefix="/usr")
    assert outside.failed and outside.fix


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except OSError:              # not listening yet
        return 0, b""


RUN_NOTEBOOK = textwrap.dedent("""
    import sys, nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(sys.argv[1], as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('KERNEL-PREFIX', sys.prefix)"))
    NotebookClient(nb, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": sys.argv[2]}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    print(nb.cells[-1].outputs[0].text.strip())
""")


@pytest.mark.slow
def test_make_lab_from_a_fresh_clone_serves_the_repository_and_the_binder_spec_runs_notebook_00(tmp_path):
    clone = tmp_path / "cfopt"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "JUPYTER", "PYTHONPATH"))}
    env.update(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"))
    log = open(tmp_path / "make_lab.log", "wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "lab", f"LAB_ARGS=--no-browser --port {port} --ServerApp.port_retries=0 "
                        f"--ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"],
        cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        installed = None
        while True:
            if installed is None and (clone / ".venv" / ".installed").exists():
                installed = time.monotonic()
            status, body = _get(f"{url}/api/status?token={token}")
            if status == 200:
                break
            if proc.poll() is not None or time.monotonic() - started > 900:
                log.flush()
                pytest.fail("make lab did not serve JupyterLab:\n"
                            + (tmp_path / "make_lab.log").read_text(errors="replace")[-4000:])
            time.sleep(0.5)
        ready = time.monotonic()
        install_s = (installed or ready) - started
        print(f"\nmake lab from a fresh clone: install {install_s:.0f} s, "
              f"JupyterLab answering {ready - (installed or ready):.1f} s later")
        assert json.loads(body)["started"]
        # Rooted at the repository: the course map, the notebooks and the docs they link to.
        for path in ("course_map.ipynb", "notebooks/05_monitoring_dashboard.ipynb",
                     "docs/resources/monitoring.md", "docs/resources/performance.md"):
            assert _get(f"{url}/api/contents/{path}?content=0&token={token}")[0] == 200, path
        assert _get(f"{url}/files/docs/resources/performance.md?token={token}")[0] == 200
        with urllib.request.urlopen(f"{url}/?token={token}", timeout=10) as r:   # where / leads
            assert r.status == 200 and "/lab/tree/course_map.ipynb" in r.geturl(), r.geturl()
            assert b"jupyter-config-data" in r.read()
        status, settings = _get(f"{url}/lab/api/settings/@jupyterlab/docmanager-extension:plugin?token={token}")
        assert status == 200 and b"Markdown Preview" in settings   # docs open rendered
        cmdline = subprocess.run(["ps", "-ww", "-o", "args=", "--sid", str(proc.pid)], capture_output=True,
                                 text=True).stdout
        if os.geteuid() == 0:
            assert "--allow-root" in cmdline, cmdline

        # The Binder specification, installed by make into that fresh venv, runs notebook 00
        # in a kernel of that venv (not of the environment running this test).
        venv = clone / ".venv"
        subprocess.run(["bash", str(clone / "binder" / "postBuild")], check=True, timeout=60,
                       env=dict(env, NB_PYTHON_PREFIX=str(venv)))
        t0 = time.monotonic()
        run = subprocess.run([str(venv / "bin" / "python"), "-c", RUN_NOTEBOOK,
                              str(clone / "notebooks" / "00_setup_and_tour.ipynb"), str(clone / "notebooks")],
                             capture_output=True, text=True, timeout=600, cwd=clone, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.strip().endswith(f"KERNEL-PREFIX {venv}"), run.stdout
        print(f"notebook 00 in the fresh venv: {time.monotonic() - t0:.1f} s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
