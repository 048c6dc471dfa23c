"""The public surface: what ``cfopt`` and its part packages export, and how notebooks import it."""
from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("cost", "cache", "latency", "batching", "monitoring", "pipeline", "course", "providers",
         "server", "workload", "bonus")


def test_the_exercise_classes_import_from_cfopt_in_a_fresh_interpreter():
    code = ("from cfopt import CostOptimizer, CacheManager, ContentDeduplication, "
            "PerformanceOptimizer, BatchProcessor, PerformanceMonitor, Pipeline, PipelineConfig; "
            "print('ok')")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                          cwd="/", timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("name", ["cfopt", *(f"cfopt.{p}" for p in PARTS)])
def test_every_exported_name_exists(name):
    module = importlib.import_module(name)
    missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)
               and importlib.util.find_spec(f"{name}.{n}") is None]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"


def test_the_package_mirrors_the_course():
    flat = sorted(p.name for p in (ROOT / "cfopt").glob("*.py"))
    assert len(flat) <= 12, flat
    for part in PARTS:
        assert (ROOT / "cfopt" / part / "__init__.py").exists(), part


def _notebook_imports(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            found += re.findall(r"^\s*(?:from|import)\s+(cfopt[\w.]*)", "".join(cell["source"]), re.M)
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_import_the_library_never_a_command_line_module(path):
    for module in _notebook_imports(path):
        assert module.split(".")[1:2] != ["cli"] and "command" not in module, (path.name, module)
        importlib.import_module(module)   # and every one of them exists
