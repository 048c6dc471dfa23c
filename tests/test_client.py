"""cfopt.latency.client: the wire formats, typed errors, pool statistics and key hygiene.

Error mapping is tested against ``httpx.MockTransport`` (no network); everything else against a
real ``cfopt serve`` in a thread, whose own connection count cross-checks the client's."""
from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
import pytest

from cfopt.pricing import load_catalog

from cfopt.latency.client import AsyncCfoptClient, CfoptClient, PoolStats
from cfopt.errors import (AuthenticationError, InvalidRequest, NotFound, Overloaded,
                          ProviderTimeout, RateLimited, ServerError)
from cfopt.server import ServerConfig, serve_in_thread

PLANTED = "sk-ant-PLANTED-client-5150"


@pytest.fixture
def serve():
    with contextlib.ExitStack() as stack:
        yield lambda config=None: stack.enter_context(serve_in_thread(config))


def server_connections(url: str) -> int:
    return httpx.get(f"{url}/_cfopt/stats", headers={"x-api-key": "k"}).json()["connections_opened"]


# --- errors, without a server ---------------------------------------------------------------
def _answer(status: int, body: object, headers: dict | None = None, path: str = "/v1/messages"):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)
    return CfoptClient("http://cfopt.test", api_key=PLANTED, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("status, error_type, cls", [
    (400, "invalid_request_error", InvalidRequest), (401, "authentication_error", AuthenticationError),
    (404, "not_found_error", NotFound), (413, "request_too_large", InvalidRequest),
    (500, "api_error", ServerError), (504, "timeout_error", ProviderTimeout),
    (529, "overloaded_error", Overloaded)])
def test_error_statuses_map_to_cfopt_errors(status, error_type, cls):
    client = _answer(status, {"type": "error", "error": {"type": error_type, "message": "boom"}})
    with pytest.raises(cls) as e:
        client.messages("haiku", "hi")
    assert type(e.value) is cls and e.value.status == cls.status and "boom" in str(e.value)
    assert e.value.retryable == (status >= 500)


def test_429_carries_retry_after_preferring_milliseconds():
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    with pytest.raises(RateLimited) as e:
        _answer(429, body, {"retry-after": "1", "retry-after-ms": "250"}).messages("haiku", "hi")
    assert e.value.retry_after == 0.25
    with pytest.raises(RateLimited) as e:
        _answer(429, body, {"retry-after": "3"}).messages("haiku", "hi")
    assert e.value.retry_after == 3.0


def test_unsplash_403_is_a_rate_limit_and_fal_detail_is_read():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/unsplash/"):
            return httpx.Response(403, text="Rate Limit Exceeded")
        return httpx.Response(404, json={"detail": "application not found"})
    client = CfoptClient("http://cfopt.test", api_key=PLANTED, transport=httpx.MockTransport(handler))
    with pytest.raises(RateLimited, match="Rate Limit Exceeded") as e:
        client.search_photos("tea")
    assert e.value.provider == "unsplash" and e.value.retry_after == 3600.0
    with pytest.raises(NotFound, match="application not found"):
        client.fal_submit("fal-ai/nothing", prompt="x")


def test_key_is_sent_in_a_header_and_never_shown():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"type": "error", "error": {
            "type": "authentication_error", "message": "invalid x-api-key"}})
    client = CfoptClient("http://cfopt.test", api_key=PLANTED, transport=httpx.MockTransport(handler))
    with pytest.raises(AuthenticationError) as e:
        client.messages("haiku", "hi")
    assert seen[0].headers["x-api-key"] == PLANTED and PLANTED not in str(seen[0].url)
    assert PLANTED not in repr(client) and PLANTED not in str(e.value) and PLANTED not in repr(e.value)
    with pytest.raises(ValueError):
        CfoptClient("http://cfopt.test", api_key=" ")


def test_key_comes_from_the_environment_when_not_passed(monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-api-key"])
        return httpx.Response(200, json={"input_tokens": 3})
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLANTED)
    client = CfoptClient("http://cfopt.test", transport=httpx.MockTransport(handler))
    client.count_tokens("haiku", "hi")
    assert seen == [PLANTED] and PLANTED not in repr(client)
    assert CfoptClient("http://cfopt.test", api_key="sk-explicit",   # an explicit key wins
                       transport=httpx.MockTransport(handler)).count_tokens("haiku", "hi")
    assert seen[-1] == "sk-explicit"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY") as e:
        AsyncCfoptClient("http://cfopt.test")
    assert PLANTED not in str(e.value)


def test_unreachable_server_is_a_retryable_error():
    with CfoptClient("http://127.0.0.1:9", api_key=PLANTED) as client:  # port 9: nothing listens
        with pytest.raises(ServerError, match="cannot reach") as e:
            client.count_tokens("haiku", "hi")
    assert e.value.retryable and PLANTED not in str(e.value)


