"""What the cells of a course notebook mean: check cells, probe cells, the exercise's id.

Cell metadata says it (JupyterLab: the property inspector, "Cell Metadata"):

- ``{"cfopt": {"check": "<name>", "points": 2}}``: a check cell, run in the learner's kernel for
  instant feedback; the cell calls ``kit.check("<name>", points=2)``.
- ``{"cfopt": {"probe": "<name>"}}``: the probe cell of that check, only in ``solutions/``
  (``cfopt kit build`` leaves it out of the exercise); the cell decorates a function with
  ``kit.probe("<name>", reference=..., verdict=..., **params)``.

and notebook metadata ``{"cfopt": {"exercise": "04_batch_processing"}}`` names the exercise, so
``cfopt grade`` matches a submission to its solution whatever the file is called.

The probe's arguments must be literals: the grader reads them here, without running the cell,
to know before the learner's code runs which references to keep an eye on.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError

__all__ = ["ProbeCell", "check_cells", "probe_cells", "check_name", "probe_name", "exercise_id", "text"]

BEGIN = "### BEGIN SOLUTION"


def text(source: Any) -> str:
    """A cell's source as one string (nbformat stores a list of lines or a string)."""
    return "".join(source) if isinstance(source, list) else str(source)


def _meta(cell: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = cell.get("metadata", {}).get("cfopt", {})
    return meta if isinstance(meta, dict) else {}


def check_name(cell: Mapping[str, Any]) -> str | None:
    """The check a cell is, or None."""
    return _meta(cell).get("check")


def probe_name(cell: Mapping[str, Any]) -> str | None:
    """The check a probe cell probes, or None."""
    return _meta(cell).get("probe")


def exercise_id(nb: Mapping[str, Any]) -> str | None:
    """The exercise a notebook belongs to (notebook metadata ``cfopt.exercise``), or None."""
    meta = nb.get("metadata", {}).get("cfopt", {})
    value = meta.get("exercise") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def check_cells(nb: Mapping[str, Any], where: str = "notebook") -> list[tuple[int, str, float]]:
    """Return ``(cell index, check name, points)`` for every check cell, validating each."""
    found: list[tuple[int, str, float]] = []
    seen: dict[str, int] = {}
    for idx, cell in enumerate(nb.get("cells", [])):
        meta = _meta(cell)
        if "check" not in meta:
            continue
        name, points = meta["check"], meta.get("points", 1)
        if cell.get("cell_type") != "code" or not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}, cell {idx}: a check cell must be a code cell with a "
                              f"non-empty string name in metadata cfopt.check")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
            raise ConfigError(f"{where}, cell {idx}: check {name!r} has points {points!r}; "
                              f"use a number >= 0")
        if name in seen:
            raise ConfigError(f"{where}, cell {idx}: check name {name!r} is also used by cell "
                              f"{seen[name]}; every check in a notebook needs its own name")
        if BEGIN in text(cell.get("source", "")):
            raise ConfigError(f"{where}, cell {idx}: check {name!r} contains a solution region; "
                              f"keep solutions out of check cells")
        _match_check(text(cell.get("source", "")), name, points, f"{where}, cell {idx}")
        seen[name] = idx
        found.append((idx, name, points))
    return found


def _calls(source: str, func: str) -> list[ast.Call] | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics
        return None
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and
            (getattr(n.func, "attr", None) == func or getattr(n.func, "id", None) == func)]


