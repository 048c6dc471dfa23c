"""CacheManager: strategies, promotion, TTLs per layer, what is never cached, tenants,
invalidation, warming, stats, single-flight, Redis outages and two processes sharing Redis."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from cfopt.cache import (CacheManager, CDNLayer, DiskLayer, MemoryLayer, Prediction, RedisLayer,
                         TTLPolicy, cache_key)
from cfopt.clock import VirtualClock
from cfopt.errors import ConfigError, ServerError
from cfopt.pricing import Usage, load_catalog
from cfopt.providers.base import Call, Result


class CountingProvider:
    """A fake provider that counts calls; ``asend`` takes virtual time so calls overlap."""

    def __init__(self, clock=None, *, stop_reason="end_turn", fail=0):
        self.calls, self.clock, self.stop_reason, self.fail = 0, clock, stop_reason, fail

    def _answer(self, call: Call) -> Result:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise ServerError("injected", provider="fake")
        info = load_catalog().model(call.model)
        content = f"answer #{self.calls} to {call.prompt}"
        if info.kind == "photo":
            content = '{"results": [{"urls": {"regular": "https://images.unsplash.com/photo-1"}}]}'
        return Result(info.provider, info.id, info.kind, content, Usage(output_tokens=5), 0.01,
                      1.0, 0.5, 0.0, stop_reason=self.stop_reason if info.kind == "text" else None)

    def send(self, call):
        return self._answer(call)

    async def asend(self, call):
        await asyncio.sleep(0.05)  # long enough for every concurrent request to arrive
        return self._answer(call)


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def two_layers(tmp_path, clock):
    return MemoryLayer(clock=clock), DiskLayer(tmp_path / "c.sqlite", clock=clock)


def manager(layers, provider=None, **kw):
    return CacheManager(list(layers), provider=provider or CountingProvider(), **kw)


def test_get_returns_the_value_and_its_layer_and_promotes_it(two_layers):
    memory, disk = two_layers
    m = manager(two_layers)
    served = m.fetch(Call("haiku", "hello"))
    memory.clear()
    value, layer = m.get(served.key)
    assert (value, layer) == (served.result, "disk")
    assert m.get(served.key) == (served.result, "memory")  # promoted on the hit


@pytest.mark.parametrize("strategy, order", [
    ("memory-first", ["memory", "disk", "redis", "cdn"]),
    ("redis-first", ["redis", "memory", "disk", "cdn"]),
    ("cdn-first", ["cdn", "memory", "disk", "redis"])])
def test_strategies_set_the_order_of_layers(tmp_path, clock, redis_url, redis_namespace,
                                            strategy, order):
    layers = [CDNLayer(tmp_path / "cdn", clock=clock), MemoryLayer(clock=clock),
              RedisLayer(redis_url, namespace=redis_namespace),
              DiskLayer(tmp_path / "c.sqlite", clock=clock)]
    m = manager(layers, strategy=strategy)
    assert [l.name for l in m.layers] == order
    img = m.fetch(Call("flux_dev", "a red fox"))
    assert m.get(img.key, "image").layer == order[0]
    text = m.fetch(Call("haiku", "a red fox"))   # the CDN holds media only
    assert m.get(text.key, "text").layer == [n for n in order if n != "cdn"][0]


def test_ttls_grow_from_memory_to_disk(two_layers, clock):
    memory, disk = two_layers
    m = manager(two_layers, ttls=TTLPolicy(memory=10, disk=100, redis=100, cdn=1000))
    key = m.fetch(Call("haiku", "hello")).key
    clock.advance(11)
    assert memory.get(key) is None and disk.get(key) is not None
    clock.advance(90)
    assert m.get(key) == (None, None)


def test_truncated_answers_and_errors_are_never_cached(two_layers):
    m = manager(two_layers, CountingProvider(stop_reason="max_tokens"))
    m.fetch(Call("haiku", "long essay", max_tokens=5))
    assert m.fetch(Call("haiku", "long essay", max_tokens=5)).source == "provider"
    assert m.stats.not_cached == 2
    m = manager(two_layers, CountingProvider(fail=1))
    with pytest.raises(ServerError):
        m.fetch(Call("haiku", "flaky"))
    assert m.fetch(Call("haiku", "flaky")).source == "provider"
    assert m.fetch(Call("haiku", "flaky")).source == "memory"
    assert m.stats.errors == 1


def test_no_cache_and_force_refresh(two_layers):
    p = CountingProvider()
    m = manager(two_layers, p)
    first = m.fetch(Call("haiku", "hello"), no_cache=True)
    assert m.get(first.key).value is None                     # not written
    m.fetch(Call("haiku", "hello"))
    assert m.fetch(Call("haiku", "hello"), no_cache=True).source == "provider"  # not read
    fresh = m.fetch(Call("haiku", "hello"), force_refresh=True)
    assert fresh.source == "provider" and m.get(fresh.key).value == fresh.result
    assert p.calls == 4


def test_tenants_never_read_each_others_entries_and_invalidate_per_tenant(two_layers):
    p = CountingProvider()
    m = manager(two_layers, p)
    for tenant in ("acme", "globex"):
        assert m.fetch(Call("haiku", "same prompt"), tenant=tenant).source == "provider"
        assert m.fetch(Call("haiku", "same prompt"), tenant=tenant).source == "memory"
    m.fetch(Call("flux_dev", "a red fox"), tenant="acme")
    assert m.invalidate("acme:*") == 4          # 2 entries x 2 layers
    assert m.fetch(Call("haiku", "same prompt"), tenant="globex").source == "memory"
    assert m.fetch(Call("haiku", "same prompt"), tenant="acme").source == "provider"


def test_invalidate_by_model_pattern_counts_across_layers(two_layers):
    m = manager(two_layers)
    m.fetch(Call("haiku", "a"))
    m.fetch(Call("flux_dev", "b"))
    m.fetch(Call("flux_dev", "c"))
    assert m.invalidate("*:fal:flux_dev:*") == 4
    assert m.invalidate("*:fal:flux_dev:*") == 0


def test_stock_photos_stay_hot_linked_media_goes_to_the_cdn(tmp_path, clock):
    cdn = CDNLayer(tmp_path / "cdn", clock=clock)
    m = manager([MemoryLayer(clock=clock), cdn], strategy="cdn-first")
    photo = m.fetch(Call("unsplash-search", "red fox"))
    assert m.get(photo.key, "photo").layer == "memory" and cdn.stats.entries == 0
    assert "images.unsplash.com" in m.get(photo.key, "photo").value.content  # JSON, not bytes
    m.fetch(Call("flux_dev", "a red fox"))
    assert cdn.stats.entries == 1


def test_warm_cache_generates_only_predictions_above_the_threshold(two_layers):
    p = CountingProvider()
    m = manager(two_layers, p, warm_threshold=0.6)
    report = m.warm_cache([Prediction(Call("haiku", "likely"), 0.9),
                           (Call("haiku", "unlikely"), 0.2),
                           Prediction(Call("haiku", "likely"), 0.7)])
    assert (report.warmed, report.below_threshold, report.already_cached) == (1, 1, 1)
    assert report.cost_usd == pytest.approx(0.01) and p.calls == 1
    assert m.fetch(Call("haiku", "likely")).source == "memory"
    with pytest.raises(ConfigError, match="probability"):
        m.warm_cache([(Call("haiku", "x"), 1.5)])


def test_stats_are_plain_records_per_layer(two_layers):
    m = manager(two_layers)
    for prompt in ("a", "a", "b", "a"):
        m.fetch(Call("haiku", prompt))
    s = m.stats
    assert (s.requests, s.exact_hits, s.provider_calls) == (4, 2, 2)
    assert s.hit_rate == 0.5
    assert s.layers["memory"].hits == 2 and s.layers["memory"].entries == 2
    assert s.layers["disk"].bytes > 0 and s.layers["memory"].evictions == 0


def test_fifty_concurrent_identical_misses_make_one_provider_call(two_layers, clock):
    p = CountingProvider()
    m = manager(two_layers, p)

    async def burst():
        return await asyncio.gather(*(m.afetch(Call("haiku", "hot prompt")) for _ in range(50)))

    served = clock.run(burst())
    assert p.calls == 1
    assert {s.result for s in served} == {served[0].result}
    assert sorted(s.source for s in served).count("coalesced") == 49
    assert m.stats.coalesced == 49 and clock.now() == pytest.approx(0.05)


def test_a_failed_shared_call_reaches_every_waiter_and_is_not_cached(two_layers, clock):
    p = CountingProvider(fail=1)
    m = manager(two_layers, p)

    async def burst():
        return await asyncio.gather(*(m.afetch(Call("haiku", "x")) for _ in range(10)),
                                    return_exceptions=True)

    outcomes = clock.run(burst())
    assert all(isinstance(o, ServerError) for o in outcomes) and p.calls == 1
    assert clock.run(m.afetch(Call("haiku", "x"))).source == "provider" and p.calls == 2


@pytest.mark.parametrize("kw, match", [({"quality": "urgent"}, "quality"), ({"tenant": "a:b"}, "tenant")])
def test_bad_request_options_are_refused(two_layers, kw, match):
    with pytest.raises(ConfigError, match=match):
        manager(two_layers).fetch(Call("haiku", "x"), **kw)


def test_bad_construction_is_refused(two_layers):
    with pytest.raises(ConfigError, match="strategy"):
        manager(two_layers, strategy="fastest-first")
    with pytest.raises(ConfigError, match="distinct"):
        manager([MemoryLayer(), MemoryLayer()])
    with pytest.raises(ConfigError, match="TTLs must grow"):
        TTLPolicy(memory=600, redis=300)
    with pytest.raises(ConfigError, match="Results"):
        manager(two_layers).set("k", "just a string")


@pytest.mark.redis
def test_a_dead_redis_degrades_to_the_other_layers(clock):
    dead = RedisLayer("redis://127.0.0.1:1/0", namespace="down", timeout_s=0.05)
    p = CountingProvider()
    m = manager([MemoryLayer(clock=clock), dead], p, strategy="redis-first")
    assert m.fetch(Call("haiku", "x")).source == "provider"
    assert m.fetch(Call("haiku", "x")).source == "memory"
    assert m.stats.layers["redis"].failures >= 2 and p.calls == 1


@pytest.mark.redis
def test_two_processes_sharing_redis_see_each_others_entries(redis_url, redis_namespace):
    layer = RedisLayer(redis_url, namespace=redis_namespace)
    mine = manager([layer])
    key = mine.fetch(Call("haiku", "written by the parent"), tenant="acme").key
    child = textwrap.dedent(f"""
        from cfopt.cache import CacheManager, RedisLayer, cache_key
        from cfopt.providers.base import Call
        m = CacheManager([RedisLayer({redis_url!r}, namespace={redis_namespace!r})])
        value, layer = m.get({key!r})
        assert layer == "redis", layer
        print(value.content)
        # write one for the parent; the child has no provider, so store a copy under a new key
        m.set(cache_key(Call("haiku", "written by the child"), tenant="acme"), value)
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "written by the parent" in out.stdout
    theirs = mine.get(cache_key(Call("haiku", "written by the child"), tenant="acme"))
    assert theirs.layer == "redis" and "written by the parent" in theirs.value.content


