"""Read a submission's own code, outside any kernel, for signs of tampering.

Only the code the learner wrote is read: every cell whose source differs from the exercise
notebook's cell with the same id (and every cell the learner added). For each such cell, what
the author's version already had is subtracted, so a demo cell that imports the library's
answer is not held against the learner who left it alone. The scan looks for

- the library's own answer to an exercise (a probe's ``reference``): imported, named, or spelled
  in a string (for ``getattr``) -- scoped to the checks that probe it;
- the grader's machinery: importing ``cfopt.course`` modules other than ``kit``, assigning to an
  attribute of ``kit`` or of those modules, ``__cfopt_probe__``;
- the tools that rewrite a running interpreter: ``ctypes``, ``gc``, ``importlib``, ``builtins``,
  ``sys.settrace`` and friends, ``__code__``, ``__globals__``, ``__closure__``, ``exec``,
  ``eval``, ``compile``, ``__import__``;
- a path into a ``solutions`` folder.

None of these is needed by an exercise of this kit, so each is reported as tampering with the
line it is on. A scan cannot see code built at run time; the guard in the kernel sees some of
that, the verdict the rest (docs/grading.md).

>>> for e in scan_cell("from cfopt.batching.priority import effective_rank as er\\nx = er('low', 1, 2)",
...                    "", {"cfopt.batching.priority.effective_rank"}):
...     print(e.scope, "|", e.reason)
cfopt.batching.priority.effective_rank | line 1 imports cfopt.batching.priority.effective_rank, the library's own answer to the exercise
"""
from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["Evidence", "scan_cell", "scan_notebook", "defined_names"]

ALLOWED_COURSE = {"cfopt.course", "cfopt.course.kit"}
INTERPRETER_MODULES = {"ctypes", "gc", "importlib", "builtins", "_ctypes"}
INTERPRETER_ATTRS = {"__code__", "__globals__", "__closure__", "__builtins__", "__cfopt_probe__",
                     "settrace", "setprofile", "addaudithook", "_getframe", "_current_frames",
                     "get_referrers", "get_objects", "f_globals", "f_locals", "f_back"}
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__"}
_PATHS = re.compile(r"(^|[/\\])solutions([/\\]|$)")   # other notebooks: the guard sees them opened


@dataclass(frozen=True, slots=True)
class Evidence:
    """One sign of tampering: what and where (``reason``), and which checks it voids (``scope``:
    ``"*"`` for all, else the dotted name of a reference)."""

    reason: str
    scope: str = "*"


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        # IPython magics and shell escapes: blank those lines and read the rest
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError:
            return None


class _Found(Counter):
    """``(kind, subject, scope) -> count``, and the first line each was seen on."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[tuple[str, str, str], int] = {}

    def add(self, key: tuple[str, str, str], node: ast.AST) -> None:
        self[key] += 1
        line = getattr(node, "lineno", 0)
        self.lines[key] = min(self.lines.get(key, line), line)


def _findings(source: str, references: Iterable[str], defined: Iterable[str] = ()) -> _Found:
    """What ``source`` does of interest, counted by ``(kind, subject, scope)``.

    ``defined`` are names the exercise itself defines (its ``def percentile``): a learner using
    such a name means their own function, even when the library has one of the same name.
    """
    tree = _parse(source)
    found = _Found()
    if tree is None:
        return found
    refs = list(references)
    own = set(defined) | {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    own |= {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    leaf = {r.rsplit(".", 1)[-1]: r for r in refs}
    bare = {name: r for name, r in leaf.items() if name not in own}
    modules: dict[str, str] = {}          # local name -> module or object it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                modules[(a.asname or a.name).split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                for key in _module_use(a.name, refs):
                    found.add(key, node)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                modules[a.asname or a.name] = full
                for key in _module_use(full, refs):
                    found.add(key, node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in bare and not isinstance(node.ctx, ast.Store):
            found.add(("names", bare[node.id], bare[node.id]), node)
        elif isinstance(node, ast.Attribute):
            ref = leaf.get(node.attr)
            if ref is not None and (_is_method(ref) or _resolve(_dotted(node.value), modules) == ref.rsplit(".", 1)[0]):
                found.add(("names", ref, ref), node)
            if node.attr in INTERPRETER_ATTRS:
                found.add(("interp", node.attr, "*"), node)
            if isinstance(node.ctx, ast.Store) and _is_course(_dotted(node.value), modules):
                found.add(("patch", f"{_dotted(node.value)}.{node.attr}", "*"), node)
        elif isinstance(node, ast.Name) and node.id in INTERPRETER_ATTRS:
            found.add(("interp", node.id, "*"), node)
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in DYNAMIC_CALLS:
                found.add(("dynamic", name, "*"), node)
            if name in ("setattr", "delattr") and node.args and _is_course(_dotted(node.args[0]), modules):
                found.add(("patch", f"{_dotted(node.args[0])} (through {name})", "*"), node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in bare or any(node.value == r for r in refs):
                ref = bare.get(node.value, node.value)
                found.add(("names", ref, ref), node)
            if _PATHS.search(node.value):
                found.add(("path", node.value[:80], "*"), node)
    return found


def _is_method(dotted: str) -> bool:
    """``a.b.Class.method``: called on instances, so any ``.method`` counts."""
    parts = dotted.split(".")
    return len(parts) > 2 and parts[-2][:1].isupper()


def _resolve(name: str, modules: Mapping[str, str]) -> str:
    """The dotted name ``name`` (as written in the cell) stands for, through the cell's imports."""
    head, _, rest = name.partition(".")
    bound = modules.get(head, head)
    return f"{bound}.{rest}" if rest else bound


