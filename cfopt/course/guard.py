"""The grader's guard in a graded kernel: it starts before any learner code and runs the probes.

``cfopt grade`` starts each kernel as ``python -m cfopt.course.guard -f CONNECTION_FILE``. Before
ipykernel takes over, the guard

- imports the check machinery and the references every probe of the notebook poisons, and
  keeps the original objects (so a learner cell that replaces them later is noticed);
- installs a ``sys.audit`` hook, which Python code cannot remove, that writes down evidence of
  tampering: opening a ``solutions`` folder or another notebook, writing outside the
  submission's folder, reading a reference's ``__code__``, re-importing or re-executing a
  reference's module, a tripwire going off, tracing, ``gc`` or ``ctypes`` while a probe runs;
- defines ``__cfopt_probe__(payload)``, which the runner calls after the learner's cells: it
  checks the machinery against its snapshot, runs one probe cell of the solution with the
  references poisoned, and shows the observations as one ``application/vnd.cfopt.probe+json``
  output carrying the run's nonce.

Everything here runs in the same process as the learner's code, so it is evidence, not proof:
a learner who attacks the guard itself can hide things. The grade does not depend on it: the
verdict outside compares the observations with the solution's, on cases drawn from a seed that
reaches the kernel only after the learner's cells finished (docs/grading.md says what that
does and does not stop).
"""
from __future__ import annotations

import builtins
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

__all__ = ["SPEC_ENV", "ENTRY", "install", "main"]

SPEC_ENV = "CFOPT_GUARD"        # JSON: {"references": [...], "notebook": ..., "writable": [...]}
ENTRY = "__cfopt_probe__"
MACHINERY = ("cfopt.course.checks", "cfopt.course.kit", "cfopt.course.probe")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"open", "os.listdir", "os.scandir", "glob.glob", "os.rename", "os.remove", "os.rmdir",
                "os.unlink", "shutil.rmtree", "os.chmod", "os.truncate", "os.mkdir", "os.symlink", "os.link"}
_CHANGE_EVENTS = _PATH_EVENTS - {"open", "os.listdir", "os.scandir", "glob.glob"}
_SPAWN_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
_PROBE_ONLY = {"sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers",
               "gc.get_referents", "sys._current_frames"}
_MAX_EVIDENCE = 50


def _snapshot(module: types.ModuleType) -> dict[str, tuple[Any, Any]]:
    return {name: (value, getattr(value, "__code__", None)) for name, value in vars(module).items()
            if isinstance(value, (types.FunctionType, type))}


