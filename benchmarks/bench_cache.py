"""Benchmark Part 2: hit rate by layer, limits, false hits, layer speed, de-duplication look-up.

    .venv/bin/python benchmarks/bench_cache.py [--workload datasets/contentflow_1h.jsonl]
        [--redis redis://127.0.0.1:6379/0] [--entries 100000] [--quick]

Prints, on the workload: hit rate per layer against the ceiling (1 - distinct intents /
requests) and Belady's optimum at the memory layer's capacity; the false-hit rate against
``intent``; memory-layer ops/s against raw cachetools; Redis-layer ops/s against raw redis-py
(pipelined); de-duplication look-up time at ``--entries`` cached prompts against the exercise's
linear scan; the MRPC precision/recall table for both detectors (skipped when MRPC is absent).
Every figure is measured in this run; nothing is typed in.
"""
from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cachetools

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cfopt.cache import (CacheManager, CDNLayer, ContentDeduplication, DiskLayer,  # noqa: E402
                         ExerciseDeduplication, MemoryLayer, RedisLayer, belady_hit_rate,
                         lru_hit_rate, make_key)
from cfopt.cache.evaluate import (choose_threshold, evaluate_workload, load_mrpc,  # noqa: E402
                                  mrpc_dir, precision_recall)
from cfopt.clock import VirtualClock  # noqa: E402
from cfopt.pipeline import replay_cache  # noqa: E402
from cfopt.workload import generate, load  # noqa: E402

MEMORY_ENTRIES = 200


def rule(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 74 - len(title)))


def redis_layer(url: str | None) -> RedisLayer | None:
    if not url:
        return None
    layer = RedisLayer(url, namespace=f"cfopt-bench:{uuid.uuid4().hex[:8]}", timeout_s=0.5)
    try:
        layer.client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means "no Redis here"
        print(f"Redis at {url} does not answer ({type(e).__name__}): Redis figures skipped")
        return None
    return layer


def hit_rates(requests, redis: RedisLayer | None, tmp: str) -> None:
    rule(f"hit rate by layer: replay of {len(requests)} requests (memory {MEMORY_ENTRIES} entries)")
    clock = VirtualClock()
    layers = [MemoryLayer(max_entries=MEMORY_ENTRIES, clock=clock),
              DiskLayer(f"{tmp}/cache.sqlite", clock=clock), CDNLayer(f"{tmp}/cdn", clock=clock)]
    if redis:
        layers.append(redis)
    m = CacheManager(layers, clock=clock, dedup=ContentDeduplication())
    t0 = time.perf_counter()
    rep = replay_cache(requests, m)
    took = time.perf_counter() - t0
    stats = m.stats
    n = rep.requests
    for source, count in sorted(rep.by_source.items(), key=lambda kv: -kv[1]):
        print(f"  {source:<18} {count:>6}  {count / n:6.1%}")
    intents = len({r.intent for r in requests})
    keys = [make_key("any", r.type, r.prompt, {"max_tokens": r.max_tokens}, tenant="t") for r in requests]
    print(f"  hit rate (no provider call)   {rep.hit_rate:6.1%}   replayed in {took:.1f} s")
    print(f"  ceiling 1 - intents/requests  {1 - intents / n:6.1%}   ({intents} intents)")
    print(f"  exact-key ceiling             {1 - len(set(keys)) / n:6.1%}")
    print(f"  Belady at {MEMORY_ENTRIES} entries        {belady_hit_rate(keys, MEMORY_ENTRIES):6.1%}"
          f"   LRU {lru_hit_rate(keys, MEMORY_ENTRIES):.1%} (keys only, no TTL)")
    print(f"  truncated answers not cached  {stats.not_cached:>6}   (stop_reason max_tokens)")
    print(f"  false hits (against intent)   {rep.false_hits:>6}   {rep.false_hit_rate:.2%} of requests")
    print(f"  cost ${rep.cost_usd:.2f}, saved ${rep.saved_usd:.2f}")
    for name, s in stats.layers.items():
        print(f"  layer {name:<7} hits {s.hits:>5} misses {s.misses:>5} entries {s.entries:>5} "
              f"bytes {s.bytes:>9,} evictions {s.evictions:>4} failures {s.failures}")
    rule("false hits of the two detectors alone (exact keys, then near-duplicates)")
    for name, det in (("exercise cosine 0.85", ExerciseDeduplication()),
                      ("precise (default)", ContentDeduplication())):
        r = evaluate_workload(requests, det)
        print(f"  {name:<22} semantic hits {r.semantic_hits:>4}  false {r.false_semantic_hits:>4}"
              f"  = {r.false_hit_rate:.2%} of requests")


