"""What a workload holds: counts, distinct prompts and intents, and the hit-rate ceilings.

Two ceilings bound what any cache can do on a workload:

- ``exact_repeat_ceiling`` = 1 - distinct prompts / requests: an exact-match cache, even an
  infinite one, can answer at most this share (every first occurrence is a miss);
- ``hit_rate_ceiling`` = 1 - distinct intents / requests: a cache that recognises every request
  meaning the same thing (and nothing else) can answer at most this share.

>>> from cfopt.workload import Request
>>> reqs = [Request(t=0.0, type="text", prompt="Hi", intent="a"),
...         Request(t=30.0, type="text", prompt="hi!", intent="a"),
...         Request(t=70.0, type="image", prompt="A cat", intent="b", quality="low")]
>>> s = workload_stats(reqs)
>>> s.distinct_prompts, s.distinct_intents, s.hit_rate_ceiling, s.exact_repeat_ceiling
(3, 2, 0.3333, 0.0)
>>> s.by_type, s.peak_minute_requests
({'image': 1, 'text': 2}, 2)
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from ._format import Request

__all__ = ["WorkloadStats", "workload_stats"]


@dataclass(frozen=True, slots=True)
class WorkloadStats:
    """Counts and ceilings of one workload; ratios rounded to 4 decimals."""

    requests: int
    duration_s: float                  # from 0 (the workload's start) to the last request
    mean_per_min: float | None         # requests per minute over duration_s (None if 0 s)
    peak_minute_requests: int          # most requests in one minute window [60k, 60k + 60)
    by_type: dict[str, int]
    by_quality: dict[str, int]
    by_priority: dict[str, int]
    by_task: dict[str, int]            # requests without a task count under "(none)"
    users: int | None                  # distinct users (None when no request names one)
    distinct_prompts: int
    distinct_intents: int | None       # None when no request carries an intent label
    exact_repeat_ceiling: float        # 1 - distinct prompts / requests
    hit_rate_ceiling: float | None     # 1 - distinct intents / requests

    def as_dict(self) -> dict[str, Any]:
        """Return the statistics as a JSON-ready dict."""
        return asdict(self)

    def format(self) -> str:
        """Return a readable table of the statistics."""
        def pct(x: float | None) -> str:
            return "n/a (no intent labels)" if x is None else f"{x:.1%}"

        rows = [
            ("requests", f"{self.requests:,}"),
            ("duration", f"{self.duration_s:,.1f} s"),
            ("mean rate", "n/a" if self.mean_per_min is None
             else f"{self.mean_per_min:,.1f} / min"),
            ("peak minute", f"{self.peak_minute_requests:,} requests"),
            ("users", "n/a" if self.users is None else f"{self.users:,}"),
            ("distinct prompts", f"{self.distinct_prompts:,}"),
            ("distinct intents", "n/a" if self.distinct_intents is None
             else f"{self.distinct_intents:,}"),
            ("exact-repeat ceiling", pct(self.exact_repeat_ceiling)),
            ("hit-rate ceiling", pct(self.hit_rate_ceiling)),
        ]
        lines = [f"{k:<22}{v}" for k, v in rows]
        for title, counts in (("type", self.by_type), ("quality", self.by_quality),
                              ("priority", self.by_priority), ("task", self.by_task)):
            lines.append("")
            lines.append(f"{'by ' + title:<22}{'requests':>9}{'share':>8}")
            for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                share = n / self.requests if self.requests else 0.0
                lines.append(f"  {key:<20}{n:>9,}{share:>8.1%}")
        return "\n".join(lines)


def _sorted_counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def workload_stats(requests: Iterable[Request]) -> WorkloadStats:
    """Count what ``requests`` hold and compute their hit-rate ceilings."""
    reqs = list(requests)
    n = len(reqs)
    duration = max((r.t for r in reqs), default=0.0)
    minutes = Counter(math.floor(r.t / 60.0) for r in reqs)
    intents = {r.intent for r in reqs if r.intent is not None}
    users = {r.user for r in reqs if r.user is not None}
    labelled = any(r.intent is not None for r in reqs)
    # a request without a label in a labelled file is its own intent: count it as distinct
    distinct_intents = len(intents) + sum(r.intent is None for r in reqs) if labelled else None
    distinct_prompts = len({r.prompt for r in reqs})
    return WorkloadStats(
        requests=n,
        duration_s=round(duration, 3),
        mean_per_min=round(n * 60.0 / duration, 2) if duration > 0 else None,
        peak_minute_requests=max(minutes.values(), default=0),
        by_type=_sorted_counts(r.type for r in reqs),
        by_quality=_sorted_counts(r.quality for r in reqs),
        by_priority=_sorted_counts(r.priority for r in reqs),
        by_task=_sorted_counts(r.task or "(none)" for r in reqs),
        users=len(users) if users else None,
        distinct_prompts=distinct_prompts,
        distinct_intents=distinct_intents,
        exact_repeat_ceiling=round(1 - distinct_prompts / n, 4) if n else 0.0,
        hit_rate_ceiling=(round(1 - distinct_intents / n, 4) if n else 0.0)
        if distinct_intents is not None else None,
    )
