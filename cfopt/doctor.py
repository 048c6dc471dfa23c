"""``cfopt doctor``: is this machine ready for the course, and what is the one command that fixes it?

Six checks, each with a state, what it found or what is missing, and one command that fixes it:

=========  ========  ================================================================
check      needed    for
=========  ========  ================================================================
Python     required  3.11 or newer runs the kit
venv       required  cfopt installed in a virtual environment (``make lab`` makes .venv)
kernel     required  the notebooks' ``python3`` kernel runs *this* environment's Python
Redis      optional  the Redis cache layer and the test suite (learners use the disk layer)
Chromium   optional  the browser test (Debian's chromium, driven by Playwright)
sandbox    optional  grading learners' notebooks inside bubblewrap (``bwrap``)
=========  ========  ================================================================

A required check that fails makes ``cfopt doctor`` exit with 1; an optional one is a warning.

>>> c = Check("Python", "ok", "3.11.2 at /usr/bin/python3")
>>> print(c.format())
ok     Python    3.11.2 at /usr/bin/python3
>>> Check("Redis", "warn", "nothing answers at 127.0.0.1:6379", fix="redis-server --daemonize yes").failed
False
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Check", "STATES", "check_python", "check_venv", "check_kernel", "check_redis",
           "check_chromium", "check_sandbox", "run_checks", "doctor_command"]

STATES = ("ok", "warn", "fail")   # warn: optional and missing; fail: required and missing
MIN_PYTHON = (3, 11)
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CHROMIUM = "/usr/bin/chromium"
# The set-up command of the README, run from the repository.
SETUP = "make lab"
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict: ``state`` is "ok", "warn" or "fail"; ``fix`` the command that helps."""

    name: str
    state: str
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {self.state!r}")

    @property
    def failed(self) -> bool:
        return self.state == "fail"

    def format(self) -> str:
        """One line, and a ``fix:`` line under it when there is something to do."""
        line = f"{self.state:<6} {self.name:<9} {self.detail}"
        return f"{line}\n{'':<16}fix: {self.fix}" if self.fix else line


def _python(prefix: str | Path) -> Path:
    return Path(prefix) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3]),
                 executable: str = sys.executable) -> Check:
    """Python 3.11 or newer."""
    shown = ".".join(map(str, version))
    if tuple(version[:2]) >= MIN_PYTHON:
        return Check("Python", "ok", f"{shown} at {executable}")
    return Check("Python", "fail", f"{shown} at {executable}; cfopt needs 3.11 or newer",
                 fix="apt-get install -y python3 (3.11+), then: make lab PYTHON=python3.11")