# --- against a real server ------------------------------------------------------------------
def test_every_endpoint_through_the_sync_client(serve, caplog):
    caplog.set_level(logging.DEBUG)
    url = serve(ServerConfig(time_scale=20_000, fal_retention_s=86_400))  # a result outlives a slow poll
    with CfoptClient(url, api_key=PLANTED) as client:
        msg = client.messages("haiku", "Write a tagline for a bakery.", max_tokens=100)
        assert msg["type"] == "message" and msg["usage"]["output_tokens"] > 0
        events = list(client.stream("haiku", "Write a tagline for a bakery.", max_tokens=100))
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
        text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
        assert text == msg["content"][0]["text"]                  # same request, same answer
        assert client.count_tokens("haiku", "Write a tagline for a bakery.") == msg["usage"]["input_tokens"]
        batch = client.create_batch([{"custom_id": "a", "params": {
            "model": "claude-haiku-5-5", "max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]}}])
        while client.batch(batch["id"])["processing_status"] != "ended":
            pass
        assert client.batch_results(batch["id"])[0]["result"]["type"] == "succeeded"
        job = client.fal_submit("fal-ai/flux/schnell", prompt="a lighthouse")
        while client.fal_status("fal-ai/flux/schnell", job["request_id"])["status"] != "COMPLETED":
            pass
        assert client.fal_result("fal-ai/flux/schnell", job["request_id"])["images"][0]["url"]
        photos = client.search_photos("lighthouse", per_page=5)
        limit = load_catalog().photo.hard_limit_per_hour   # the default profile's hourly limit
        assert len(photos["results"]) == 5
        assert photos["ratelimit"] == {"limit": str(limit), "remaining": str(limit - 1)}
        with pytest.raises(NotFound):
            client.messages("claude-nope", "hi")
    assert PLANTED not in caplog.text


def test_pooled_client_reuses_one_connection_and_the_server_agrees(serve):
    url = serve(ServerConfig(time_scale=10_000))
    with CfoptClient(url, api_key=PLANTED) as client:
        for i in range(20):
            client.count_tokens("haiku", f"prompt {i}")
        assert client.pool_stats() == PoolStats(requests=20, connections_opened=1)
        assert client.pool_stats().reused == 19
    assert server_connections(url) == 1 + 1   # the client's one, and this stats request's own


def test_no_keepalive_opens_a_connection_per_call_and_the_server_agrees(serve):
    url = serve(ServerConfig(time_scale=10_000))
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=0)
    with CfoptClient(url, api_key=PLANTED, limits=limits) as client:
        for i in range(20):
            client.count_tokens("haiku", f"prompt {i}")
        assert client.pool_stats() == PoolStats(requests=20, connections_opened=20)
    assert server_connections(url) == 20 + 1


def test_async_client_shares_a_bounded_pool_between_tasks(serve):
    url = serve(ServerConfig(time_scale=200))   # calls last a few ms: 50 tasks contend for 8 slots

    async def main() -> tuple[list[dict], PoolStats]:
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        async with AsyncCfoptClient(url, api_key=PLANTED, limits=limits) as client:
            answers = await asyncio.gather(*(client.messages("haiku", f"Tagline {i}", max_tokens=50)
                                             for i in range(50)))
            events = [e async for e in client.stream("haiku", "Tagline 0", max_tokens=50)]
            assert events[-1]["type"] == "message_stop"
            photos = await client.search_photos("sea")
            assert photos["results"]
            return answers, client.pool_stats()
    answers, pool = asyncio.run(main())
    assert len({a["id"] for a in answers}) == 50
    assert pool.requests == 52 and 1 <= pool.connections_opened <= 8
    assert server_connections(url) == pool.connections_opened + 1


def test_async_errors_are_typed_too(serve):
    url = serve(ServerConfig(time_scale=1000))
    httpx.post(f"{url}/_cfopt/faults", headers={"x-api-key": "k"}, json={"fail_next": ["rate_limited", "overloaded"],
                                             "retry_after_s": 500.0})

    async def main() -> list[Exception]:
        async with AsyncCfoptClient(url, api_key=PLANTED) as client:
            out = []
            for _ in range(2):
                try:
                    await client.messages("haiku", "hi")
                except Exception as e:  # noqa: BLE001 - the type is what is checked
                    out.append(e)
            return out
    limited, overloaded = asyncio.run(main())
    assert isinstance(limited, RateLimited) and limited.retry_after == pytest.approx(0.5)
    assert isinstance(overloaded, Overloaded)


def test_sharded_async_pool_splits_connections_and_counts_them_all(serve):
    url = serve(ServerConfig(time_scale=200))

    async def main() -> PoolStats:
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
        async with AsyncCfoptClient(url, api_key=PLANTED, limits=limits, shards=5) as client:
            answers = await asyncio.gather(*(client.messages("haiku", f"Tagline {i}", max_tokens=30)
                                             for i in range(40)))
            assert all(a["type"] == "message" for a in answers)
            return client.pool_stats()
    pool = asyncio.run(main())
    assert pool.requests == 40 and 5 <= pool.connections_opened <= 10   # 5 pools of at most 2
    assert server_connections(url) == pool.connections_opened + 1
    with pytest.raises(ValueError):
        AsyncCfoptClient(url, api_key=PLANTED, shards=0)
