"""What only one layer does: Redis outages and expiry, disk failures, CDN URLs, memory policies."""
from __future__ import annotations

import os
import stat
import time

import cachetools
import pytest

from cfopt.cache.layers import CDNLayer, DiskLayer, MemoryLayer, RedisLayer
from cfopt.clock import VirtualClock
from cfopt.errors import ConfigError
from redis_support import free_port, start_redis
from sqlite_support import REAL_CONNECT, ReadOnlyConnection


# -- Redis ----------------------------------------------------------------------------------------
def test_redis_sets_the_expiry_in_redis_itself(redis_url, redis_namespace):
    layer = RedisLayer(redis_url, namespace=redis_namespace)
    layer.set("k", b"v", ttl=30)
    pttl = layer.client.pttl(f"{redis_namespace}:k")
    assert 29_000 < pttl <= 30_000


def test_redis_invalidation_scans_instead_of_keys(redis_url, redis_namespace, monkeypatch):
    layer = RedisLayer(redis_url, namespace=redis_namespace, scan_count=7)
    layer.set_many({f"a:{i}": b"v" for i in range(40)}, ttl=60)
    monkeypatch.setattr(layer.client, "keys", lambda *a, **k: pytest.fail("KEYS blocks Redis"))
    assert layer.delete_matching("a:*") == 40


def test_redis_repr_hides_the_password():
    layer = RedisLayer("redis://user:s3cret-key@127.0.0.1:1/0", timeout_s=0.05)
    assert "s3cret-key" not in repr(layer) and "***" in repr(layer)
    layer.close()






@pytest.mark.redis
def test_a_redis_outage_degrades_then_reconnects_by_itself():
    port = free_port()
    proc = start_redis(port)
    layer = RedisLayer(f"redis://127.0.0.1:{port}/0", namespace="outage", retry_after_s=0.1)
    try:
        assert layer.set("k", b"v", ttl=60) and layer.get("k") == b"v"
        proc.terminate()
        proc.wait(timeout=10)
        # Every operation answers "miss" / "not stored" and is counted; nothing raises.
        assert layer.get("k") is None
        assert layer.set("k2", b"v", ttl=60) is False
        assert layer.get_many(["k", "k2"]) == {}
        assert layer.delete_matching("*") == 0
        assert layer.stats.failures >= 4
        proc = start_redis(port)  # the server comes back (empty: no persistence)
        time.sleep(0.15)
        assert layer.set("k3", b"back", ttl=60) is True
        assert layer.get("k3") == b"back"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        layer.close()


# -- disk -----------------------------------------------------------------------------------------
def test_disk_entries_persist_across_instances(tmp_path):
    clock = VirtualClock()
    DiskLayer(tmp_path / "c.sqlite", clock=clock).set("k", b"kept", ttl=60)
    assert DiskLayer(tmp_path / "c.sqlite", clock=clock).get("k") == b"kept"


def test_disk_file_deleted_mid_run_is_recreated(tmp_path):
    path = tmp_path / "c.sqlite"
    layer = DiskLayer(path)
    layer.set("k", b"v", ttl=60)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    assert layer.get("k") is None          # the data went with the file; no exception
    assert layer.set("k", b"again", ttl=60)
    assert layer.get("k") == b"again" and path.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files anyway")
def test_disk_read_only_file_counts_failures_instead_of_raising(tmp_path):
    path = tmp_path / "c.sqlite"
    DiskLayer(path).set("k", b"v", ttl=60)
    os.chmod(tmp_path, stat.S_IRUSR | stat.S_IXUSR)
    os.chmod(path, stat.S_IRUSR)
    try:
        layer = DiskLayer(path)
        assert layer.set("k2", b"v", ttl=60) is False
        assert layer.stats.failures >= 1
    finally:
        os.chmod(tmp_path, stat.S_IRWXU)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def test_disk_unwritable_directory_counts_failures_instead_of_raising(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    layer = DiskLayer(blocker / "c.sqlite")
    assert layer.set("k", b"v", ttl=60) is False
    assert layer.get("k") is None
    assert layer.stats.failures >= 3


# -- CDN ------------------------------------------------------------------------------------------
def test_cdn_stores_identical_content_once_and_purge_deletes_the_blob(tmp_path):
    cdn = CDNLayer(tmp_path, clock=VirtualClock())
    cdn.set("a", b"same image", ttl=60)
    cdn.set("b", b"same image", ttl=60)
    blobs = list((tmp_path / "blobs").glob("??/*"))
    assert len(blobs) == 1 and cdn.url("a") == cdn.url("b") == blobs[0].resolve().as_uri()
    assert cdn.purge("a") == 1 and blobs[0].exists()      # "b" still refers to it
    assert cdn.purge("*") == 1 and not blobs[0].exists()
    assert cdn.url("a") is None


def test_cdn_reads_cost_edge_latency_on_the_clock(tmp_path):
    clock = VirtualClock()
    cdn = CDNLayer(tmp_path, clock=clock, edge_latency_s=0.03, base_url="http://127.0.0.1:8000/media")
    cdn.set("a", b"video", ttl=60)
    assert cdn.get("a") == b"video" and clock.now() == pytest.approx(0.03)
    assert cdn.url("a").startswith("http://127.0.0.1:8000/media/")


def test_cdn_holds_media_never_stock_photos_or_text(tmp_path):
    cdn = CDNLayer(tmp_path)
    assert [cdn.accepts(k) for k in ("image", "video", "audio")] == [True] * 3
    assert not cdn.accepts("photo") and not cdn.accepts("text")


# -- memory ---------------------------------------------------------------------------------------
class LargestFirst(cachetools.Cache):
    """Evict the biggest entry: a policy written by overriding popitem."""

    def popitem(self):
        key = max(self, key=lambda k: self.getsizeof(self[k]))
        return key, self.pop(key)


def test_memory_takes_any_cachetools_policy_and_counts_its_evictions():
    clock = VirtualClock()
    layer = MemoryLayer(max_bytes=1_000, cache_class=LargestFirst, clock=clock)
    layer.set("big", b"x" * 600, ttl=60)
    layer.set("small", b"y" * 100, ttl=60)
    layer.set("medium", b"z" * 400, ttl=60)   # does not fit: the largest entry goes
    assert layer.get("big") is None and layer.get("small") and layer.get("medium")
    assert layer.stats.evictions == 1
    clock.advance(61)
    assert layer.get("small") is None      # TTL still holds without a TTL-aware policy


@pytest.mark.parametrize("kw", [{"max_entries": 0}, {"max_bytes": -1}, {"max_entries": 1.5},
                                {"cache_class": dict}])
def test_memory_refuses_impossible_bounds(kw):
    with pytest.raises(ConfigError):
        MemoryLayer(**kw)


def test_disk_write_errors_are_counted_and_the_layer_recovers(tmp_path, monkeypatch):
    # As root a chmod cannot make the file read-only, so make SQLite answer as it would.
    import sqlite3
    layer = DiskLayer(tmp_path / "c.sqlite")
    layer.set("k", b"v", ttl=60)
    monkeypatch.setattr(sqlite3, "connect", ReadOnlyConnection)
    layer.close()                                   # the next call reconnects, read-only
    assert layer.set("k2", b"v", ttl=60) is False   # no exception reaches the caller
    assert layer.delete("k") is False
    assert layer.stats.failures >= 2
    monkeypatch.setattr(sqlite3, "connect", REAL_CONNECT)
    assert layer.set("k3", b"back", ttl=60) is True and layer.get("k3") == b"back"
