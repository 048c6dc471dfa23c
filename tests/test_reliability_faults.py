"""Issue 8, faults: providers failing during a replay, Redis and the disk file lost mid-replay.

Every replay must end with one outcome per request (each index once, in == out), each a result
or a typed error (a ``cfopt.errors.CfoptError`` subclass by name), with retries bounded by
``RetryPolicy.max_attempts``. Cache back-ends that go away mid-replay degrade to the layers that
remain, count what they could not do, and come back by themselves; nothing reaches the caller.
"""
from __future__ import annotations

import collections
import glob
import os
import shutil
import sqlite3
import time

import pytest

import cfopt.errors as errors_module
import cfopt.cache.manager as pipeline_module   # where the pipeline's cache builds its layers
from cfopt.cache import DiskLayer, RedisLayer
from cfopt.latency.tie import TIE_COPIES
from cfopt.events import EventBus
from cfopt.pipeline import Pipeline, PipelineConfig
from cfopt.providers import Faults
from cfopt.batching.resilience import CircuitOpen, RetryPolicy
from cfopt.workload import generate, load
from redis_support import free_port, start_redis
from sqlite_support import REAL_CONNECT, ReadOnlyConnection

TINY = os.path.join(os.path.dirname(__file__), "..", "datasets", "tiny.jsonl")
GENERATED_N = 1_000
GENERATED_SEED = 3
TYPED_ERRORS = {name for name in errors_module.__all__} | {CircuitOpen.__name__}


def _faults(rate: float) -> Faults:
    """``rate`` split evenly over 429 (with retry-after), 529, 500 and timeouts."""
    q = rate / 4
    return Faults(rate_limited=q, overloaded=q, server_error=q, timeout=q)


def _workload(name: str):
    return load(TINY) if name == "tiny" else generate(GENERATED_N, seed=GENERATED_SEED,
                                                      duration_s=900)


def _check_accounted(run, n: int) -> None:
    """One outcome per request, each index once, each a result or a typed error."""
    assert len(run.outcomes) == n, f"{n} requests in, {len(run.outcomes)} outcomes out"
    indexes = collections.Counter(o.index for o in run.outcomes)
    assert sorted(indexes) == list(range(n)), "an index is missing"
    assert max(indexes.values()) == 1, f"duplicated: {[i for i, c in indexes.items() if c > 1]}"
    for o in run.outcomes:
        if o.source == "error":
            assert o.error in TYPED_ERRORS, f"request {o.index} ended with untyped {o.error!r}"
            assert o.model is None
        else:
            assert o.error is None and o.model, f"request {o.index}: no error and no model"


@pytest.mark.parametrize("rate", [0.05, 0.20])
@pytest.mark.parametrize("workload", ["tiny", "generated"])
def test_replay_with_failing_providers_loses_nothing_and_retries_boundedly(workload, rate):
    requests = _workload(workload)
    bus = EventBus()
    heard, statuses = collections.Counter(), collections.Counter()
    bus.subscribe(lambda e: heard.update([(e.kind, e.name)]))
    bus.subscribe(lambda e: statuses.update([e.data["status"]]) if e.kind == "retry" else None)
    run = Pipeline(PipelineConfig(), seed=1, faults=_faults(rate), bus=bus).run(requests)
    _check_accounted(run, len(requests))
    stats, policy = run.resilience, RetryPolicy()
    # The faults happened, and were retried ...
    assert run.failed_calls > 0 and stats.retries > 0
    assert heard[("retry", "retry")] == stats.retries
    # Only the injected kinds: 429 (retry-after), 500, 529, 504 (timeout), 503 (open breaker).
    assert set(statuses) <= {429, 500, 503, 504, 529}
    if workload == "generated" and rate == 0.20:
        assert {429, 500, 504, 529} <= set(statuses), statuses
    # ... but never more than max_attempts per request: no retry storm.
    assert stats.max_attempts_per_request <= policy.max_attempts
    assert stats.attempts <= policy.max_attempts * stats.requests
    assert run.provider_calls == stats.attempts - stats.rejected
    # Every request that reached the resilience layer succeeded, failed, or was closed by its
    # caller (a tied copy that lost its race), once.
    assert stats.succeeded + stats.failed + stats.cancelled == stats.requests
    assert stats.cancelled >= run.ties.closed > 0   # (and copies closed while waiting to retry)
    errors = sum(o.source == "error" for o in run.outcomes)
    # A failed call fails every request waiting on it (coalescing): errors come from failed
    # calls, one or more each.
    # One "error" event per failed request, named after the exception (RateLimited, ...).
    assert errors == sum(n for (kind, _), n in heard.items() if kind == "error")
    assert (errors > 0) == (stats.failed > 0) and errors <= stats.failed * len(requests)
    success = 1 - errors / len(requests)
    # Printed with -s; RELIABILITY.md quotes these figures (seed 1).
    print(f"\n{workload} at {rate:.0%}: {len(requests)} requests, {run.provider_calls} calls, "
          f"{run.failed_calls} failed calls, {stats.retries} retries, max "
          f"{stats.max_attempts_per_request} attempts/request, success after retries "
          f"{success:.2%}; retried statuses {dict(sorted(statuses.items()))}")
    assert success >= 0.99   # 4 attempts at 20% faults: about 0.2**4 of calls fail for good


