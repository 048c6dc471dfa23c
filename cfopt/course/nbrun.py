"""Run a notebook in a fresh kernel of this Python, with a time limit per cell and in all.

``run_notebook`` never raises for what the notebook does: a cell that raises is recorded in its
outputs and the run goes on; a cell past its time limit, or a kernel that dies, ends the run and
``NotebookRun.error`` says what happened and in which cell. The kernel is ``python3`` from the
environment running this code (like nbval's ``--nbval-current-env``), whatever kernelspecs are
installed, so grading never picks up another Python by accident.
"""
from __future__ import annotations

import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["NotebookRun", "run_notebook", "cell_label"]


@dataclass(frozen=True, slots=True)
class NotebookRun:
    """The executed cells (with outputs), why and where the run stopped early, and how long it took."""

    cells: list[Any]
    error: str | None
    seconds: float
    stopped_at: int | None = None   # the cell that timed out or killed the kernel


def cell_label(index: int, cell: Mapping[str, Any]) -> str:
    """Name a cell for a person: its index and first line, e.g. ``cell 3 (`import time`)``."""
    src = "".join(cell.get("source", ""))
    first = next((line.strip() for line in src.splitlines() if line.strip()), "")
    return f"cell {index} (`{first[:60]}`)"


def run_notebook(nb: Mapping[str, Any], *, cwd: Path | str, timeout: float, cell_timeout: float,
                 env: Mapping[str, str] | None = None) -> NotebookRun:
    """Execute every code cell of ``nb`` (nbformat 4) in order, in a new kernel in ``cwd``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbformat.v4.rwbase import rejoin_lines

    node = rejoin_lines(nbformat.from_dict(dict(nb)))  # sources as strings, as nbformat.read gives
    client = NotebookClient(node, km=_kernel_manager(env or {}), allow_errors=True,
                            record_timing=False, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(cwd)}})
    start = time.monotonic()
    error, stopped_at = None, None
    try:
        # the kernel's own stderr holds only start-up noise; what cells print comes over iopub
        with client.setup_kernel(cleanup_kc=True, stderr=subprocess.DEVNULL):
            for index, cell in enumerate(node.cells):
                limit = min(cell_timeout, timeout - (time.monotonic() - start))
                if limit <= 0:
                    error = f"timed out: the notebook took over {timeout:g} s, before cell {index}"
                    stopped_at = index - 1
                    break
                client.timeout = max(1, math.ceil(limit))  # nbclient counts whole seconds
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    error = (f"timed out after {client.timeout} s in {cell_label(index, cell)}"
                             if limit == cell_timeout else f"timed out: the notebook took over "
                             f"{timeout:g} s, in {cell_label(index, cell)}")
                    stopped_at = index
                    break
                except DeadKernelError:
                    error = f"the kernel died in {cell_label(index, cell)}"
                    stopped_at = index
                    break
    except (RuntimeError, OSError) as e:  # the kernel would not start or stopped answering
        error = error or f"the kernel failed: {e}"
    return NotebookRun(list(node.cells), error, time.monotonic() - start, stopped_at)


def _kernel_manager(env: Mapping[str, str]) -> Any:
    """A kernel manager whose ``python3`` is this Python, with ``env`` added to its environment."""
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class CurrentEnv(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> Any:
            spec = ipykernel.kernelspec.get_kernel_dict()
            spec["env"] = dict(env)
            return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES, **spec)

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=CurrentEnv())
