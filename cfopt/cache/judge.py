"""The verification signal the bounded layer pays for: a judge that says whether a cached answer
serves a new request.

A real deployment asks a small model: "here is a request, here is an answer written for a
similar one; does it answer this request too?" The simulation sends exactly such a call through
the simulated providers, so it is priced and timed like any small model call and shows in the
cost, and takes the verdict from the ground truth the simulation knows, right with probability
``JUDGE_ACCURACY`` and wrong otherwise (seeded per pair: the same pair gets the same verdict).

``JUDGE_ACCURACY`` = 0.85: GPT-4 as a judge agreed with human experts on 85% of MT-Bench
pairwise votes, ties left out (human experts among themselves: 81%). Zheng et al., "Judging
LLM-as-a-Judge with MT-Bench and Chatbot Arena", arXiv:2306.05685, 2023-06-09 (NeurIPS 2023
Datasets and Benchmarks). A judge comparing two answers is a different task, and a smaller
judge model is no GPT-4: the figure is an assumption borrowed from the nearest public
measurement, not a measurement of this judge.

The ground truth is handed in as ``truth(new_prompt, cached_prompt) -> bool``: the simulation
(the world) knows what each prompt means; the cache only ever sees verdicts.

>>> from cfopt.providers import Providers
>>> judge = SimulatedJudge(Providers(seed=0), truth=lambda a, b: a.lower() == b.lower(), seed=1)
>>> v = judge.judge("Write a haiku about tea", "write a haiku about tea", "Steam curls...")
>>> v.cost_usd > 0, v.latency_s > 0
(True, True)
>>> sum(judge.verdict(f"request {i}", f"Request {i}") for i in range(2000)) / 2000   # right 85%
0.8455
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..errors import ConfigError
from ..providers.base import Call, Result

__all__ = ["Judge", "SimulatedJudge", "Verdict", "JUDGE_ACCURACY", "JUDGE_MODEL", "JUDGE_SOURCE"]

JUDGE_ACCURACY = 0.85
JUDGE_SOURCE = ("Zheng et al., Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena, "
                "arXiv:2306.05685 (2023-06-09): GPT-4 agrees with human experts on 85% of "
                "non-tie votes")
JUDGE_MODEL = "haiku"         # a small model: verification should cost a fraction of a call
JUDGE_MAX_TOKENS = 8          # "yes" or "no", and room for a word more
_INSTRUCTION = ("You check a cache. Does the cached answer below serve the new request exactly "
                "as well as it served the request it was written for? Reply yes or no.")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one verification found, and what it cost."""

    same: bool             # the judge says the cached answer serves the new request
    cost_usd: float
    latency_s: float


class Judge(Protocol):
    """Anything that verifies a candidate hit, in a blocking and an asyncio form."""

    asynchronous: bool   # verify in the background on the running event loop

    def judge(self, new_prompt: str, cached_prompt: str, cached_answer: str) -> Verdict: ...
    async def ajudge(self, new_prompt: str, cached_prompt: str, cached_answer: str) -> Verdict: ...
    def audit(self, call: Call, cached_prompt: str, cached_answer: str) -> Verdict: ...
    async def aaudit(self, call: Call, cached_prompt: str, cached_answer: str) -> Verdict: ...


class SimulatedJudge:
    """A small model asked to compare, through ``sender``; its verdict from ``truth``, noisy.

    ``sender`` is what the judge's call goes through: ``Providers`` (blocking ``send``) or any
    ``cfopt.providers.base.Sender`` (``asend``; the pipeline passes its own, so the call is
    counted and paid like every other). ``asynchronous=True`` tells a cache to verify in the
    background on the running event loop (``CacheManager.settle`` waits), as vCache does.
    """

    def __init__(self, sender: Any, truth: Callable[[str, str], bool], *,
                 accuracy: float = JUDGE_ACCURACY, model: str = JUDGE_MODEL, seed: int = 0,
                 asynchronous: bool = False) -> None:
        if isinstance(accuracy, bool) or not 0.5 < accuracy <= 1.0:
            raise ConfigError(f"a judge's accuracy must lie in (0.5, 1], got {accuracy!r}")
        if not callable(truth):
            raise ConfigError("truth must be a callable (new_prompt, cached_prompt) -> bool")
        self.sender, self.truth, self.accuracy, self.model, self.seed = sender, truth, accuracy, model, seed
        self.asynchronous = asynchronous
        self.calls = 0
        self.cost_usd = 0.0
        self.seconds = 0.0

    def __repr__(self) -> str:
        return (f"SimulatedJudge(model={self.model!r}, accuracy={self.accuracy}, seed={self.seed}, "
                f"calls={self.calls}, cost_usd={self.cost_usd:.4f})")

    def call_for(self, new_prompt: str, cached_prompt: str, cached_answer: str) -> Call:
        """Return the call a real judge would get: both requests and the cached answer."""
        prompt = (f"{_INSTRUCTION}\n\nNew request:\n{new_prompt}\n\nRequest the answer was written "
                  f"for:\n{cached_prompt}\n\nCached answer:\n{cached_answer}")
        return Call(self.model, prompt, max_tokens=JUDGE_MAX_TOKENS)

    def verdict(self, new_prompt: str, cached_prompt: str) -> bool:
        """Return the judge's verdict: the truth with probability ``accuracy``, else its opposite."""
        right = random.Random(f"cfopt-judge:{self.seed}:{new_prompt}\x00{cached_prompt}").random() < self.accuracy
        same = bool(self.truth(new_prompt, cached_prompt))
        return same if right else not same

    def _count(self, result: Result, new_prompt: str, cached_prompt: str) -> Verdict:
        self.calls += 1
        self.cost_usd += result.cost_usd
        self.seconds += result.latency_s
        return Verdict(self.verdict(new_prompt, cached_prompt), result.cost_usd, result.latency_s)

    def judge(self, new_prompt: str, cached_prompt: str, cached_answer: str) -> Verdict:
        """Ask, waiting for the answer (on the sender's clock)."""
        result = self.sender.send(self.call_for(new_prompt, cached_prompt, cached_answer))
        return self._count(result, new_prompt, cached_prompt)

    async def ajudge(self, new_prompt: str, cached_prompt: str, cached_answer: str) -> Verdict:
        """Ask without blocking; concurrent verifications overlap on the clock."""
        result = await self.sender.asend(self.call_for(new_prompt, cached_prompt, cached_answer))
        return self._count(result, new_prompt, cached_prompt)

    def audit(self, call: Call, cached_prompt: str, cached_answer: str) -> Verdict:
        """Verify a hit already served: get a fresh answer to ``call`` (paid), then judge."""
        fresh = self.sender.send(call)
        v = self.judge(call.prompt, cached_prompt, cached_answer)
        self.cost_usd += fresh.cost_usd
        return Verdict(v.same, v.cost_usd + fresh.cost_usd, v.latency_s + fresh.latency_s)

    async def aaudit(self, call: Call, cached_prompt: str, cached_answer: str) -> Verdict:
        """The asyncio form of ``audit``."""
        fresh = await self.sender.asend(call)
        v = await self.ajudge(call.prompt, cached_prompt, cached_answer)
        self.cost_usd += fresh.cost_usd
        return Verdict(v.same, v.cost_usd + fresh.cost_usd, v.latency_s + fresh.latency_s)
