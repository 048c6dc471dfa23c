"""max_tokens caps against the simulated Claude: generated requests are rarely cut short.

The generator's ``max_tokens`` is the cap an app sets, with headroom over the answer it expects
(``cfopt.workload._vocabulary``); the simulated Claude decides the answer's length
(``cfopt.providers.lengths``). Both sides change independently, so this test ties them: replay
generated text and analysis requests on opus, the longest writer (``length_scale`` 1.1), each
with its own ``max_tokens``, and count the answers that stop with ``stop_reason="max_tokens"``.
A truncated answer may not be cached (issue 4), so a workload full of them would make its
hit-rate ceiling unreachable.

Documented bound: under ``MAX_TRUNCATED_SHARE`` (1%) of answers in all, and under
``MAX_TASK_SHARE`` (3%) for any task. Measured on the shipped hour (Providers(seed=0)): 0 of
3,743 on haiku, sonnet and opus; free-length tasks (press releases, legal and health copy, cap
1024) and "step-by-step" help articles (cap 2048) are the only ones that can ever be cut, about
1 in 700 on opus.
"""
from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from cfopt.providers import Call, Providers
from cfopt.workload import generate, load
from cfopt.workload._generate import CAP_HEADROOM
from cfopt.workload._vocabulary import TASKS

HOUR = Path(__file__).resolve().parents[1] / "datasets" / "contentflow_1h.jsonl"
MAX_TRUNCATED_SHARE = 0.01
MAX_TASK_SHARE = 0.03
MAX_CAP_PER_MEDIAN_ANSWER = 12  # a cap is headroom, not a blank cheque (budgets reserve it)


def replay_text(requests, model: str, seed: int = 0):
    """Send every text/analysis request on ``model`` at its time; (request, Result) pairs."""
    providers = Providers(seed=seed)
    out = []
    for r in requests:
        if r.type not in ("text", "analysis"):
            continue
        providers.clock.advance_to(max(providers.clock.now(), r.t))
        out.append((r, providers.send(Call(model, r.prompt, max_tokens=r.max_tokens))))
    return out


def truncated_shares(pairs) -> tuple[float, dict[str, float]]:
    cut, total = Counter(), Counter()
    for r, result in pairs:
        total[r.task] += 1
        cut[r.task] += result.stop_reason == "max_tokens"
    return sum(cut.values()) / sum(total.values()), {t: cut[t] / total[t] for t in total}


@pytest.mark.parametrize("source", ["shipped hour", "seed 1", "seed 2, provider seed 1"])
def test_few_answers_hit_max_tokens_even_on_opus(source):
    if source == "shipped hour":
        pairs = replay_text(load(HOUR), "opus")
    elif source == "seed 1":
        pairs = replay_text(generate(5000, seed=1), "opus")
    else:
        pairs = replay_text(generate(5000, seed=2), "opus", seed=1)
    assert len(pairs) > 3000
    share, by_task = truncated_shares(pairs)
    assert share < MAX_TRUNCATED_SHARE, (
        f"{share:.2%} of opus answers stop at max_tokens (bound {MAX_TRUNCATED_SHARE:.0%}); "
        f"by task: { {t: f'{s:.1%}' for t, s in by_task.items() if s} }")
    worst = max(by_task, key=by_task.get)
    assert by_task[worst] < MAX_TASK_SHARE, f"{worst}: {by_task[worst]:.1%} of answers cut short"


def test_caps_are_headroom_not_a_blank_cheque():
    """Every task's median answer (on opus) fills at least 1/12 of its cap (over 5,000 requests:
    a rare task's median over a few dozen answers moves with the prompts' wording)."""
    used = defaultdict(list)
    for r, result in replay_text(generate(5000, seed=3), "opus"):
        used[r.task].append(result.usage.output_tokens / r.max_tokens)
    assert len(used) == sum(t.type in ("text", "analysis") for t in TASKS)
    for task, shares in used.items():
        assert statistics.median(shares) >= 1 / MAX_CAP_PER_MEDIAN_ANSWER, (
            f"{task}: the median answer uses {statistics.median(shares):.1%} of max_tokens")


def test_word_count_caps_leave_the_documented_headroom():
    """An N-word task gets N x 1.34 x CAP_HEADROOM tokens, in whole hundreds."""
    per_word = {t.name: t.per_word for t in TASKS if t.per_word}
    seen = set()
    for r in generate(3000, seed=4):
        if r.task in per_word:
            # "a 300-word post", or reordered: "a post ... in 300 words" (typos aside)
            words = int(re.search(r"(\d+)(?:-word| w\w+)", r.prompt).group(1))
            expected = math.ceil(words * per_word[r.task] * CAP_HEADROOM / 100) * 100
            assert r.max_tokens == expected, r
            assert r.max_tokens >= 1.5 * words * 1.33  # a 500-word post gets 1,000, not 670
            seen.add(r.task)
    assert seen == set(per_word)


def test_every_text_task_has_a_cap_and_media_tasks_none():
    for task in TASKS:
        text = task.type in ("text", "analysis")
        assert bool(task.max_tokens or task.per_word) == text, task.name
