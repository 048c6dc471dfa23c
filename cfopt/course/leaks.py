"""Hints and feedback that give the answer away: find solution code inside teaching text.

A hint should teach the idea, the approach and where it usually goes wrong; a "not yet" message
should say what the learner's code did. Neither may hand over the solution: a line of it, or an
expression that solves the exercise (``min(cap_s, base_s * 2 ** retry)``). ``LeakFinder`` is built
from a solved notebook's solution regions and looks for them in any text:

- **a copied line**: a solution line (at least ``MIN_LINE`` characters once spaces are dropped)
  found in the text with spaces dropped;
- **a copied expression**: an expression of the solution with at least ``MIN_NODES`` syntax nodes,
  found in the text as source (spaces dropped) or, parsed from a code span of the text (between
  backticks, or a whole line that parses), with the same syntax tree.

Names, single calls and short comparisons (``analysis.need``, ``len(items)``) are below the bar:
a hint may name what to look at. ``teaching_texts`` lists what a learner reads besides the code:
markdown (solution answers left out), the stubs' ``# Hint:`` lines, comments and docstrings of
exercise cells, and the strings of check cells.

>>> finder = LeakFinder(["return min(cap_s, base_s * 2 ** retry)"])
>>> [leak.kind for leak in finder.find("Cap the delay: `min(cap_s, base_s*2**retry)`")]
['expression']
>>> finder.find("The ceiling doubles with each retry and never passes the cap.")
[]
"""
from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from .cells import check_name, text

__all__ = ["Leak", "LeakFinder", "MIN_LINE", "MIN_NODES", "solution_regions", "teaching_texts",
           "find_leaks"]

MIN_LINE = 12      # characters of a solution line, spaces dropped
MIN_NODES = 5      # syntax nodes of a solution expression (names, calls, operators, constants)

_BEGIN, _END, _HINT = "### BEGIN SOLUTION", "### END SOLUTION", "# Hint:"
_MD_BEGIN, _MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
_SPAN = re.compile(r"``([^`]+)``|`([^`\n]+)`")
_SKIP = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


@dataclass(frozen=True, slots=True)
class Leak:
    """Solution code found in a teaching text: where, which text, what was found, and how."""

    where: str
    kind: str        # "line" or "expression"
    found: str       # the solution's line or expression

    def __str__(self) -> str:
        return f"{self.where}: gives away the solution's {self.kind} `{self.found}`"


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _nodes(node: ast.AST) -> int:
    return sum(1 for n in ast.walk(node) if not isinstance(n, _SKIP))


