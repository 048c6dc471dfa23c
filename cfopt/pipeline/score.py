"""Score a replay against the ground truth: quality kept, false hits, and the limits.

The only part of the pipeline that reads ``intent``, and it reads it after the replay is over.

- ``quality_kept``: the quality of every text, analysis and image answer served, as a share of
  what the premium model of its type would have given (``cfopt.cost.quality`` scores per complexity;
  ``CostOptimizer.premium_for`` says which types are scored and against what). An error or an
  answer of another intent (a false hit) keeps nothing. Video, audio and photo are not scored:
  each has one model, so routing cannot lower their quality.
- ``false_hits``: requests answered from a cache or a shared call whose answer was made for a
  request of another intent. None when the workload carries no intent labels.
- ``cost_floor``: what the workload would cost if every distinct intent were made once (its
  first request), at the cheapest adequate model (``CostOptimizer.select_optimal_model``), with
  the cheaper of its prompt and its compressed prompt, through the Message Batches API when the
  request allows it (low priority text), on the same simulated providers with no fault. A
  pipeline pays less only by serving some intent another intent's answer (a false hit).
- the hit-rate ceiling: 1 - distinct intents / requests (``cfopt.workload.workload_stats``).

>>> from cfopt.workload import Request
>>> reqs = [Request(t=0.0, type="photo", prompt="red bicycle", intent="a"),
...         Request(t=1.0, type="photo", prompt="Red bicycle!", intent="a")]
>>> limits(reqs).hit_rate_ceiling
0.5
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..cost.compress import compress_prompt
from ..cost.optimizer import CostOptimizer
from ..errors import ProviderError
from .core import TEXT_TYPES, RunResult
from ..providers import Call, Providers
from ..workload import Request, workload_stats
from ..pricing import DEFAULT_PROFILE

__all__ = ["Limits", "limits", "false_hits", "quality_kept", "first_of_intent"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What no pipeline can beat on a workload."""

    hit_rate_ceiling: float | None   # None without intent labels
    exact_repeat_ceiling: float
    cost_floor_usd: float
    floor_calls: int                 # distinct intents: the fewest provider calls possible


def _intent_of(r: Request, i: int) -> str:
    return r.intent if r.intent is not None else f"\x00unlabelled:{i}"  # its own intent


def limits(requests: Sequence[Request], *, seed: int = 0, profile: str = DEFAULT_PROFILE,
           optimizer: CostOptimizer | None = None, speeds: str | None = None) -> Limits:
    """The hit-rate ceilings and the cost floor of ``requests``."""
    stats = workload_stats(requests)
    providers = Providers(seed=seed, profile=profile, speeds=speeds)
    optimizer = optimizer or CostOptimizer(providers.catalog)
    seen: set[str] = set()
    total, calls = 0.0, 0
    for i, r in enumerate(requests):
        intent = _intent_of(r, i)
        if intent in seen:
            continue
        seen.add(intent)
        providers.clock.advance_to(r.t)  # photo searches: the free hourly allowance counts
        model = optimizer.select_optimal_model(r).model
        text = r.type in TEXT_TYPES
        # A reworded prompt gets another answer length: the cheaper wording bounds both.
        prompts = {r.prompt, compress_prompt(r.prompt).text} if text else {r.prompt}
        provider = providers.for_model(model)
        calls += 1
        try:
            total += min(provider.simulate(Call(model, p, max_tokens=r.max_tokens,
                                                batch=text and r.priority == "low")).cost_usd
                         for p in sorted(prompts))
        except ProviderError:  # refused (a hard hourly limit): a refused call costs nothing
            continue
    return Limits(stats.hit_rate_ceiling, stats.exact_repeat_ceiling, round(total, 9), calls)


def first_of_intent(requests: Sequence[Request]) -> list[int]:
    """Return the indices of the first request of each intent: what no cache can answer."""
    seen: set[str] = set()
    out = []
    for i, r in enumerate(requests):
        intent = _intent_of(r, i)
        if intent not in seen:
            seen.add(intent)
            out.append(i)
    return out


def _served_intent(requests: Sequence[Request], run: RunResult, index: int) -> str | None:
    o = run.outcomes[index]
    origin = run.origins.get(o.origin)
    return None if origin is None else _intent_of(requests[origin], origin)


def false_hits(requests: Sequence[Request], run: RunResult) -> int | None:
    """Count answers served from another request's call that belonged to another intent."""
    if not any(r.intent is not None for r in requests):
        return None
    return sum(1 for o in run.outcomes if o.from_cache
               and _served_intent(requests, run, o.index) != _intent_of(requests[o.index], o.index))


def quality_kept(requests: Sequence[Request], run: RunResult,
                 optimizer: CostOptimizer | None = None) -> float:
    """The share of the premium models' quality the served text, analysis and image answers keep."""
    optimizer = optimizer or CostOptimizer()
    q = optimizer.quality
    labelled = any(r.intent is not None for r in requests)
    got = best = 0.0
    levels: dict[tuple, str] = {}
    for o in run.outcomes:
        r = requests[o.index]
        premium = optimizer.premium_for(r.type)
        if premium is None:
            continue
        key = (r.type, r.task, r.prompt, r.max_tokens, r.quality)
        level = levels.get(key) or levels.setdefault(key, optimizer.analyze_task(r).complexity)
        best += q.score(premium, level)
        wrong = labelled and o.from_cache and (
            _served_intent(requests, run, o.index) != _intent_of(r, o.index))
        if o.error is None and not wrong and o.model is not None:
            got += q.score(o.model, level)
    return got / best if best else 1.0
