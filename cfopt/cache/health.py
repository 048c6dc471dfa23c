"""Say when a cache tier failed: an outage must be visible, never a quietly slower run.

A layer that cannot reach its backend answers "miss" and counts a failure (``LayerStats``):
the run goes on, with worse figures. ``tier_warnings`` turns those counts into lines a person
reads; ``cfopt report`` prints them with its table and, with ``--strict``, exits 1.

>>> layers = {"memory": {"hits": 78, "misses": 122, "sets": 115, "failures": 0},
...           "redis": {"hits": 0, "misses": 111, "sets": 0, "failures": 218}}
>>> print(*tier_warnings(layers))
warning: cache tier 'redis' never worked: 218 operations failed (0 hits, 0 writes stored); the figures are without it
"""
from __future__ import annotations

import sys
from typing import Mapping, TextIO

__all__ = ["tier_warnings", "warn_failing_tiers"]


def tier_warnings(layers: Mapping[str, Mapping[str, int]]) -> list[str]:
    """One warning line per cache tier whose operations failed."""
    lines = []
    for name, st in layers.items():
        failed = st.get("failures", 0)
        if not failed:
            continue
        hits, sets = st.get("hits", 0), st.get("sets", 0)
        state, effect = (("never worked", "the figures are without it") if hits + sets == 0 else
                         ("failed part of the time", "the figures are worse than a healthy tier's"))
        lines.append(f"warning: cache tier {name!r} {state}: {failed:,} operations failed "
                     f"({hits:,} hits, {sets:,} writes stored); {effect}")
    return lines


def warn_failing_tiers(layers: Mapping[str, Mapping[str, int]], *, strict: bool = False,
                       stream: TextIO | None = None) -> int:
    """Print the warnings to ``stream``; return the exit status: 1 if any and ``strict``, else 0."""
    lines = tier_warnings(layers)
    for line in lines:
        print(line, file=stream if stream is not None else sys.stderr)
    return 1 if lines and strict else 0
