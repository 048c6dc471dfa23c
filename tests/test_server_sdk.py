"""The official ``anthropic`` SDK pointed at ``cfopt serve`` (``base_url=``): its own types parse
the answers, its retries work on our 429/529, its streaming helpers work on our events."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import anthropic
import httpx
import pytest

from cfopt.clock import VirtualClock
from cfopt.providers import Call, Faults, Providers
from cfopt.server import ServerConfig, serve_in_thread

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK flags model ids by date

PLANTED = "sk-ant-api03-PLANTED-c0ffee"
PROMPT = "Write a tagline for a bakery."
USER = [{"role": "user", "content": PROMPT}]


@pytest.fixture
def serve():
    with contextlib.ExitStack() as stack:
        yield lambda config=None: stack.enter_context(serve_in_thread(config))


def hits(url: str, route: str = "messages") -> int:
    return httpx.get(f"{url}/_cfopt/stats", headers={"x-api-key": "k"}).json()["by_route"].get(route, 0)


def plan(url: str, *kinds: str, retry_after_s: float = 1.0) -> None:
    httpx.post(f"{url}/_cfopt/faults", headers={"x-api-key": "k"}, json={"fail_next": list(kinds), "retry_after_s": retry_after_s})


def test_create_parses_into_the_sdk_message_with_usage(serve):
    config = ServerConfig(seed=5, time_scale=1000)
    url = serve(config)
    expected = Providers(seed=5, clock=VirtualClock()).claude.simulate(Call("haiku", PROMPT, max_tokens=200))
    client = anthropic.Anthropic(base_url=url, api_key=PLANTED, max_retries=0)
    msg = client.messages.create(model="claude-haiku-5-5", max_tokens=200, messages=USER)
    assert isinstance(msg, anthropic.types.Message)
    assert msg.content[0].type == "text" and msg.content[0].text == expected.content
    assert msg.stop_reason == expected.stop_reason and msg.model == "claude-haiku-5-5"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (
        expected.usage.input_tokens, expected.usage.output_tokens)
    assert msg.usage.service_tier == "standard" and msg.usage.cache_read_input_tokens == 0


def test_count_tokens_and_errors_as_sdk_types(serve):
    url = serve(ServerConfig(time_scale=1000))
    client = anthropic.Anthropic(base_url=url, api_key=PLANTED, max_retries=0)
    n = client.messages.count_tokens(model="claude-sonnet-5-5", messages=USER, system="Be brief.")
    assert isinstance(n, anthropic.types.MessageTokensCount)
    used = client.messages.create(model="claude-sonnet-5-5", max_tokens=50, messages=USER, system="Be brief.")
    assert n.input_tokens == used.usage.input_tokens
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="claude-nope", max_tokens=50, messages=USER)
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="claude-haiku-5-5", max_tokens=0, messages=USER)
    locked = serve(ServerConfig(time_scale=1000, api_key=PLANTED))
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=locked, api_key="sk-wrong", max_retries=0).messages.create(
            model="claude-haiku-5-5", max_tokens=5, messages=USER)


def test_batches_create_retrieve_results(serve):
    url = serve(ServerConfig(time_scale=5_000))
    client = anthropic.Anthropic(base_url=url, api_key=PLANTED, max_retries=0)
    batch = client.messages.batches.create(requests=[
        {"custom_id": f"shop-{i}", "params": {"model": "claude-haiku-5-5", "max_tokens": 100,
                                             "messages": [{"role": "user", "content": f"Tagline {i}"}]}}
        for i in range(4)])
    assert isinstance(batch, anthropic.types.messages.MessageBatch)
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 4
    deadline = time.monotonic() + 30
    while (batch := client.messages.batches.retrieve(batch.id)).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert batch.request_counts.succeeded == 4 and batch.ended_at is not None
    results = list(client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == [f"shop-{i}" for i in range(4)]
    for r in results:
        assert r.result.type == "succeeded"
        assert isinstance(r.result.message, anthropic.types.Message)
        assert r.result.message.usage.service_tier == "batch"


@pytest.mark.parametrize("kind, error", [("overloaded", anthropic.InternalServerError),
                                         ("rate_limited", anthropic.RateLimitError)])
def test_sdk_retries_our_429_and_529(serve, kind, error):
    url = serve(ServerConfig(time_scale=1000))
    plan(url, kind, retry_after_s=1500.0)   # 1,500 simulated s = 1.5 s of wall time at 1000x
    client = anthropic.Anthropic(base_url=url, api_key=PLANTED, max_retries=2)
    t0 = time.perf_counter()
    msg = client.messages.create(model="claude-haiku-5-5", max_tokens=50, messages=USER)
    waited = time.perf_counter() - t0
    assert msg.content[0].text and hits(url) == 2          # failed once, retried once, succeeded
    if kind == "rate_limited":   # its own first backoff is at most 0.5 s: this wait is ours
        assert 1.5 <= waited < 5.0                         # it honoured retry-after-ms
    plan(url, kind)
    with pytest.raises(error) as e:
        anthropic.Anthropic(base_url=url, api_key=PLANTED, max_retries=0).messages.create(
            model="claude-haiku-5-5", max_tokens=50, messages=USER)
    assert e.value.status_code == (529 if kind == "overloaded" else 429) and hits(url) == 3


def test_sdk_gives_up_after_its_retries_on_a_provider_that_always_fails(serve):
    url = serve(ServerConfig(time_scale=1000, faults=Faults(overloaded=1.0)))
    client = anthropic.Anthropic(base_url=url, api_key=PLANTED, max_retries=2)
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="claude-haiku-5-5", max_tokens=50, messages=USER)
    assert e.value.status_code == 529 and e.value.body["error"]["type"] == "overloaded_error"
    assert hits(url) == 3                                  # one call and two retries


def test_stream_helpers_text_stream_and_final_message(serve):
    url = serve(ServerConfig(seed=2, time_scale=200))
    expected = Providers(seed=2, clock=VirtualClock()).claude.simulate(
        Call("sonnet", PROMPT, max_tokens=300))
    client = anthropic.Anthropic(base_url=url, api_key=PLANTED, max_retries=0)
    with client.messages.stream(model="claude-sonnet-5-5", max_tokens=300, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == expected.content == final.content[0].text
    assert final.usage.output_tokens == expected.usage.output_tokens
    assert final.stop_reason == expected.stop_reason


def test_async_client_create_and_stream_concurrently(serve):
    url = serve(ServerConfig(time_scale=500))

    async def main() -> tuple[list, str]:
        client = anthropic.AsyncAnthropic(base_url=url, api_key=PLANTED, max_retries=0)
        made = await asyncio.gather(*(client.messages.create(
            model="claude-haiku-5-5", max_tokens=60, messages=[{"role": "user", "content": f"Tagline {i}"}])
            for i in range(20)))
        async with client.messages.stream(model="claude-haiku-5-5", max_tokens=60, messages=USER) as s:
            text = "".join([t async for t in s.text_stream])
            final = await s.get_final_message()
        assert final.content[0].text == text
        await client.close()
        return made, text
    made, text = asyncio.run(main())
    assert all(isinstance(m, anthropic.types.Message) for m in made) and text
    assert len({m.id for m in made}) == 20


def test_planted_key_stays_out_of_server_logs_and_error_bodies(serve, caplog):
    caplog.set_level(logging.DEBUG)
    url = serve(ServerConfig(time_scale=1000, api_key=PLANTED))
    good = anthropic.Anthropic(base_url=url, api_key=PLANTED, max_retries=0)
    good.messages.create(model="claude-haiku-5-5", max_tokens=20, messages=USER)
    bodies = []
    for client, model in ((good, "claude-nope"), (anthropic.Anthropic(
            base_url=url, api_key=PLANTED + "x", max_retries=0), "haiku")):
        with pytest.raises(anthropic.APIStatusError) as e:
            client.messages.create(model=model, max_tokens=20, messages=USER)
        bodies.append(str(e.value) + repr(e.value.body))
    server_side = "\n".join(r.getMessage() for r in caplog.records
                            if r.name.startswith(("cfopt", "uvicorn")))
    assert "POST /v1/messages" in server_side and PLANTED not in server_side
    assert all(PLANTED not in b for b in bodies)
