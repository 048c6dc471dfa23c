"""PerformanceOptimizer and its parts: percentiles, compression, micro-batching, lazy loading,
coalescing and merging, pooled clients against the local server."""
from __future__ import annotations

import asyncio
import gzip
import random

import numpy as np
import pytest

from cfopt.clock import VirtualClock
from cfopt.latency.coalesce import QueryOptimizer
from cfopt.errors import ConfigError, ServerError
from cfopt.latency import (PerformanceOptimizer, compress, decompress, latency_summary, percentile,
                           response_time)
from cfopt.latency.lazy import LazyLoader
from cfopt.latency.microbatch import MicroBatcher
from cfopt.providers import Call, Providers
from test_batching import Fake, grouped_reply


# --- measuring ------------------------------------------------------------------------------
def test_percentile_matches_numpy():
    rng = random.Random(0)
    xs = [rng.lognormvariate(0, 1) for _ in range(999)]
    for q in (0, 50, 95, 99, 100):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


def test_latency_summary_keeps_hits_and_misses_apart():
    samples = [(0.001, True)] * 70 + [(3.0, False)] * 30
    s = latency_summary(samples)
    assert (s.hits.count, s.misses.count, s.all.count) == (70, 30, 100)
    assert s.hits.p95 == 0.001 and s.misses.p50 == 3.0 and s.all.p95 == 3.0
    assert s.all.mean == pytest.approx(0.9007)
    assert "misses" in s.format() and "3000.0 ms" in s.format()


def test_response_time_is_first_useful_content():
    clock = VirtualClock()
    r = Providers(seed=1, clock=clock).send(Call("haiku", "Write a long essay about tea."))
    assert r.first_content_s < r.latency_s
    assert response_time(r, "text") == r.first_content_s           # streamed: TTFT
    assert response_time(r, "analysis") == r.latency_s             # read whole
    assert response_time(r, "video", deferred=True) == 0.0         # the handle


# --- compress -------------------------------------------------------------------------------
def test_compress_only_over_the_threshold_with_real_sizes():
    small, big = "a" * 1000, "ContentFlow writes posts. " * 40 + "ü"
    assert compress(small).encoding == "identity" and compress(small).size == 1000
    c = compress(big)
    assert c.encoding == "gzip" and c.original_size == len(big.encode()) and c.size == len(c.data)
    assert c.size == len(gzip.compress(big.encode(), 6, mtime=0)) and c.ratio < 0.2
    assert decompress(c) == big and compress(big).data == c.data      # stable bytes


def test_compress_leaves_incompressible_data_alone():
    noise = random.Random(1).randbytes(5000)
    c = compress(noise)
    assert c.encoding == "identity" and c.data == noise


# --- micro-batching -------------------------------------------------------------------------
def test_micro_batcher_sends_a_full_batch_at_once_and_a_partial_one_after_max_wait():
    clock = VirtualClock()
    sent_at = []

    async def handler(items):
        sent_at.append((clock.now(), len(items)))
        return [x * 10 for x in items]

    async def main():
        mb = MicroBatcher(handler, max_batch_size=4, max_wait_s=0.2, clock=clock)
        first = await asyncio.gather(*(mb.submit(i) for i in range(6)))
        await clock.asleep(5)
        last = await mb.submit(7)
        return first, last, mb.stats
    first, last, stats = clock.run(main())
    assert first == [0, 10, 20, 30, 40, 50] and last == 70
    assert sent_at == [(0.0, 4), (pytest.approx(0.2), 2), (pytest.approx(5.4), 1)]
    assert (stats.full, stats.timed_out, stats.sizes) == (1, 2, [4, 2, 1])
    assert max(stats.waits_s) == pytest.approx(0.2)


def test_each_caller_gets_its_own_error():
    clock = VirtualClock()

    async def handler(items):
        return [ValueError(f"bad {x}") if x % 2 else x for x in items]

    async def main():
        mb = MicroBatcher(handler, max_batch_size=4, max_wait_s=0.1, clock=clock)
        return await asyncio.gather(*(mb.submit(i) for i in range(4)), return_exceptions=True)
    out = clock.run(main())
    assert out[0] == 0 and out[2] == 2 and str(out[1]) == "bad 1" and str(out[3]) == "bad 3"


@pytest.mark.parametrize("handler_result", ["raise", "short"])
def test_a_failed_or_miscounted_batch_fails_every_caller_in_it(handler_result):
    clock = VirtualClock()

    async def handler(items):
        if handler_result == "raise":
            raise ServerError("down")
        return items[:-1]

    async def main():
        mb = MicroBatcher(handler, max_batch_size=3, max_wait_s=0.1, clock=clock)
        return await asyncio.gather(*(mb.submit(i) for i in range(3)), return_exceptions=True)
    out = clock.run(main())
    assert len(out) == 3 and all(isinstance(e, (ServerError, ValueError)) for e in out)
    with pytest.raises(ConfigError):
        MicroBatcher(handler, max_batch_size=0)


