"""Exercises and their solutions: which solution a submission belongs to, and its checks merged in.

A submission names its exercise in its notebook metadata (``cfopt.exercise``, written by
``cfopt kit build``), so a file saved as ``04_batch_processing (1).ipynb`` still finds
``solutions/04_batch_processing.ipynb``. Its check cells are replaced by the solution's, like
nbgrader's autograder: editing a check earns nothing.
"""
from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from .cells import check_cells, check_name, exercise_id, probe_cells, probe_name, text
from .scan import defined_names

__all__ = ["Exercise", "Solutions", "find_solution", "merge_checks", "kit_solutions", "load_notebook"]


def kit_solutions() -> Path:
    """The kit's own ``solutions/`` folder (next to the installed package)."""
    return Path(__file__).resolve().parents[2] / "solutions"


@dataclass(frozen=True, slots=True)
class Exercise:
    """A solution notebook read once: its checks, probes, and the exercise the learner got."""

    id: str
    path: Path
    nb: dict[str, Any]
    checks: tuple[tuple[int, str, float], ...]
    probes: Mapping[str, Any]
    authored: Mapping[str, str]       # cell id -> the author's source (exercise cells, probe cells)
    defined: frozenset[str]           # functions and classes the exercise defines

    @classmethod
    def load(cls, path: Path) -> "Exercise":
        from .kit import build_notebook
        nb = load_notebook(path)
        where = str(path)
        probes = probe_cells(nb, where)
        exercise = build_notebook(nb, name=where)
        # a learner who copied the solution's probe cells copied author code: not theirs to scan
        authored = {str(c.get("id")): text(c.get("source", "")) for c in
                    [*exercise["cells"], *(nb["cells"][p.index] for p in probes.values())] if c.get("id")}
        return cls(exercise_id(nb) or path.stem, path, nb, tuple(check_cells(nb, where)), probes, authored,
                   frozenset(defined_names(exercise["cells"])))

    @property
    def references(self) -> list[str]:
        return sorted({r for p in self.probes.values() for r in p.references})

    def where(self, nb: Mapping[str, Any]) -> dict[str, int]:
        """Where each check of this exercise sits in ``nb``."""
        names = {name for _, name, _ in self.checks}
        return {name: i for i, c in enumerate(nb["cells"]) if (name := check_name(c)) in names}


def load_notebook(path: Path) -> dict[str, Any]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not a notebook (invalid JSON: {e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a notebook (not UTF-8 text)") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise ConfigError(f"{path}: not an nbformat 4 notebook")
    return nb


class Solutions:
    """The solutions folder, indexed by exercise id; each solution is read when first needed."""

    def __init__(self, folder: Path | str | None) -> None:
        self.folder = Path(folder) if folder is not None else kit_solutions()
        if not self.folder.is_dir():
            raise ConfigError(f"no solutions folder at {self.folder}; pass --solutions FOLDER")
        self._paths: dict[str, Path] = {}
        for p in sorted(self.folder.glob("*.ipynb")):
            try:
                ident = exercise_id(json.loads(p.read_text(encoding="utf-8"))) or p.stem
            except (ValueError, OSError):
                continue
            self._paths.setdefault(ident, p)
        self._loaded: dict[str, Exercise] = {}
        self._lock = threading.Lock()

    def find(self, nb: Mapping[str, Any], path: Path) -> Exercise:
        """The exercise of ``nb``: by its metadata, else (no metadata) by the file's own name."""
        ident = exercise_id(nb)
        if ident is None and path.stem in self._paths:
            ident = path.stem
        if ident is None:
            raise ConfigError(f"{path.name}: no exercise id in its metadata (cfopt.exercise; notebooks "
                              f"made by `cfopt kit build` have one) and no solution named {path.name} "
                              f"in {self.folder}")
        if ident not in self._paths:
            raise ConfigError(f"{path.name}: exercise {ident!r} has no solution in {self.folder}")
        with self._lock:
            if ident not in self._loaded:
                self._loaded[ident] = Exercise.load(self._paths[ident])
            return self._loaded[ident]


def find_solution(notebook: Path | str, solutions: Path | str | None = None) -> Path:
    """Return the solution notebook of ``notebook`` (matched by metadata, see ``Solutions``)."""
    path = Path(notebook)
    return Solutions(solutions).find(load_notebook(path), path).path


def merge_checks(learner: Mapping[str, Any], solution: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Return the learner's notebook with the solution's check cells, and where each check is.

    Learner check cells are replaced by the solution's cell of that name; duplicates, checks
    the solution does not know, and probe cells lose their status and run as plain code;
    missing checks are inserted after the cell the solution has before them (matched by cell
    id or check name), else at the end. Probe cells of the solution are never added.
    """
    sol_cells = [c for c in solution["cells"] if probe_name(c) is None]
    sol_checks = {name: sol_cells[i] for i, name, _ in check_cells({"cells": sol_cells}, "solution")}
    nb = copy.deepcopy(dict(learner))
    cells: list[dict[str, Any]] = []
    placed: set[str] = set()
    for cell in nb["cells"]:
        name = check_name(cell)
        if name in sol_checks and name not in placed and probe_name(cell) is None:
            real = copy.deepcopy(sol_checks[name])
            real["outputs"], real["execution_count"] = [], None
            if "id" in cell:
                real["id"] = cell["id"]
            cells.append(real)
            placed.add(name)
        else:
            if name is not None or probe_name(cell) is not None:  # not a real check: never read
                cell = copy.deepcopy(cell)
                cell.setdefault("metadata", {}).pop("cfopt", None)
            cells.append(cell)
    for pos, sol_cell in enumerate(sol_cells):
        name = check_name(sol_cell)
        if name is None or name in placed:
            continue
        real = copy.deepcopy(sol_cell)
        real["outputs"], real["execution_count"] = [], None
        real.pop("id", None)
        cells.insert(_anchor(cells, sol_cells[:pos]), real)
        placed.add(name)
    nb["cells"] = cells
    where = {name: i for i, c in enumerate(cells) if (name := check_name(c)) in sol_checks}
    return nb, where


def _anchor(cells: list[dict[str, Any]], before: list[dict[str, Any]]) -> int:
    """Index just after the learner cell matching the nearest solution cell in ``before``."""
    for sol_cell in reversed(before):
        key_id, key_name = sol_cell.get("id"), check_name(sol_cell)
        for i, c in enumerate(cells):
            if (key_id and c.get("id") == key_id) or (key_name and check_name(c) == key_name):
                return i + 1
    return len(cells)


