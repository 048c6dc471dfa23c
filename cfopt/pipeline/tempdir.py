"""The private folder of one replay: its disk cache lives there, and it goes when the run ends."""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Iterator

__all__ = ["replay_dir"]


@contextmanager
def replay_dir(where: str | None = None) -> Iterator[str]:
    """A fresh folder ``cfopt-replay-*`` under ``where`` (default: the system's), removed after."""
    with tempfile.TemporaryDirectory(prefix="cfopt-replay-", dir=where) as tmp:
        yield tmp
