"""Throwaway Redis servers for tests that stop and restart one (never the shared 6379)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def no_redis(reason: str):
    """Skip, or under CI=true fail: CI must have a Redis server."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and no Redis server: {reason}")
    pytest.skip(f"no Redis server: {reason}")


def ping(port: int) -> bool:
    import redis
    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def start_redis(port: int) -> subprocess.Popen:
    """Start ``redis-server`` on ``port`` without persistence and wait until it answers."""
    exe = shutil.which("redis-server")
    if exe is None:
        no_redis("redis-server is not installed")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        if ping(port):
            return proc
        time.sleep(0.05)
    proc.kill()
    no_redis(f"redis-server on port {port} did not answer")
