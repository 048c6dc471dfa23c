"""One call for many prompts: the grouped-request format and its careful split.

A grouped call sends several independent prompts as a JSON array and asks for a JSON array of
answers, one per prompt, in order. JSON on both sides keeps a prompt that contains a delimiter
("---", "1.", a newline) from breaking the split. Models do not always comply: the reply may
come fenced in a code block, with a sentence around it, with a missing answer or as bad JSON.
``split_answers`` takes what can be trusted and returns None for the rest, so the caller can
fall back to one call per prompt (``cfopt.batching.processor``, ``cfopt.latency.coalesce``).

The request format itself (``GROUP_SYSTEM``, ``group_prompt``) lives in
``cfopt.providers.grouped``, shared with the simulated Claude, which recognises a grouped call
and answers it with a JSON array (and, like a real model, now and then does not comply).

>>> system, prompt = group_prompt(["Name a cat.", "Name a dog."])
>>> prompt
'["Name a cat.", "Name a dog."]'
>>> split_answers('```json\\n["a", "b"]\\n```', 2)
['a', 'b']
>>> split_answers('["a", "b"]', 3) is None      # wrong count: fall back to single calls
True
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Sequence

from ..providers.base import Result
from ..providers.grouped import GROUP_SYSTEM, group_prompt

__all__ = ["GROUP_SYSTEM", "group_prompt", "split_answers", "answer_pieces"]

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def split_answers(content: str, n: int) -> list[str] | None:
    """Return the ``n`` answers of a grouped reply, or None when it does not split cleanly."""
    text = _FENCE.sub("", content.strip())
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        return None
    try:
        answers = json.loads(text[start:end + 1])
    except ValueError:
        return None
    if (not isinstance(answers, list) or len(answers) != n
            or not all(isinstance(a, str) and a.strip() for a in answers)):
        return None
    return answers


def answer_pieces(result: Result, answers: Sequence[str]) -> list[Result]:
    """One ``Result`` per answer of a grouped reply: its answer, its share of the usage
    (``Usage.split``) and of the cost, and an id naming the reply and the piece ("msg_...#2"),
    so whoever serves the answer later can tell whose it is, and a budget counts the call once
    over all its pieces."""
    n = len(answers)
    share = result.cost_usd / n
    return [replace(result, content=answer, usage=usage, cost_usd=share,
                    request_id=f"{result.request_id}#{k}" if result.request_id else "")
            for k, (answer, usage) in enumerate(zip(answers, result.usage.split(n)), 1)]
