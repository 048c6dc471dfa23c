"""Part 2's decision (cfopt.course.decisions.caching): memory plans replayed against a budget, the
search for the best plan, the variants the grader replays; and the MRPC curves notebook 02 shows
when MRPC is absent (cfopt.cache.evaluate)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from cfopt.cache import ContentDeduplication, ExerciseDeduplication, MemoryLayer
from cfopt.cache.evaluate import evaluate_workload, load_mrpc, mrpc_curves, saved_mrpc_curves
from cfopt.clock import VirtualClock
from cfopt.course.decisions.caching import (CAPACITIES, MEMORY_BUDGET_BYTES, TTLS, TYPES,
                                            MemoryPlan, MemoryReplay, memory_variant, plan_of)
from cfopt.errors import ConfigError
from cfopt.workload import load

ROOT = Path(__file__).resolve().parents[1]
HOUR = load(ROOT / "datasets" / "contentflow_1h.jsonl")
FOREVER = dict.fromkeys(TYPES, 3600)


@pytest.fixture(scope="module")
def hour():
    return MemoryReplay.of(HOUR)


@pytest.fixture(scope="module")
def part():
    """The first 1,500 requests of the hour against a smaller budget: quick to search."""
    return MemoryReplay.of(HOUR[:1500], budget_bytes=300_000)


def _naive(replay, plan):
    """The plan's hits and peak bytes, the slow and obvious way: every entry's expiry and last
    use in a dict, expired entries dropped before each store, then the least recently used."""
    plan = plan_of(plan)
    held = {}   # key -> [expires at, last used, bytes]
    hits = peak = 0
    for i, (t, kind, key, size) in enumerate(zip(replay.times, replay.types, replay.keys, replay.sizes)):
        if key in held and t < held[key][0]:
            hits += 1
            held[key][1] = i
            continue
        if plan.ttl_s[kind] <= 0:
            continue
        for k in [k for k, e in held.items() if e[0] <= t]:
            del held[k]
        while len(held) >= plan.capacity:
            del held[min(held, key=lambda k: held[k][1])]
        held[key] = [t + plan.ttl_s[kind], i, size]
        peak = max(peak, sum(e[2] for e in held.values()))
    return hits, peak


def test_a_replay_is_what_a_plain_simulation_of_the_layer_gives(part):
    rng = random.Random(5)
    plans = [{"capacity": 40, "ttl_s": FOREVER}, {"capacity": 500, "ttl_s": dict.fromkeys(TYPES, 120)},
             {"capacity": 1, "ttl_s": FOREVER}]
    plans += [{"capacity": rng.choice([20, 80, 200]), "ttl_s": {t: rng.choice(TTLS) for t in TYPES}}
              for _ in range(4)]
    for plan in plans:
        got = part.outcome(plan)
        assert (got.hits, got.peak_bytes) == _naive(part, plan), plan
        assert sum(got.hits_by_type.values()) == got.hits
        assert sum(got.peak_by_type.values()) == got.peak_bytes
        assert got.fits == (got.peak_bytes <= part.budget_bytes)


def test_entry_sizes_are_what_the_memory_layer_counts(part):
    layer = MemoryLayer(clock=VirtualClock())
    seen = {}
    for key, size in zip(part.keys, part.sizes):
        seen.setdefault(key, size)
    for key, size in list(seen.items())[:20]:
        before = layer.stats.bytes
        layer.set(key, b"x" * (size - len(key)), ttl=60)
        assert layer.stats.bytes - before == size
    photo = [s for k, s in zip(part.types, part.sizes) if k == "photo"]
    text = [s for k, s in zip(part.types, part.sizes) if k == "text"]
    assert sum(photo) / len(photo) > 5 * sum(text) / len(text)   # a page of photos outweighs a text


def test_ttls_and_capacity_do_what_they_say(part):
    none = part.outcome({"capacity": 100, "ttl_s": dict.fromkeys(TYPES, 0)})
    assert none.hits == 0 and none.peak_bytes == 0
    no_photo = part.outcome({"capacity": 100, "ttl_s": {**FOREVER, "photo": 0}})
    assert no_photo.hits_by_type["photo"] == 0 and no_photo.peak_by_type["photo"] == 0
    instant = part.outcome({"capacity": 100, "ttl_s": dict.fromkeys(TYPES, 1e-3)})
    assert instant.hits == 0
    small, large = (part.outcome({"capacity": c, "ttl_s": FOREVER}) for c in (50, 400))
    assert small.hits < large.hits and small.peak_bytes < large.peak_bytes
    unlimited = part.outcome({"capacity": 10 ** 6, "ttl_s": dict.fromkeys(TYPES, 86_400)})
    assert unlimited.hit_rate == pytest.approx(part.ceiling())
    assert part.belady(400) >= part.outcome({"capacity": 400, "ttl_s": FOREVER}).hit_rate
    assert part.hit_rate_if_fits({"capacity": 10 ** 6, "ttl_s": FOREVER}) is None
    assert part.hit_rate_if_fits({"capacity": 10, "ttl_s": FOREVER}) == pytest.approx(
        part.outcome({"capacity": 10, "ttl_s": FOREVER}).hit_rate)


@pytest.mark.parametrize("plan, says", [
    ({"capacity": 100}, "two keys"),
    ({"capacity": 100, "ttl_s": {"text": 60}}, "gives no TTL for analysis"),
    ({"capacity": 100, "ttl_s": {**FOREVER, "photos": 60}}, "names ['photos']"),
    ({"capacity": 0, "ttl_s": FOREVER}, "at least 1"),
    ({"capacity": True, "ttl_s": FOREVER}, "whole number"),
    ({"capacity": 10.0, "ttl_s": FOREVER}, "whole number"),
    ({"capacity": 10, "ttl_s": {**FOREVER, "video": -1}}, "TTL of video"),
    ({"capacity": 10, "ttl_s": {**FOREVER, "video": "1h"}}, "TTL of video"),
    ([600, FOREVER], "a plan is a dict"),
])
def test_a_malformed_plan_is_refused_with_what_is_wrong(part, plan, says):
    with pytest.raises(ConfigError) as e:
        part.outcome(plan)
    assert says in str(e.value)


def test_a_plan_object_and_its_dict_are_the_same_plan(part):
    plan = MemoryPlan(120, {**FOREVER, "photo": 30})
    assert part.outcome(plan) == part.outcome({"capacity": 120, "ttl_s": {**FOREVER, "photo": 30}})
    assert "120 entries" in plan.describe() and "photo 30 s" in plan.describe()


def test_the_best_plan_fits_and_beats_every_plan_of_a_coarse_grid(part):
    best = part.best_plan()
    assert best.fits and best.hit_rate <= part.ceiling()
    rng = random.Random(11)
    for _ in range(40):
        plan = {"capacity": rng.choice(CAPACITIES), "ttl_s": {t: rng.choice(TTLS) for t in TYPES}}
        got = part.outcome(plan)
        if got.fits:
            assert got.hits <= best.hits, plan
    assert part.best_plan() is best   # searched once per replay


def test_on_the_bundled_hour_thinking_pays(hour):
    """The exercise's design: naive plans break the budget or fall far short of the best."""
    best = hour.best_plan()
    assert hour.budget_bytes == MEMORY_BUDGET_BYTES and best.fits
    assert best.hit_rate < hour.ceiling() - 0.05                      # the budget binds
    assert not hour.outcome({"capacity": 1000, "ttl_s": FOREVER}).fits  # keep everything: too big
    assert not hour.outcome({"capacity": 2000, "ttl_s": dict.fromkeys(TYPES, 300)}).fits
    plain = hour.outcome({"capacity": 300, "ttl_s": FOREVER})          # fits, and leaves hits behind
    assert plain.fits and plain.hit_rate < 0.93 * best.hit_rate
    good = hour.outcome({"capacity": 620, "ttl_s": {**FOREVER, "photo": 30}})
    assert good.fits and good.peak_bytes < 0.97 * hour.budget_bytes
    assert good.hit_rate > 0.98 * best.hit_rate


