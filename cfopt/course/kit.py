"""The course kit: exercise notebooks built from solved ones, and what notebooks import.

A solved notebook in ``solutions/`` is the single source. ``build_notebook`` turns it into the
exercise a learner gets: every region between a ``### BEGIN SOLUTION`` line and a
``### END SOLUTION`` line becomes a stub that raises ``NotImplementedError`` with the region's
``# Hint:`` lines as its message; outputs and execution counts are cleared.

>>> solved = '''def double(x):
...     ### BEGIN SOLUTION
...     # Hint: multiply x by two
...     return 2 * x
...     ### END SOLUTION'''
>>> print(stub_source(solved))
def double(x):
    # Hint: multiply x by two
    raise NotImplementedError('multiply x by two')

Notebook cells use ``kit.check`` and ``kit.expect`` (from ``cfopt.course.checks``), ``kit.setup`` and
``kit.repo_path``. ``docs/notebooks.md`` describes the whole convention.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import (CheckFailed, CheckResult, check, expect, expect_close, expect_equal,
                     expect_type, results, stub)
from .cells import check_cells, exercise_id, probe_cells, probe_name, text
from .probe import Probe, probe
from ..errors import ConfigError

__all__ = [
    "BEGIN", "END", "MD_BEGIN", "MD_END", "HINT", "MD_PLACEHOLDER", "ALLOW_ERROR_TAG",
    "build_notebook", "build_all",
    "stub_source", "check_cells", "probe_cells", "repo_path", "setup", "Setup", "redis_url", "namespace",
    "REDIS_URL_ENV", "NAMESPACE_ENV",
    "check", "expect", "expect_close", "expect_equal", "expect_type", "results", "stub",
    "CheckFailed", "CheckResult", "probe", "Probe",
]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
HINT = "# Hint:"
MD_PLACEHOLDER = "*Write your answer here.*"
ALLOW_ERROR_TAG = "raises-exception"  # honoured by nbval 0.11 and nbclient: the error is expected


def stub_source(source: str, *, where: str = "this cell") -> str:
    """Return ``source`` with each solution region replaced by a ``NotImplementedError`` stub."""
    out: list[str] = []
    lines = source.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == END:
            raise ConfigError(f"{where}: {END!r} on line {i + 1} has no {BEGIN!r} before it")
        if line.strip() != BEGIN:
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        start, i = i, i + 1
        hints: list[str] = []
        while i < len(lines) and lines[i].strip().startswith(HINT):
            hints.append(lines[i].strip()[len(HINT):].strip())
            out.append(indent + lines[i].strip())
            i += 1
        while i < len(lines) and lines[i].strip() != END:
            if lines[i].strip() == BEGIN:
                raise ConfigError(f"{where}: {BEGIN!r} on line {i + 1} inside the region "
                                  f"opened on line {start + 1}; regions cannot nest")
            i += 1
        if i == len(lines):
            raise ConfigError(f"{where}: {BEGIN!r} on line {start + 1} has no matching {END!r}")
        message = _join_hints(hints) or "write your code here"
        out.append(f"{indent}raise NotImplementedError({message!r})")
        i += 1  # past END
    return "\n".join(out)


def _join_hints(hints: list[str]) -> str:
    """Join hint lines into one message; a line that ends without punctuation gets a "; "."""
    out = ""
    for h in filter(None, hints):
        out = h if not out else out + (" " if out[-1] in ".,;:!?" else "; ") + h
    return out


def _strip_markdown(source: str, where: str) -> str:
    out: list[str] = []
    inside = None
    for n, line in enumerate(source.split("\n"), 1):
        mark = line.strip()
        if mark == MD_BEGIN:
            if inside is not None:
                raise ConfigError(f"{where}: {MD_BEGIN!r} on line {n} inside another region")
            inside = n
        elif mark == MD_END:
            if inside is None:
                raise ConfigError(f"{where}: {MD_END!r} on line {n} has no {MD_BEGIN!r} before it")
            inside = None
            out.append(MD_PLACEHOLDER)
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise ConfigError(f"{where}: {MD_BEGIN!r} on line {inside} has no matching {MD_END!r}")
    return "\n".join(out)


def _has_top_level_stub(source: str) -> bool:
    return any(line.startswith(BEGIN) for line in source.split("\n"))


def build_notebook(nb: dict[str, Any], *, name: str = "notebook") -> dict[str, Any]:
    """Return the exercise version of the solved notebook ``nb`` (nbformat 4 as a dict)."""
    if nb.get("nbformat") != 4:
        raise ConfigError(f"{name}: expected nbformat 4, got {nb.get('nbformat')!r}")
    probe_cells(nb, name)       # validates the check cells too
    out = json.loads(json.dumps(nb))  # a deep copy that leaves the source untouched
    # probes are the instructor's: they stay in solutions/ (and out of `cfopt kit release`)
    out["cells"] = [c for c in out.get("cells", []) if probe_name(c) is None]
    exercise = exercise_id(nb) or Path(name).stem
    out.setdefault("metadata", {}).setdefault("cfopt", {})["exercise"] = exercise
    needs_ids = out.get("nbformat_minor", 0) >= 5
    for idx, cell in enumerate(out.get("cells", [])):
        where = f"{name}, cell {idx}"
        source = text(cell.get("source", ""))
        if needs_ids and "id" not in cell:
            # a stable id from the notebook's name and the cell's place keeps rebuilds byte-identical
            cell["id"] = hashlib.sha1(f"{name}:{idx}".encode()).hexdigest()[:8]
        meta = cell.setdefault("metadata", {})
        meta.pop("execution", None)  # nbclient timings: never the same twice
        if cell.get("cell_type") == "code":
            cell["source"] = stub_source(source, where=where)
            cell["outputs"], cell["execution_count"] = [], None
            if _has_top_level_stub(source):
                tags = meta.setdefault("tags", [])
                if ALLOW_ERROR_TAG not in tags:
                    tags.append(ALLOW_ERROR_TAG)
        elif cell.get("cell_type") == "markdown":
            cell["source"] = _strip_markdown(source, where)
    return out


def _dumps(nb: dict[str, Any]) -> str:
    # nbformat's own layout (sorted keys, indent 1, source as a list of lines), so a notebook
    # saved by Jupyter and one written here look alike in a diff
    import nbformat
    node = nbformat.from_dict(nb)
    nbformat.validate(node)
    return nbformat.writes(node) + "\n"


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not a notebook (invalid JSON: {e})") from None


def build_all(solutions_dir: Path | str, notebooks_dir: Path | str, *, check: bool = False) -> list[Path]:
    """Build ``notebooks_dir/NN.ipynb`` from each ``solutions_dir/NN.ipynb``.

    Writes only files whose content changes and returns every exercise notebook built; with
    ``check=True`` writes nothing and returns the ones that are missing or out of date.
    """
    src, dst = Path(solutions_dir), Path(notebooks_dir)
    if not src.is_dir():
        raise ConfigError(f"no solutions folder at {src}")
    built: list[Path] = []
    for path in sorted(src.glob("*.ipynb")):
        target = dst / path.name
        solved = _load(path)
        declared = exercise_id(solved)
        if declared is not None and declared != path.stem:
            raise ConfigError(f"{path}: notebook metadata cfopt.exercise is {declared!r} but the file "
                              f"is {path.name}; each solution names its own exercise (its file stem)")
        content = _dumps(build_notebook(solved, name=str(path)))
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if check:
            if current != content:
                built.append(target)
            continue
        if current != content:
            dst.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        built.append(target)
    return built


def repo_path(relative: str | Path) -> Path:
    """Return ``relative`` inside the kit's folder, from notebooks/, solutions/ or anywhere.

    Looks in ``$CFOPT_ROOT``, then the current folder and its parents, then the folder that
    holds the installed ``cfopt`` package (an editable install lives in the repository).
    """
    rel = Path(relative)
    roots = [Path(os.environ["CFOPT_ROOT"])] if os.environ.get("CFOPT_ROOT") else []
    cwd = Path.cwd().resolve()
    roots += [cwd, *cwd.parents, Path(__file__).resolve().parents[2]]
    for root in roots:
        if (root / rel).exists():
            return root / rel
    raise ConfigError(f"cannot find {rel} in $CFOPT_ROOT, {cwd} or its parents, or next to the "
                      f"cfopt package; run the notebook from the course folder or set CFOPT_ROOT")


REDIS_URL_ENV = "CFOPT_REDIS_URL"     # a class's shared Redis server (docs/workshops.md)
NAMESPACE_ENV = "CFOPT_NAMESPACE"     # this learner's key prefix on it


def redis_url(default: str = "redis://127.0.0.1:6379/0") -> str:
    """The Redis server a notebook uses: ``$CFOPT_REDIS_URL`` (a workshop's shared one), else ``default``."""
    return os.environ.get(REDIS_URL_ENV, "").strip() or default


def namespace(name: str) -> str:
    """``name`` under this learner's prefix (``$CFOPT_NAMESPACE``), so learners sharing one Redis
    never read, overwrite or clear each other's keys.

    >>> saved = os.environ.pop(NAMESPACE_ENV, None)
    >>> namespace("cfopt-nb02-0")
    'cfopt-nb02-0'
    >>> os.environ[NAMESPACE_ENV] = "alice"; namespace("cfopt-nb02-0")
    'alice:cfopt-nb02-0'
    >>> _ = os.environ.pop(NAMESPACE_ENV) if saved is None else os.environ.update({NAMESPACE_ENV: saved})
    """
    from ..cache.layers.base import check_namespace
    prefix = os.environ.get(NAMESPACE_ENV, "").strip()
    return check_namespace(f"{prefix}:{name}" if prefix else name)


@dataclass(frozen=True, slots=True)
class Setup:
    """What a notebook's first cell set up."""

    seed: int
    root: Path


def setup(seed: int = 0) -> Setup:
    """Seed ``random`` (and NumPy), set readable pandas and matplotlib defaults; return a ``Setup``."""
    random.seed(seed)
    try:
        import numpy as np
        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a dependency, but setup should not need it
        pass
    try:
        import pandas as pd
        pd.set_option("display.max_columns", 20)
        pd.set_option("display.width", 120)
        pd.set_option("display.max_colwidth", 80)
    except ImportError:  # pragma: no cover
        pass
    try:
        import matplotlib as mpl
        mpl.rcParams.update({"figure.figsize": (8, 3.5), "figure.dpi": 80, "axes.grid": True})
    except ImportError:  # pragma: no cover
        pass
    try:
        root = repo_path("datasets").parent
    except ConfigError:  # an installed kit without its data: relative paths start here
        root = Path.cwd()
    return Setup(seed=seed, root=root)
