"""Sudden shifts in a metric, found with a rolling z-score of the recent mean against a baseline.

The recent window (say the last minute) is compared with the baseline window just before it
(say the ten minutes before). If the recent mean lies more than ``z_threshold`` standard errors
from the baseline mean, and moved by at least ``min_change`` of it, the metric has shifted.
Both tests are needed: a z-score alone flags tiny shifts once there are many points, a
relative change alone flags noise when there are few. A shift is reported once, when it starts;
the detector re-arms when the z-score falls back under half the threshold.

Rates kept as 0/1 points (errors, cache hits) are compared as two proportions instead (a
two-proportion z-test with the pooled rate), so the first error after a clean stretch is not
an "infinite" shift, while errors jumping from 1% to 30% are.

Response times are heavy-tailed (a minute with one 75 s video looks "slow" on average), so when
every value is positive the comparison runs on their logarithms: the means compared are then
geometric means, and one slow outlier no longer moves them much, while a provider that got
3x slower for everyone moves them by 3x.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> t = np.arange(0.0, 720.0)                       # one point a second for 12 minutes
>>> v = rng.normal(1.0, 0.1, t.size); v[-60:] *= 3  # the last minute is three times slower
>>> d = ShiftDetector()
>>> e = d.check("response_time", t, v, now=719.0)
>>> e.kind, round(e.data["ratio"], 1)
('anomaly', 3.0)
>>> d.check("response_time", t, v, now=719.0) is None   # already reported
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..events import Event

__all__ = ["AnomalyConfig", "Shift", "shift_score", "proportion_shift", "ShiftDetector"]


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """How a shift is recognised."""

    recent_s: float = 60.0     # the window judged
    baseline_s: float = 600.0  # the window before it, taken as normal
    z_threshold: float = 4.0   # standard errors of the baseline mean
    min_change: float = 0.5    # relative change of the mean also needed (0.5: 50%)
    min_rate_change: float = 0.05  # for 0/1 rates: the share must move by 5 points or more
    min_points: int = 8        # in each window, or nothing is judged

    def __post_init__(self) -> None:
        if self.recent_s <= 0 or self.baseline_s <= 0 or self.z_threshold <= 0:
            raise ConfigError("recent_s, baseline_s and z_threshold must be positive")
        if self.min_change < 0 or self.min_rate_change < 0 or self.min_points < 2:
            raise ConfigError("min_change and min_rate_change must not be negative, min_points at least 2")


@dataclass(slots=True)
class Shift:
    """The comparison of a recent window with its baseline."""

    z: float
    baseline_mean: float
    recent_mean: float
    baseline_std: float
    recent_count: int
    baseline_count: int

    @property
    def ratio(self) -> float:
        """Recent mean over baseline mean (inf when the baseline mean is 0)."""
        return self.recent_mean / self.baseline_mean if self.baseline_mean else math.inf


def proportion_shift(baseline: np.ndarray, recent: np.ndarray) -> Shift:
    """The two-proportion z-score of 0/1 points: recent share against baseline share."""
    b = np.asarray(baseline, dtype=np.float64)
    r = np.asarray(recent, dtype=np.float64)
    pb, pr = float(b.mean()), float(r.mean())
    pooled = (b.sum() + r.sum()) / (b.size + r.size)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / b.size + 1 / r.size))
    return Shift((pr - pb) / se, pb, pr, math.sqrt(pb * (1 - pb)), int(r.size), int(b.size))


def shift_score(baseline: np.ndarray, recent: np.ndarray, *, log: bool = False) -> Shift:
    """How many standard errors the recent mean lies from the baseline mean (of logs if ``log``).

    With ``log`` the means reported are geometric means, so ``ratio`` stays a plain ratio.
    """
    b = np.asarray(baseline, dtype=np.float64)
    r = np.asarray(recent, dtype=np.float64)
    if log:
        b, r = np.log(b), np.log(r)
    b_mean, r_mean = float(b.mean()), float(r.mean())
    b_std = float(b.std(ddof=1)) if b.size > 1 else 0.0
    # A perfectly flat baseline has no spread; a floor keeps z finite and any real move large.
    spread = max(b_std, 1e-9 * max(abs(b_mean), 1.0))
    z = (r_mean - b_mean) / (spread / math.sqrt(r.size))
    if log:
        b_mean, r_mean = math.exp(b_mean), math.exp(r_mean)
    return Shift(z, b_mean, r_mean, b_std, int(r.size), int(b.size))


class ShiftDetector:
    """Check metrics for shifts; remembers which ones are already reported."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config if config is not None else AnomalyConfig()
        self._active: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"ShiftDetector({self.config!r})"

    def check(self, metric: str, times: np.ndarray, values: np.ndarray, now: float) -> Event | None:
        """An ``Event(kind="anomaly")`` if ``metric`` just shifted at ``now``, else None."""
        c = self.config
        t = np.asarray(times, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        split = int(np.searchsorted(t, now - c.recent_s, side="right"))
        first = int(np.searchsorted(t, now - c.recent_s - c.baseline_s, side="right"))
        last = int(np.searchsorted(t, now, side="right"))
        base, recent = v[first:split], v[split:last]
        if base.size < c.min_points or recent.size < c.min_points:
            return None
        binary = bool(np.all((base == 0) | (base == 1)) and np.all((recent == 0) | (recent == 1)))
        if binary:
            s = proportion_shift(base, recent)
            change = abs(s.recent_mean - s.baseline_mean)   # in rate points: 0.05 is 5 points
        else:
            s = shift_score(base, recent, log=bool(base.min() > 0 and recent.min() > 0))
            change = abs(s.recent_mean - s.baseline_mean) / max(abs(s.baseline_mean), 1e-12)
        shifted = abs(s.z) >= c.z_threshold and change >= c.min_change
        if binary:   # a rate moving by 50 points is too late to notice: 5 points is enough
            shifted = abs(s.z) >= c.z_threshold and change >= c.min_rate_change
        if not shifted:
            if abs(s.z) < c.z_threshold / 2:
                self._active[metric] = False  # back to normal: the next shift is news again
            return None
        if self._active.get(metric):
            return None
        self._active[metric] = True
        direction = "rose" if s.recent_mean > s.baseline_mean else "fell"
        if binary:
            name = (f"{metric} {direction} from {s.baseline_mean:.1%} to {s.recent_mean:.1%} in the "
                    f"last {c.recent_s:g} s (z={s.z:.1f})")
        else:
            name = (f"{metric} {direction} {s.ratio:.1f}x: {s.recent_mean:.3g} in the last "
                    f"{c.recent_s:g} s vs {s.baseline_mean:.3g} before (z={s.z:.1f})")
        return Event(t=now, kind="anomaly", name=name, value=s.recent_mean,
                     data={"metric": metric, "z": s.z, "ratio": s.ratio,
                           "baseline_mean": s.baseline_mean, "recent_mean": s.recent_mean,
                           "recent_count": s.recent_count, "baseline_count": s.baseline_count})

    def reset(self) -> None:
        """Forget which shifts were reported."""
        self._active.clear()
