"""One contract every cache layer keeps: memory, disk, Redis and CDN run the same tests."""
from __future__ import annotations

import time

import pytest

from cfopt.cache.layers import CDNLayer, DiskLayer, MemoryLayer, RedisLayer
from cfopt.clock import VirtualClock
from cfopt.errors import ConfigError

LAYERS = ["memory", "disk", "redis", "cdn"]


class Harness:
    """Builds layers of one kind on one backing store and moves their time forward."""

    def __init__(self, kind: str, tmp_path, request) -> None:
        self.kind, self.tmp_path, self.clock = kind, tmp_path, VirtualClock(1000.0)
        self.bounded = kind != "redis"  # Redis bounds memory server-wide (maxmemory)
        self.made: list = []
        if kind == "redis":
            self.url = request.getfixturevalue("redis_url")
            self.prefix = request.getfixturevalue("redis_namespace")

    def make(self, namespace: str = "ns1", **bounds):
        if self.kind == "memory":
            layer = MemoryLayer(clock=self.clock, namespace=namespace, **bounds)
        elif self.kind == "disk":
            layer = DiskLayer(self.tmp_path / "cache.sqlite", clock=self.clock,
                              namespace=namespace, **bounds)
        elif self.kind == "cdn":
            layer = CDNLayer(self.tmp_path / "cdn", clock=self.clock, namespace=namespace, **bounds)
        else:
            bounds.pop("max_entries", None)
            bounds.pop("max_bytes", None)
            layer = RedisLayer(self.url, namespace=f"{self.prefix}:{namespace}", **bounds)
        self.made.append(layer)
        return layer

    def expire(self, seconds: float) -> None:
        """Let ``seconds`` pass for the layer: on the clock, or for real where Redis expires."""
        if self.kind == "redis":
            time.sleep(seconds)
        else:
            self.clock.advance(seconds)


@pytest.fixture(params=LAYERS)
def harness(request, tmp_path):
    h = Harness(request.param, tmp_path, request)
    yield h
    for layer in h.made:
        layer.close()


@pytest.fixture
def layer(harness):
    return harness.make()


VALUES = [b"", b"x", b"\x00\xff binary \n", "héllo wörld ✓".encode(), bytes(range(256)) * 400]


@pytest.mark.parametrize("value", VALUES, ids=["empty", "one", "binary", "utf8", "100k"])
def test_values_round_trip(layer, value):
    assert layer.set("k", value, ttl=60)
    assert layer.get("k") == value


def test_missing_key_is_a_counted_miss(layer):
    assert layer.get("nope") is None
    s = layer.stats
    assert (s.hits, s.misses, s.failures) == (0, 1, 0)


def test_set_overwrites_and_delete_says_whether_it_removed(layer):
    layer.set("k", b"one", ttl=60)
    layer.set("k", b"two", ttl=60)
    assert layer.get("k") == b"two"
    assert layer.delete("k") is True
    assert layer.delete("k") is False
    assert layer.get("k") is None


def test_ttl_expires_on_the_layers_time(harness, layer):
    layer.set("short", b"s", ttl=0.3)
    layer.set("long", b"l", ttl=60)
    harness.expire(0.1)
    assert layer.get("short") == b"s"
    harness.expire(0.35)
    assert layer.get("short") is None
    assert layer.get("long") == b"l"


def test_namespaces_never_see_each_other(harness):
    a, b = harness.make("tenant-a"), harness.make("tenant-b")
    a.set("k", b"from a", ttl=60)
    assert b.get("k") is None
    b.set("k", b"from b", ttl=60)
    assert a.get("k") == b"from a"
    assert b.clear() == 1
    assert a.get("k") == b"from a"


def test_delete_matching_removes_only_matches_and_counts_them(layer):
    for i in range(5):
        layer.set(f"acme:fal:flux_dev:{i}", b"img", ttl=60)
        layer.set(f"acme:anthropic:haiku:{i}", b"txt", ttl=60)
    assert layer.delete_matching("acme:fal:*") == 5
    assert layer.get("acme:fal:flux_dev:0") is None
    assert layer.get("acme:anthropic:haiku:0") == b"txt"
    assert layer.clear() == 5
    assert layer.get("acme:anthropic:haiku:4") is None


def test_a_value_over_the_value_bound_is_not_stored(harness):
    layer = harness.make(max_value_bytes=100)
    assert layer.set("big", b"x" * 101, ttl=60) is False
    assert layer.get("big") is None
    assert layer.set("fits", b"x" * 100, ttl=60) is True


def test_total_bytes_stay_within_the_bound_and_evictions_are_counted(harness):
    if not harness.bounded:
        pytest.skip("Redis bounds memory for the whole server (maxmemory), not per layer")
    layer = harness.make(max_bytes=10_000, max_entries=1_000)
    for i in range(50):
        layer.set(f"k{i:02d}", bytes([i]) * 1_000, ttl=60)
        assert layer.stats.bytes <= 10_000
    s = layer.stats
    assert s.evictions >= 40 and s.entries <= 10
    assert layer.get("k49") == bytes([49]) * 1_000  # the newest entry survived


def test_entry_bound_evicts_least_recently_used(harness):
    if not harness.bounded:
        pytest.skip("Redis bounds memory for the whole server (maxmemory), not per layer")
    layer = harness.make(max_entries=3)
    for key in "abc":
        layer.set(key, key.encode(), ttl=60)
        harness.expire(0.01)
    assert layer.get("a") == b"a"  # "a" is now more recent than "b"
    harness.expire(0.01)
    layer.set("d", b"d", ttl=60)
    assert layer.get("b") is None
    assert [layer.get(k) for k in "acd"] == [b"a", b"c", b"d"]
    assert layer.stats.entries == 3


@pytest.mark.parametrize("value", [ValueError("boom"), None, "text, not bytes", {"a": 1}])
def test_errors_and_objects_are_never_cached(layer, value):
    with pytest.raises(ConfigError, match="must be bytes"):
        layer.set("k", value, ttl=60)
    assert layer.get("k") is None


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), "60", True])
def test_impossible_ttl_is_refused(layer, ttl):
    with pytest.raises(ConfigError, match="ttl"):
        layer.set("k", b"v", ttl=ttl)


@pytest.mark.parametrize("key", ["", None, 42])
def test_impossible_key_is_refused(layer, key):
    with pytest.raises(ConfigError, match="key"):
        layer.get(key)


def test_bulk_operations_round_trip(layer):
    items = {f"k{i}": f"v{i}".encode() for i in range(20)}
    assert layer.set_many(items, ttl=60) == 20
    found = layer.get_many([*items, "absent"])
    assert found == items
    s = layer.stats
    assert (s.hits, s.misses, s.sets, s.entries) == (20, 1, 20, 20)


def test_stats_is_a_plain_record_with_sizes(layer):
    layer.set("key", b"12345", ttl=60)
    layer.get("key")
    s = layer.stats
    assert s.layer == layer.name and s.entries == 1 and s.hits == 1 and s.hit_rate == 1.0
    assert s.bytes >= 5


def test_repr_is_readable(layer):
    assert type(layer).__name__ in repr(layer) and "namespace=" in repr(layer)
