"""The wire details a real client depends on, checked with the official ``anthropic`` SDK (and raw
HTTP where the SDK would refuse to send the mistake): the Models API and the IDs it lists, dated
IDs and aliases, prompt caching on a message block, rate-limit headers, an error event
mid-stream, batch delete and cursor paging, validation with ``request_id``; fal's video price
by duration and resolution, and cancel."""
from __future__ import annotations

import contextlib
import time

import anthropic
import httpx
import pytest

from cfopt.pricing import clip_usage, load_catalog
from cfopt.server import ServerConfig, serve_in_thread

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KEY = "sk-ant-test"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
USER = [{"role": "user", "content": "Write a tagline for a bakery."}]
# A long, stable document: past every model's minimum cacheable length (512 to 4,096 tokens).
DOCUMENT = " ".join(f"Clause {i}: the supplier delivers fresh bread every morning before seven."
                    for i in range(400))


@pytest.fixture
def serve():
    with contextlib.ExitStack() as stack:
        yield lambda config=None: stack.enter_context(serve_in_thread(config))


def sdk(url: str, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0, **kw)


def test_models_list_names_exactly_the_accepted_models_and_each_one_answers(serve):
    url = serve(ServerConfig(time_scale=1000))
    client = sdk(url)
    listed = [m.id for m in client.models.list(limit=2)]   # auto-paging follows last_id
    accepted = [m.id for m in load_catalog().models.values() if m.kind == "text"]
    assert sorted(listed) == sorted(accepted) and len(listed) == len(set(listed))
    for model_id in listed:
        msg = client.messages.create(model=model_id, max_tokens=20, messages=USER)
        assert msg.model == model_id and msg.usage.output_tokens > 0
    assert client.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5-20251001"


def test_dated_ids_and_the_real_aliases_answer_and_cfopt_nicknames_do_not(serve):
    client = sdk(serve(ServerConfig(time_scale=1000)))
    for name in ("claude-haiku-4-5-20251001", "claude-haiku-4-5", "claude-opus-4-5-20251101",
                 "claude-opus-4-5", "claude-haiku-5-5"):
        assert client.messages.create(model=name, max_tokens=10, messages=USER).model.startswith(name[:16])
    for name in ("haiku", "claude-haiku-5-5-20261007", "claude-sonnet-4-5-20250929"):  # retired too
        with pytest.raises(anthropic.NotFoundError) as err:
            client.messages.create(model=name, max_tokens=10, messages=USER)
        assert err.value.body["request_id"] == err.value.response.headers["request-id"]