def _module_use(full: str, refs: list[str]) -> list[tuple[str, str, str]]:
    out = [("imports", r, r) for r in refs if full == r]
    if full.split(".")[0] in INTERPRETER_MODULES:
        out.append(("interp", full, "*"))
    if full.startswith("cfopt.course") and full not in ALLOWED_COURSE and not full.startswith("cfopt.course.kit."):
        out.append(("machinery", full, "*"))
    return out


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_course(name: str, modules: Mapping[str, str]) -> bool:
    """Is ``name`` (as written) bound to cfopt.course or one of its modules (kit, checks, ...)?"""
    if not name:
        return False
    head, _, rest = name.partition(".")
    bound = modules.get(head, head if head in ("cfopt", "kit") else "")
    full = f"{bound}.{rest}" if rest else bound
    return full == "kit" or full.startswith("cfopt.course")


_WORDS = {
    "imports": "imports {subject}, the library's own answer to the exercise",
    "names": "uses {subject}, the library's own answer to the exercise",
    "machinery": "imports {subject}, the grader's machinery",
    "patch": "changes {subject}, part of the check machinery",
    "interp": "uses {subject}, which can rewrite code the grader relies on",
    "dynamic": "runs code made at run time ({subject})",
    "path": "refers to a solutions folder ({subject!r})",
}


def scan_cell(source: str, original: str, references: Iterable[str],
              defined: Iterable[str] = ()) -> list[Evidence]:
    """Evidence in ``source`` beyond what ``original`` (the author's cell) already had."""
    refs = set(references)
    mine = _findings(source, refs, defined)
    extra = mine - _findings(original, refs, defined)
    out = []
    for key in sorted(extra, key=lambda k: mine.lines.get(k, 0)):
        kind, subject, scope = key
        line = mine.lines.get(key)
        out.append(Evidence(f"{'line ' + str(line) + ' ' if line else ''}{_WORDS[kind].format(subject=subject)}",
                            scope))
    # an import of a reference also counts as naming it: keep one reason per reference
    named = {e.scope for e in out if "imports" in e.reason and e.scope != "*"}
    return [e for e in out if not (e.scope in named and "uses" in e.reason and e.scope != "*")]


def scan_notebook(cells: Iterable[Mapping[str, Any]], original: Mapping[str, str],
                  references: Iterable[str], *, skip: Iterable[int] = (),
                  defined: Iterable[str] = ()) -> list[Evidence]:
    """Scan every code cell not in ``skip``, each against ``original[cell id]`` (or nothing)."""
    refs, skipped, out = set(references), set(skip), []
    sources = list(original.values())
    for index, cell in enumerate(cells):
        if index in skipped or cell.get("cell_type") != "code":
            continue
        source = _text(cell.get("source", ""))
        before = original.get(str(cell.get("id")))
        if before is None:   # ids lost on the way (another editor): the most alike author cell
            before = _closest(source, sources)
        if source == before:
            continue
        for e in scan_cell(source, before, refs, defined):
            out.append(Evidence(f"cell {index}, {e.reason}", e.scope))
    return out


def _closest(source: str, sources: list[str]) -> str:
    """The author's cell ``source`` most likely started from, or "" (a cell of the learner's own)."""
    import difflib
    if source in sources:
        return source
    best, score = "", 0.5          # below half alike, the cell is the learner's own
    for candidate in sources:
        matcher = difflib.SequenceMatcher(None, source, candidate, autojunk=False)
        if matcher.real_quick_ratio() > score and matcher.quick_ratio() > score and (r := matcher.ratio()) > score:
            best, score = candidate, r
    return best


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def defined_names(cells: Iterable[Mapping[str, Any]]) -> set[str]:
    """Top-level functions and classes the cells define (the exercise's own names)."""
    out: set[str] = set()
    for cell in cells:
        if cell.get("cell_type") == "code" and (tree := _parse(_text(cell.get("source", "")))) is not None:
            out |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return out
