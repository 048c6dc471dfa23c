"""Prediction for cache warming: the blend ranks what it should, never reads intent, and warming
through the real CacheManager lifts the hit rate exactly where expiry had cost hits."""
from __future__ import annotations

from dataclasses import replace

import pytest

from cfopt.bonus.predict import PredictorConfig, RequestPredictor, request_key
from cfopt.bonus.warming import WarmingConfig, evaluate_warming
from cfopt.errors import ConfigError
from cfopt.workload import Request, generate


def _r(t, prompt, user="u1", kind="photo", **kw):
    return Request(t=float(t), type=kind, prompt=prompt, user=user, **kw)


def test_markov_chain_predicts_the_users_next_step():
    p = RequestPredictor()
    cycle = ["red bicycle", "blue car", "green tram"]
    for i in range(30):
        p.observe(_r(i, cycle[i % 3]))
    # The last request was cycle[29 % 3] = "green tram"; next comes "red bicycle".
    (first, prob), *_ = p.predict("u1", 3)
    assert first.prompt == "red bicycle" and prob > 0.8


def test_recent_popularity_beats_old_popularity_for_a_new_user():
    p = RequestPredictor(PredictorConfig(half_life_s=600))
    for i in range(5):
        p.observe(_r(i, "old favourite", user=f"a{i}"))
    for i in range(3):
        p.observe(_r(3000 + i, "new trend", user=f"b{i}"))
    ranked = [r.prompt for r, _ in p.predict("newcomer", 2)]
    assert ranked == ["new trend", "old favourite"]
    # Without decay worth the name, the old favourite's larger count wins.
    slow = RequestPredictor(PredictorConfig(half_life_s=1e9))
    for i in range(5):
        slow.observe(_r(i, "old favourite", user=f"a{i}"))
    for i in range(3):
        slow.observe(_r(3000 + i, "new trend", user=f"b{i}"))
    assert [r.prompt for r, _ in slow.predict("newcomer", 2)] == ["old favourite", "new trend"]


def test_probabilities_form_a_distribution_over_seen_requests():
    p = RequestPredictor()
    reqs = generate(300, seed=4, duration_s=600)
    p.observe_all(reqs)
    keys = {request_key(r) for r in reqs}
    user = reqs[-1].user
    assert sum(p.probability(user, k) for k in keys) == pytest.approx(1.0)
    probs = [pr for _, pr in p.predict(user, 5)]
    assert probs == sorted(probs, reverse=True) and all(0 < x <= 1 for x in probs)


def test_intent_is_never_read():
    reqs = generate(400, seed=9, duration_s=900)
    scrambled = [replace(r, intent=f"bogus-{i}") for i, r in enumerate(reqs)]
    a, b = RequestPredictor(), RequestPredictor()
    a.observe_all(reqs)
    b.observe_all(scrambled)
    users = sorted({r.user for r in reqs})[:20]
    for u in users:
        pa, pb = a.predict(u, 5), b.predict(u, 5)
        assert [(r.prompt, pr) for r, pr in pa] == [(r.prompt, pr) for r, pr in pb]
        assert all(r.intent is None for r, _ in pa + pb)


def test_deterministic_and_checked():
    reqs = generate(300, seed=1, duration_s=600)
    runs = []
    for _ in range(2):
        p = RequestPredictor()
        p.observe_all(reqs)
        runs.append([(request_key(r), pr) for r, pr in p.predict(reqs[-1].user, 4)])
    assert runs[0] == runs[1]
    with pytest.raises(ConfigError):
        RequestPredictor().predict("u", 0)
    with pytest.raises(ConfigError):
        PredictorConfig(half_life_s=0)


def _cycle_every(seconds: float, rounds: int) -> list[Request]:
    """One user asks A, B, C in turn, each ``seconds`` apart: longer than the memory TTL."""
    prompts = ["a chart of coffee prices", "a city at dawn", "a bowl of ramen"]
    return [_r(i * seconds, prompts[i % 3], kind="image", task="hero_image", quality="low")
            for i in range(rounds)]


def test_warming_recovers_hits_that_expiry_loses():
    reqs = _cycle_every(200.0, 60)  # each prompt comes back every 600 s; the TTL is 300 s
    cfg = WarmingConfig(k=1, threshold=0.2, ttls=_short_ttls())
    report = evaluate_warming(reqs, cfg)
    assert report.cold.hit_rate == 0.0                  # every entry expired before its reuse
    assert report.next_hit_at_k == pytest.approx(1.0)  # the chain knows what comes next
    assert report.warm.hit_rate == pytest.approx(1.0)  # so each answer was ready in time
    assert report.lift == pytest.approx(1.0)
    assert report.cold.mean_wait_s > 0 and report.warm.wait_s == 0.0   # time is what it buys
    w = report.warm
    assert w.warmed == w.warm_used + w.wasted and w.wasted <= 1   # at most the last one unused
    assert report.net_saving_usd == pytest.approx(w.wasted_cost_usd * -1, abs=1e-9)


def _short_ttls():
    from cfopt.cache import TTLPolicy
    # 300 s: longer than the 200 s from a warm-up to its use, shorter than the 600 s reuse period.
    return TTLPolicy(memory=300.0, disk=300.0, redis=300.0, cdn=300.0, media_factor=1.0)


def test_no_warming_above_every_probability():
    reqs = generate(600, seed=6, duration_s=1200)
    report = evaluate_warming(reqs, WarmingConfig(threshold=1.0))
    assert report.warm.warmed == 0 and report.lift == 0.0
    assert report.warm.served_cost_usd == pytest.approx(report.cold.served_cost_usd)


def test_warming_on_a_generated_workload_is_accounted_for():
    reqs = generate(1200, seed=5, duration_s=1800)
    r = evaluate_warming(reqs, WarmingConfig(k=3))
    assert r.test_requests == len(reqs) - len(reqs) // 2
    assert r.cold.requests == r.warm.requests == r.test_requests
    assert r.cold.warmed == 0 and r.warm.warmed > 0
    assert r.warm.warmed == r.warm.warm_used + r.warm.wasted
    assert 0 <= r.warm.wasted_cost_usd <= r.warm.warm_cost_usd
    # Warmed entries read are hits the cold cache lacked (not one for one: a warmed entry's TTL
    # started earlier than the cold cache's refetch, so the two caches drift apart afterwards).
    assert r.warm.hits > r.cold.hits and r.warm.warm_used > 0
    assert 0 < r.precision_at_k < 1 and 0 < r.next_hit_at_k < 1


def test_a_request_that_joins_its_warm_up_in_flight_counts_the_warm_up_as_used():
    from cfopt.pipeline import Pipeline, PipelineConfig
    from cfopt.workload import Request
    wanted = Request(t=1.0, type="text", task="blog_post", max_tokens=600, user="ann",
                     prompt="Write a blog post about repairing jeans at home.")
    reqs = [Request(t=0.0, type="photo", prompt="red bicycle", user="ann"), wanted]
    pipe = Pipeline(PipelineConfig())

    def arrive(r):
        if r.type == "photo":   # as a predictor would: ann asks for the post next
            pipe.prefetch(wanted)
    run = pipe.run(reqs, on_arrival=arrive)
    post = run.outcomes[1]
    assert post.source == "coalesced"            # the warm-up was still on its way at t = 1 s
    assert run.warm["calls"] == 1 and run.warm["used"] == 1 and run.warm["wasted"] == 0