def test_prompt_caching_on_a_message_block_writes_then_reads(serve):
    client = sdk(serve(ServerConfig(time_scale=1000)))

    def ask(question: str):
        return client.messages.create(model="claude-sonnet-5-5", max_tokens=50, messages=[
            {"role": "user", "content": [
                {"type": "text", "text": DOCUMENT, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": question}]}])
    first, second = ask("Who delivers?"), ask("When?")
    assert first.usage.cache_creation_input_tokens > 1000 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    # The cached part is billed at the model's cache prices: the read is 20x cheaper than input.
    price = load_catalog().text["claude-sonnet-5-5"]
    assert price.input_per_mtok / price.cache_read_per_mtok == 20


def test_top_level_automatic_caching_and_tools_are_cached(serve):
    client = sdk(serve(ServerConfig(time_scale=1000)))
    tools = [{"name": f"lookup_{i}", "description": DOCUMENT[:2000],
              "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
             for i in range(3)]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    runs = [client.messages.create(model="claude-haiku-5-5", max_tokens=20, tools=tools,
                                   messages=[{"role": "user", "content": q}]) for q in ("a?", "b?")]
    assert runs[0].usage.cache_creation_input_tokens > 512 and runs[1].usage.cache_read_input_tokens > 512
    auto = [client.messages.create(model="claude-haiku-5-5", max_tokens=20, messages=[
        {"role": "user", "content": DOCUMENT}], cache_control={"type": "ephemeral"}) for _ in range(2)]
    assert auto[0].usage.cache_creation_input_tokens > 512
    assert auto[1].usage.cache_read_input_tokens == auto[0].usage.cache_creation_input_tokens
    with pytest.raises(anthropic.BadRequestError, match="not simulated"):
        client.messages.create(model="claude-haiku-5-5", max_tokens=20, messages=USER, tools=tools,
                               tool_choice={"type": "any"})


def test_every_answer_carries_the_rate_limit_headers(serve):
    client = sdk(serve(ServerConfig(time_scale=1)))   # real time: the buckets barely refill meanwhile
    raw = client.messages.with_raw_response.create(model="claude-haiku-5-5", max_tokens=5, messages=USER)
    limit = load_catalog().rate_limit("claude-haiku-5-5")
    h = raw.headers
    assert h["anthropic-ratelimit-requests-limit"] == str(limit.rpm)
    assert int(h["anthropic-ratelimit-requests-remaining"]) == limit.rpm - 1
    assert h["anthropic-ratelimit-input-tokens-limit"] == str(limit.itpm)
    assert h["anthropic-ratelimit-output-tokens-limit"] == str(limit.otpm)
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert h[f"anthropic-ratelimit-{name}-reset"].endswith("Z")
    assert raw.parse().usage.output_tokens > 0


def test_an_error_event_mid_stream_is_raised_by_the_sdk(serve):
    url = serve(ServerConfig(time_scale=1000))
    httpx.post(f"{url}/_cfopt/faults", headers={"x-api-key": KEY}, json={"fail_next": ["overloaded_mid_stream"]})
    got = []
    with pytest.raises(anthropic.APIStatusError) as err:
        with sdk(url).messages.stream(model="claude-haiku-5-5", max_tokens=300, messages=USER) as s:
            for text in s.text_stream:
                got.append(text)
    assert got, "the stream should start before failing"
    assert "overloaded" in str(err.value).lower()


def test_stream_ends_with_the_full_usage_in_message_delta(serve):
    url = serve(ServerConfig(time_scale=1000))
    with httpx.stream("POST", f"{url}/v1/messages", headers=HEADERS, json={
            "model": "claude-haiku-5-5", "max_tokens": 50, "messages": USER, "stream": True}) as r:
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    import json
    delta = next(json.loads(e[5:]) for e in events if '"message_delta"' in e)
    assert {"input_tokens", "output_tokens", "cache_creation_input_tokens",
            "cache_read_input_tokens"} <= set(delta["usage"])


def test_batches_page_by_cursor_and_delete_once_ended(serve):
    client = sdk(serve(ServerConfig(time_scale=1000)))
    made = [client.messages.batches.create(requests=[{"custom_id": f"b{i}", "params": {
        "model": "claude-haiku-5-5", "max_tokens": 20, "messages": USER}}]) for i in range(3)]
    listed = [b.id for b in client.messages.batches.list(limit=1)]   # three pages of one
    assert listed == [b.id for b in reversed(made)]
    with pytest.raises(anthropic.BadRequestError, match="cancel it"):
        client.messages.batches.delete(made[0].id)
    client.messages.batches.cancel(made[0].id)
    deadline = time.monotonic() + 5
    while client.messages.batches.retrieve(made[0].id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    deleted = client.messages.batches.delete(made[0].id)
    assert deleted.id == made[0].id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(made[0].id)


@pytest.mark.parametrize("body, field", [
    ({"model": "claude-haiku-5-5", "max_tokens": 10, "messages": USER, "colour": "blue"}, "colour"),
    ({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": USER, "temperature": 5}, "temperature"),
    ({"model": "claude-haiku-5-5", "max_tokens": 10, "messages": USER, "temperature": 0.2}, "temperature"),
    ({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": USER, "top_p": -1}, "top_p"),
])
def test_invalid_requests_are_400_in_anthropics_shape_with_request_id(serve, body, field):
    url = serve(ServerConfig(time_scale=1000))
    r = httpx.post(f"{url}/v1/messages", headers=HEADERS, json=body)
    assert r.status_code == 400
    b = r.json()
    assert b["type"] == "error" and b["error"]["type"] == "invalid_request_error"
    assert b["error"]["message"].startswith(field) and b["request_id"] == r.headers["request-id"]
    with pytest.raises(anthropic.BadRequestError) as err:   # the SDK sends the same raw
        sdk(url).messages.create(model=body["model"], max_tokens=10, messages=USER,
                                 extra_body={k: v for k, v in body.items()
                                             if k not in ("model", "max_tokens", "messages")})
    assert err.value.request_id == err.value.body["request_id"]


def test_anthropic_version_is_required(serve):
    url = serve(ServerConfig(time_scale=1000))
    r = httpx.post(f"{url}/v1/messages", headers={"x-api-key": KEY},
                   json={"model": "claude-haiku-5-5", "max_tokens": 10, "messages": USER})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]


def test_stop_sequences_cut_the_answer_and_bill_only_what_came_before(serve):
    client = sdk(serve(ServerConfig(time_scale=1000)))
    full = client.messages.create(model="claude-haiku-5-5", max_tokens=200, messages=USER)
    word = full.content[0].text.split()[3]
    cut = client.messages.create(model="claude-haiku-5-5", max_tokens=200, messages=USER,
                                 stop_sequences=[word])
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == word
    assert word not in cut.content[0].text and cut.usage.output_tokens < full.usage.output_tokens


def test_a_body_over_32_mb_is_413_and_under_is_read(serve):
    url = serve(ServerConfig(time_scale=1000))
    big = {"model": "claude-haiku-5-5", "max_tokens": 10,
           "messages": [{"role": "user", "content": "x" * (33 * 1024 * 1024)}]}
    r = httpx.post(f"{url}/v1/messages", headers=HEADERS, json=big, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


# --- fal.ai -----------------------------------------------------------------------------------
FAL = {"authorization": "Key fal-test"}


def _cost(url: str) -> float:
    return httpx.get(f"{url}/_cfopt/stats", headers={"x-api-key": KEY}).json()["cost_usd"]


def test_a_9_second_1080p_clip_costs_what_fal_charges(serve):
    url = serve(ServerConfig(time_scale=1000))
    before = _cost(url)
    r = httpx.post(f"{url}/fal/fal-ai/luma-dream-machine/ray-2", headers=FAL,
                   json={"prompt": "waves at dawn", "duration": "9s", "resolution": "1080p"})
    assert r.status_code == 200 and r.json()["cancel_url"].endswith("/cancel")
    charged = _cost(url) - before
    catalog = load_catalog()
    assert charged == pytest.approx(catalog.cost("video_5s", clip_usage(catalog.model("video_5s"), 9, "1080p")))
    # fal's page: $0.50 per 5 s at 540p, 9 s costs 2x, 1080p costs 4x.
    assert charged == pytest.approx(0.50 * 2 * 4)
    bad = httpx.post(f"{url}/fal/fal-ai/luma-dream-machine/ray-2", headers=FAL,
                     json={"prompt": "waves", "duration": "7s"})
    assert bad.status_code == 422 and "duration" in bad.json()["detail"]


def test_fal_cancel_stops_a_queued_request_and_it_is_not_billed(serve):
    url = serve(ServerConfig(time_scale=1))   # real time: the request waits ~3 s in the queue
    sub = httpx.post(f"{url}/fal/fal-ai/luma-dream-machine/ray-2", headers=FAL,
                     json={"prompt": "a quiet harbour"}).json()
    assert _cost(url) > 0
    c = httpx.put(sub["cancel_url"], headers=FAL)
    assert c.status_code == 202 and c.json()["status"] == "CANCELLATION_REQUESTED"
    assert _cost(url) == pytest.approx(0.0)
    assert httpx.get(sub["status_url"], headers=FAL).json()["status"] == "COMPLETED"
    res = httpx.get(sub["response_url"], headers=FAL)
    assert res.status_code == 400 and "canceled" in res.json()["detail"]
    done = httpx.post(f"{url}/fal/flux_schnell", headers=FAL, json={"prompt": "x"}).json()
    time.sleep(0.05)
    while httpx.get(done["status_url"], headers=FAL).json()["status"] != "COMPLETED":
        time.sleep(0.2)
    late = httpx.put(done["cancel_url"], headers=FAL)
    assert late.status_code == 400 and late.json()["status"] == "ALREADY_COMPLETED"
