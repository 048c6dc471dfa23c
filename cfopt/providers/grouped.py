"""The grouped-request wire format: N prompts in one call, one JSON array of N answers back.

Both ends of a grouped call share this module: ``cfopt.batching.grouping`` (and through it
``cfopt.batching.processor`` and ``cfopt.latency.coalesce``) builds grouped calls and splits their replies; the
simulated Claude (``cfopt.providers.claude``) recognises a grouped call and answers in kind. It
imports nothing from cfopt, so the providers below and the batching above can both use it.

A grouped call is the system prompt ``GROUP_SYSTEM`` (with the count filled in) and a user
message that is a JSON array of exactly that many non-empty strings. Anything else is an
ordinary prompt, even a JSON array sent without that system prompt.

>>> system, prompt = group_prompt(["Name a cat.", "Name a dog."])
>>> prompt
'["Name a cat.", "Name a dog."]'
>>> read_group(system, prompt)
['Name a cat.', 'Name a dog.']
>>> read_group("You are a terse copywriter.", prompt) is None   # no grouped system prompt
True
>>> read_group(GROUP_SYSTEM.format(n=3), prompt) is None        # the counts disagree
True
>>> answer_array(["Tom.", "Rex."])
'["Tom.", "Rex."]'
"""
from __future__ import annotations

import json
import re

__all__ = ["GROUP_SYSTEM", "group_prompt", "read_group", "answer_array"]

GROUP_SYSTEM = ("You answer several independent requests in one reply. The user message is a JSON "
                "array of {n} requests. Reply with only a JSON array of exactly {n} strings, the "
                "answer to each request in the same order, and no other text.")
# The template with each {n} as a captured number: recognising it needs no string formatting.
_SYSTEM_RE = re.compile(r"(\d+)".join(re.escape(part) for part in GROUP_SYSTEM.split("{n}")))


def group_prompt(prompts: list[str]) -> tuple[str, str]:
    """Return the (system, prompt) that asks for one answer per prompt as a JSON array."""
    return GROUP_SYSTEM.format(n=len(prompts)), json.dumps(prompts, ensure_ascii=False)


def read_group(system: str | None, prompt: str) -> list[str] | None:
    """The prompts of a grouped request, in order; None when (system, prompt) is not one."""
    match = _SYSTEM_RE.fullmatch(system.strip()) if system else None
    if match is None or len(set(match.groups())) != 1:
        return None
    n = int(match.group(1))
    try:
        prompts = json.loads(prompt)
    except ValueError:
        return None
    if (not isinstance(prompts, list) or len(prompts) != n or n < 1
            or not all(isinstance(p, str) and p.strip() for p in prompts)):
        return None
    return prompts


def answer_array(answers: list[str]) -> str:
    """The reply that complies with a grouped request: the answers as one JSON array."""
    return json.dumps(answers, ensure_ascii=False)
