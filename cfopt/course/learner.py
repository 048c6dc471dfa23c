"""Bring your own functions from your notebooks into another one: the capstone runs what you wrote.

``bring("01_cost_optimization", ["route", "abbreviate"])`` finds your notebook 01 next to the one
that runs (the kernel's working folder, or ``folder=``), picks out of its code cells the
statements that define those names and the ones they need (imports, constants, helper
functions: nothing else, so no check, plot or replay runs again), runs them in a namespace of
their own and returns what they defined. Each name you asked for is either found or missing
with the reason:

- the notebook is not in the folder (a notebook counts when its file name is the exercise's,
  or when its metadata says it is that exercise: a renamed copy is found too);
- the notebook does not define the name, or the definition is still the exercise's stub (its
  body, or a method's body, only raises ``NotImplementedError``);
- a statement it needs raised while it ran (the error, with the cell it came from).

Statements are picked as a reader of the notebook would: for each name, the last statement
that binds it afresh (a ``def``, an import, an assignment that does not read the old value)
and every later one that changes it (``x += ...``, ``x[k] = ...``), then the same for every
global name those statements read, and so on. They run in notebook order. What they read is
found by Python's own scoping rules (``symtable``), so a function's local variables never pull
anything in.

Under grading (``CFOPT_GRADING`` set by ``cfopt grade``) nothing is read: a graded notebook
stands alone, and every name is missing with that reason.

>>> import json, tempfile
>>> cells = [{"cell_type": "code", "metadata": {}, "source": "import math\\nBASE = 2"},
...          {"cell_type": "code", "metadata": {}, "source": "print('slow demo')\\n"
...           "def double(x):\\n    return BASE * x\\ndef stub(x):\\n    raise NotImplementedError('hint')"}]
>>> folder = tempfile.mkdtemp()
>>> with open(f"{folder}/01_demo.ipynb", "w") as f:
...     json.dump({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, f)
>>> got = bring("01_demo", ["double", "stub", "triple"], folder=folder)
>>> got.found["double"](21), sorted(got.missing)
(42, ['stub', 'triple'])
>>> got.missing["stub"]
'still the exercise stub in 01_demo.ipynb'
"""
from __future__ import annotations

import ast
import builtins
import json
import os
import symtable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["YOUR_CODE", "Brought", "bring", "bring_all", "GRADING_ENV"]

GRADING_ENV = "CFOPT_GRADING"   # set in every graded kernel (cfopt.course.sandbox)

# What the capstone brings from each notebook: the implementation exercises of Parts 1 to 5.
YOUR_CODE: dict[str, tuple[str, ...]] = {
    "01_cost_optimization": ("route", "abbreviate"),
    "02_caching": ("my_cache_key", "LeastFrequentlyUsed"),
    "03_response_time": ("time_to_useful", "should_flush"),
    "04_batch_processing": ("my_effective_rank", "my_backoff"),
    "05_monitoring_dashboard": ("percentile", "trend_per_min", "long_tail"),
}


@dataclass(frozen=True)
class Brought:
    """What ``bring`` found in one notebook: each name's object, or why it is missing."""

    exercise: str
    path: Path | None
    found: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    cells: tuple[int, ...] = ()      # the code cells (0-based, over all cells) statements came from

    def get(self, name: str) -> Any:
        """The object named ``name``, or None when it is missing."""
        return self.found.get(name)


