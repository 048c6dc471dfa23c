"""``cfopt kit release DIR``: the learners' copy of the kit for a graded class.

The copy has what a learner needs and nothing an instructor grades with: the exercise
notebooks (built from ``solutions/`` now, so they are never stale), the library, the datasets,
and what installs them. It has no ``solutions/`` (so no probe cells: they live only there), no
tests (the red-team notebooks and the tests' solved fixtures), no benchmarks, no ``.git``.

The public kit itself keeps ``solutions/`` for self-paced learners; grading stays fair anyway
because hidden cases come from the seed the instructor passes to ``cfopt grade --seed``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ConfigError
from .cells import probe_name
from .kit import build_all

__all__ = ["release", "RELEASED_FILES"]

RELEASED_FILES = ("README.md", "Makefile", "pyproject.toml", "LICENSE")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")


def release(kit_root: Path | str, target: Path | str) -> list[Path]:
    """Write the learners' copy of the kit at ``kit_root`` into the new folder ``target``.

    Returns the files written. Refuses a ``target`` that exists and is not empty, or that lies
    inside the kit.
    """
    root, out = Path(kit_root).resolve(), Path(target).resolve()
    if not (root / "solutions").is_dir() or not (root / "cfopt").is_dir():
        raise ConfigError(f"{root} is not a course kit (no solutions/ or cfopt/ in it)")
    if out == root or out.is_relative_to(root):
        raise ConfigError(f"{target} is inside the kit; release into a folder of its own")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{target} exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    build_all(root / "solutions", out / "notebooks")
    shutil.copytree(root / "cfopt", out / "cfopt", ignore=_SKIP)
    if (root / "datasets").is_dir():
        shutil.copytree(root / "datasets", out / "datasets", ignore=_SKIP)
    if (root / "docs").is_dir():
        shutil.copytree(root / "docs", out / "docs", ignore=_SKIP)
    for name in RELEASED_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, out / name)
    written = sorted(p for p in out.rglob("*") if p.is_file())
    _verify(out, written)
    return written


def _verify(out: Path, written: list[Path]) -> None:
    """Refuse to leave behind a copy that holds solutions or probes (a bug here must be loud)."""
    import json
    for p in written:
        if "solutions" in p.relative_to(out).parts:
            raise ConfigError(f"release would contain {p}; nothing under solutions/ may leave the kit")
        if p.suffix == ".ipynb":
            nb = json.loads(p.read_text(encoding="utf-8"))
            if any(probe_name(c) is not None for c in nb.get("cells", [])):
                raise ConfigError(f"release would contain probe cells in {p}")
            if any("### BEGIN SOLUTION" in "".join(c.get("source", "")) for c in nb.get("cells", [])):
                raise ConfigError(f"release would contain a solution region in {p}")