def _repo_of_install() -> Path | None:
    """The repository an editable install of cfopt points to (None for a regular install)."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else None


def check_venv(prefix: str = sys.prefix, base_prefix: str = sys.base_prefix) -> Check:
    """A virtual environment with cfopt installed in it (what ``make lab`` creates)."""
    try:
        version = importlib.metadata.version("cfopt")
    except importlib.metadata.PackageNotFoundError:
        version = None
    repo = _repo_of_install()
    venv = repo / ".venv" if repo is not None else None
    if prefix == base_prefix:
        hint = (f"; the course's venv exists: {venv}" if venv is not None and venv.exists() else "")
        return Check("venv", "fail", f"not running in a virtual environment ({prefix}){hint}",
                     fix=SETUP if venv is None or not venv.exists() else f"{venv}/bin/cfopt doctor")
    if version is None:
        return Check("venv", "fail", f"{prefix}: cfopt is not installed in it",
                     fix=f"{_python(prefix)} -m pip install -e .")
    where = f" (editable, {repo})" if repo is not None else ""
    return Check("venv", "ok", f"{prefix}, cfopt {version}{where}")


def check_kernel(executable: str = sys.executable, kernel: str = "python3") -> Check:
    """The notebooks' kernel starts this environment's Python, with ipywidgets for the dashboards."""
    fix = f"{executable} -m ipykernel install --sys-prefix"
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return Check("kernel", "fail", "jupyter_client is not installed in this environment",
                     fix=SETUP)
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        return Check("kernel", "fail", f"no {kernel!r} kernel: the notebooks cannot run", fix=fix)
    argv0 = spec.argv[0] if spec.argv else ""
    same = argv0 in ("python", "python3", "{python}") or (
        shutil.which(argv0) is not None
        and Path(shutil.which(argv0)).resolve() == Path(executable).resolve())  # type: ignore[arg-type]
    if not same:
        return Check("kernel", "fail", f"the {kernel!r} kernel runs {argv0}, not {executable}: the "
                     "notebooks would not see this environment's cfopt", fix=fix)
    if importlib.util.find_spec("ipywidgets") is None:
        return Check("kernel", "fail", "ipywidgets is missing: the dashboards cannot show", fix=SETUP)
    return Check("kernel", "ok", f"{spec.display_name!r} runs {executable} (from {spec.resource_dir})")


def _ping_redis(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def check_redis(host: str = REDIS_HOST, port: int = REDIS_PORT,
                which: Callable[[str], str | None] = shutil.which) -> Check:
    """A Redis server answering PING on 127.0.0.1:6379 (optional for learners)."""
    if _ping_redis(host, port):
        return Check("Redis", "ok", f"answers PING at {host}:{port}")
    why = (f"nothing answers at {host}:{port} (optional: the disk layer is the default second "
           "cache; the Redis layer and the test suite need it)")
    if which("redis-server") is None:
        return Check("Redis", "warn", why, fix=f"apt-get install -y redis-server && {REDIS_START}")
    return Check("Redis", "warn", why, fix=REDIS_START)


def check_chromium(path: str = CHROMIUM) -> Check:
    """Debian's chromium and the playwright package, for the browser test (optional)."""
    if not Path(path).exists():
        return Check("Chromium", "warn", f"{path} is missing (optional: only the browser test "
                     "needs it; Playwright never downloads a browser here)",
                     fix="apt-get install -y chromium")
    if importlib.util.find_spec("playwright") is None:
        return Check("Chromium", "warn", f"{path} found; the playwright package is missing "
                     "(optional: the dev extra)", fix="make .venv/.installed-dev")
    return Check("Chromium", "ok", f"{path} with playwright")


def check_sandbox(which: Callable[[str], str | None] = shutil.which) -> Check:
    """The grader can make its sandboxes here (``cfopt.course.sandbox``: the grader's own test)."""
    exe = which("bwrap")
    if exe is None:
        return Check("sandbox", "warn", "bwrap (bubblewrap) is missing: learners' notebooks "
                     "cannot be graded in a sandbox (optional for learners)",
                     fix="apt-get install -y bubblewrap")
    try:
        from cfopt.course.sandbox import sandbox_problem   # the very test cfopt grade makes
    except ImportError:   # run as a plain script, without the kit installed
        return Check("sandbox", "warn", f"{exe} found; whether it can make the grader's sandbox "
                     "is checked with the kit installed", fix="make doctor")
    problem = sandbox_problem()
    if problem:
        return Check("sandbox", "warn", f"the grader cannot make a sandbox here: {problem}",
                     fix="sysctl -w kernel.unprivileged_userns_clone=1 (or grade as root)")
    return Check("sandbox", "ok", f"{exe} makes the grader's sandbox: no network, the kit read-only")


def run_checks() -> list[Check]:
    """Every check, in the order ``cfopt doctor`` prints them."""
    return [check_python(), check_venv(), check_kernel(), check_redis(), check_chromium(),
            check_sandbox()]


def doctor_command(args) -> int:
    """``cfopt doctor [--json]``: print every check; exit 1 when a required one fails."""
    checks = run_checks()
    if getattr(args, "json", False):
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        print("\n".join(c.format() for c in checks))
        bad = [c.name for c in checks if c.failed]
        print(f"\n{'not ready: ' + ', '.join(bad) if bad else 'ready'} "
              f"({sum(c.state == 'ok' for c in checks)} of {len(checks)} checks ok)")
    return 1 if any(c.failed for c in checks) else 0


if __name__ == "__main__":  # before any venv exists: python3 cfopt/doctor.py (stdlib only)
    sys.exit(doctor_command(None))