# --- lazy loading ---------------------------------------------------------------------------
def test_lazy_load_returns_critical_content_first_and_media_behind_handles():
    clock = VirtualClock()
    opt = PerformanceOptimizer(Providers(seed=2, clock=clock))

    async def main():
        content = await opt.lazy_load_content({
            "article": Call("haiku", "Write a short intro to home espresso."),
            "thumb": Call("flux_schnell", "espresso cup", width=512, height=512),
            "hero": Call("flux_dev", "espresso bar", width=2048, height=2048),   # 5 MP: deferred
            "video": Call("video_5s", "pouring espresso"),
            "voice": Call("audio_minute", "narration", minutes=2)})
        at_first = clock.now()
        snapshot = (content.status, sorted(content.ready), sorted(content.handles),
                    {n: h.status for n, h in content.handles.items()})
        video = await content.handles["video"]
        everything = await content.complete()
        return at_first, snapshot, video, everything, content
    at_first, snapshot, video, everything, content = clock.run(main())
    assert snapshot[:3] == ("partial", ["article", "thumb"], ["hero", "video", "voice"])
    assert set(snapshot[3].values()) == {"pending"}
    assert at_first < 10 and content.handles["video"].completed_at > 30    # a minute-long render
    assert video.kind == "video" and content.status == "complete" and len(everything) == 5


def test_a_failing_deferred_part_is_reported_not_raised_at_load():
    clock = VirtualClock()
    fake = Fake(clock, fail=lambda call: ServerError("render farm down") if call.model == "video_5s" else None)

    async def main():
        content = await LazyLoader(fake).load({"a": Call("haiku", "x"), "v": Call("video_5s", "y")})
        outs = await content.complete()
        return content, outs
    content, outs = clock.run(main())
    assert content.handles["v"].status == "failed" and isinstance(outs["v"], ServerError)
    assert outs["a"].content == "answer: x"


def test_lazy_load_accepts_a_workload_request():
    from cfopt.workload import Request
    clock = VirtualClock()
    opt = PerformanceOptimizer(Providers(seed=0, clock=clock))
    content = clock.run(opt.lazy_load_content(Request(t=0, type="video", prompt="waves")))
    assert list(content.handles) == ["video"] and content.ready == {} and clock.now() < 1
    with pytest.raises(ConfigError):
        clock.run(opt.lazy_load_content(42))


# --- coalescing and merging -----------------------------------------------------------------
def test_identical_calls_in_flight_share_one_provider_call():
    clock = VirtualClock()
    fake = Fake(clock)
    q = QueryOptimizer(fake, merge=False)

    async def main():
        same = [q.asend(Call("haiku", "same")) for _ in range(20)]
        other = [q.asend(Call("haiku", "same", max_tokens=5))]        # not identical
        return await asyncio.gather(*same, *other)
    out = clock.run(main())
    assert len(fake.calls) == 2 and q.stats.coalesced == 19 and len(out) == 21


def test_compatible_text_calls_merge_into_one_grouped_call():
    clock = VirtualClock()
    fake = Fake(clock, reply=grouped_reply)
    opt = PerformanceOptimizer(fake, max_batch_size=10, max_wait_s=0.05)
    calls = [Call("haiku", f"q{i}") for i in range(7)] + [Call("flux_schnell", "img")]
    out = clock.run(opt.optimize_queries(calls))
    assert [r.content for r in out[:7]] == [f"answer: q{i}" for i in range(7)]
    assert len(fake.calls) == 2 and opt.queries.stats.merged_requests == 7   # 1 grouped + 1 image


def test_a_merged_reply_that_does_not_split_falls_back_and_errors_stay_per_call():
    clock = VirtualClock()
    fake = Fake(clock, reply=lambda call: "[oops" if call.system else f"answer: {call.prompt}",
                fail=lambda call: ServerError("no") if call.prompt == "q2" else None)
    opt = PerformanceOptimizer(fake)
    out = clock.run(opt.optimize_queries([Call("haiku", f"q{i}") for i in range(4)]))
    assert isinstance(out[2], ServerError)
    assert [out[i].content for i in (0, 1, 3)] == ["answer: q0", "answer: q1", "answer: q3"]
    assert opt.queries.stats.split_failures == 1 and len(fake.calls) == 5


def test_batch_processor_defaults_to_grouped_text_calls():
    clock = VirtualClock()
    fake = Fake(clock, reply=grouped_reply)
    opt = PerformanceOptimizer(fake)

    async def main():
        mb = opt.batch_processor(max_batch_size=5, max_wait_s=0.1)
        return await asyncio.gather(*(mb.submit(Call("haiku", f"p{i}")) for i in range(10))), mb
    out, mb = clock.run(main())
    assert [r.content for r in out] == [f"answer: p{i}" for i in range(10)]
    assert mb.stats.sizes == [5, 5] and len(fake.calls) == 2


# --- pooled clients against the local server -------------------------------------------------
def test_connection_pool_reuses_one_client_per_provider_against_cfopt_serve():
    from cfopt.server import serve_in_thread
    from cfopt.server.config import ServerConfig

    async def main(url):
        opt = PerformanceOptimizer(Providers(seed=0))
        client = opt.connection_pool("anthropic", url, api_key="sk-test")
        assert opt.connection_pool("anthropic", url, api_key="sk-test") is client
        sem = asyncio.Semaphore(4)

        async def one(i):
            async with sem:
                return await client.messages("haiku", f"Name a colour {i % 3}.", max_tokens=20)
        out = await asyncio.gather(*(one(i) for i in range(30)))
        stats = opt.pool_stats()["anthropic"]
        await opt.aclose()
        return out, stats
    with serve_in_thread(ServerConfig(time_scale=1000)) as url:
        out, stats = asyncio.run(main(url))
    assert all(m["type"] == "message" for m in out)
    assert stats.requests == 30 and 1 <= stats.connections_opened <= 4