def _shape(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return None


def _expressions(tree: ast.AST) -> Iterator[ast.expr]:
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and not isinstance(node, ast.JoinedStr | ast.Constant):
            yield node


class LeakFinder:
    """What a solution is made of, ready to be looked for in texts."""

    def __init__(self, solutions: Iterable[str]) -> None:
        self.lines: dict[str, str] = {}
        self.exprs: dict[str, str] = {}    # squashed source -> source
        self.shapes: dict[str, str] = {}   # ast dump -> source
        for source in solutions:
            for line in source.split("\n"):
                code = _code_part(line)
                if len(_squash(code)) >= MIN_LINE:
                    self.lines.setdefault(_squash(code), code.strip())
            tree = _parse(source)
            if tree is None:
                continue
            for node in _expressions(tree):
                if _nodes(node) >= MIN_NODES:
                    src = ast.unparse(node)
                    self.exprs.setdefault(_squash(src), src)
                    self.shapes.setdefault(_shape(node), src)

    def find(self, body: str, where: str = "text") -> list[Leak]:
        """Every solution line or expression that ``body`` gives away (each reported once)."""
        flat = _squash(body)
        found: dict[tuple[str, str], Leak] = {}
        for squashed, line in self.lines.items():
            if squashed in flat:
                found.setdefault(("line", line), Leak(where, "line", line))
        for squashed, src in self.exprs.items():
            if squashed in flat and not any(squashed in k for (kind, k) in found if kind == "line"):
                found.setdefault(("expression", src), Leak(where, "expression", src))
        for span in _code_spans(body):
            tree = _parse(span)
            if tree is None:
                continue
            for node in _expressions(tree):
                src = self.shapes.get(_shape(node))
                if src is not None:
                    found.setdefault(("expression", src), Leak(where, "expression", src))
        # a part of something already reported says nothing new
        flat_found = [_squash(k) for _, k in found]
        return [leak for (kind, k), leak in found.items()
                if not any(_squash(k) != other and _squash(k) in other for other in flat_found)]


def _code_part(line: str) -> str:
    """A line without its comment (a ``#`` outside strings), or ``""`` for hint/marker lines."""
    stripped = line.strip()
    if stripped.startswith("#"):
        return ""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(stripped + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return stripped
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            return stripped[: tok.start[1]].rstrip()
    return stripped


def _code_spans(body: str) -> Iterator[str]:
    for m in _SPAN.finditer(body):
        yield m.group(1) or m.group(2)
    for line in body.split("\n"):
        line = line.strip().lstrip("#").strip()
        if line:
            yield line


def solution_regions(nb: Mapping[str, Any]) -> list[str]:
    """The code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in every code cell,
    without its ``# Hint:`` lines, one string per region."""
    regions: list[str] = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        inside: list[str] | None = None
        for line in text(cell.get("source", "")).split("\n"):
            mark = line.strip()
            if mark == _BEGIN:
                inside = []
            elif mark == _END and inside is not None:
                regions.append("\n".join(inside))
                inside = None
            elif inside is not None and not mark.startswith(_HINT):
                inside.append(line)
    return regions


def _without_md_answers(source: str) -> str:
    out, inside = [], False
    for line in source.split("\n"):
        mark = line.strip()
        if mark == _MD_BEGIN:
            inside = True
        elif mark == _MD_END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _strings_and_comments(source: str) -> Iterator[str]:
    """String constants (f-strings' literal parts too) and comments of ``source``."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens = []
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            yield tok.string.lstrip("#").strip()
    tree = _parse(source)
    if tree is None:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _outside_regions(source: str) -> str:
    out, inside = [], False
    for line in source.split("\n"):
        mark = line.strip()
        if mark == _BEGIN:
            inside = True
            out.append(line)
        elif mark == _END:
            inside = False
        elif not inside or mark.startswith(_HINT):
            out.append(line)
    return "\n".join(out)


def teaching_texts(nb: Mapping[str, Any], name: str = "notebook") -> list[tuple[str, str]]:
    """``(where, text)`` for everything a learner reads in the exercise besides code: markdown
    (answers left out), ``# Hint:`` lines, comments and strings of code cells outside solution
    regions (docstrings, check-cell messages)."""
    out: list[tuple[str, str]] = []
    for i, cell in enumerate(nb.get("cells", [])):
        source = text(cell.get("source", ""))
        if cell.get("metadata", {}).get("cfopt", {}).get("probe"):
            continue                                   # the instructor's, never shown
        where = f"{name}, cell {i}"
        if cell.get("cell_type") == "markdown":
            out.append((where, _without_md_answers(source)))
        elif cell.get("cell_type") == "code":
            visible = _outside_regions(source)
            kind = "check cell" if check_name(cell) else "cell"
            for s in _strings_and_comments(visible.replace(_BEGIN, "").replace(_HINT, "#")):
                if s.strip():
                    out.append((f"{where} ({kind})", s))
    return out


def find_leaks(nb: Mapping[str, Any], name: str = "notebook") -> list[Leak]:
    """Every place in ``nb``'s teaching texts that gives away its own solution code."""
    finder = LeakFinder(solution_regions(nb))
    return [leak for where, body in teaching_texts(nb, name) for leak in finder.find(body, where)]
