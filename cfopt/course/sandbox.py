"""A sandbox of its own for every graded notebook: Linux namespaces through bubblewrap, and limits.

``cfopt grade`` runs each submission as a fresh process tree inside ``bwrap`` (Debian's
``bubblewrap`` package)::

    bwrap --unshare-pid --unshare-net --unshare-ipc --unshare-uts --die-with-parent --new-session
          --ro-bind /usr ...            the system, read-only
          --ro-bind VENV, PYTHON, cfopt/, datasets/   at their own paths, read-only
          --tmpfs /tmp  --bind PRIVATE /home/learner  the only writable places
          setpriv --reuid U ...         as root: an unprivileged uid of its own, no capabilities
          python -m cfopt.course.runner

What the learner's code can see is what is bound: not ``solutions/``, not the repository's
``.git``, not ``tests/``, not another submission, not the grader's home. Its environment is
built from nothing (``kernel_env``), so no key of the grader's reaches it. Its network is a
loopback of its own. When the grader kills ``bwrap`` (or dies), the kernel kills every process
of the sandbox's pid namespace; ``sweep`` then checks that no process of its uid is left.

The limits (``Limits``) are rlimits the runner sets on itself before the kernel starts, so
every process of the sandbox inherits them. ``RLIMIT_NPROC`` counts the processes of a uid,
and never binds uid 0: as root, each sandbox runs as a uid of its own (``allocate_uid``) so the
limit holds and one submission's processes never count against another's.

>>> Limits(memory_mb=1024)
Limits(memory_mb=1024, cpu_s=600, processes=256, file_mb=64, disk_mb=256)
>>> Limits(memory_mb=0)
Traceback (most recent call last):
cfopt.errors.ConfigError: Limits.memory_mb must be a positive whole number, got 0
"""
from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import ConfigError, SandboxUnavailable

__all__ = ["Limits", "DEFAULT_LIMITS", "HOME", "sandbox_problem", "require_sandbox", "bwrap_argv",
           "kernel_env", "allocate_uid", "sweep", "read_only_paths", "font_list", "FONTS"]

HOME = "/home/learner"          # the submission's folder inside the sandbox: cwd and $HOME
FONTS = "/opt/cfopt"             # where the grader's matplotlib font list is bound, read-only
UID_FIRST, UID_COUNT = 1_500_000_000, 500_000_000   # far above any real account's uid


@dataclass(frozen=True, slots=True, repr=False)
class Limits:
    """Per-process limits inside a sandbox (rlimits): address space, CPU, processes, file size."""

    memory_mb: int = 2048     # RLIMIT_AS: a kernel with pandas and matplotlib maps about 1 GB
    cpu_s: int = 600          # RLIMIT_CPU: seconds of CPU, then SIGXCPU (SIGKILL 5 s later)
    processes: int = 256      # RLIMIT_NPROC: processes and threads of the sandbox's uid
    file_mb: int = 64         # RLIMIT_FSIZE: the largest file a process may write
    disk_mb: int = 256        # the size of each writable folder ($HOME, /tmp: in-memory tmpfs)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"Limits.{name} must be a positive whole number, got {value!r}")

    def rlimits(self) -> dict[str, int]:
        """Return ``{resource name: value}`` for ``resource.setrlimit`` (soft = hard)."""
        return {"RLIMIT_AS": self.memory_mb << 20, "RLIMIT_CPU": self.cpu_s,
                "RLIMIT_NPROC": self.processes, "RLIMIT_FSIZE": self.file_mb << 20, "RLIMIT_CORE": 0}

    def __repr__(self) -> str:
        return ("Limits(" + ", ".join(f"{k}={v}" for k, v in asdict(self).items()) + ")")


DEFAULT_LIMITS = Limits()


