"""Both ends of one graded run: the runner inside the sandbox, and ``Run`` that drives it.

The grader (outside) starts ``python -m cfopt.course.runner`` in a sandbox (``cfopt.course.sandbox``)
or, with ``--no-sandbox``, as a plain child process, and talks to it over its stdin and stdout,
one JSON document per line, in two phases::

    grader -> runner   {"notebook": ..., "name": ..., "references": [...], "limits": {...}, ...}
    runner             sets its rlimits, starts the kernel through the guard, runs every cell
    runner -> grader   {"phase": 1, "error": ..., "stopped_at": ..., "cells": [summaries]}
    grader -> runner   {"nonce": ..., "seed": S, "probes": [{"check", "source", "references"}]}
    runner             runs each probe in the same kernel, then asks the guard for its evidence
    runner -> grader   {"phase": 2, "probes": {check: {"frames": [...], "error": ...}}, "evidence": [...]}

The seed and the probes reach the sandbox only after the learner's cells finished. The runner
makes itself non-dumpable, so learner code (same uid) can neither trace it nor read its pipes
through /proc. Whatever comes back is still treated as untrusted by the grader.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import sandbox as sb

__all__ = ["Job", "Run", "RunFailed", "main"]

MAX_REPLY_BYTES = 32 << 20       # a phase's answer larger than this is refused
_KEEP_ERRORS, _KEEP_TEXT = 5, 600


class RunFailed(Exception):
    """The runner did not answer as agreed (it died, hung, or wrote something else)."""


@dataclass(frozen=True, slots=True)
class Job:
    """What one run needs: the notebook to execute, its file name, and the limits."""

    notebook: Mapping[str, Any]
    name: str
    references: Sequence[str] = ()
    timeout: float = 600.0
    cell_timeout: float = 120.0
    limits: sb.Limits = field(default_factory=sb.Limits)


class Run:
    """One runner process (sandboxed unless ``sandbox=False``); use as a context manager.

    ``phase1()`` returns the cell summaries; ``phase2(request)`` the probes' frames. Leaving
    the context kills the whole process tree, checks that none of it survived, and removes the
    private folder.
    """

    def __init__(self, job: Job, *, sandbox: bool = True, kit_root: Path | None = None) -> None:
        self.job, self.sandbox = job, sandbox
        self.root = Path(tempfile.mkdtemp(prefix="cfopt-grade-"))   # the runner's log; unsandboxed, its folders
        self.survivors = 0
        self.uid = sb.allocate_uid() if sandbox and os.geteuid() == 0 else None
        fonts = sb.font_list()
        command = [sys.executable, "-m", "cfopt.course.runner"]
        if sandbox:
            home, tmp = sb.HOME, "/tmp"
            argv = sb.bwrap_argv(command, read_only=sb.read_only_paths(kit_root), uid=self.uid,
                                 limits=job.limits, fonts=fonts)
            self.fonts = f"{sb.FONTS}/{fonts.name}" if fonts else None
        else:
            home, tmp = str(self.root / "home"), str(self.root / "tmp")
            argv = command
            self.fonts = str(fonts) if fonts else None
        self.env = sb.kernel_env(home, kit_root=kit_root)
        self.writable = [home, tmp]
        self._stderr = open(self.root / "runner.log", "w+b")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, env=self.env, cwd=self.root,
                                         start_new_session=True)
        except OSError as e:
            self._stderr.close()
            shutil.rmtree(self.root, ignore_errors=True)
            raise RunFailed(f"cannot start {argv[0]}: {e}") from None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def phase1(self) -> dict[str, Any]:
        """Send the job; return the runner's phase-1 answer (raises ``RunFailed``)."""
        j = self.job
        self._send({"notebook": j.notebook, "name": j.name, "references": list(j.references),
                    "timeout": j.timeout, "cell_timeout": j.cell_timeout, "fonts": self.fonts,
                    "limits": j.limits.rlimits(), "writable": self.writable})
        return self._receive(j.timeout + 90, phase=1)

    def phase2(self, request: Mapping[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send the seed and the probes; return the runner's phase-2 answer."""
        self._send(dict(request))
        return self._receive(timeout + 60, phase=2)

    def close(self) -> None:
        """Kill the process tree, count survivors, and remove the private folder."""
        if self.proc.poll() is None:
            with _ignore(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)   # bwrap, or the runner when unsandboxed
        with _ignore(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        if self.uid is not None:   # the pid namespace died with bwrap; this proves it
            self.survivors = sb.sweep(self.uid)
        for stream in (self.proc.stdin, self.proc.stdout):
            with _ignore(OSError):
                stream.close()
        self._stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines the runner wrote on stderr (for a report when it failed)."""
        try:
            self._stderr.flush()
            text = (self.root / "runner.log").read_bytes()[-8000:].decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _send(self, message: Mapping[str, Any]) -> None:
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise RunFailed(f"the runner stopped listening ({e})") from None

    def _read(self) -> None:
        total = 0
        for line in self.proc.stdout:
            total += len(line)
            if total > MAX_REPLY_BYTES:
                self._lines.put(b'{"oversize": true}')
                break
            self._lines.put(line)
        self._lines.put(None)

    def _receive(self, timeout: float, *, phase: int) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RunFailed(f"no answer within {timeout:g} s") from None
        if line is None:
            why = self.log_tail()
            status = self.proc.poll()
            raise RunFailed(f"the runner ended (exit status {status})" + (f": {why}" if why else ""))
        try:
            reply = json.loads(line)
        except ValueError:
            raise RunFailed("the runner wrote something that is not its answer") from None
        if not isinstance(reply, dict) or reply.get("oversize"):
            raise RunFailed(f"the runner's answer was over {MAX_REPLY_BYTES >> 20} MB")
        if reply.get("phase") != phase:
            raise RunFailed(f"expected the phase-{phase} answer, got {str(reply)[:80]}")
        return reply


class _ignore:
    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *rest: Any) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


# --- inside the sandbox ----------------------------------------------------------------------------

def _limit(rlimits: Mapping[str, int]) -> None:
    import resource
    for name, value in rlimits.items():
        # past the soft CPU limit a process gets SIGXCPU (it may say so), 5 s later SIGKILL
        hard = value + 5 if name == "RLIMIT_CPU" else value
        resource.setrlimit(getattr(resource, name), (value, hard))


def _undumpable() -> None:
    """PR_SET_DUMPABLE 0: processes of the same uid cannot ptrace this one or open its fds."""
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _summary(cell: Mapping[str, Any]) -> dict[str, Any]:
    """What the grader needs of an executed cell: errors, check results, probe-like outputs."""
    from .checks import MIME_TYPE as CHECK_MIME
    from .probe import MIME_TYPE as PROBE_MIME
    errors, results, probe_like = [], [], 0
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "error" and len(errors) < _KEEP_ERRORS:
            errors.append({"ename": str(out.get("ename", ""))[:100],
                           "evalue": str(out.get("evalue", ""))[:_KEEP_TEXT]})
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if CHECK_MIME in data and len(results) < 10:
                r = data[CHECK_MIME]
                results.append({k: (str(r.get(k, ""))[:_KEEP_TEXT] if k != "passed" else bool(r.get(k)))
                                for k in ("name", "status", "feedback", "passed")}
                               if isinstance(r, dict) else {"status": "garbled"})
            if PROBE_MIME in data:
                probe_like += 1
    return {"errors": errors, "results": results, "probe_outputs": probe_like}


def _frames(outputs: Sequence[Mapping[str, Any]]) -> list[Any]:
    from .probe import MIME_TYPE as PROBE_MIME
    return [out["data"][PROBE_MIME] for out in outputs
            if out.get("output_type") in ("display_data", "execute_result")
            and PROBE_MIME in out.get("data", {})][:5]


def skip_slow_optional_imports() -> None:
    """Keep jsonschema (imported by nbformat) from loading ``rfc3987_syntax``.

    That optional package builds a parser grammar at import time: 2.6 s of every run here, for
    IRI format checks nbformat never makes. jsonschema imports it under
    ``suppress(ImportError)``, so a ``None`` in ``sys.modules`` makes it skip the check.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main() -> None:
    """The runner: read the job, run the cells, answer; read the probes, run them, answer."""
    skip_slow_optional_imports()
    from .guard import ENTRY, SPEC_ENV
    from .nbrun import KernelSession, python_argv

    job = json.loads(sys.stdin.readline())
    _limit(job["limits"])
    _undumpable()
    home, tmp = job["writable"]
    for sub in ("ipython", "jupyter/runtime", "jupyter/data", "jupyter/config"):
        os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    os.makedirs(os.path.join(home, ".matplotlib"), exist_ok=True)
    if job.get("fonts"):
        shutil.copyfile(job["fonts"], os.path.join(home, ".matplotlib", os.path.basename(job["fonts"])))
    with open(os.path.join(home, job["name"]), "w", encoding="utf-8") as f:   # the notebook, for its own code
        json.dump(job["notebook"], f)
    os.chdir(home)
    env = dict(os.environ)
    env[SPEC_ENV] = json.dumps({"references": job["references"], "writable": job["writable"],
                                "notebook": os.path.join(home, job["name"])})
    out = sys.stdout.buffer

    def answer(message: Mapping[str, Any]) -> None:
        out.write(json.dumps(message).encode() + b"\n")
        out.flush()

    def session(nb: Mapping[str, Any]) -> KernelSession:
        return KernelSession(nb, cwd=home, env=env, argv=python_argv("cfopt.course.guard"))

    with contextlib.ExitStack() as stack:
        kernel = stack.enter_context(session(job["notebook"]))
        run = kernel.run_cells(timeout=job["timeout"], cell_timeout=job["cell_timeout"])
        answer({"phase": 1, "error": run.error, "stopped_at": run.stopped_at, "alive": run.alive,
                "seconds": run.seconds, "cells": [_summary(c) for c in run.cells]})
        line = sys.stdin.readline()
        if not line:
            return
        request = json.loads(line)
        started = time.monotonic()
        if not kernel.alive and run.stopped_at and request.get("probes"):
            # the kernel died (or would not come back) in cell N: the checks before N still
            # deserve their probes, in a new kernel that runs the cells before N again
            prefix = {**job["notebook"], "cells": job["notebook"]["cells"][:run.stopped_at]}
            kernel = stack.enter_context(session(prefix))
            kernel.run_cells(timeout=job["timeout"], cell_timeout=job["cell_timeout"])
        probes: dict[str, Any] = {}
        for p in request.get("probes", []):
            payload = {"nonce": request["nonce"], "seed": request["seed"], **p}
            done = kernel.execute(f"{ENTRY}({json.dumps(payload)!r})", timeout=request["probe_timeout"])
            probes[p["check"]] = {"frames": _frames(done.outputs), "error": done.error}
        final = kernel.execute(f"{ENTRY}({json.dumps({'nonce': request['nonce']})!r})", timeout=30)
        answer({"phase": 2, "probes": probes, "final": {"frames": _frames(final.outputs), "error": final.error},
                "seconds": time.monotonic() - started})


if __name__ == "__main__":  # pragma: no cover - started by Run
    main()
