"""Bursty arrival times, shaped like the Azure LLM inference trace (figures in ``_calibration``).

What the trace shows (Patel et al., "Splitwise", ISCA 2024; Azure/AzurePublicDataset, CC-BY 4.0):

- conv, a chat service at 5.53 requests/s: requests per whole minute vary with a CV of 0.22 and
  a lag-1 autocorrelation of 0.81 (the busiest minute is 1.52x the mean); Poisson noise at
  ~330 requests a minute explains little of it, so the rate itself wanders, CV 0.213. Gaps
  between requests have a CV of 1.09: within a minute, arrivals are close to Poisson.
- code, a tool-driven service: arrivals come in bursts (runs less than 0.25 s apart: median 5
  requests, p90 18.8, mean gap inside 0.059 s); its peak second holds 67 requests, 73% of seconds
  are empty.

The model: interactive requests follow a Poisson process whose rate changes each minute by a
log-normal AR(1) with the conv figures (CV ``RATE_CV``, autocorrelation ``RATE_AUTOCORR``).
``BULK_SHARE`` of requests come instead in bulk bursts (a customer submitting a list): burst
starts follow the same rate, sizes are log-normal with the code trace's median and p90 (capped
at ``BURST_MAX``), gaps inside a burst exponential with the code trace's mean.

Calibrated: RATE_CV, RATE_AUTOCORR, BURST_MEDIAN, BURST_LOG_SD, BURST_GAP_MEAN_S. Assumed (no
trace says how much of ContentFlow's traffic is bulk): BULK_SHARE and BURST_MAX. At ContentFlow's
~83 requests a minute the Poisson noise is four times larger than at conv's 330, so a generated
hour's per-minute CV and peak minute come out higher than conv's (about 0.3 and 1.7-2x).

>>> rng = random.Random(0)
>>> rates = minute_rates(rng, 5000)
>>> round(statistics.pstdev(rates) / statistics.fmean(rates), 1)   # RATE_CV
0.2
>>> sum(burst_sizes(rng, 100))
100
"""
from __future__ import annotations

import math
import random
import statistics

from ._calibration import CODE, CONV

__all__ = [
    "RATE_CV", "RATE_AUTOCORR", "BULK_SHARE", "BURST_MEDIAN", "BURST_LOG_SD", "BURST_MAX",
    "BURST_GAP_MEAN_S", "minute_rates", "burst_sizes", "interactive_times", "burst_times",
]

RATE_CV: float = CONV["rate_cv"]
RATE_AUTOCORR: float = CONV["minute_autocorr"]
BULK_SHARE = 0.15          # assumed: share of ContentFlow requests sent in bulk bursts
BURST_MEDIAN: float = CODE["burst_median"]
BURST_LOG_SD = math.log(CODE["burst_p90"] / CODE["burst_median"]) / 1.2816  # z of p90
BURST_MAX = 40             # assumed: a ContentFlow bulk job holds at most 40 items
BURST_GAP_MEAN_S: float = CODE["burst_gap_mean_s"]


def minute_rates(rng: random.Random, minutes: int) -> list[float]:
    """Return relative request rates per minute: a log-normal AR(1), mean about 1."""
    sigma = math.sqrt(math.log(1 + RATE_CV ** 2))
    x = rng.gauss(0.0, sigma)
    rates = []
    for _ in range(minutes):
        # rounded: a last-bit difference between two platforms' exp() must not move a request
        rates.append(round(math.exp(x - sigma ** 2 / 2), 9))
        x = RATE_AUTOCORR * x + math.sqrt(1 - RATE_AUTOCORR ** 2) * rng.gauss(0.0, sigma)
    return rates


def _draw_times(rng: random.Random, count: int, rates: list[float],
                duration_s: float) -> list[float]:
    """Return ``count`` times in [0, duration_s) drawn from the piecewise-constant ``rates``."""
    widths = [min(60.0, duration_s - 60.0 * k) for k in range(len(rates))]
    weights = [r * w for r, w in zip(rates, widths)]
    bins = rng.choices(range(len(rates)), weights=weights, k=count)
    return [60.0 * k + rng.random() * widths[k] for k in bins]


def burst_sizes(rng: random.Random, total: int) -> list[int]:
    """Return burst sizes summing to ``total``: log-normal as in the code trace, 2 to BURST_MAX."""
    sizes: list[int] = []
    left = total
    while left >= 2:
        size = round(BURST_MEDIAN * math.exp(rng.gauss(0.0, BURST_LOG_SD)))
        size = max(2, min(BURST_MAX, size, left))
        if left - size == 1:  # never leave a lone request behind
            size += 1
        sizes.append(size)
        left -= size
    return sizes


def interactive_times(rng: random.Random, count: int, rates: list[float],
                      duration_s: float) -> list[float]:
    """Return sorted arrival times of ``count`` interactive requests."""
    return sorted(_draw_times(rng, count, rates, duration_s))


def burst_times(rng: random.Random, sizes: list[int], rates: list[float],
                duration_s: float) -> list[list[float]]:
    """Return the arrival times of each burst: a start from ``rates``, then short gaps."""
    starts = _draw_times(rng, len(sizes), rates, duration_s)
    bursts = []
    for start, size in zip(starts, sizes):
        t, times = start, []
        for _ in range(size):
            times.append(t)
            t += round(rng.expovariate(1.0 / BURST_GAP_MEAN_S), 9)
        overflow = times[-1] - (duration_s - 0.01)
        if overflow > 0:  # a burst near the end moves back so that it fits
            times = [max(0.0, x - overflow) for x in times]
        bursts.append(times)
    return bursts
