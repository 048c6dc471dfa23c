"""The statistics of an A/B test whose unit of randomization is the user.

A metric is a ratio of sums per arm (total cost / requests: the cost per request), and every
figure treats the *user* as the unit, because users, not requests, were assigned to arms: one
heavy user's thousand requests are one draw, not a thousand.

- the confidence interval of the difference (and of the relative lift) is a percentile
  bootstrap that resamples users within each arm;
- the p-value is a permutation test (Fisher's randomization test): users' arm labels are
  shuffled, keeping the arm sizes, and the observed difference is compared with the shuffled
  ones. It assumes nothing about the distribution, and it is exact for the hash split;
- covariates (optional): regression adjustment (CUPED, Deng et al. 2013) on per-user figures
  fixed before the experiment, such as each user's request mix. Users differ hugely (one video
  costs as much as a thousand captions), and which users land in which arm is luck; the
  adjustment removes the part of each user's figure that their mix predicts, so the same test
  sees smaller effects. The adjustment uses both arms pooled and no arm label, so the
  permutation test stays exact;
- power is the chance of a significant result if the true lift were ``min_effect``, from the
  bootstrap standard error and a normal approximation.

A test is flagged ``sample_too_small`` when an arm has fewer than ``min_users`` users, or its
power at ``min_effect`` is below ``min_power``: a "no significant difference" then means "this
test could not have told", not "there is no difference".

>>> import numpy as np
>>> a = MetricSample.from_users([10.0] * 30, [10] * 30)            # 1.0 per request
>>> b = MetricSample.from_users([12.0, 11.0] * 15, [10] * 30)      # 1.15 per request
>>> r = compare("cost", a, b, ABStatsConfig(n_resamples=500))
>>> round(r.lift, 3), r.p_value < 0.01, r.ci_low > 0
(0.15, True, True)
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["ABStatsConfig", "MetricSample", "MetricResult", "compare", "adjust"]


@dataclass(frozen=True, slots=True)
class ABStatsConfig:
    """Significance level, resampling effort, and what counts as a big enough sample."""

    alpha: float = 0.05
    n_resamples: int = 2000     # bootstrap and permutation draws each
    min_users: int = 20         # per arm
    min_effect: float = 0.05    # the relative lift the test should be able to see...
    min_power: float = 0.8      # ...with at least this probability
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.min_power < 1 or self.min_effect <= 0:
            raise ConfigError(f"need alpha, min_power in (0, 1) and min_effect > 0: {self!r}")
        if self.n_resamples < 100 or self.min_users < 2:
            raise ConfigError(f"need n_resamples >= 100 and min_users >= 2: {self!r}")


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One arm's metric per user: each user's sum, number of requests, and covariate sums."""

    sums: np.ndarray
    counts: np.ndarray
    covariates: np.ndarray | None = None   # users x m, known before the experiment

    @classmethod
    def from_users(cls, sums: Sequence[float], counts: Sequence[int],
                   covariates: Sequence[Sequence[float]] | None = None) -> "MetricSample":
        s, c = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
        if s.shape != c.shape or s.ndim != 1 or (c <= 0).any():
            raise ConfigError("give one sum and one positive request count per user")
        x = None if covariates is None else np.asarray(covariates, dtype=float).reshape(len(s), -1)
        return cls(s, c, x)

    @property
    def users(self) -> int:
        return len(self.sums)

    @property
    def per_request(self) -> float:
        return float(self.sums.sum() / self.counts.sum()) if self.users else float("nan")


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric compared between the arms: B minus A, its interval, p-value and power."""

    metric: str
    a: float                 # per request in arm A
    b: float                 # per request in arm B
    diff: float              # b - a
    ci_low: float            # of diff
    ci_high: float
    lift: float              # b / a - 1
    lift_ci_low: float
    lift_ci_high: float
    p_value: float
    power: float             # at a true lift of min_effect
    significant: bool

    def format(self) -> str:
        """Return one readable line."""
        return (f"{self.metric}: A {self.a:.6g}  B {self.b:.6g}  lift {self.lift:+.1%} "
                f"[{self.lift_ci_low:+.1%}, {self.lift_ci_high:+.1%}]  p={self.p_value:.4f}  "
                f"power={self.power:.2f}{'  significant' if self.significant else ''}")


def _ratio(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return sums.sum(axis=-1) / counts.sum(axis=-1)


def adjust(a: MetricSample, b: MetricSample) -> tuple[MetricSample, MetricSample]:
    """Return both arms with each user's sum regression-adjusted on their covariates (CUPED)."""
    if a.covariates is None or b.covariates is None:
        return a, b
    x = np.vstack([a.covariates, b.covariates])
    counts = np.concatenate([a.counts, b.counts])
    x_per_request = x.sum(axis=0) / counts.sum()
    x_dev = x - np.outer(counts, x_per_request)        # the mix a user's requests would predict
    # Centred on the pooled ratio, not each arm's: the slope then never sees an arm label, so
    # the permutation test stays exact (a treatment effect only blurs the slope a little).
    y = np.concatenate([a.sums, b.sums])
    y_dev = y - counts * (y.sum() / counts.sum())
    theta = np.linalg.lstsq(x_dev, y_dev, rcond=None)[0]
    shift = x_dev @ theta
    return (MetricSample(a.sums - shift[:a.users], a.counts),
            MetricSample(b.sums - shift[a.users:], b.counts))


