"""Issue 8, isolation: two tenants replaying the same workload through one shared cache.

One ``CacheManager`` (memory + disk, and Redis when marked) with semantic de-duplication on is
shared by tenants "acme" and "globex". Each request of the workload is sent once for each
tenant, interleaved, the most tempting order for a leak. Every provider call records the
tenant that made it; every answer served from the cache (exact or semantic) must come from a
call of the same tenant.
"""
from __future__ import annotations

import collections

import pytest

from cfopt.cache import CacheManager, ContentDeduplication, DiskLayer, MemoryLayer, RedisLayer
from cfopt.clock import VirtualClock
from cfopt.cost import CostOptimizer
from cfopt.providers import Call, Providers
from cfopt.workload import Request, generate

TENANTS = ("acme", "globex")
N_REQUESTS = 400      # generated requests per tenant; the same 400 for both
# Near-duplicate pairs the semantic index matches (score 1.0): the generated traffic has almost
# none, so these make sure the semantic path is tempted too.
PARAPHRASES = [
    ("Write a blog post about running in winter for beginners.",
     "Write a blog post for beginners about running in winter."),
    ("Write a product description for our new ergonomic office chair.",
     "Write a product description of our new ergonomic office chair."),
]


def _workload() -> list[Request]:
    extra = [Request(t=600.0 + i, type="text", prompt=p, quality="standard")
             for i, p in enumerate(p for pair in PARAPHRASES for p in pair)]
    return generate(N_REQUESTS, seed=11, duration_s=600) + extra


class _TenantRecorder:
    """The simulated providers, remembering which tenant made each call."""

    def __init__(self, clock: VirtualClock) -> None:
        self.providers = Providers(seed=0, clock=clock)
        self.tenant = ""
        self.origin: dict[str, str] = {}   # request id -> tenant

    def send(self, call: Call):
        result = self.providers.for_model(call.model).send(call)
        assert result.request_id not in self.origin, "a request id was reused"
        self.origin[result.request_id] = self.tenant
        return result


def _replay(layers, clock) -> tuple[collections.Counter, int]:
    provider = _TenantRecorder(clock)
    cache = CacheManager(layers, provider=provider, dedup=ContentDeduplication(), clock=clock,
                         catalog=provider.providers.catalog)
    router = CostOptimizer(provider.providers.catalog)
    sources: collections.Counter = collections.Counter()
    crossed = 0
    for r in _workload():
        model = router.select_optimal_model(r).model
        call = Call(model, r.prompt, max_tokens=r.max_tokens)
        for tenant in TENANTS:
            provider.tenant = tenant
            served = cache.fetch(call, tenant=tenant, type=r.type, task=r.task, quality=r.quality)
            sources[served.source.split(":")[0]] += 1
            assert served.key.startswith(f"{tenant}:"), served.key
            if served.from_cache and provider.origin[served.result.request_id] != tenant:
                crossed += 1
    return sources, crossed


def test_two_tenants_share_memory_and_disk_with_zero_cross_tenant_hits(tmp_path):
    clock = VirtualClock()
    layers = [MemoryLayer(clock=clock), DiskLayer(tmp_path / "shared.sqlite", clock=clock)]
    sources, crossed = _replay(layers, clock)
    assert sum(sources.values()) == 2 * (N_REQUESTS + 2 * len(PARAPHRASES))
    # The cache did serve, both ways, so the check below was really exercised.
    assert sources["memory"] > 0 and sources["semantic"] > 0
    assert crossed == 0
    print(f"\ntenants (memory+disk): {dict(sources)}, cross-tenant answers {crossed}")


@pytest.mark.redis
def test_two_tenants_share_redis_too_with_zero_cross_tenant_hits(tmp_path, redis_url,
                                                                 redis_namespace):
    clock = VirtualClock()
    redis_layer = RedisLayer(redis_url, namespace=redis_namespace)
    # Redis first, alone in front: every exact hit is a Redis hit.
    layers = [redis_layer]
    try:
        sources, crossed = _replay(layers, clock)
    finally:
        redis_layer.close()
    assert sources["redis"] > 0 and sources["semantic"] > 0
    assert crossed == 0
    print(f"\ntenants (redis): {dict(sources)}, cross-tenant answers {crossed}")


def test_a_near_duplicate_of_another_tenants_prompt_is_not_served(tmp_path):
    """acme caches a prompt; globex asks its paraphrase: a provider call, not acme's answer."""
    clock = VirtualClock()
    provider = _TenantRecorder(clock)
    cache = CacheManager([MemoryLayer(clock=clock)], provider=provider,
                         dedup=ContentDeduplication(), clock=clock,
                         catalog=provider.providers.catalog)
    for original, paraphrase in PARAPHRASES:
        provider.tenant = "acme"
        cache.fetch(Call("haiku", original), tenant="acme", type="text")
        provider.tenant = "globex"
        assert cache.fetch(Call("haiku", paraphrase), tenant="globex", type="text").source == "provider"
        provider.tenant = "acme"   # the same paraphrase does match within acme
        assert cache.fetch(Call("haiku", paraphrase), tenant="acme",
                           type="text").source == "semantic:memory"
