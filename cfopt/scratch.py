"""Scratch folders removed on every exit: normal, exception, Ctrl-C, SIGTERM, SIGHUP, and SIGKILL.

``tempfile.TemporaryDirectory`` removes its folder when the ``with`` block ends, which a
SIGTERM or SIGHUP skips (the default action ends the process on the spot) and a SIGKILL always
skips. ``scratch_dir`` adds two things:

- while a folder is open, SIGTERM and SIGHUP (when nobody else handles them) first remove
  the open folders, then end the process by the same signal, so its exit status is unchanged;
- each folder's name carries its process id, and opening a folder first removes the folders
  of the same prefix whose process is gone: what a SIGKILL left behind lasts until the next
  run, no longer.

>>> import os
>>> with scratch_dir("cfopt-doc-") as path:
...     os.path.isdir(path), os.path.basename(path).startswith(f"cfopt-doc-{os.getpid()}-")
(True, True)
>>> os.path.exists(path)
False
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

__all__ = ["scratch_dir", "sweep_orphans"]

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_open: set[str] = set()
_lock = threading.Lock()
_installed: dict[int, object] = {}   # signal -> the handler that was there before ours


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: alive
        return True
    return True


def sweep_orphans(prefix: str, where: str | os.PathLike | None = None) -> list[str]:
    """Remove ``prefix<pid>-*`` folders in ``where`` whose process no longer runs; return them."""
    root = Path(where or tempfile.gettempdir())
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
    return removed


def _remove_open() -> None:
    with _lock:
        paths = list(_open)
        _open.clear()
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _on_signal(signum: int, frame: object) -> None:
    _remove_open()
    # End the process as the signal would have: restore the default action and re-send it.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install() -> None:
    """Handle SIGTERM/SIGHUP while folders are open, if nobody else does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set there; the orphan sweep covers this case
    for sig in _SIGNALS:
        if sig not in _installed and signal.getsignal(sig) is signal.SIG_DFL:
            _installed[sig] = signal.signal(sig, _on_signal)


def _uninstall() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, before in list(_installed.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, before)  # type: ignore[arg-type]
        del _installed[sig]


@contextlib.contextmanager
def scratch_dir(prefix: str = "cfopt-", dir: str | os.PathLike | None = None) -> Iterator[str]:
    """A fresh folder ``<dir>/<prefix><pid>-XXXX`` that is removed however the process exits."""
    sweep_orphans(prefix, dir)
    path = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=dir)
    with _lock:
        _open.add(path)
        first = len(_open) == 1
    if first:
        _install()
    try:
        yield path
    finally:
        with _lock:
            _open.discard(path)
            last = not _open
        shutil.rmtree(path, ignore_errors=True)
        if last:
            _uninstall()