def ops_per_s(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def memory_speed(n: int) -> None:
    rule(f"memory layer against raw cachetools ({n:,} sets then {n:,} gets)")
    keys = [f"k{i % 5000}" for i in range(n)]
    value = b"x" * 300

    def raw(k):
        c = cachetools.TTLCache(maxsize=10_000, ttl=300)
        for key in keys[:k]:
            c[key] = value
        for key in keys[:k]:
            c.get(key)

    def raw_tlru(k):  # what MemoryLayer wraps: a TTL per entry needs TLRUCache's heap
        c = cachetools.TLRUCache(maxsize=10_000, ttu=lambda _k, _v, now: now + 300)
        for key in keys[:k]:
            c[key] = value
        for key in keys[:k]:
            c.get(key)

    def layer(k):
        c = MemoryLayer(max_entries=10_000)
        for key in keys[:k]:
            c.set(key, value, 300)
        for key in keys[:k]:
            c.get(key)

    r, t, l_ = ops_per_s(raw, n) * 2, ops_per_s(raw_tlru, n) * 2, ops_per_s(layer, n) * 2
    print(f"  raw cachetools.TTLCache  {r:>12,.0f} ops/s   (one TTL for all)")
    print(f"  raw cachetools.TLRUCache {t:>12,.0f} ops/s   (a TTL per entry)")
    print(f"  MemoryLayer              {l_:>12,.0f} ops/s   ({l_ / r:.2f}x TTLCache, {l_ / t:.2f}x TLRUCache: "
          "validation, byte and entry bounds, stats, a lock)")


def redis_speed(layer: RedisLayer, n: int) -> None:
    rule(f"Redis layer against raw redis-py ({n:,} keys, 300-byte values)")
    client = layer.client
    value = b"x" * 300
    keys = [f"k{i}" for i in range(n)]
    raw_prefix = layer.namespace + ":raw:"

    def raw_pipe(k):
        for start in range(0, k, 1000):
            pipe = client.pipeline(transaction=False)
            for key in keys[start:start + 1000]:
                pipe.set(raw_prefix + key, value, px=60_000)
            pipe.execute()
        for start in range(0, k, 1000):
            client.mget([raw_prefix + key for key in keys[start:start + 1000]])

    def layer_bulk(k):
        for start in range(0, k, 1000):
            layer.set_many({key: value for key in keys[start:start + 1000]}, ttl=60)
        for start in range(0, k, 1000):
            layer.get_many(keys[start:start + 1000])

    def raw_single(k):
        for key in keys[:k]:
            client.set(raw_prefix + key, value, px=60_000)
            client.get(raw_prefix + key)

    def layer_single(k):
        for key in keys[:k]:
            layer.set(key, value, 60)
            layer.get(key)

    rp, lb = ops_per_s(raw_pipe, n) * 2, ops_per_s(layer_bulk, n) * 2
    single = min(n, 5000)
    rs, ls = ops_per_s(raw_single, single) * 2, ops_per_s(layer_single, single) * 2
    print(f"  raw redis-py pipeline + MGET   {rp:>10,.0f} ops/s")
    print(f"  RedisLayer set_many/get_many   {lb:>10,.0f} ops/s   ({lb / rp:.2f}x)")
    print(f"  raw redis-py one by one        {rs:>10,.0f} ops/s")
    print(f"  RedisLayer set/get one by one  {ls:>10,.0f} ops/s   ({ls / rs:.2f}x)")
    layer.clear()


def corpus(entries: int, seed: int = 5) -> tuple[list[str], list[str]]:
    """``entries`` distinct prompts and fresh queries built from generated ContentFlow traffic."""
    base = list(dict.fromkeys(r.prompt for r in generate(20_000, seed=seed)))
    owners = [f"{a} {b} in {c}" for a, b, c in itertools.product(
        ["Acme", "Blue", "Green", "North", "Sunny", "Little", "Urban", "Golden", "Silver", "Happy",
         "Bright", "Royal"],
        ["Bakery", "Studio", "Clinic", "Outfitters", "Roasters", "Labs", "Garden Centre",
         "Pet Shop", "Travel", "Fitness"],
        ["Leeds", "Lyon", "Austin", "Porto", "Osaka", "Denver", "Bristol", "Turin", "Perth",
         "Quebec", "Cork", "Graz"])]
    rng = random.Random(seed)
    prompts: dict[str, None] = {}
    while len(prompts) < entries:
        prompts[f"{rng.choice(base)} for {rng.choice(owners)}"] = None
    stored = list(prompts)
    queries = [f"{rng.choice(base)} for {rng.choice(owners)}" for _ in range(400)]
    # a quarter of the look-ups are paraphrases of stored prompts: hits to find
    queries[::4] = [f"Please {p.lower()}!" for p in rng.sample(stored, len(queries[::4]))]
    return stored, queries


def dedup_speed(entries: int, scans: int) -> None:
    rule(f"de-duplication look-up at {entries:,} cached prompts (one scope: the worst case)")
    stored, queries = corpus(entries)
    precise, exercise = ContentDeduplication(), ExerciseDeduplication()
    t0 = time.perf_counter()
    for i, p in enumerate(stored):
        precise.add(p, f"k{i}")
    built = time.perf_counter() - t0
    for i, p in enumerate(stored):
        exercise.add(p, f"k{i}")
    t0 = time.perf_counter()
    found = sum(precise.find(q) is not None for q in queries)
    per = (time.perf_counter() - t0) / len(queries)
    t0 = time.perf_counter()
    for q in queries[:scans]:
        exercise.find(q)
    scan = (time.perf_counter() - t0) / scans
    print(f"  exercise linear scan   {scan * 1000:9.1f} ms per look-up ({scans} look-ups)")
    print(f"  precise, indexed       {per * 1000:9.2f} ms per look-up ({len(queries)} look-ups, "
          f"{found} matches, {precise.candidates_scored / precise.lookups:.1f} verified each; "
          f"index built in {built:.1f} s)")
    print(f"  speed-up               {scan / per:9.0f}x")
    scoped = ContentDeduplication()
    tasks = [p.split(" ")[1] if " " in p else "" for p in stored]   # a stand-in scope: 2nd word
    for i, (p, t) in enumerate(zip(stored, tasks)):
        scoped.add(p, f"k{i}", scope=t)
    t0 = time.perf_counter()
    for q in queries:
        scoped.find(q, scope=q.split(" ")[1] if " " in q else "")
    print(f"  precise, scoped (as the manager uses it: tenant, model, type, task, quality) "
          f"{(time.perf_counter() - t0) / len(queries) * 1000:.2f} ms per look-up")


def mrpc_table() -> None:
    rule("MRPC (test split; thresholds chosen on train: highest recall at precision >= 0.95)")
    try:
        train, test = load_mrpc("train"), load_mrpc("test")
    except FileNotFoundError:
        print(f"  skipped: MRPC is not available here ({mrpc_dir()})")
        return
    lt, le = [p.paraphrase for p in train], [p.paraphrase for p in test]
    detectors = [("exercise bag-of-words cosine", ExerciseDeduplication()),
                 ("precise coverage + guards", ContentDeduplication().fit(s for p in train for s in (p.a, p.b)))]
    print(f"  {'detector':<30} {'threshold':>9} {'precision':>9} {'recall':>7}")
    for name, det in detectors:
        st = [det.similarity(p.a, p.b) for p in train]
        se = [det.similarity(p.a, p.b) for p in test]
        t = choose_threshold(st, lt)
        pr = precision_recall(se, le, t)
        print(f"  {name:<30} {t:9.3f} {pr.precision:9.3f} {pr.recall:7.3f}")
        if isinstance(det, ExerciseDeduplication):
            fixed = precision_recall(se, le, 0.85)
            print(f"  {'  (at its fixed 0.85)':<30} {0.85:9.3f} {fixed.precision:9.3f} {fixed.recall:7.3f}")
    try:
        import sentence_transformers  # noqa: F401
        print("  sentence-transformers is installed, but the MiniLM row is not wired in yet")
    except ImportError:
        print("  MiniLM (optional extra): not installed here, not measured")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default=str(ROOT / "datasets" / "contentflow_1h.jsonl"))
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = ap.parse_args()
    entries = 5_000 if args.quick else args.entries
    requests = load(args.workload)
    redis = redis_layer(args.redis)
    with tempfile.TemporaryDirectory(prefix="cfopt-bench-") as tmp:
        hit_rates(requests, redis, tmp)
    memory_speed(20_000 if args.quick else 200_000)
    if redis:
        redis_speed(redis, 5_000 if args.quick else 50_000)
        redis.clear()
    dedup_speed(entries, scans=3 if args.quick else 5)
    mrpc_table()


if __name__ == "__main__":
    main()