def _match_check(source: str, name: str, points: float, where: str) -> None:
    """Insist the cell calls ``kit.check`` with the metadata's name and points, when literal."""
    calls = _calls(source, "check")
    if calls is None:   # nothing to compare; the check still runs
        return
    if not calls:
        raise ConfigError(f"{where}: check cell {name!r} never calls kit.check(...)")
    for call in calls:
        given = call.args[0] if call.args else next(
            (k.value for k in call.keywords if k.arg == "name"), None)
        if isinstance(given, ast.Constant) and given.value != name:
            raise ConfigError(f"{where}: kit.check({given.value!r}) but the cell metadata names "
                              f"the check {name!r}; use one name in both")
        pts = call.args[1] if len(call.args) > 1 else next(
            (k.value for k in call.keywords if k.arg == "points"), ast.Constant(1))
        if isinstance(pts, ast.Constant) and pts.value != points:
            raise ConfigError(f"{where}: check {name!r} has points={pts.value!r} in kit.check but "
                              f"{points!r} in the cell metadata; make them equal")


@dataclass(frozen=True, slots=True)
class ProbeCell:
    """A probe cell as the grader reads it, without running it."""

    index: int
    check: str
    source: str
    references: tuple[str, ...] = ()
    verdict: str = "close"
    params: Mapping[str, Any] = field(default_factory=dict)


def probe_cells(nb: Mapping[str, Any], where: str = "notebook") -> dict[str, ProbeCell]:
    """Return ``{check name: ProbeCell}``: exactly one probe per check, with literal arguments."""
    from . import probe as probe_module
    from .verdicts import VERDICTS

    checks = {name: idx for idx, name, _ in check_cells(nb, where)}
    found: dict[str, ProbeCell] = {}
    for idx, cell in enumerate(nb.get("cells", [])):
        name = probe_name(cell)
        if name is None:
            continue
        at = f"{where}, cell {idx}"
        if cell.get("cell_type") != "code" or name not in checks:
            raise ConfigError(f"{at}: probe cell for {name!r}, but no check cell has that name")
        if name in found:
            raise ConfigError(f"{at}: a second probe cell for {name!r} (the first is cell {found[name].index})")
        source = text(cell.get("source", ""))
        if BEGIN in source:
            raise ConfigError(f"{at}: probe {name!r} contains a solution region; keep solutions out of probes")
        cell_probe = _read_probe(source, name, at)
        for dotted in cell_probe.references:
            try:
                probe_module.functions_of(probe_module.resolve(dotted), dotted)
            except ConfigError as e:
                raise ConfigError(f"{at}: {e}") from None
        if cell_probe.verdict not in VERDICTS:
            raise ConfigError(f"{at}: verdict {cell_probe.verdict!r} is not one of {sorted(VERDICTS)}")
        found[name] = ProbeCell(idx, name, source, cell_probe.references, cell_probe.verdict, cell_probe.params)
    missing = [name for name in checks if name not in found]
    if missing:
        raise ConfigError(f"{where}: check {missing[0]!r} (cell {checks[missing[0]]}) has no probe cell; "
                          f"cfopt grade scores probes, not check cells: add a code cell with metadata "
                          f'{{"cfopt": {{"probe": {missing[0]!r}}}}} (docs/notebooks.md)')
    return found


def _read_probe(source: str, name: str, where: str) -> ProbeCell:
    calls = _calls(source, "probe")
    if not calls:
        raise ConfigError(f"{where}: probe cell {name!r} never calls kit.probe(...)")
    if len(calls) > 1:
        raise ConfigError(f"{where}: one kit.probe per probe cell, found {len(calls)}")
    call = calls[0]
    try:
        given = ast.literal_eval(call.args[0]) if call.args else None
        keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except ValueError:
        raise ConfigError(f"{where}: kit.probe's arguments must be literals (the grader reads them "
                          f"without running the cell)") from None
    if given != name:
        raise ConfigError(f"{where}: kit.probe({given!r}) but the cell metadata names {name!r}; use one name")
    refs = keywords.pop("reference", ())
    refs = (refs,) if isinstance(refs, str) else tuple(refs)
    if not all(isinstance(r, str) for r in refs):
        raise ConfigError(f"{where}: reference= takes a dotted name or a list of them")
    kind = keywords.pop("verdict", "close")
    return ProbeCell(0, name, source, refs, kind, keywords)