def test_every_answer_is_reported_on_the_event_bus(two_layers):
    from cfopt.events import EventBus
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    m = manager(two_layers, bus=bus)
    m.fetch(Call("haiku", "a"))
    m.fetch(Call("haiku", "a"))
    assert [(e.name, e.value, e.data["source"]) for e in seen] == [
        ("cache_hit", 0.0, "provider"), ("cache_hit", 1.0, "memory")]


def test_store_caches_a_call_made_elsewhere_in_the_scope_fetch_uses(two_layers):
    from cfopt.cache.dedup import ContentDeduplication
    provider = CountingProvider()
    m = manager(two_layers, provider, dedup=ContentDeduplication())
    call = Call("haiku", "Write a blog post about running in winter for beginners.")
    result = provider.send(call)                        # made by the caller, not by the manager
    assert m.store(call, result, tenant="acme", type="text", task="tagline")
    served = m.fetch(call, tenant="acme", type="text", task="tagline")
    assert served.result == result and served.source == "memory" and provider.calls == 1
    near = m.fetch(Call("haiku", "Write a blog post for beginners about running in winter."),
                   tenant="acme", type="text", task="tagline")   # the index learned the prompt too
    assert near.source.startswith("semantic") and provider.calls == 1
    other = m.fetch(call, tenant="globex", type="text", task="tagline")   # tenants stay apart
    assert other.source == "provider" and provider.calls == 2
    cut = CountingProvider(stop_reason="max_tokens")
    assert not m.store(Call("haiku", "Cut short"), cut.send(Call("haiku", "Cut short")))


