"""The private folder of one replay: its disk cache lives there, and it goes when the run ends
(on SIGTERM and SIGHUP too; after a SIGKILL, at the next replay: ``cfopt.scratch``)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..scratch import scratch_dir

__all__ = ["replay_dir"]


@contextmanager
def replay_dir(where: str | None = None) -> Iterator[str]:
    """A fresh folder ``cfopt-replay-*`` under ``where`` (default: the system's), removed after."""
    with scratch_dir("cfopt-replay-", dir=where) as tmp:
        yield tmp
