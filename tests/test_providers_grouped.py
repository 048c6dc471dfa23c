"""The simulated Claude answers grouped prompts: one JSON array of answers, cut by max_tokens,
now and then not compliant; and what that does to BatchProcessor, merging and the local server."""
from __future__ import annotations

import asyncio
import contextlib
import json
from types import SimpleNamespace

import httpx
import pytest

from catalog_support import tight_catalog

from cfopt.batching import BatchConfig, BatchProcessor, Task
from cfopt.clock import VirtualClock
from cfopt.latency.coalesce import QueryOptimizer
from cfopt.errors import ConfigError
from cfopt.batching.grouping import GROUP_SYSTEM, group_prompt, split_answers
from cfopt.pricing import Usage, load_catalog
from cfopt.providers import Call, ClaudeProvider, Providers
from cfopt.providers.grouped import read_group
from cfopt.server import ServerConfig, serve_in_thread
from cfopt.tokens import count_tokens
from cfopt.workload import generate
from test_providers_claude import spaced   # one helper: a steady stream under the tier limits

PROMPTS = ["Write a 60-word product description for a red mug.",
           "Write a tagline for a vegan bakery.",
           "Classify this review as positive or negative: The scarf fell apart in a week.",
           "Give me five tips on home composting.",
           'Summarize in 2 sentences: "rooftop solar panels, [2024] edition" - a guide.',
           "Translate into French: Your order has shipped.",
           "What is sourdough baking?",
           "Draft a tweet announcing our new trail running shoes.",
           "List 5 email subject lines for a spring sale.",
           "Écris une phrase sur le café équitable."]


def claude(seed=0, **kw):
    return ClaudeProvider(seed=seed, clock=VirtualClock(), **kw)


def grouped_call(prompts, model="haiku", max_tokens=None):
    system, prompt = group_prompt(prompts)
    return Call(model, prompt, system=system,
                max_tokens=max_tokens if max_tokens is not None else 1024 * len(prompts))


def text_tasks(n_requests=600, seed=3):
    """The workload's high and medium priority text: what BatchProcessor groups."""
    return [Task(f"t{i}", r.type, r.prompt, r.priority, max_tokens=r.max_tokens)
            for i, r in enumerate(generate(n_requests, seed=seed, duration_s=600))
            if r.type in ("text", "analysis") and r.priority != "low"]


# --- recognising a grouped request ----------------------------------------------------------
def test_the_wire_format_is_shared_with_cfopt_grouping():
    system, prompt = group_prompt(PROMPTS[:3])
    assert system == GROUP_SYSTEM.format(n=3) and read_group(system, prompt) == PROMPTS[:3]
    assert read_group("  " + system + "\n", prompt) == PROMPTS[:3]       # surrounding space is fine


@pytest.mark.parametrize("system, prompt", [
    (None, json.dumps(PROMPTS[:2])),                               # a JSON array alone
    ("You are a terse copywriter.", json.dumps(PROMPTS[:2])),      # another system prompt
    (GROUP_SYSTEM.format(n=3), json.dumps(PROMPTS[:2])),           # the counts disagree
    (GROUP_SYSTEM.format(n=2), "not json, just words"),
    (GROUP_SYSTEM.format(n=2), json.dumps({"a": 1, "b": 2})),
    (GROUP_SYSTEM.format(n=2), json.dumps(["fine", 3])),
    (GROUP_SYSTEM.format(n=2), json.dumps(["fine", "  "])),
    (GROUP_SYSTEM.format(n=0), "[]"),
    (GROUP_SYSTEM.replace("{n}", "2", 1).replace("{n}", "3"), json.dumps(PROMPTS[:2])),
])
def test_anything_else_is_an_ordinary_prompt(system, prompt):
    assert read_group(system, prompt) is None
    r = claude().simulate(Call("haiku", prompt, system=system))
    assert r.extra["grouped"] is None and split_answers(r.content, 2) is None
    assert count_tokens(r.content) == r.usage.output_tokens


# --- the grouped answer ---------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_a_grouped_call_answers_each_prompt_as_a_single_call_would(n):
    p = claude(seed=3, group_noncompliance=0.0)
    r = p.simulate(grouped_call(PROMPTS[:n]))
    answers = split_answers(r.content, n)
    assert answers is not None, r.content[:200]
    assert r.stop_reason == "end_turn" and r.extra["grouped"] == n
    singles = spaced(p, [Call("haiku", q) for q in PROMPTS[:n]])
    assert all(s.stop_reason == "end_turn" for s in singles)
    assert answers == [s.content for s in singles]   # same words, same length, per prompt


