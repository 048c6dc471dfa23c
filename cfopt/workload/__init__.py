"""Workloads: ContentFlow traffic as JSONL files, their loader, their generator and their stats.

The public surface, re-exported from small private modules:

- ``Request``, ``load``, ``iter_requests``, ``write_jsonl``, ``dumps``, ``loads``,
  ``strip_intent`` (``_format``: the file format and its validation);
- ``generate`` (``_generate``: realistic traffic, from ``_arrivals`` (when), ``_customers``
  (who, and how they type), ``_vocabulary`` (what they ask, and the ``max_tokens`` cap of each
  task) and ``_calibration`` (the Azure trace figures the arrivals follow));
- ``WorkloadStats``, ``workload_stats`` (``_stats``: counts and hit-rate ceilings).

>>> from cfopt.workload import generate, workload_stats
>>> stats = workload_stats(generate(200, seed=7, duration_s=600))
>>> stats.requests, stats.hit_rate_ceiling >= stats.exact_repeat_ceiling
(200, True)
"""
from ._format import (MAX_DEPTH, MAX_LINE_BYTES, MAX_PROMPT_CHARS, MAX_T_S, PRIORITIES, QUALITIES,
                      TEXT_TYPES, TYPES, Request, dumps, iter_requests, load, loads, strip_intent, write_jsonl)
from ._generate import generate
from ._stats import WorkloadStats, workload_stats

__all__ = [
    "Request", "TYPES", "TEXT_TYPES", "QUALITIES", "PRIORITIES", "MAX_PROMPT_CHARS", "MAX_LINE_BYTES",
    "MAX_T_S", "MAX_DEPTH", "load", "iter_requests", "write_jsonl", "dumps", "loads", "strip_intent",
    "generate", "WorkloadStats", "workload_stats",
]
