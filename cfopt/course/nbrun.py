"""Run a notebook in a fresh kernel, with a time limit per cell and in all, then more code in it.

``KernelSession`` never raises for what the notebook does: a cell that raises is recorded in its
outputs and the run goes on; a cell past its time limit is interrupted and ends the run (later
cells do not run), as does a kernel that dies; ``NotebookRun.error`` says what happened and in
which cell. After the cells, ``execute`` runs more code in the same kernel (the grader's probes).

The kernel is ``python3`` from the environment running this code (like nbval's
``--nbval-current-env``), started as ``argv`` when given (the grader starts it through its guard).
"""
from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["NotebookRun", "Execution", "KernelSession", "cell_label"]


@dataclass(frozen=True, slots=True)
class NotebookRun:
    """The executed cells (with outputs), why and where the run stopped early, and how long it took."""

    cells: list[Any]
    error: str | None
    seconds: float
    stopped_at: int | None = None   # the cell that timed out or killed the kernel
    alive: bool = True              # the kernel still answers (probes can run)


@dataclass(frozen=True, slots=True)
class Execution:
    """The outputs of code run by ``KernelSession.execute`` and what went wrong, if anything."""

    outputs: list[Any]
    error: str | None = None


def cell_label(index: int, cell: Mapping[str, Any]) -> str:
    """Name a cell for a person: its index and first line, e.g. ``cell 3 (`import time`)``."""
    src = "".join(cell.get("source", ""))
    first = next((line.strip() for line in src.splitlines() if line.strip()), "")
    return f"cell {index} (`{first[:60]}`)"


class KernelSession:
    """A kernel for one notebook: ``run_cells`` once, then ``execute`` as often as needed.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6 * 7")])
    >>> with KernelSession(nb, cwd=".") as kernel:                      # doctest: +SKIP
    ...     run = kernel.run_cells(timeout=60, cell_timeout=30)
    ...     kernel.execute("print(x)", timeout=10).outputs[0]["text"]
    '42\\n'
    """

    def __init__(self, nb: Mapping[str, Any], *, cwd: Path | str, env: Mapping[str, str] | None = None,
                 argv: Sequence[str] | None = None) -> None:
        import nbformat
        from nbclient import NotebookClient
        from nbformat.v4.rwbase import rejoin_lines

        self.node = rejoin_lines(nbformat.from_dict(dict(nb)))  # sources as strings, as nbformat.read gives
        self.client = NotebookClient(self.node, km=_kernel_manager(env or {}, argv), allow_errors=True,
                                     record_timing=False, shutdown_kernel="immediate",
                                     resources={"metadata": {"path": str(cwd)}})
        self._stack = contextlib.ExitStack()
        self.alive = False

    def __enter__(self) -> "KernelSession":
        # the kernel's own stdout and stderr hold only start-up noise (and whatever learner code
        # writes to fd 1 or 2); what cells print comes over iopub
        self._stack.enter_context(self.client.setup_kernel(
            cleanup_kc=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL))
        self.alive = True
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):   # a dead or wedged kernel must not hide the result
            self._stack.close()

    def run_cells(self, *, timeout: float, cell_timeout: float) -> NotebookRun:
        """Execute every code cell in order; stop at a cell past its time or a dead kernel."""
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        start = time.monotonic()
        error, stopped_at = None, None
        try:
            for index, cell in enumerate(self.node.cells):
                limit = min(cell_timeout, timeout - (time.monotonic() - start))
                if limit <= 0:
                    error = f"timed out: the notebook took over {timeout:g} s, before cell {index}"
                    stopped_at = index
                    break
                self.client.timeout = max(1, math.ceil(limit))  # nbclient counts whole seconds
                try:
                    self.client.execute_cell(cell, index)
                except CellTimeoutError:
                    error = (f"timed out after {self.client.timeout} s in {cell_label(index, cell)}"
                             if limit == cell_timeout else f"timed out: the notebook took over "
                             f"{timeout:g} s, in {cell_label(index, cell)}")
                    stopped_at = index
                    self.alive = self._interrupt()
                    break
                except DeadKernelError:
                    error = f"the kernel died in {cell_label(index, cell)}"
                    stopped_at = index
                    self.alive = False
                    break
        except (RuntimeError, OSError) as e:  # the kernel would not start or stopped answering
            error = error or f"the kernel failed: {e}"
            self.alive = False
        return NotebookRun(list(self.node.cells), error, time.monotonic() - start, stopped_at, self.alive)

    def execute(self, source: str, *, timeout: float) -> Execution:
        """Run ``source`` as one more cell; a timeout interrupts it, a dead kernel stays dead."""
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        import nbformat

        if not self.alive:
            return Execution([], "the kernel is no longer running")
        cell = nbformat.v4.new_code_cell(source)
        self.node.cells.append(cell)
        self.client.timeout = max(1, math.ceil(timeout))
        try:
            self.client.execute_cell(cell, len(self.node.cells) - 1)
        except CellTimeoutError:
            self.alive = self._interrupt()
            return Execution(list(cell.outputs), f"timed out after {self.client.timeout} s")
        except DeadKernelError:
            self.alive = False
            return Execution(list(cell.outputs), "the kernel died")
        except (RuntimeError, OSError) as e:
            self.alive = False
            return Execution(list(cell.outputs), f"the kernel failed: {e}")
        return Execution(list(cell.outputs))

    def _interrupt(self) -> bool:
        """Interrupt the busy kernel; return whether it answers again within a few seconds."""
        from jupyter_core.utils import run_sync
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        import nbformat

        try:
            run_sync(_cancel_stale_readers)()
            run_sync(self.client.km.interrupt_kernel)()
            ping = nbformat.v4.new_code_cell("pass")
            self.node.cells.append(ping)
            self.client.timeout = 10
            try:
                self.client.execute_cell(ping, len(self.node.cells) - 1)
            finally:
                self.node.cells.remove(ping)
            return True
        except (CellTimeoutError, DeadKernelError, RuntimeError, OSError):
            return False


async def _cancel_stale_readers() -> None:
    """Cancel the output reader nbclient leaves running after a cell timeout.

    On ``CellTimeoutError`` nbclient keeps the timed-out cell's iopub reader alive (so that an
    interrupt's output can still land in that cell). It reads and drops every message that is
    not its own, so unless it sees its cell finish it swallows the outputs of every cell run
    after it. Its task runs on the loop ``run_sync`` keeps for this thread.
    """
    import asyncio
    for task in asyncio.all_tasks():
        if getattr(task.get_coro(), "__qualname__", "").endswith("._async_poll_output_msg"):
            task.cancel()
    await asyncio.sleep(0)


def _kernel_manager(env: Mapping[str, str], argv: Sequence[str] | None) -> Any:
    """A kernel manager whose ``python3`` is this Python (or ``argv``), with exactly ``env``."""
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class CurrentEnv(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> Any:
            spec = ipykernel.kernelspec.get_kernel_dict()
            if argv is not None:
                spec["argv"] = list(argv)
            spec["env"] = dict(env)
            return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES, **spec)

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=CurrentEnv())


def python_argv(module: str) -> list[str]:
    """The argv of a kernel started as ``python -m module -f {connection_file}`` with this Python."""
    return [sys.executable, "-m", module, "-f", "{connection_file}"]