def kernel_env(home: str, *, kit_root: Path | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the whole environment of a graded kernel: built from nothing, no secret in it.

    >>> env = kernel_env("/home/learner", kit_root=None)
    >>> sorted(k for k in env if "KEY" in k or "TOKEN" in k)
    []
    """
    tmp = "/tmp" if home == HOME else str(Path(home).parent / "tmp")
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home, "USER": "learner", "LOGNAME": "learner", "TMPDIR": tmp,
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        # the runner copies the grader's font list there (``font_list``)
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{home}/.matplotlib", "IPYTHONDIR": f"{tmp}/ipython",
        "JUPYTER_RUNTIME_DIR": f"{tmp}/jupyter/runtime", "JUPYTER_DATA_DIR": f"{tmp}/jupyter/data",
        "JUPYTER_CONFIG_DIR": f"{tmp}/jupyter/config", "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "CFOPT_GRADING": "1",
        # one thread per numeric library and two malloc arenas: a smaller address space under
        # RLIMIT_AS, and fewer threads counted by RLIMIT_NPROC
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
    }
    if kit_root is not None:
        env["CFOPT_ROOT"] = str(kit_root)
    env.update(extra or {})
    return env


def font_list() -> Path | None:
    """This machine's matplotlib font list, copied into each kernel's ``$MPLCONFIGDIR``.

    matplotlib builds the list on its first import in a fresh configuration folder, half a
    second of every graded notebook; the grader's own list is as good.
    """
    try:
        import matplotlib
        found = sorted(Path(matplotlib.get_cachedir()).glob("fontlist-v*.json"))
    except Exception:  # noqa: BLE001 - no matplotlib cache: each kernel builds its own
        return None
    return found[-1] if found else None


def read_only_paths(kit_root: Path | None) -> list[Path]:
    """What a graded kernel needs to read: the Python, the venv, the cfopt package and datasets/."""
    import cfopt
    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).resolve().parent.parent,
             Path(cfopt.__file__).resolve().parent]
    if kit_root is not None and (kit_root / "datasets").is_dir():
        paths.append(kit_root / "datasets")
    out: list[Path] = []
    for p in sorted({p.resolve() for p in paths}, key=lambda p: len(p.parts)):
        if p != Path("/usr") and not any(p.is_relative_to(q) for q in out) and not p.is_relative_to("/usr"):
            out.append(p)
    return out


def allocate_uid() -> int:
    """Return a uid no account and no other sandbox uses (random in a range far above real uids)."""
    return UID_FIRST + secrets.randbelow(UID_COUNT)


def _dirs(path: Path, made: set[Path]) -> list[str]:
    """bwrap arguments that create the parents of ``path`` world-readable (bwrap's own are 0700)."""
    out: list[str] = []
    for parent in reversed(path.parents):
        if parent == Path("/") or parent in made:
            continue
        made.add(parent)
        out += ["--perms", "0755", "--dir", str(parent)]
    return out


def bwrap_argv(command: Sequence[str], *, read_only: Sequence[Path], uid: int | None,
               limits: Limits = DEFAULT_LIMITS, fonts: Path | None = None) -> list[str]:
    """Return the argv that runs ``command`` in a new sandbox.

    Nothing on the host's disks is writable: ``$HOME`` and ``/tmp`` are in-memory file systems
    of ``limits.disk_mb`` each, gone when the sandbox ends. ``uid`` is the unprivileged uid to
    run as (root only, through ``setpriv``); ``None`` means the caller is not root, and bwrap
    maps the caller's own uid in a new user namespace.
    """
    argv = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--hostname", "sandbox"]
    if uid is None:
        argv += ["--unshare-user", "--disable-userns"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            argv += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            argv += ["--ro-bind", top, top]
    made: set[Path] = {Path("/usr"), Path("/home"), Path("/tmp")}
    argv += _dirs(Path("/etc/x"), made)
    # the dynamic linker's cache, time zone, fonts, and name lookup (so "localhost" resolves)
    for etc in ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts", "/etc/hosts", "/etc/nsswitch.conf",
                "/etc/host.conf", "/etc/gai.conf", "/etc/mime.types"):
        argv += ["--ro-bind-try", etc, etc]
    # the writable in-memory folders first, so that a kit or venv kept under /tmp is bound on top
    # of the fresh /tmp instead of being hidden by it
    size = str(limits.disk_mb << 20)
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "01777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "0755", "--dir", "/home", "--perms", "01777", "--size", size, "--tmpfs", HOME]
    for path in read_only:
        argv += _dirs(path, made) + ["--ro-bind", str(path), str(path)]
        made.add(path)
    if fonts is not None:
        argv += _dirs(Path(FONTS) / fonts.name, made) + ["--ro-bind", str(fonts), f"{FONTS}/{fonts.name}"]
    argv += ["--chdir", HOME]
    if uid is not None:
        argv += ["--", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    else:
        argv += ["--"]
    return argv + list(command)


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """Return why sandboxes cannot run here (no bwrap, no namespaces), or None when they can."""
    if sys.platform != "linux":
        return f"sandboxes need Linux namespaces; this is {sys.platform}"
    missing = [tool for tool in ("bwrap", "setpriv") if shutil.which(tool) is None
               and (tool == "bwrap" or os.geteuid() == 0)]
    if missing:
        return (f"{' and '.join(missing)} not found (Debian: apt-get install bubblewrap"
                f"{' util-linux' if 'setpriv' in missing else ''})")
    uid = allocate_uid() if os.geteuid() == 0 else None
    argv = bwrap_argv([sys.executable, "-c", "import cfopt"], read_only=read_only_paths(None), uid=uid)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap could not start: {e}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return f"bwrap could not make a sandbox here: {why}"
    return None


def require_sandbox() -> None:
    """Raise ``SandboxUnavailable`` with a plain reason unless sandboxes work on this machine."""
    problem = sandbox_problem()
    if problem:
        raise SandboxUnavailable(
            f"cannot isolate submissions: {problem}. Grade on a Linux machine with bubblewrap "
            f"(see docs/grading.md), or pass --no-sandbox to run learner code with your own "
            f"rights and files (unsafe: only for notebooks you trust)")


def _alive(uid: int) -> list[int]:
    """Pids of processes running as ``uid`` that are not already dead (zombies excluded)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:     # gone in between
            continue
        if str(uid) in fields.get("Uid", "").split() and fields.get("State", "").split()[:1] not in (["Z"], ["X"]):
            pids.append(int(entry.name))
    return pids


def sweep(uid: int, *, wait_s: float = 3.0) -> int:
    """Wait for every process of ``uid`` to end; kill and count those still there after ``wait_s``.

    When bwrap dies the kernel kills its pid namespace, but the processes take a moment to go;
    only one still running after ``wait_s`` is a survivor (0 expected).
    """
    import time
    deadline = time.monotonic() + wait_s
    while (pids := _alive(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)
