"""Progress where work is long: tqdm's bar in a notebook or a terminal, one line per step elsewhere.

``progress_bar(total, desc)`` picks what fits where the code runs:

- in a Jupyter kernel: ``tqdm.notebook``, an ipywidgets bar in the running cell's output;
- on a terminal (stderr is a tty): tqdm's text bar on stderr;
- anywhere else (a pipe, a log file, CI): one line on stderr when the step ends, with its count
  and duration, so a log shows every step once and no ``\\r`` debris.

``CFOPT_PROGRESS`` forces a mode: ``bar``, ``lines`` or ``off``. Every bar has tqdm's interface
(``update(n)``, ``close()``, a context manager). ``ReplayProgress`` follows replays that report
``(name, done, total)``, one bar (one step) per replay; ``tracked_map(bar)`` is a ``map`` that
ticks the bar after each item (for ``grid_search(map_fn=...)``).

>>> import io
>>> out = io.StringIO()
>>> with progress_bar(3, "replay baseline", unit="requests", file=out, mode="lines") as bar:
...     for _ in range(3):
...         bar.update()
>>> out.getvalue().split(" in ")[0]
'replay baseline: 3/3 requests'
>>> follow = ReplayProgress(file=out, mode="lines")
>>> for done in (1, 2):
...     follow("optimized", done, 2)
>>> out.getvalue().splitlines()[-1].split(" in ")[0]
'optimized: 2/2 requests'
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Iterable, TextIO

__all__ = ["MODES", "progress_bar", "progress_mode", "in_notebook", "LineProgress",
           "ReplayProgress", "tracked_map"]

MODES = ("notebook", "bar", "lines", "off")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a widget bar can show), False in a terminal or a script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_mode(file: TextIO | None = None) -> str:
    """The mode ``progress_bar`` uses now: ``CFOPT_PROGRESS``, else notebook, bar (a tty) or lines."""
    forced = os.environ.get("CFOPT_PROGRESS", "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced
    if in_notebook():
        return "notebook"
    stream = file if file is not None else sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"


class LineProgress:
    """tqdm's interface, writing one line when the step ends: ``desc: n/total unit in 2.1 s``."""

    def __init__(self, total: int | None = None, desc: str = "", *, unit: str = "it",
                 file: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.file = file
        self._t0 = time.perf_counter()
        self._closed = False

    def __repr__(self) -> str:
        return f"LineProgress({self.desc!r}, n={self.n}, total={self.total})"

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        out = self.file if self.file is not None else sys.stderr
        of = f"/{self.total:,}" if self.total is not None else ""
        out.write(f"{self.desc}: {self.n:,}{of} {self.unit} in {time.perf_counter() - self._t0:.1f} s\n")
        out.flush()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Off(LineProgress):
    def close(self) -> None:
        self._closed = True


def progress_bar(total: int | None, desc: str, *, unit: str = "it", file: TextIO | None = None,
                 mode: str | None = None) -> Any:
    """A progress bar for ``total`` steps (``mode``: notebook, bar, lines, off; default: chosen)."""
    mode = mode or progress_mode(file)
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    if mode == "notebook":
        from tqdm.notebook import tqdm as notebook_tqdm
        return notebook_tqdm(total=total, desc=desc, unit=unit, leave=True)
    if mode == "bar":
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit=unit, leave=True, dynamic_ncols=True,
                    file=file if file is not None else sys.stderr)
    if mode == "off":
        return _Off(total, desc, unit=unit, file=file)
    return LineProgress(total, desc, unit=unit, file=file)


class ReplayProgress:
    """A callable ``(name, done, total)`` for replays: one bar per name, closed when it is done.

    ``run_report(..., progress=ReplayProgress())`` shows the baseline's bar, then the optimized
    pipeline's (each optimization's too with contributions).
    """

    def __init__(self, *, prefix: str = "", unit: str = "requests", file: TextIO | None = None,
                 mode: str | None = None) -> None:
        self.prefix, self.unit, self.file, self.mode = prefix, unit, file, mode
        self._bars: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"ReplayProgress(open={sorted(self._bars)})"

    def __call__(self, name: str, done: int, total: int) -> None:
        bar = self._bars.get(name)
        if bar is None:
            bar = self._bars[name] = progress_bar(total, f"{self.prefix}{name}", unit=self.unit,
                                                  file=self.file, mode=self.mode)
        if done > bar.n:
            bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self._bars[name]

    def close(self) -> None:
        """Close the bars of replays that stopped early (an error), so their lines still print."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def tracked_map(bar: Any) -> Callable[[Callable, Iterable], list]:
    """A ``map`` that ticks ``bar`` once per item: ``grid_search(..., map_fn=tracked_map(bar))``."""
    def mapper(fn: Callable, items: Iterable) -> list:
        out = []
        for item in items:
            out.append(fn(item))
            bar.update(1)
        return out
    return mapper
