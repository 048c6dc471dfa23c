"""Figures measured on the Azure LLM inference trace, kept as constants for the generator.

Source: the Azure LLM inference trace of 2023-11-16, one hour of two services ("conv", a chat
service; "code", a coding assistant), each request a ``TIMESTAMP, ContextTokens,
GeneratedTokens`` row. Patel et al., "Splitwise: Efficient generative LLM inference using phase
splitting", ISCA 2024; data from Azure/AzurePublicDataset (``data/``), licence CC-BY 4.0.

The arrival figures shape the generator's traffic. The output-length figures (``output_median``,
``output_p95``) shape no generated field. The simulated Claude decides how long an answer is
(``cfopt.providers.lengths`` interpolates the conv trace's output quantiles when a prompt asks
for no length), and a request's ``max_tokens`` is the cap an app sets above the answer it
expects (``_vocabulary``; an assumption: the trace's GeneratedTokens are answers, not caps).
The figures stay here to compare simulated answers with (``tests/test_workload_trace.py``).

The generator never reads the trace: a user's clone does not have it. ``measure(folder)``
derives every figure below from the CSV files, and ``tests/test_workload_trace.py`` checks
these constants against it wherever the trace is present. Time bins start at a service's first
request; only whole minutes count.
"""
from __future__ import annotations

import csv
import math
import statistics
from datetime import datetime
from pathlib import Path

__all__ = ["CITATION", "CONV", "CODE", "TraceFigures", "measure"]

CITATION = ('Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", '
            "ISCA 2024; Azure LLM inference trace 2023 (Azure/AzurePublicDataset, CC-BY 4.0)")


class TraceFigures(dict):
    """Named figures of one service of the trace (a dict, printable and comparable)."""


CONV = TraceFigures(
    requests=19_366, duration_s=3501.7, mean_per_s=5.53,
    interarrival_cv=1.09,            # std / mean of the gaps between requests
    minute_cv=0.22,                  # std / mean of requests per whole minute (58 minutes)
    minute_autocorr=0.81,            # lag-1 autocorrelation of those counts
    peak_to_mean_minute=1.52,        # busiest whole minute / mean minute
    rate_cv=0.213,                   # minute_cv with the Poisson part (1 / mean) taken out
    peak_second=16, empty_second_share=0.01,
    burst_count=4754, burst_median=3.0, burst_p90=9.0, burst_gap_mean_s=0.094,
    output_median=129, output_p95=451,
)
CODE = TraceFigures(
    requests=8_819, duration_s=3435.9, mean_per_s=2.57,
    interarrival_cv=13.15, minute_cv=1.041, minute_autocorr=0.16, peak_to_mean_minute=4.18,
    rate_cv=1.038, peak_second=67, empty_second_share=0.73,
    burst_count=933,                 # bursts: runs of requests less than 0.25 s apart
    burst_median=5, burst_p90=18.8, burst_gap_mean_s=0.059,
    output_median=13, output_p95=90,
)

def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _autocorr(xs: list[int]) -> float:
    m = statistics.fmean(xs)
    num = sum((a - m) * (b - m) for a, b in zip(xs, xs[1:]))
    return num / sum((a - m) ** 2 for a in xs)


def measure(folder: str | Path, service: str) -> TraceFigures:
    """Derive the figures of ``service`` ("conv" or "code") from the trace's CSV in ``folder``."""
    path = Path(folder) / f"AzureLLMInferenceTrace_{service}.csv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    stamps = sorted(datetime.fromisoformat(r["TIMESTAMP"][:26]) for r in rows)
    t = [(s - stamps[0]).total_seconds() for s in stamps]
    gaps = [b - a for a, b in zip(t, t[1:])]
    duration = t[-1]
    whole = int(duration // 60)
    minutes = [0] * whole
    seconds = [0] * (int(duration) + 1)
    for x in t:
        if int(x // 60) < whole:
            minutes[int(x // 60)] += 1
        seconds[int(x)] += 1
    mean_minute = statistics.fmean(minutes)
    minute_cv = statistics.pstdev(minutes) / mean_minute
    bursts, size = [], 1
    for g in gaps:
        if g < 0.25:
            size += 1
        else:
            bursts.append(size)
            size = 1
    bursts.append(size)
    inner = [g for g in gaps if g < 0.25]
    out = [float(r["GeneratedTokens"]) for r in rows]
    return TraceFigures(
        requests=len(t), duration_s=round(duration, 1), mean_per_s=round(len(t) / duration, 2),
        interarrival_cv=round(statistics.pstdev(gaps) / statistics.fmean(gaps), 2),
        minute_cv=round(minute_cv, 3), minute_autocorr=round(_autocorr(minutes), 2),
        peak_to_mean_minute=round(max(minutes) / mean_minute, 2),
        rate_cv=round(math.sqrt(max(0.0, minute_cv ** 2 - 1 / mean_minute)), 3),
        peak_second=max(seconds),
        empty_second_share=round(seconds.count(0) / len(seconds), 2),
        burst_count=len(bursts), burst_median=statistics.median(bursts),
        burst_p90=round(_quantile(bursts, 0.9), 1),
        burst_gap_mean_s=round(statistics.fmean(inner), 3),
        output_median=statistics.median(out), output_p95=round(_quantile(out, 0.95)),
    )