# -- finding the notebook ---------------------------------------------------------------------
def _exercise_of(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return None
    cfopt = meta.get("cfopt") if isinstance(meta, dict) else None
    return cfopt.get("exercise") if isinstance(cfopt, dict) else None


def _find(exercise: str, folder: Path) -> Path | None:
    exact = folder / f"{exercise}.ipynb"
    if exact.is_file():
        return exact
    for path in sorted(folder.glob("*.ipynb")):
        if _exercise_of(path) == exercise:
            return path
    return None


# -- reading its statements ---------------------------------------------------------------------
@dataclass
class _Stmt:
    cell: int
    node: ast.stmt
    binds: set[str]      # names it binds afresh
    touches: set[str]    # names it changes without rebinding (x += 1, x[k] = v, x.a = v)
    uses: set[str]       # global names it reads, now or when what it defines is called


def _target_names(target: ast.AST, binds: set[str], touches: set[str]) -> None:
    if isinstance(target, ast.Name):
        binds.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _target_names(elt, binds, touches)
    elif isinstance(target, ast.Starred):
        _target_names(target.value, binds, touches)
    elif isinstance(target, (ast.Subscript, ast.Attribute)):
        base = target.value
        while isinstance(base, (ast.Subscript, ast.Attribute)):
            base = base.value
        if isinstance(base, ast.Name):
            touches.add(base.id)


def _bindings(node: ast.stmt) -> tuple[set[str], set[str]]:
    binds: set[str] = set()
    touches: set[str] = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        binds.add(node.name)
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            if alias.name != "*":
                binds.add(alias.asname or alias.name.split(".")[0])
    elif isinstance(node, ast.Assign):
        for target in node.targets:
            _target_names(target, binds, touches)
    elif isinstance(node, ast.AugAssign):
        _target_names(node.target, touches, touches)   # x += 1 changes x, keeps its history
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        _target_names(node.target, binds, touches)
    else:   # for, with, if, try, while at top level: whatever their blocks bind
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                b, t = _bindings(child)
                binds |= b
                touches |= t
            elif isinstance(child, ast.withitem) and child.optional_vars is not None:
                _target_names(child.optional_vars, binds, touches)
        if isinstance(node, (ast.For, ast.AsyncFor)):
            _target_names(node.target, binds, touches)
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                if handler.name:
                    binds.add(handler.name)
                for child in handler.body:
                    b, t = _bindings(child)
                    binds |= b
                    touches |= t
    return binds, touches


def _uses(node: ast.stmt) -> set[str]:
    """Global names ``node`` reads, by Python's own scoping rules."""
    try:
        table = symtable.symtable(ast.unparse(node), "<cell>", "exec")
    except SyntaxError:   # e.g. a top-level await, which IPython allows
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    used = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        t = stack.pop()
        used |= {s.get_name() for s in t.get_symbols() if s.is_referenced() and s.is_global()}
        stack.extend(t.get_children())
    return used


def _magic_free(source: str) -> str:
    """The cell's source with IPython's own syntax (``%magic``, ``!shell``) blanked out."""
    lines = source.splitlines()
    if lines and lines[0].startswith("%%"):
        return ""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def _statements(nb: Mapping[str, Any]) -> tuple[list[_Stmt], dict[int, str]]:
    stmts, broken = [], {}
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        meta = (cell.get("metadata") or {}).get("cfopt") or {}
        if "check" in meta or "probe" in meta:
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        try:
            tree = ast.parse(_magic_free(source))
        except SyntaxError as e:
            broken[index] = f"cell {index + 1} does not parse: {e.msg} (line {e.lineno})"
            continue
        for node in tree.body:
            binds, touches = _bindings(node)
            stmts.append(_Stmt(index, node, binds, touches, _uses(node)))
    return stmts, broken


def _needed(stmts: Sequence[_Stmt], names: Iterable[str]) -> set[int]:
    """Indices of the statements that define ``names`` and everything they read."""
    chosen: set[int] = set()
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        fresh = [i for i, s in enumerate(stmts) if name in s.binds and name not in s.uses]
        start = fresh[-1] if fresh else 0
        for i in range(start, len(stmts)):
            s = stmts[i]
            if i not in chosen and (name in s.binds or name in s.touches):
                chosen.add(i)
                todo.extend(s.uses)
    return chosen


def _is_stub(node: ast.stmt) -> bool:
    """Whether a def (or any method of a class) only raises NotImplementedError."""
    if isinstance(node, ast.ClassDef):
        return any(_is_stub(child) for child in node.body
                   if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = [s for s in node.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc
    exc = exc.func if isinstance(exc, ast.Call) else exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _namespace(exercise: str) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": f"your_{exercise}", "__builtins__": builtins}
    try:   # notebooks may call display() without importing it, as IPython provides it
        from IPython.display import display
        ns["display"] = display
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        pass
    return ns


def bring(exercise: str, names: Sequence[str], *, folder: str | os.PathLike | None = None) -> Brought:
    """Run the statements of your notebook ``exercise`` that define ``names``; see the module."""
    names = list(names)
    if os.environ.get(GRADING_ENV):
        why = "not read while grading: a graded notebook runs alone"
        return Brought(exercise, None, {}, dict.fromkeys(names, why))
    where = Path(folder) if folder is not None else Path.cwd()
    path = _find(exercise, where)
    if path is None:
        why = f"no {exercise}.ipynb in {where}"
        return Brought(exercise, None, {}, dict.fromkeys(names, why))
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except (OSError, ValueError) as e:
        return Brought(exercise, path, {}, dict.fromkeys(names, f"cannot read {path.name}: {e}"))
    stmts, broken = _statements(nb)
    found: dict[str, Any] = {}
    missing: dict[str, str] = {}
    plans: dict[str, set[int]] = {}
    for name in names:
        final = [s for s in stmts if name in s.binds]
        if not final:
            missing[name] = (f"not defined in {path.name}" if not broken else
                             f"not defined in {path.name} ({'; '.join(broken.values())})")
        elif _is_stub(final[-1].node):
            missing[name] = f"still the exercise stub in {path.name}"
        else:
            plans[name] = _needed(stmts, [name])
    ns = _namespace(exercise)
    failed: dict[int, str] = {}
    for i in sorted(set().union(*plans.values())):
        s = stmts[i]
        code = compile(ast.Module(body=[s.node], type_ignores=[]),
                       f"{path.name}, cell {s.cell + 1}", "exec")
        try:
            exec(code, ns)   # the learner's own statements, in a namespace of their own
        except BaseException as e:   # noqa: BLE001 - any error is reported, none escapes
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            failed[i] = f"cell {s.cell + 1} of {path.name} raised {type(e).__name__}: {e}"
    for name, plan in plans.items():
        errors = [failed[i] for i in sorted(plan) if i in failed]
        if errors:
            missing[name] = errors[0]
        elif name not in ns:
            missing[name] = f"{path.name} did not bind {name}"
        else:
            found[name] = ns[name]
    cells = tuple(sorted({stmts[i].cell for plan in plans.values() for i in plan}))
    return Brought(exercise, path, found, missing, cells)


def bring_all(folder: str | os.PathLike | None = None,
              wanted: Mapping[str, Sequence[str]] = YOUR_CODE) -> dict[str, Brought]:
    """``bring`` for each notebook of ``wanted`` (default: the capstone's ``YOUR_CODE``)."""
    return {exercise: bring(exercise, names, folder=folder) for exercise, names in wanted.items()}