def install(spec: dict[str, Any]) -> None:
    """Install the audit hook and ``__cfopt_probe__`` for the references in ``spec``."""
    import importlib

    from . import probe as probe_module
    machinery = {name: importlib.import_module(name) for name in MACHINERY}
    snapshots = {name: _snapshot(m) for name, m in machinery.items()}
    originals: dict[str, list[tuple[types.FunctionType, types.CodeType]]] = {}
    for dotted in spec.get("references", []):
        try:
            fns = probe_module.functions_of(probe_module.resolve(dotted), dotted)
        except Exception:  # noqa: BLE001 - the grader checked them; a missing one is reported later
            continue
        originals[dotted] = [(fn, fn.__code__) for fn in fns]
    ref_ids = {id(fn): dotted for dotted, fns in originals.items() for fn, _ in fns}
    ref_files = {fn.__code__.co_filename: dotted for dotted, fns in originals.items() for fn, _ in fns}
    ref_modules = {fn.__module__: dotted for dotted, fns in originals.items() for fn, _ in fns}
    notebook = os.path.abspath(spec.get("notebook", ""))
    writable = tuple(os.path.abspath(p) for p in spec.get("writable", [])) + ("/dev/null", "/dev/shm")
    state: dict[str, Any] = {"phase": "cells", "quiet": 0, "evidence": [], "seen": set()}

    def note(reason: str, scope: str = "*") -> None:
        if reason not in state["seen"] and len(state["evidence"]) < _MAX_EVIDENCE:
            state["seen"].add(reason)
            state["evidence"].append({"reason": reason, "scope": scope})

    def path_of(arg: Any) -> str | None:
        if isinstance(arg, int) or arg is None:
            return None
        try:
            return os.path.abspath(os.fsdecode(arg))
        except (TypeError, ValueError):
            return None

    def outside(path: str) -> bool:
        return not any(path == root or path.startswith(root + os.sep) for root in writable)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if state["quiet"]:
            return
        if event in _PATH_EVENTS:
            path = path_of(args[0]) if args else None
            if path is None:
                return
            if "solutions" in Path(path).parts:
                note(f"looked for the solutions: {event} {path}")
            elif path.endswith(".ipynb") and path != notebook:
                note(f"opened another notebook: {path}")
            if event == "open":
                mode, flags = (args + (None, None))[1:3]
                writes = (isinstance(flags, int) and flags & _WRITE_FLAGS) or \
                         (isinstance(mode, str) and any(c in mode for c in "wax+"))
                if writes and outside(path):
                    note(f"tried to write {path}, outside its folder")
            elif event in _CHANGE_EVENTS and outside(path):
                note(f"tried to change {path}, outside its folder ({event})")
        elif event in _SPAWN_EVENTS:
            if "solutions" in repr(args):
                note(f"started a process that looks for the solutions ({event})")
        elif event == "object.__getattr__":
            if len(args) > 1 and args[1] == "__code__" and id(args[0]) in ref_ids:
                dotted = ref_ids[id(args[0])]
                note(f"read the code of {dotted}, the library's own answer", dotted)
        elif event == "object.__setattr__":
            if len(args) > 1 and args[1] == "__code__" and id(args[0]) in ref_ids:
                dotted = ref_ids[id(args[0])]
                note(f"rewrote the code of {dotted}", dotted)
        elif event == probe_module.TRIPWIRE_EVENT:
            dotted = str(args[0]) if args else "?"
            note(f"called {dotted}, the library's own answer to the exercise", dotted)
        elif event == "import":
            if args and args[0] in ref_modules:
                note(f"imported {args[0]} afresh (a second copy of the reference)", ref_modules[args[0]])
        elif event == "exec":
            code = args[0] if args else None
            if isinstance(code, types.CodeType) and code.co_filename in ref_files:
                note(f"re-executed {code.co_filename} (a second copy of the reference)",
                     ref_files[code.co_filename])
        elif event == "compile":
            if len(args) > 1 and isinstance(args[1], str) and args[1] in ref_files:
                note(f"compiled {args[1]} again (a second copy of the reference)", ref_files[args[1]])
        elif event == "sys.addaudithook":
            note("added an audit hook of its own")
        elif state["phase"] == "probe" and (event in _PROBE_ONLY or event.startswith("ctypes.")):
            note(f"used {event} while the grader probed its code")

    def check_machinery() -> None:
        state["quiet"] += 1     # the comparisons below read __code__ themselves
        try:
            changed = _compare()
        finally:
            state["quiet"] -= 1
        for reason, scope in changed:
            note(reason, scope)

    def _compare() -> list[tuple[str, str]]:
        changed = []
        for name, module in machinery.items():
            if sys.modules.get(name) is not module:
                changed.append((f"replaced the module {name}", "*"))
            for attr, (value, code) in snapshots[name].items():
                now = getattr(module, attr, None)
                if now is not value or getattr(now, "__code__", None) is not code:
                    changed.append((f"patched the check machinery: {name}.{attr}", "*"))
        for dotted, fns in originals.items():
            try:
                now = probe_module.functions_of(probe_module.resolve(dotted), dotted)
            except Exception:  # noqa: BLE001 - a reference made unimportable counts as replaced
                now = []
            if {id(f) for f in now} != {id(f) for f, _ in fns} or any(f.__code__ is not c for f, c in fns):
                changed.append((f"replaced {dotted} in the kernel", dotted))
        return changed

    def entry(payload: str) -> None:
        """Run one probe (or none) and show its observations with the run's nonce."""
        request = json.loads(payload)
        frame: dict[str, Any] = {"nonce": request["nonce"], "check": request.get("check"),
                                 "cases": [], "error": None}
        check_machinery()
        if request.get("source") is not None:
            frame.update(_run_one(request))
        frame["evidence"] = list(state["evidence"])
        _show(frame)

    def _run_one(request: dict[str, Any]) -> dict[str, Any]:
        from IPython import get_ipython
        namespace = dict(get_ipython().user_ns)
        state["quiet"] += 1
        probe_module._collector = found = []
        try:
            exec(compile(request["source"], "<probe cell>", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - the learner's state may break the probe cell
            return {"error": f"the probe cell raised {type(e).__name__}: {e}"}
        finally:
            probe_module._collector = None
            state["quiet"] -= 1
        specs = [s for s in found if s.check == request["check"]]
        if not specs:
            return {"error": f"the probe cell defines no probe for {request['check']!r}"}
        targets = [(dotted, fn, code) for dotted in request.get("references", [])
                   for fn, code in originals.get(dotted, [])]
        state["quiet"] += 1
        try:
            poison = probe_module.Poison(targets)
        finally:
            state["quiet"] -= 1
        p = probe_module.Probe(request["check"], int(request["seed"]), poison=_Quiet(poison, state))
        state["phase"] = "probe"
        try:
            specs[-1].fn(p)
            error = None
        except Exception as e:  # noqa: BLE001 - learner state broke the probe's own code
            error = f"the probe stopped: {type(e).__name__}: {e}"
        finally:
            state["phase"] = "cells"
        return {"cases": p.cases, "error": error}

    sys.addaudithook(hook)
    setattr(builtins, ENTRY, entry)


class _Quiet:
    """Arm a poison without the guard noting its own ``__code__`` swaps."""

    def __init__(self, poison: Any, state: dict[str, Any]) -> None:
        self.poison, self.state = poison, state

    def __enter__(self) -> None:
        self.state["quiet"] += 1
        try:
            self.poison.__enter__()
        finally:
            self.state["quiet"] -= 1

    def __exit__(self, *exc: object) -> None:
        self.state["quiet"] += 1
        try:
            self.poison.__exit__(*exc)
        finally:
            self.state["quiet"] -= 1


def _show(frame: dict[str, Any]) -> None:
    from IPython.display import display

    from .probe import MIME_TYPE
    display({MIME_TYPE: frame, "text/plain": f"probe {frame.get('check')}"}, raw=True)


def main() -> None:
    """Install the guard, then run an ipykernel (arguments as ``ipykernel_launcher``)."""
    spec = json.loads(os.environ.pop(SPEC_ENV, "") or "{}")
    install(spec)
    # as ipykernel_launcher does: the working folder must not shadow installed modules
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()


if __name__ == "__main__":  # pragma: no cover - started as a kernel by cfopt.course.runner
    main()