def test_usage_counts_the_whole_request_and_the_exact_reply():
    p = claude(seed=5, group_noncompliance=0.0)
    for model in ("haiku", "sonnet", "opus"):
        for n in (2, 4, 10):
            call = grouped_call(PROMPTS[:n], model=model)
            r = p.simulate(call)
            assert r.usage.input_tokens == p.count_tokens(model, call.prompt, call.system) == (
                count_tokens(call.system) + count_tokens(call.prompt) + p.framing_tokens)
            assert count_tokens(r.content) == r.usage.output_tokens
            # the whole reply is streamed before it can be split: TTFT + every token / speed
            assert r.latency_s == pytest.approx(
                r.first_content_s + r.usage.output_tokens / r.extra["output_tokens_per_s"])
            assert r.cost_usd == pytest.approx(p.catalog.cost(r.model, r.usage))
            p.clock.advance(2.0)


def test_grouped_replies_are_fixed_by_the_seed():
    calls = [grouped_call(PROMPTS[i:i + 3]) for i in range(0, 8)]
    runs = [[r.content for r in spaced(claude(seed=s, group_noncompliance=0.3), calls)]
            for s in (7, 7, 8)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_max_tokens_cuts_the_whole_reply_and_the_split_fails():
    p = claude(seed=2, group_noncompliance=0.0)
    full = p.simulate(grouped_call(PROMPTS[:6]))
    assert split_answers(full.content, 6) is not None
    for cap in (1, 7, full.usage.output_tokens // 2, full.usage.output_tokens - 1):
        p.clock.advance(2.0)
        r = p.simulate(grouped_call(PROMPTS[:6], max_tokens=cap))
        assert r.stop_reason == "max_tokens" and r.usage.output_tokens <= cap
        assert count_tokens(r.content) == r.usage.output_tokens
        assert full.content.startswith(r.content)
        assert split_answers(r.content, 6) is None, cap
    p.clock.advance(2.0)
    exact = p.simulate(grouped_call(PROMPTS[:6], max_tokens=full.usage.output_tokens))
    assert exact.stop_reason == "end_turn" and exact.content == full.content


def test_an_answer_longer_than_the_whole_cap_is_cut_with_the_same_words():
    p = claude(seed=6, group_noncompliance=0.0)
    prompts = ["Write a 900-word guide to home espresso.", PROMPTS[1]]
    full = p.simulate(grouped_call(prompts, max_tokens=3000))
    assert full.stop_reason == "end_turn" and full.usage.output_tokens > 1000
    for cap in (100, 500, 1000):
        p.clock.advance(10.0)
        r = p.simulate(grouped_call(prompts, max_tokens=cap))
        assert r.stop_reason == "max_tokens" and full.content.startswith(r.content)
        assert r.usage.output_tokens == count_tokens(r.content) and cap - 2 <= r.usage.output_tokens <= cap


def test_a_non_compliant_reply_does_not_split_and_both_kinds_occur():
    p = claude(seed=4, group_noncompliance=1.0)
    replies = spaced(p, [grouped_call(PROMPTS[i % 7:i % 7 + 4]) for i in range(40)])
    assert all(split_answers(r.content, 4) is None for r in replies)
    assert all(count_tokens(r.content) == r.usage.output_tokens for r in replies)
    prose = [r for r in replies if not r.content.startswith("[")]
    short = [r for r in replies if r.content.startswith("[")]
    assert prose and short, "expected both a prose reply and an array with an answer missing"
    assert all(len(json.loads(r.content)) == 3 for r in short)


def test_the_non_compliance_rate_comes_from_the_catalog_and_the_seeded_stream():
    figure = load_catalog().provider_figures["anthropic"]["group_noncompliance"]
    p = claude(seed=11)
    assert p.group_noncompliance == figure
    n = 3000
    replies = spaced(p, [grouped_call(PROMPTS[i % 7:i % 7 + 3]) for i in range(n)], gap_s=0.1)
    failed = sum(split_answers(r.content, 3) is None for r in replies)
    sd = (n * figure * (1 - figure)) ** 0.5
    assert abs(failed - n * figure) < 4 * sd, f"{failed} of {n} did not split, expected ~{n * figure:.0f}"


def test_the_rate_is_checked_and_does_not_shift_the_other_draws():
    for bad in (-0.1, 1.5, "0.1", True):
        with pytest.raises(ConfigError, match="group_noncompliance"):
            claude(group_noncompliance=bad)
    p = claude()
    with pytest.raises(ConfigError, match="group_noncompliance"):
        p.group_noncompliance = 2
    calls = [grouped_call(PROMPTS[:3]), Call("haiku", PROMPTS[0]), grouped_call(PROMPTS[3:5])]
    runs = [spaced(claude(seed=1, group_noncompliance=rate), calls) for rate in (0.0, 1.0)]
    # one draw per grouped call whatever the rate: every call gets the same TTFT and speed
    for a, b in zip(*runs):
        assert (a.first_content_s, a.extra["output_tokens_per_s"]) == (
            b.first_content_s, b.extra["output_tokens_per_s"])
    assert runs[0][1].content == runs[1][1].content
    assert [split_answers(r.content, 3) is None for r in (runs[0][0], runs[1][0])] == [False, True]


# --- BatchProcessor and merging on the simulated providers ----------------------------------
def run_batches(tasks, *, group_text=True, noncompliance=None, seed=0):
    clock = VirtualClock()
    providers = Providers(seed=seed, clock=clock)
    if noncompliance is not None:
        providers.claude.group_noncompliance = noncompliance
    bp = BatchProcessor(providers, config=BatchConfig(group_text=group_text))
    for t in tasks:
        bp.add_task(t)
    return clock.run(bp.process_all()), bp.stats


def test_a_group_too_big_for_the_tier_is_halved_not_abandoned():
    # Tier 1 lets haiku write 10,000 output tokens a minute: ten 1,024-token caps ask for more
    # and the API refuses the call; two groups of five pass (the second after a 429's wait).
    from cfopt.batching.resilience import Resilience
    clock = VirtualClock()
    sender = Resilience(Providers(seed=0, clock=clock, catalog=tight_catalog()), clock=clock, seed=1)
    bp = BatchProcessor(sender)
    tasks = [Task(f"t{i}", "text", f"Write a tagline for shop {i}.", "high", max_tokens=1024)
             for i in range(10)]
    for t in tasks:
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert sorted(r.id for r in results) == sorted(t.id for t in tasks) and all(r.ok for r in results)
    assert {r.path for r in results} == {"grouped"}
    assert bp.stats.grouped_calls == 1 + 2 and bp.stats.split_failures == 0   # refused, 2 halves


def test_batch_processor_now_groups_text_for_real():
    tasks = text_tasks()
    assert len(tasks) > 200
    results, s = run_batches(tasks)
    assert sorted(r.id for r in results) == sorted(t.id for t in tasks) and all(r.ok for r in results)
    assert s.grouped_calls > 0 and s.provider_calls < len(tasks) / 3, s
    assert s.split_failures <= max(3, 0.1 * s.grouped_calls) and s.grouping_stopped == []
    grouped = [r for r in results if r.path == "grouped"]
    assert len(grouped) > 0.8 * len(tasks)
    assert all(r.result.content.strip() and r.result.content[0] not in '["' for r in grouped)
    # An answer of a grouped reply is usable only once the whole array is in: no TTFT for it.
    assert all(r.result.first_content_s == r.result.latency_s for r in grouped)


def test_batch_processor_falls_back_when_the_model_never_complies():
    tasks = text_tasks()
    results, s = run_batches(tasks, noncompliance=1.0)
    assert sorted(r.id for r in results) == sorted(t.id for t in tasks) and all(r.ok for r in results)
    # Grouping stops after group_give_up bad replies; groups already out when it stopped (at
    # most one per call slot) fail too, and every task still gets its answer alone.
    cfg = BatchConfig()
    assert s.split_failures == s.grouped_calls
    assert cfg.group_give_up <= s.grouped_calls <= cfg.group_give_up + cfg.concurrency
    assert s.grouping_stopped == ["claude-haiku-5-5"]
    assert s.single_calls == len(tasks) and {r.path for r in results} == {"single"}


def test_grouped_versus_single_calls_cost_and_tokens():
    tasks = text_tasks()
    grouped, gs = run_batches(tasks, noncompliance=0.0)
    single, ss = run_batches(tasks, group_text=False)
    assert gs.split_failures == 0
    by_id = {t.id: t for t in tasks}
    alone = {r.id: r.result for r in single}
    members: dict[str, list[str]] = {}
    calls: dict[str, Usage] = {}   # each grouped call's usage: the sum of its answers' shares
    for r in grouped:
        if r.path == "grouped":
            reply, _, piece = r.result.request_id.rpartition("#")   # "msg_...#2": the 2nd answer
            assert piece == str(len(members.get(reply, [])) + 1)
            members.setdefault(reply, []).append(r.id)
            calls[reply] = calls.get(reply, Usage()) + r.result.usage
            if alone[r.id].stop_reason == "end_turn":   # the same answer as the call of its own
                assert r.result.content == alone[r.id].content, r.id
    # Token by token, a grouped call pays the grouped system prompt and the JSON quoting (and
    # the escaping of line breaks in its answers) and saves the framing of every call but one.
    framing = ClaudeProvider().framing_tokens
    totals = {"grouped in": 0, "single in": 0, "grouped out": 0, "single out": 0}
    for rid, usage in calls.items():
        ids, result = members[rid], SimpleNamespace(usage=usage)
        prompts = [by_id[i].prompt for i in ids]
        system, prompt = group_prompt(prompts)
        single_in = sum(alone[i].usage.input_tokens for i in ids)
        assert result.usage.input_tokens == (single_in - framing * (len(ids) - 1) + count_tokens(system)
                                             + count_tokens(prompt) - sum(map(count_tokens, prompts)))
        assert result.usage.output_tokens == count_tokens(json.dumps(
            [r.result.content for r in grouped if r.id in ids], ensure_ascii=False))
        totals["grouped in"] += result.usage.input_tokens
        totals["grouped out"] += result.usage.output_tokens
        totals["single in"] += single_in
        totals["single out"] += sum(alone[i].usage.output_tokens for i in ids)
    n_grouped = sum(len(ids) for ids in members.values())
    print(f"\n{len(tasks)} text tasks: grouped {gs.provider_calls} calls ${gs.cost_usd:.6f}, "
          f"single {ss.provider_calls} calls ${ss.cost_usd:.6f} "
          f"(grouped/single {gs.cost_usd / ss.cost_usd:.3f}); over the {n_grouped} grouped tasks: {totals}")
    assert gs.provider_calls < ss.provider_calls / 3


def test_merged_calls_in_flight_split_on_the_simulated_claude():
    clock = VirtualClock()
    q = QueryOptimizer(Providers(seed=1, clock=clock), max_batch_size=10)
    q.sender.claude.group_noncompliance = 0.0

    async def burst():
        return await asyncio.gather(*(q.asend(Call("haiku", p)) for p in PROMPTS[:7]))
    out = clock.run(burst())
    assert q.stats.merged_calls == 1 and q.stats.merged_requests == 7 and q.stats.provider_calls == 1
    assert q.stats.split_failures == 0 and len({r.content for r in out}) == 7


# --- over HTTP --------------------------------------------------------------------------------
def test_the_local_server_answers_a_grouped_prompt_with_a_json_array():
    config = ServerConfig(seed=4, time_scale=1000)
    system, prompt = group_prompt(PROMPTS[:4])
    twin = Providers(seed=config.seed, clock=VirtualClock(), profile=config.profile).claude
    expected = twin.simulate(Call("haiku", prompt, system=system, max_tokens=4000))
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serve_in_thread(config))
        r = httpx.post(f"{url}/v1/messages", headers={"x-api-key": "sk-test-key", "anthropic-version": "2023-06-01"},
                       timeout=30, json={"model": "claude-haiku-5-5", "max_tokens": 4000, "system": system,
            "messages": [{"role": "user", "content": prompt}]})
    body = r.json()
    assert r.status_code == 200, body
    text = body["content"][0]["text"]
    assert text == expected.content and body["usage"]["output_tokens"] == count_tokens(text)
    assert expected.extra["grouped"] == 4
    assert split_answers(text, 4) is not None and len(json.loads(text)) == 4, text[:200]
