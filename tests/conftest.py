"""Shared fixtures: a real Redis server for the tests that need one.

A server on 127.0.0.1:6379 is used when it answers; otherwise a throwaway ``redis-server`` is
started on a free port for the session. With CI=true a missing Redis fails the tests instead
of skipping them. Each test gets its own key namespace inside database ``CFOPT_TEST_REDIS_DB``
(default 13) and every key under it is deleted afterwards.
"""
from __future__ import annotations

import os
import uuid

import pytest
from redis_support import free_port, ping, start_redis

REDIS_DB = int(os.environ.get("CFOPT_TEST_REDIS_DB", "13"))


@pytest.fixture(scope="session")
def redis_server():
    """The base URL (without database) of a running Redis server."""
    if ping(6379):
        yield "redis://127.0.0.1:6379"
        return
    port = free_port()
    proc = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server):
    """A Redis URL on the test database; use ``redis_namespace`` as the key prefix."""
    return f"{redis_server}/{REDIS_DB}"


@pytest.fixture
def redis_namespace(redis_url):
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    import redis
    ns = f"cfopt-test:{uuid.uuid4().hex[:12]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{ns}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