@pytest.mark.parametrize("rate", [0.05, 0.20])
def test_without_resilience_every_failure_is_a_typed_error_and_nothing_is_lost(rate):
    requests = load(TINY)
    run = Pipeline(PipelineConfig.select(without=["resilience"]), seed=1,
                   faults=_faults(rate)).run(requests)
    _check_accounted(run, len(requests))
    failed = [o for o in run.outcomes if o.source == "error"]
    assert failed, "with no retries some requests must fail"
    assert {o.error for o in failed} <= {"RateLimited", "Overloaded", "ServerError",
                                         "ProviderTimeout"}
    # One call per request (no retries), and one per copy of a tied call: the copies closed
    # when another answered, those that failed while another answered (rescued), those of a
    # call whose every copy failed (lost). A failed call fails its request and any request
    # that waited on it (coalescing), unless the request could make its own call after a
    # near-duplicate's shared call failed: so about one failed request per failed call.
    ties = run.ties
    own = sum(o.source == "provider" for o in run.outcomes) + run.failed_calls + ties.closed
    assert own <= run.provider_calls <= own + ties.dropped   # a dropped copy may have reached one
    failing = run.failed_calls - ties.rescued - (TIE_COPIES - 1) * ties.lost
    assert 0 < len(failed) and abs(failing - len(failed)) <= max(1, len(failed) // 4)


# -- Redis stopped mid-replay ----------------------------------------------------------------------




def _recording(monkeypatch, cls):
    """Make the pipeline build ``cls`` layers we can look at afterwards."""
    made = []

    class Recorded(cls):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(pipeline_module, cls.__name__, Recorded)
    return made


STOP_AT, RESTART_AT = 300, 600   # requests finished when Redis is stopped, then started again


@pytest.mark.redis
def test_redis_stopped_mid_replay_and_restarted_degrades_counts_and_reconnects(monkeypatch):
    port = free_port()
    proc = start_redis(port)
    layers = _recording(monkeypatch, RedisLayer)
    snap: dict[str, tuple[int, int, int]] = {}
    procs = [proc]

    def progress(done: int, total: int) -> None:
        layer = layers[0]
        if done == STOP_AT:
            snap["before"] = (layer.sets, layer.hits, layer.failures)
            procs[-1].terminate()
            procs[-1].wait(timeout=10)
        elif done == RESTART_AT:
            snap["down"] = (layer.sets, layer.hits, layer.failures)
            procs.append(start_redis(port))
            # The layer stops trying for retry_after_s (1 s) after a failure: let that pass.
            time.sleep(layer.retry_after_s + 0.1)

    requests = generate(GENERATED_N, seed=GENERATED_SEED, duration_s=900)
    try:
        run = Pipeline(PipelineConfig(), seed=1, redis_url=f"redis://127.0.0.1:{port}/0").run(
            requests, progress)   # no exception reaches the caller
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
    _check_accounted(run, GENERATED_N)
    layer = layers[0]
    sets0, _, fail0 = snap["before"]
    sets1, _, fail1 = snap["down"]
    assert sets0 > 0 and fail0 == 0, "Redis worked before the outage"
    assert fail1 > fail0, "operations during the outage were counted as failures"
    assert layer.sets > sets1, "Redis took writes again after the restart: it reconnected"
    assert run.cache_layers["redis"]["sets"] == layer.sets
    # The replay still served from the layers that remained.
    assert sum(o.source in ("memory", "disk") for o in run.outcomes) > 0
    print(f"\nredis outage: sets {sets0} before, {sets1 - sets0} during, {layer.sets - sets1} "
          f"after restart; failures counted {layer.failures}")


@pytest.mark.redis
def test_run_result_reports_the_failures_a_layer_counted(monkeypatch):
    port = free_port()
    proc = start_redis(port)
    procs = [proc]

    def progress(done: int, total: int) -> None:
        if done == 50:
            procs[-1].kill()
            procs[-1].wait(timeout=10)

    try:
        run = Pipeline(PipelineConfig(), seed=1, redis_url=f"redis://127.0.0.1:{port}/0").run(
            load(TINY), progress)
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
    assert run.cache_layers["redis"].get("failures", 0) > 0


# -- the disk layer's file deleted or made read-only mid-replay ------------------------------------
def test_disk_file_deleted_mid_replay_is_recreated_and_nothing_is_lost(monkeypatch, tmp_path):
    layers = _recording(monkeypatch, DiskLayer)
    snap = {}

    def progress(done: int, total: int) -> None:
        if done in (250, 500, 750):   # three deletions in one replay
            files = glob.glob(str(tmp_path / "cfopt-replay-*" / "cache.sqlite*"))
            assert files, "the disk layer's file should exist"
            for f in files:
                os.remove(f)
            snap[done] = layers[0].sets

    requests = generate(GENERATED_N, seed=GENERATED_SEED, duration_s=900)
    run = Pipeline(PipelineConfig(), seed=1, cache_dir=str(tmp_path)).run(requests, progress)
    _check_accounted(run, GENERATED_N)
    assert layers[0].sets > snap[750], "the file was re-created and written again"
    assert run.cache_layers["disk"]["sets"] == layers[0].sets


def test_disk_file_read_only_mid_replay_counts_failures_and_recovers(monkeypatch, tmp_path):
    layers = _recording(monkeypatch, DiskLayer)
    snap = {}

    def progress(done: int, total: int) -> None:
        layer = layers[0]
        if done == 300:
            snap["before"] = (layer.sets, layer.failures)
            monkeypatch.setattr(sqlite3, "connect", ReadOnlyConnection)
            layer.close()                      # the next operation reconnects: read-only
        elif done == 600:
            snap["during"] = (layer.sets, layer.failures)
            monkeypatch.setattr(sqlite3, "connect", REAL_CONNECT)
            layer.close()

    requests = generate(GENERATED_N, seed=GENERATED_SEED, duration_s=900)
    run = Pipeline(PipelineConfig(), seed=1, cache_dir=str(tmp_path)).run(requests, progress)
    _check_accounted(run, GENERATED_N)
    (sets0, fail0), (sets1, fail1) = snap["before"], snap["during"]
    assert fail0 == 0 and fail1 > 0, "writes refused while read-only were counted"
    assert sets1 == sets0, "nothing was stored while the file was read-only"
    assert layers[0].sets > sets1, "writes succeed again once the file is writable"


def test_cdn_directory_deleted_mid_use_answers_miss_then_works_again(tmp_path):
    from cfopt.cache import CDNLayer
    from cfopt.clock import VirtualClock
    root = tmp_path / "cdn"
    cdn = CDNLayer(root, clock=VirtualClock())
    assert cdn.set("a", b"image", ttl=60) and cdn.get("a") == b"image"
    shutil.rmtree(root)
    assert cdn.get("a") is None                     # the blob went with the folder: a miss
    assert cdn.set("b", b"again", ttl=60) and cdn.get("b") == b"again"