def test_variants_are_other_hours_of_the_same_traffic():
    a, b = memory_variant(7, n=300, duration_s=600), memory_variant(8, n=300, duration_s=600)
    assert a == memory_variant(7, n=300, duration_s=600) and a != b
    assert len(a) == 300 and {r.type for r in a} <= set(TYPES)


def test_the_workload_replay_lists_the_near_duplicates_it_served():
    part = HOUR[:1500]
    for det in (ExerciseDeduplication(), ContentDeduplication()):
        r = evaluate_workload(part, det)
        assert len(r.served) == r.semantic_hits
        assert sum(not same for _, _, same in r.served) == r.false_semantic_hits
        assert all(a != b for a, b, _ in r.served[:50])


def test_the_saved_mrpc_curves_are_complete():
    saved = saved_mrpc_curves()
    assert saved["measured"] and "MRPC" in saved["source"]
    assert [d["name"] for d in saved["detectors"]] == ["exercise: bag-of-words cosine",
                                                       "precise: coverage + guards"]
    for d in saved["detectors"]:
        assert len(d["curve"]) == 26 and {"precision", "recall"} <= set(d["at_threshold"])
    assert len(saved["tradeoff"]["static"]) == 5 and len(saved["tradeoff"]["bounded"]) == 5


@pytest.mark.slow
def test_the_saved_mrpc_curves_are_what_mrpc_measures_now():
    try:
        train, test = load_mrpc("train"), load_mrpc("test")
    except FileNotFoundError:
        pytest.skip("MRPC is not available here")
    saved = saved_mrpc_curves()
    saved.pop("measured")
    assert mrpc_curves(train, test) == saved
