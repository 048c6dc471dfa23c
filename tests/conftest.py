"""Shared fixtures: a real Redis server for the tests that need one.

A server on 127.0.0.1:6379 is used when it answers; otherwise a throwaway ``redis-server`` is
started on a free port for the session. With CI=true a missing Redis fails the tests instead
of skipping them. Each test gets its own key namespace inside database ``CFOPT_TEST_REDIS_DB``
(default 13) and every key under it is deleted afterwards.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

REDIS_DB = int(os.environ.get("CFOPT_TEST_REDIS_DB", "13"))


def _ping(port: int) -> bool:
    import redis
    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_redis(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and no Redis server: {reason}")
    pytest.skip(f"no Redis server: {reason}")


@pytest.fixture(scope="session")
def redis_server():
    """The base URL (without database) of a running Redis server."""
    if _ping(6379):
        yield "redis://127.0.0.1:6379"
        return
    exe = shutil.which("redis-server")
    if exe is None:
        _no_redis("nothing answers on 127.0.0.1:6379 and redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if _ping(port):
                break
            time.sleep(0.05)
        else:
            _no_redis(f"redis-server on port {port} did not answer")
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
