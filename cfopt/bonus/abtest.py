"""Bonus 4: A/B test two serving strategies on one workload, users split by a stable hash.

A user's arm is ``blake2b(salt, user)``: the same in every process and on every machine (unlike
Python's ``hash()``, salted per process), independent of the order users arrive in, and a new
``salt`` gives a fresh, independent split for the next experiment.

A *strategy* replays one arm's requests and returns ``(cost_usd, latency_s)`` per request, in
order. Every strategy is a replay through ``cfopt.pipeline.Pipeline`` (latency is the response
time to first useful content): ``premium_strategy`` (the baseline: every request to the premium
model of its type), ``routed_strategy`` (``CostOptimizer``'s choice, nothing else changed), and
``pipeline_strategy(config, **stages)`` for any switches and any stages of your own.

Two ways to replay, because simulation can do what a live test cannot:

- ``mode="full"`` (the default): each strategy serves *all* the traffic, and each user's figures
  are read from the run of their arm's strategy. Nothing one arm does changes the other's
  figures, so the test measures the strategies as they would run in production;
- ``mode="arm"``: each arm's strategy serves only that arm's traffic, as in a live test. Shared
  resources then split too: each arm gets its own Unsplash free allowance and rate limits and
  its cache sees half the traffic. Even an A/A test can differ for real here (the busier arm
  pays for more photo searches past the free allowance): interference, not a false positive.

``run_abtest`` compares cost and latency per request with ``cfopt.bonus.abstats`` (bootstrap
CI over users, permutation p-value, power) and flags a sample that is too small. With
``adjust=True`` (the default) each user's figures are regression-adjusted (CUPED) on what their
requests were before any strategy ran: how many of each type, and what they would cost at the
premium model's worst case (``CostOptimizer.estimate_cost``).

>>> from cfopt.workload import generate
>>> reqs = generate(600, seed=1, duration_s=600)
>>> r = run_abtest(reqs, premium_strategy(), routed_strategy(), salt="demo")
>>> r.cost.lift < 0 and r.cost.significant        # routing is cheaper, and it shows
True
>>> assign("u0001", "demo") == assign("u0001", "demo")
True
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..cost.optimizer import PREMIUM, CostOptimizer
from ..errors import ConfigError
from ..pipeline import Pipeline, PipelineConfig
from ..workload import Request, strip_intent
from .abstats import ABStatsConfig, MetricResult, MetricSample, compare

__all__ = ["Strategy", "ArmSummary", "ABResult", "assign", "split_users", "premium_strategy",
           "routed_strategy", "pipeline_strategy", "run_abtest"]

Strategy = Callable[[Sequence[Request]], list[tuple[float, float]]]


def assign(user: str, salt: str, share_b: float = 0.5) -> str:
    """Return the arm, ``"A"`` or ``"B"``, of ``user`` in the experiment named ``salt``."""
    digest = hashlib.blake2b(f"{salt}\x1f{user}".encode("utf-8"), digest_size=8).digest()
    return "B" if int.from_bytes(digest, "big") / 2.0 ** 64 < share_b else "A"


def split_users(requests: Sequence[Request], salt: str,
                share_b: float = 0.5) -> tuple[list[Request], list[Request]]:
    """Return the requests of arm A and of arm B, each in its original order."""
    if not 0.0 < share_b < 1.0:
        raise ConfigError(f"share_b must lie in (0, 1), got {share_b}")
    arms: dict[str, list[Request]] = {"A": [], "B": []}
    for r in requests:
        arms[assign(r.user or "anonymous", salt, share_b)].append(r)
    return arms["A"], arms["B"]


def pipeline_strategy(config: PipelineConfig | None = None, *, seed: int = 0,
                      **stages: Any) -> Strategy:
    """Replay through ``cfopt.pipeline.Pipeline`` with ``config`` (None: every optimization on)
    and any ``stages`` (``cost=MyCostOptimizer()``); each request's (cost, response time)."""
    def run(requests: Sequence[Request]) -> list[tuple[float, float]]:
        result = Pipeline(config, seed=seed, **stages).run(requests)
        return [(o.cost_usd, o.response_s) for o in sorted(result.outcomes, key=lambda o: o.index)]
    return run


def premium_strategy(seed: int = 0) -> Strategy:
    """Every request to the premium model of its type: the un-optimized ContentFlow."""
    return pipeline_strategy(PipelineConfig.baseline(), seed=seed)


def routed_strategy(seed: int = 0) -> Strategy:
    """Every request to the cheapest adequate model (``CostOptimizer``), nothing else changed."""
    return pipeline_strategy(PipelineConfig.select(only=["routing"]), seed=seed)


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """What one arm saw."""

    users: int
    requests: int
    cost_usd: float
    cost_per_request: float
    latency_mean_s: float
    latency_p95_s: float


