"""A/B testing: a stable ~50/50 split, calibrated p-values, real effects found, small samples flagged."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cfopt.bonus.abstats import ABStatsConfig, MetricSample, compare
from cfopt.bonus.abtest import (assign, pipeline_strategy, premium_strategy, routed_strategy,
                                run_abtest, split_users)
from cfopt.errors import ConfigError
from cfopt.workload import generate

ROOT = Path(__file__).resolve().parents[1]
USERS = [f"u{i:05d}" for i in range(10_000)]


@pytest.fixture(scope="module")
def workload():
    return generate(1500, seed=11, duration_s=1800)   # 104 users


def test_split_is_about_half_and_half():
    share_b = sum(assign(u, "exp-1") == "B" for u in USERS) / len(USERS)
    assert 0.48 < share_b < 0.52
    share_b = sum(assign(u, "exp-1", share_b=0.2) == "B" for u in USERS) / len(USERS)
    assert 0.18 < share_b < 0.22


def test_split_is_stable_across_processes_and_salts_are_independent():
    code = ("from cfopt.bonus.abtest import assign; "
            "print(''.join(assign(f'u{i:05d}', 'exp-1') for i in range(300)))")
    here = "".join(assign(u, "exp-1") for u in USERS[:300])
    for hash_seed in ("1", "2"):  # Python's hash() would differ between these two
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=ROOT, check=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)})
        assert out.stdout.strip() == here
    agree = np.mean([assign(u, "exp-1") == assign(u, "exp-2") for u in USERS])
    assert 0.47 < agree < 0.53


def test_split_users_keeps_order_and_every_request(workload):
    a, b = split_users(workload, "s")
    assert len(a) + len(b) == len(workload)
    assert {r.user for r in a}.isdisjoint({r.user for r in b})
    assert [r.t for r in a] == sorted(r.t for r in a)


def test_compare_finds_a_known_effect_and_covers_it():
    rng = np.random.default_rng(5)
    counts = rng.integers(5, 50, size=(2, 150))
    sums_a = counts[0] * rng.gamma(4.0, 0.25, 150)          # 1.0 per request on average
    sums_b = counts[1] * rng.gamma(4.0, 0.25, 150) * 1.2     # 1.2: a +20% lift
    a, b = MetricSample.from_users(sums_a, counts[0]), MetricSample.from_users(sums_b, counts[1])
    r = compare("m", a, b, ABStatsConfig(n_resamples=1000))
    assert r.significant and r.p_value < 0.01
    assert r.lift_ci_low < 0.2 < r.lift_ci_high and r.lift_ci_low > 0
    assert r.power < 0.5                      # 150 users each cannot reliably see a 5% lift...
    big = compare("m", a, b, ABStatsConfig(n_resamples=1000, min_effect=0.2))
    assert big.power > 0.8                    # ...but can see a 20% one


def test_aa_false_positive_rate_is_near_alpha(workload):
    """An A/A test over 40 splits: about alpha (0.05) of them may be "significant", no more."""
    cache = {}

    def same(requests):  # one strategy for both arms; replay once, reuse for every salt
        if len(requests) not in cache:
            cache[len(requests)] = routed_strategy()(requests)
        return cache[len(requests)]

    cfg = ABStatsConfig(n_resamples=1000)
    results = [run_abtest(workload, same, same, salt=f"aa-{i}", config=cfg) for i in range(40)]
    for metric in ("cost", "latency"):
        positives = sum(getattr(r, metric).significant for r in results)
        # Binomial(40, 0.05): 7 or more happens with probability 0.0004 if calibrated.
        assert positives <= 6, f"{metric}: {positives} of 40 A/A tests significant"
    p = np.array([r.cost.p_value for r in results])
    assert 0.3 < np.median(p) < 0.7  # p-values of a true null are spread evenly over (0, 1)


def test_real_difference_is_detected(workload):
    r = run_abtest(workload, premium_strategy(), routed_strategy(), salt="real")
    assert r.cost.significant and r.cost.lift < 0 and r.cost.lift_ci_high < 0
    assert r.a.users + r.b.users == len({q.user for q in workload})
    text = r.format()
    assert "cost per request" in text and "p=" in text


def test_pipeline_configs_as_strategies():
    from cfopt.pipeline import PipelineConfig
    reqs = generate(600, seed=2, duration_s=900)
    r = run_abtest(reqs, pipeline_strategy(PipelineConfig.baseline()), pipeline_strategy(),
                   salt="pipe", config=ABStatsConfig(min_users=5))
    assert r.cost.lift < 0 and r.cost.significant


def test_too_small_samples_are_flagged(workload):
    few = [r for r in workload if r.user in sorted({q.user for q in workload})[:10]]
    r = run_abtest(few, routed_strategy(), routed_strategy(), salt="tiny")
    assert r.sample_too_small and any("users in the smaller arm" in why for why in r.reasons)
    assert "sample too small" in r.format()


def test_arm_mode_and_bad_arguments(workload):
    r = run_abtest(workload[:400], routed_strategy(), routed_strategy(), salt="x", mode="arm")
    assert r.mode == "arm" and r.a.requests + r.b.requests == 400
    with pytest.raises(ConfigError):
        run_abtest(workload, routed_strategy(), routed_strategy(), mode="both")
    with pytest.raises(ConfigError):
        run_abtest(workload, routed_strategy(), lambda reqs: [], salt="x")
    with pytest.raises(ConfigError):
        MetricSample.from_users([1.0, 2.0], [1, 0])
