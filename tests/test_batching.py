"""BatchProcessor and its aging queue: paths, splits, starvation, and nothing lost under faults."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from cfopt.batching import (BatchConfig, BatchProcessor, Task, group_prompt, split_answers)
from cfopt.clock import VirtualClock
from cfopt.errors import (ConfigError, InvalidRequest, Overloaded, ProviderError, ProviderTimeout,
                          RateLimited, ServerError)
from cfopt.pricing import Usage, load_catalog
from cfopt.batching.priority import AgingQueue, aging_key, effective_rank
from cfopt.providers.base import Call, Faults, Result
from cfopt.batching.resilience import Resilience, RetryPolicy

CATALOG = load_catalog()


class Fake:
    """A provider whose replies the test controls; it records every call and the peak in flight."""

    def __init__(self, clock, reply=None, fail=None, latency=1.0):
        self.clock, self.catalog = clock, CATALOG
        self.reply = reply or (lambda call: f"answer: {call.prompt}")
        self.fail = fail or (lambda call: None)
        self.latency = latency
        self.calls: list[Call] = []
        self.in_flight = self.peak = 0

    async def asend(self, call: Call) -> Result:
        self.calls.append(call)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            error = self.fail(call)
            if error is not None:
                await self.clock.asleep(0.1)
                raise error
            latency = self.latency(call) if callable(self.latency) else self.latency
            await self.clock.asleep(latency)
        finally:
            self.in_flight -= 1
        m = CATALOG.model(call.model)
        usage = Usage(input_tokens=10, output_tokens=10,
                      service_tier="batch" if call.batch else "standard")
        return Result(m.provider, m.id, m.kind, self.reply(call), usage, 0.001, latency, latency,
                      self.clock.now() - latency)


def grouped_reply(call: Call) -> str:
    """What a model that follows the grouped instructions writes."""
    if call.system and "JSON array" in call.system:
        return "```json\n" + json.dumps([f"answer: {p}" for p in json.loads(call.prompt)]) + "\n```"
    return f"answer: {call.prompt}"


def tasks(n, type_="text", priority="medium", prefix="t"):
    return [Task(f"{prefix}{i}", type_, f"prompt {prefix}{i}", priority) for i in range(n)]


# --- the split ------------------------------------------------------------------------------
@pytest.mark.parametrize("content, n, expected", [
    ('["a", "b"]', 2, ["a", "b"]),
    ('```json\n["a", "b"]\n```', 2, ["a", "b"]),
    ('Here you go:\n["a", "b"]\nHope it helps', 2, ["a", "b"]),
    ('["a", "b"]', 3, None),                 # wrong count
    ('["a", "b"', 2, None),                  # bad JSON
    ('{"a": 1, "b": 2}', 2, None),           # not an array
    ('["a", 2]', 2, None),                   # not strings
    ('["a", "  "]', 2, None),                # an empty answer
    ('no json at all', 1, None),
])
def test_split_answers(content, n, expected):
    assert split_answers(content, n) == expected


def test_group_prompt_keeps_each_prompt_intact_even_with_delimiters_inside():
    prompts = ['say "hi"', "a\nb", "], [", "ünïcode"]
    system, prompt = group_prompt(prompts)
    assert "exactly 4 strings" in system and json.loads(prompt) == prompts


# --- the paths ------------------------------------------------------------------------------
def test_grouped_text_makes_one_call_per_group_and_each_task_gets_its_own_answer():
    clock = VirtualClock()
    fake = Fake(clock, reply=grouped_reply)
    bp = BatchProcessor(fake, config=BatchConfig(group_max=10))
    for t in tasks(25):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert len(fake.calls) == 3 and bp.stats.grouped_calls == 3        # 10 + 10 + 5
    assert {r.id: r.result.content for r in results} == {f"t{i}": f"answer: prompt t{i}" for i in range(25)}
    assert all(r.path == "grouped" for r in results)
    assert sum(r.cost_usd for r in results) == pytest.approx(bp.stats.cost_usd) == pytest.approx(0.003)


@pytest.mark.parametrize("bad_reply", [
    lambda call: json.dumps(["only one"]) if call.system else f"answer: {call.prompt}",
    lambda call: "[not json" if call.system else f"answer: {call.prompt}",
])
def test_a_reply_that_does_not_split_falls_back_to_single_calls(bad_reply):
    clock = VirtualClock()
    fake = Fake(clock, reply=bad_reply)
    bp = BatchProcessor(fake)
    for t in tasks(4):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert bp.stats.split_failures == 1 and bp.stats.single_calls == 4 and len(fake.calls) == 5
    assert [r.result.content for r in results] == [f"answer: prompt t{i}" for i in range(4)]
    assert all(r.path == "single" for r in results)


def test_a_failed_grouped_call_falls_back_to_single_calls():
    clock = VirtualClock()
    fake = Fake(clock, fail=lambda call: ServerError("boom") if call.system else None)
    bp = BatchProcessor(fake)
    for t in tasks(3):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert all(r.ok and r.path == "single" for r in results) and bp.stats.split_failures == 1


def test_low_priority_text_goes_through_the_batch_api_at_half_price():
    from cfopt.providers.claude import ClaudeProvider
    prompts = [f"Write a product description for a {x} mug." for x in ("red", "blue", "green")]

    def run(priority):
        clock = VirtualClock()
        bp = BatchProcessor(ClaudeProvider(seed=3, clock=clock),
                            config=BatchConfig(group_text=False))
        for i, p in enumerate(prompts):
            bp.add_task(Task(f"{priority}{i}", "text", p, priority))
        return bp, clock.run(bp.process_all())
    now_bp, now = run("high")
    low_bp, low = run("low")
    assert low_bp.stats.batch_api_calls == 3 and now_bp.stats.batch_api_calls == 0
    assert all(r.result.usage.service_tier == "batch" for r in low)
    assert [r.result.content for r in low] == [r.result.content for r in now]   # same answers
    assert low_bp.stats.cost_usd == pytest.approx(now_bp.stats.cost_usd / 2)
    assert min(r.finished_at for r in low) > 60 > max(r.finished_at for r in now)  # but slower


def test_images_run_in_parallel_under_the_concurrency_limit():
    clock = VirtualClock()
    fake = Fake(clock, latency=2.0)
    bp = BatchProcessor(fake, config=BatchConfig(concurrency=4))
    for t in tasks(20, "image"):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert fake.peak == 4 and all(r.path == "parallel" and r.ok for r in results)
    assert clock.now() == pytest.approx(20 / 4 * 2.0)       # 5 waves of 2 s, not 20 calls of 2 s


def test_groups_are_by_type_and_model():
    clock = VirtualClock()
    fake = Fake(clock, reply=grouped_reply)
    bp = BatchProcessor(fake)
    for t in [*tasks(3, "text", prefix="a"), *tasks(2, "analysis", prefix="b"),
              Task("c0", "text", "prompt c0", model="sonnet"), *tasks(2, "photo", prefix="d")]:
        bp.add_task(t)
    results = clock.run(bp.process_all())
    grouped = [c for c in fake.calls if c.system]
    assert sorted(len(json.loads(c.prompt)) for c in grouped) == [2, 3]
    assert Counter(r.path for r in results) == Counter(grouped=5, single=1, parallel=2)
    assert next(c for c in fake.calls if c.prompt == "prompt c0").model == "sonnet"


def test_duplicate_ids_and_unknown_values_are_refused():
    bp = BatchProcessor(Fake(VirtualClock()))
    bp.add_task(Task("x", "text", "p"))
    with pytest.raises(ConfigError, match="already submitted"):
        bp.add_task(Task("x", "image", "q"))
    with pytest.raises(ConfigError, match="type"):
        bp.add_task(Task("y", "hologram", "q"))
    with pytest.raises(ConfigError, match="priority"):
        bp.add_task(Task("z", "text", "q", priority="urgent"))
    with pytest.raises(ConfigError):
        BatchConfig(batch_size=0)


def test_a_crash_inside_a_path_still_gives_every_task_an_outcome(monkeypatch):
    clock = VirtualClock()
    bp = BatchProcessor(Fake(clock), config=BatchConfig(group_text=False))

    async def broken(*args, **kw):
        raise KeyError("bug")
    monkeypatch.setattr(bp, "_single", broken)
    for t in tasks(5):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert len(results) == 5 and all(isinstance(r.error, KeyError) for r in results)


# --- priority and aging ---------------------------------------------------------------------
def test_queue_order_matches_effective_rank_at_any_time():
    clock, rng = VirtualClock(), random.Random(4)
    q = AgingQueue(aging_s=7.0, clock=clock)
    entries = []
    for i in range(300):
        clock.advance(rng.expovariate(2.0))
        p = rng.choice(["high", "medium", "low"])
        q.push(i, p)
        entries.append((i, p, clock.now()))
    clock.advance(5)
    by_rank = sorted(entries, key=lambda e: (effective_rank(e[1], clock.now() - e[2], 7.0), e[2]))
    assert list(q) == [e[0] for e in by_rank]
    assert q.pop_many(300) == [e[0] for e in by_rank]


def test_strict_priority_key_is_rank_then_arrival():
    assert aging_key("high", 100.0, None) < aging_key("medium", 0.0, None)
    assert aging_key("high", 100.0, 30.0) > aging_key("medium", 0.0, 30.0)  # medium waited 100 s
    with pytest.raises(ConfigError):
        aging_key("urgent", 0.0, 30.0)


def flood(aging_s):
    """A sustained high-priority flood above capacity, with low tasks arriving inside it."""
    clock = VirtualClock()
    fake = Fake(clock, latency=1.0)
    bp = BatchProcessor(fake, config=BatchConfig(batch_size=5, concurrency=5, max_wait_s=0.0,
                                                 aging_s=aging_s, group_text=False))
    # capacity: 5 tasks per second; the flood brings 8 high tasks per second for 300 s
    highs = [Task(f"h{i}", "image", f"h{i}", "high", at=i / 8) for i in range(2400)]
    lows = [Task(f"l{i}", "image", f"l{i}", "low", at=10.0 + 20 * i) for i in range(5)]
    results = clock.run(bp.run([*highs, *lows]))
    return {r.id: r for r in results}


def test_aging_serves_low_priority_during_a_high_priority_flood():
    out = flood(aging_s=10.0)
    assert len(out) == 2405
    for i in range(5):
        low, arrived = out[f"l{i}"], 10.0 + 20 * i
        # Ahead of it: the backlog at its arrival ((8 - 5) per second of flood so far) plus the
        # highs of the next 20 s (2 levels x 10 s of aging, at 8 per second), drained at 5/s.
        bound = ((8 - 5) * arrived + 2 * 10.0 * 8) / 5
        assert low.queued_s <= bound + 1.0, (i, low.queued_s, bound)
        assert low.finished_at < 300                      # served inside the flood


def test_without_aging_low_priority_starves_until_the_flood_ends():
    out = flood(aging_s=None)
    assert all(out[f"l{i}"].started_at >= max(out[f"h{j}"].started_at for j in range(2400)) - 1e-9
               for i in range(5))


# --- nothing lost ---------------------------------------------------------------------------
MIX = [("text", 0.45), ("analysis", 0.15), ("image", 0.25), ("photo", 0.1), ("audio", 0.05)]


def random_tasks(n, seed):
    rng = random.Random(seed)
    types, weights = zip(*MIX)
    t, out = 0.0, []
    for i in range(n):
        t += rng.expovariate(5.0)
        out.append(Task(f"task-{i}", rng.choices(types, weights)[0], f"prompt {i % 97}",
                        rng.choice(["high", "medium", "medium", "low"]), at=t))
    return out


@pytest.mark.parametrize("fail_rate", [0.05, 0.2])
def test_no_task_is_lost_or_duplicated_under_random_failures(fail_rate):
    clock, rng = VirtualClock(), random.Random(11)
    errors = [lambda: RateLimited("429", retry_after=rng.choice([1.0, 40.0])),
              lambda: Overloaded("529"), lambda: ServerError("500"),
              lambda: ProviderTimeout("timeout"), lambda: InvalidRequest("400"),
              lambda: RuntimeError("a bug in a provider adapter")]

    def fail(call):
        return rng.choice(errors)() if rng.random() < fail_rate else None
    fake = Fake(clock, reply=lambda call: (grouped_reply(call) if rng.random() > 0.1
                                           else "[broken"), fail=fail,
                latency=lambda call: rng.uniform(0.2, 3.0))
    sender = Resilience(fake, clock=clock, seed=1, policy=RetryPolicy(max_attempts=3))
    bp = BatchProcessor(sender)
    submitted = random_tasks(3000, seed=int(fail_rate * 100))
    results = clock.run(bp.run(submitted))
    ids = [r.id for r in results]
    assert len(results) == len(submitted) == bp.stats.submitted
    assert len(set(ids)) == len(ids) and set(ids) == {t.id for t in submitted}
    assert all((r.result is None) != (r.error is None) for r in results)
    assert bp.stats.succeeded + bp.stats.failed == len(submitted)
    failed = [r for r in results if not r.ok]
    assert failed and all(isinstance(r.error, (ProviderError, RuntimeError)) for r in failed)
    assert bp.stats.split_failures > 0 and sender.stats.retries > 0
    assert sender.stats.max_attempts_per_request <= 3


def test_no_task_is_lost_with_the_simulated_claude_at_20_percent_faults():
    from cfopt.providers.claude import ClaudeProvider
    clock = VirtualClock()
    claude = ClaudeProvider(seed=5, clock=clock, faults=Faults(rate_limited=0.05, overloaded=0.05,
                                                               server_error=0.05, timeout=0.05))
    sender = Resilience(claude, clock=clock, seed=5)
    bp = BatchProcessor(sender, config=BatchConfig(batch_api_for_low=False))
    submitted = [t for t in random_tasks(1500, seed=9) if t.type in ("text", "analysis")]
    results = clock.run(bp.run(submitted))
    assert sorted(r.id for r in results) == sorted(t.id for t in submitted)
    ok = sum(r.ok for r in results) / len(results)
    assert ok > 0.98, f"success after retries {ok:.3f}"


@pytest.mark.parametrize("fault_rate", [0.05, 0.2])
def test_nothing_lost_with_every_simulated_provider_failing(fault_rate):
    from cfopt.providers import Providers
    from cfopt.workload import generate
    clock = VirtualClock()
    each = fault_rate / 4
    providers = Providers(seed=2, clock=clock, faults=Faults(rate_limited=each, overloaded=each,
                                                             server_error=each, timeout=each))
    sender = Resilience(providers, clock=clock, seed=2, policy=RetryPolicy(max_attempts=4))
    bp = BatchProcessor(sender)
    submitted = [Task.from_request(r, index=i)
                 for i, r in enumerate(generate(1200, seed=13, duration_s=600))]
    results = clock.run(bp.run(submitted))
    ids = [r.id for r in results]
    assert len(ids) == len(set(ids)) == len(submitted) and set(ids) == {t.id for t in submitted}
    assert {r.path for r in results} >= {"batch_api", "parallel"}
    assert sender.stats.max_attempts_per_request <= 4
    ok = sum(r.ok for r in results) / len(results)
    assert ok > (0.99 if fault_rate == 0.05 else 0.97), f"success after retries {ok:.3f}"
    assert all(isinstance(r.error, ProviderError) for r in results if not r.ok)


def test_a_model_that_keeps_ignoring_the_format_stops_being_grouped():
    clock = VirtualClock()
    fake = Fake(clock, reply=lambda call: "Sure! Here are your answers..." if call.system
                else f"answer: {call.prompt}")
    # One call at a time: a group may still leave while the last bad reply is being read (it
    # takes the one slot first), never more.
    bp = BatchProcessor(fake, config=BatchConfig(batch_size=5, group_give_up=3, concurrency=1))
    for t in tasks(50):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    grouped = bp.stats.grouped_calls
    assert all(r.ok for r in results) and 3 <= grouped <= 3 + 1
    assert bp.stats.grouping_stopped == ["claude-haiku-5-5"] and len(fake.calls) == grouped + 50


def test_a_reply_that_splits_resets_the_count_and_provider_errors_do_not_count():
    clock = VirtualClock()
    n = {"grouped": 0}

    def reply(call):
        if not call.system:
            return f"answer: {call.prompt}"
        n["grouped"] += 1
        return grouped_reply(call) if n["grouped"] % 2 == 0 else "[broken"
    fake = Fake(clock, reply=reply, fail=lambda call: ServerError("x") if call.system and n["grouped"] > 6 else None)
    bp = BatchProcessor(fake, config=BatchConfig(batch_size=5, group_give_up=2))
    for t in tasks(60):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert all(r.ok for r in results) and bp.stats.grouping_stopped == []
    assert bp.stats.grouped_calls == 12        # every batch of 5 tried grouping


# --- take-over: an urgent call answers queued work ----------------------------------------------
def _answer(clock, content="the urgent call's answer", fail=False):
    async def answer():
        await clock.asleep(2.0)
        if fail:
            raise ServerError("the urgent call failed")
        m = CATALOG.model("claude-haiku-4-5")
        return Result(m.provider, m.id, m.kind, content, Usage(input_tokens=10, output_tokens=10),
                      0.002, 2.0, 2.0, clock.now() - 2.0)
    return answer()


def test_a_queued_task_taken_over_gets_the_other_calls_answer_and_makes_no_call():
    clock = VirtualClock()
    fake = Fake(clock, latency=300.0)
    bp = BatchProcessor(fake, clock=clock, config=BatchConfig(max_wait_s=30.0))

    async def main():
        import asyncio
        waiting = asyncio.ensure_future(bp.submit(Task("low", "text", "a tagline", "low")))
        await clock.asleep(1.0)
        assert bp.take_over("low", _answer(clock)) is True
        again = _answer(clock)
        assert bp.take_over("low", again) is False             # gone from the queue already
        again.close()
        return await waiting
    r = clock.run(main())
    assert (r.id, r.path, r.ok, r.cost_usd) == ("low", "taken_over", True, 0.0)
    assert r.result.content == "the urgent call's answer"
    assert r.finished_at == pytest.approx(3.0)                 # 1 s queued, then the 2 s call
    assert fake.calls == [] and bp.stats.taken_over == 1 and bp.stats.provider_calls == 0
    assert bp.stats.submitted == bp.stats.succeeded + bp.stats.failed == 1


def test_a_task_that_left_the_queue_is_not_taken_over():
    clock = VirtualClock()
    fake = Fake(clock, latency=300.0)
    bp = BatchProcessor(fake, clock=clock, config=BatchConfig(max_wait_s=0.5))

    async def main():
        import asyncio
        waiting = asyncio.ensure_future(bp.submit(Task("low", "text", "a tagline", "low")))
        await clock.asleep(1.0)                               # sent at 0.5 s
        answer = _answer(clock)
        assert bp.take_over("low", answer) is False
        answer.close()
        return await waiting
    r = clock.run(main())
    assert r.path == "batch_api" and len(fake.calls) == 1 and bp.stats.taken_over == 0


def test_when_the_taking_call_fails_the_task_goes_back_to_its_place_and_makes_its_own_call():
    clock = VirtualClock()
    fake = Fake(clock, latency=5.0)
    bp = BatchProcessor(fake, clock=clock, config=BatchConfig(max_wait_s=30.0, group_text=False))

    async def main():
        import asyncio
        first = asyncio.ensure_future(bp.submit(Task("a", "text", "first", "medium")))
        await clock.asleep(0.5)
        second = asyncio.ensure_future(bp.submit(Task("b", "text", "second", "medium")))
        await clock.asleep(0.5)
        assert bp.take_over("a", _answer(clock, fail=True))
        assert bp.pending() == 1                               # only "b" waits meanwhile
        await clock.asleep(2.5)                                # the urgent call failed at 3.0 s
        assert [t.id for t, _ in bp.queue] == ["a", "b"]       # "a" kept its place: first
        return await asyncio.gather(first, second)
    a, b = clock.run(main())
    assert (a.path, a.ok, a.result.content) == ("single", True, "answer: first")
    assert a.enqueued_at == 0.0 and b.ok
    assert bp.stats.taken_over == 0 and len(fake.calls) == 2
    assert bp.stats.submitted == bp.stats.succeeded == 2


def test_message_batches_work_waits_its_own_window_while_the_rest_goes_at_max_wait():
    clock = VirtualClock()
    fake = Fake(clock, latency=1.0)
    bp = BatchProcessor(fake, clock=clock, config=BatchConfig(max_wait_s=0.5, batch_api_wait_s=30.0,
                                                              group_text=False))

    async def main():
        import asyncio
        low = asyncio.ensure_future(bp.submit(Task("low", "text", "a tagline", "low")))
        await clock.asleep(0.1)
        medium = asyncio.ensure_future(bp.submit(Task("med", "text", "a title", "medium")))
        return await asyncio.gather(low, medium)
    low, medium = clock.run(main())
    assert medium.started_at == pytest.approx(0.6)     # its 0.5 s, the low task stayed behind
    assert low.path == "batch_api" and low.started_at == pytest.approx(30.0)
    with pytest.raises(ConfigError, match="batch_api_wait_s"):
        BatchConfig(batch_api_wait_s=-1)


def test_a_full_queue_sends_message_batches_work_before_its_window_ends():
    clock = VirtualClock()
    bp = BatchProcessor(Fake(clock, latency=1.0), clock=clock,
                        config=BatchConfig(batch_size=3, batch_api_wait_s=30.0))

    async def main():
        import asyncio
        return await asyncio.gather(*(bp.submit(t) for t in tasks(3, priority="low")))
    results = clock.run(main())
    assert [r.path for r in results] == ["batch_api"] * 3
    assert max(r.started_at for r in results) == pytest.approx(0.0)


def test_a_message_batches_job_releases_its_results_together_when_its_last_request_ends():
    """The API serves a batch's results once the job has ended: every task hears at the
    slowest request's end, errors included, and each batch of the queue is one job."""
    clock = VirtualClock()
    latency = {"prompt t0": 600.0, "prompt t1": 1800.0, "prompt t2": 900.0}
    fake = Fake(clock, latency=lambda call: latency[call.prompt],
                fail=lambda call: ServerError("boom") if call.prompt == "prompt t3" else None)
    bp = BatchProcessor(fake, clock=clock, config=BatchConfig(batch_size=4, group_text=False))
    for t in tasks(4, priority="low"):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert [r.path for r in results] == ["batch_api"] * 4
    assert [r.finished_at for r in results] == pytest.approx([1800.0] * 4)
    assert [r.ok for r in results] == [True, True, True, False]
    assert [r.result.content for r in results[:3]] == [f"answer: prompt t{i}" for i in range(3)]
    assert (bp.stats.batch_api_jobs, bp.stats.batch_api_calls, bp.stats.failed) == (1, 4, 1)


def test_a_cancelled_request_of_a_message_batches_job_costs_no_other_task_its_answer():
    import asyncio
    clock = VirtualClock()

    class Cancelling(Fake):
        async def asend(self, call):
            if call.prompt == "prompt t0":
                raise asyncio.CancelledError()
            return await super().asend(call)
    bp = BatchProcessor(Cancelling(clock, latency=60.0), clock=clock,
                        config=BatchConfig(batch_size=3, group_text=False))
    for t in tasks(3, priority="low"):
        bp.add_task(t)
    results = clock.run(bp.process_all())
    assert [(r.path, r.ok) for r in results] == [("batch_api", False), ("batch_api", True),
                                                 ("batch_api", True)]
    assert [r.result.content for r in results[1:]] == ["answer: prompt t1", "answer: prompt t2"]
    assert (bp.stats.succeeded, bp.stats.failed) == (2, 1)