@dataclass
class ABResult:
    """An A/B test: both arms, each metric compared, and whether the sample was big enough."""

    salt: str
    a: ArmSummary
    b: ArmSummary
    cost: MetricResult
    latency: MetricResult
    sample_too_small: bool
    reasons: list[str] = field(default_factory=list)
    adjusted: bool = True
    mode: str = "full"

    def format(self) -> str:
        """Return a readable report."""
        lines = [f"A/B test (salt {self.salt!r}, mode {self.mode!r}); B - A, 95% bootstrap CI over users, "
                 f"permutation p-value{', CUPED-adjusted on request mix' if self.adjusted else ''}"]
        for name, arm in (("A", self.a), ("B", self.b)):
            lines.append(f"  arm {name}: {arm.users} users, {arm.requests} requests, "
                         f"${arm.cost_usd:.4f} (${arm.cost_per_request:.6f}/request), latency "
                         f"mean {arm.latency_mean_s:.3f} s, p95 {arm.latency_p95_s:.3f} s")
        lines += [f"  {self.cost.format()}", f"  {self.latency.format()}"]
        if self.sample_too_small:
            lines.append("  sample too small (a significant result stands; a non-significant one "
                         "would prove nothing): " + "; ".join(self.reasons))
        return "\n".join(lines)


_TYPES = tuple(PREMIUM)


def _mix(r: Request, optimizer: CostOptimizer) -> list[float]:
    """What a request is, known before any strategy serves it: its type, its premium cost."""
    return [float(r.type == t) for t in _TYPES] + [optimizer.estimate_cost(r, PREMIUM[r.type])]


def _per_user(requests: Sequence[Request], outcomes: list[tuple[float, float]], adjust: bool):
    if len(outcomes) != len(requests):
        raise ConfigError(f"a strategy returned {len(outcomes)} outcomes for {len(requests)} requests")
    optimizer = CostOptimizer()
    by_user: dict[str, list] = defaultdict(lambda: [0.0, 0.0, 0, np.zeros(len(_TYPES) + 1)])
    for r, (cost, latency) in zip(requests, outcomes):
        row = by_user[r.user or "anonymous"]
        row[0] += cost
        row[1] += latency
        row[2] += 1
        if adjust:
            row[3] += _mix(r, optimizer)
    rows = [by_user[u] for u in sorted(by_user)]
    counts = [row[2] for row in rows]
    x = [row[3] for row in rows] if adjust else None
    summary = ArmSummary(len(rows), len(requests), sum(c for c, _ in outcomes),
                         sum(c for c, _ in outcomes) / len(requests),
                         float(np.mean([l for _, l in outcomes])),
                         float(np.percentile([l for _, l in outcomes], 95)))
    return (MetricSample.from_users([row[0] for row in rows], counts, x),
            MetricSample.from_users([row[1] for row in rows], counts, x), summary)


def run_abtest(requests: Sequence[Request], strategy_a: Strategy, strategy_b: Strategy, *,
               salt: str = "abtest", share_b: float = 0.5, adjust: bool = True,
               mode: str = "full", config: ABStatsConfig | None = None) -> ABResult:
    """Split users by ``salt``, replay with each arm's strategy, compare cost and latency."""
    cfg = config if config is not None else ABStatsConfig()
    if mode not in ("full", "arm"):
        raise ConfigError(f"mode must be 'full' or 'arm', got {mode!r}")
    blind = strip_intent(requests)
    arm_a, arm_b = split_users(blind, salt, share_b)
    if not arm_a or not arm_b:
        raise ConfigError(f"an arm is empty ({len(arm_a)} and {len(arm_b)} requests): more users needed")
    if mode == "arm":
        out_a, out_b = strategy_a(arm_a), strategy_b(arm_b)
    else:
        full_a = strategy_a(blind)
        full_b = full_a if strategy_b is strategy_a else strategy_b(blind)
        if len(full_a) != len(blind) or len(full_b) != len(blind):
            raise ConfigError("a strategy must return one (cost, latency) per request")
        in_b = [assign(r.user or "anonymous", salt, share_b) == "B" for r in blind]
        out_a = [o for o, b in zip(full_a, in_b) if not b]
        out_b = [o for o, b in zip(full_b, in_b) if b]
    cost_a, lat_a, sum_a = _per_user(arm_a, out_a, adjust)
    cost_b, lat_b, sum_b = _per_user(arm_b, out_b, adjust)
    if min(sum_a.users, sum_b.users) < 2:
        raise ConfigError("each arm needs two users or more to estimate anything")
    cost = compare("cost per request (USD)", cost_a, cost_b, cfg)
    latency = compare("latency per request (s)", lat_a, lat_b, cfg)
    reasons = []
    if min(sum_a.users, sum_b.users) < cfg.min_users:
        reasons.append(f"{min(sum_a.users, sum_b.users)} users in the smaller arm, "
                       f"fewer than {cfg.min_users}")
    for m in (cost, latency):
        if m.power < cfg.min_power:
            reasons.append(f"{m.metric}: power {m.power:.2f} to see a {cfg.min_effect:.0%} lift, "
                           f"below {cfg.min_power:.0%}")
    return ABResult(salt, sum_a, sum_b, cost, latency, bool(reasons), reasons, adjust, mode)