def test_coalesce_key_shares_a_near_duplicates_call_in_flight_and_forgets_it_once_stored():
    from cfopt.cache.dedup import ContentDeduplication
    m = CacheManager([MemoryLayer(clock=VirtualClock())], dedup=ContentDeduplication())
    scope = dict(tenant="acme", type="text", task="blog_post")
    first = Call("haiku", "Write a 300-word blog post about cold brew at home for beginners.")
    near = Call("haiku", "please compose a 300-word blog post about cold brew at home for beginners")
    other = Call("haiku", "Write a 500-word blog post about cold brew at home for beginners.")
    own = m.coalesce_key(first, **scope)
    assert own == m.key_for(first, "acme")[0]
    assert m.coalesce_key(near, **scope) == own                 # joins the call in flight
    assert m.coalesce_key(other, **scope) != own                # a look-alike does not
    assert m.coalesce_key(near, **{**scope, "quality": "critical"}) != own   # exact only
    assert m.coalesce_key(near, **{**scope, "tenant": "globex"}) != own     # nor across tenants
    m.store(first, CountingProvider().send(first), **scope)
    assert m.coalesce_key(near, **scope) != own                 # no longer in flight: a hit now
    assert m.lookup(near, **scope).source == "semantic:memory"


def test_without_a_near_duplicate_stage_coalesce_key_is_the_cache_key():
    m = CacheManager([MemoryLayer(clock=VirtualClock())])
    call = Call("haiku", "hello there")
    assert m.coalesce_key(call, tenant="acme") == m.key_for(call, "acme")[0]