def compare(metric: str, a: MetricSample, b: MetricSample,
            config: ABStatsConfig | None = None) -> MetricResult:
    """Compare ``metric`` per request between arms ``a`` and ``b``, users as the unit."""
    cfg = config if config is not None else ABStatsConfig()
    if a.users < 2 or b.users < 2:
        raise ConfigError(f"each arm needs two users or more, got {a.users} and {b.users}")
    rng = np.random.default_rng(cfg.seed)
    a, b = adjust(a, b)
    ra, rb = a.per_request, b.per_request
    diff = rb - ra
    # Bootstrap: resample users within each arm (the unit of randomization).
    ia = rng.integers(0, a.users, size=(cfg.n_resamples, a.users))
    ib = rng.integers(0, b.users, size=(cfg.n_resamples, b.users))
    boot_a = _ratio(a.sums[ia], a.counts[ia])
    boot_b = _ratio(b.sums[ib], b.counts[ib])
    q = [100 * cfg.alpha / 2, 100 * (1 - cfg.alpha / 2)]
    lo, hi = np.percentile(boot_b - boot_a, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift_lo, lift_hi = np.percentile(boot_b / boot_a - 1, q)
    # Permutation: shuffle arm labels among all users, arm sizes kept.
    sums = np.concatenate([a.sums, b.sums])
    counts = np.concatenate([a.counts, b.counts])
    labels = np.zeros(len(sums), dtype=bool)
    labels[a.users:] = True
    perm = rng.permuted(np.tile(labels, (cfg.n_resamples, 1)), axis=1)
    pb = (perm @ sums) / (perm @ counts)
    pa = (~perm @ sums) / (~perm @ counts)
    extreme = np.abs(pb - pa) >= abs(diff) - 1e-12 * max(abs(ra), abs(rb), 1e-300)
    p_value = float((1 + extreme.sum()) / (1 + cfg.n_resamples))
    # Power at a true difference of min_effect * ra, normal approximation with the bootstrap SE.
    se = float(np.std(boot_b - boot_a, ddof=1))
    z = NormalDist().inv_cdf(1 - cfg.alpha / 2)
    delta = cfg.min_effect * abs(ra)
    power = (1.0 if delta > 0 else 0.0) if se == 0 else (
        NormalDist().cdf(delta / se - z) + NormalDist().cdf(-delta / se - z))
    return MetricResult(metric, ra, rb, diff, float(lo), float(hi),
                        rb / ra - 1 if ra else float("nan"), float(lift_lo), float(lift_hi),
                        p_value, float(power), p_value < cfg.alpha)
