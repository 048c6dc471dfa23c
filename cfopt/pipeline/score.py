"""Score a replay against the ground truth: quality kept, false hits, and the limits.

The only part of the pipeline that reads ``intent``, and it reads it after the replay is over.

- ``quality_kept``: the quality of every text, analysis and image answer served, as a share of
  what the premium model of its type would have given (``cfopt.cost.quality`` scores per complexity;
  ``CostOptimizer.premium_for`` says which types are scored and against what). An error or an
  answer of another intent (a false hit) keeps nothing. Video, audio and photo are not scored:
  each has one model, so routing cannot lower their quality.
- ``false_hits``: requests answered from a cache or a shared call whose answer was made for a
  request of another intent. None when the workload carries no intent labels.
- ``limits``: the hit-rate ceiling (1 - distinct intents / requests, ``workload_stats``), two
  cost floors (the router's, and a relaxation that any router keeping the quality bar is above)
  and a latency floor; see ``limits`` for how each is computed.

>>> from cfopt.workload import Request
>>> reqs = [Request(t=0.0, type="photo", prompt="red bicycle", intent="a"),
...         Request(t=1.0, type="photo", prompt="Red bicycle!", intent="a")]
>>> limits(reqs).hit_rate_ceiling
0.5
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Sequence


from ..cost.compress import compress_prompt
from ..cost.optimizer import CostOptimizer
from ..errors import ProviderError
from ..latency.lazy import DEFERRED_KINDS, LARGE_IMAGE_MP
from ..latency.tie import TIE_COPIES
from ..monitoring.series import percentile
from ..pricing import DEFAULT_PROFILE
from ..providers import Call, Providers, Result
from ..workload import TEXT_TYPES, Request, workload_stats
from .network import LOOKUP_S, NETWORK_RTT_S
from .types import STREAMED_TYPES, RunResult

QUALITY_BAR = 0.95   # "unchanged quality": the share of the premium models' quality to keep

__all__ = ["Limits", "limits", "false_hits", "quality_kept", "first_of_intent", "QUALITY_BAR", "cheapest_at_quality"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What no pipeline can beat on a workload, each figure computed without the pipeline."""

    hit_rate_ceiling: float | None   # None without intent labels
    exact_repeat_ceiling: float
    cost_floor_usd: float            # the relaxation: cheapest models at mean quality >= the bar
    router_floor_usd: float          # each distinct intent once, on the router's model
    floor_calls: int                 # distinct intents: the fewest provider calls possible
    latency_floor_p95_s: float       # p95 when misses are as fast as an adequate model allows
    latency_floor_one_call_p95_s: float   # the same with one call each (no tied copies)


def _intent_of(r: Request, i: int) -> str:
    return r.intent if r.intent is not None else f"\x00unlabelled:{i}"  # its own intent


def limits(requests: Sequence[Request], *, seed: int = 0, profile: str = DEFAULT_PROFILE,
           optimizer: CostOptimizer | None = None, quality_bar: float = QUALITY_BAR,
           speeds: str | None = None) -> Limits:
    """The hit-rate ceilings, both cost floors and the latency floor of ``requests``.

    - ``router_floor_usd``: every distinct intent made once (its first request), on the model
      ``CostOptimizer`` routes it to, with the cheaper of its prompt and its compressed prompt,
      through Message Batches when the request allows it (low-priority text), on the same
      simulated providers with no fault. A pipeline that routes like the optimizer pays less
      only by serving some intent another intent's answer (a false hit).
    - ``cost_floor_usd``: the same distinct intents with any assignment of models that keeps
      the mean quality kept (over all requests, as ``quality_kept`` weighs them) at
      ``quality_bar``: the linear-programming relaxation of that choice (a model may be taken
      fractionally), so no router that keeps the bar can pay less. Each alternative model is
      priced on the tokens the routed call used. It is at most the router floor whenever the
      router's own choices keep the bar.
    - ``latency_floor_p95_s``: every first request of an intent at the first useful content of
      the fastest adequate model at its median speed (a handle for deferrable work: media,
      low-priority text), every repeat at a memory-cache read; the 95th percentile of that.
      Streamed text may go as ``TIE_COPIES`` tied copies (``cfopt.latency.tie``): its first
      token counts at the median of the earliest of that many draws (which assumes the copies'
      speeds independent). ``latency_floor_one_call_p95_s``: the same with one call each.
    """
    stats = workload_stats(requests)
    providers = Providers(seed=seed, profile=profile, speeds=speeds)
    catalog = providers.catalog
    optimizer = optimizer or CostOptimizer(catalog)
    counts: dict[str, int] = {}
    for i, r in enumerate(requests):
        counts[_intent_of(r, i)] = counts.get(_intent_of(r, i), 0) + 1
    seen: set[str] = set()
    router_total, calls = 0.0, 0
    items: list[list[tuple[float, float]]] = []   # per intent: (cost, weighted quality) options
    fixed, need, best = 0.0, 0.0, 0.0
    latency = [LOOKUP_S["memory"]] * len(requests)
    one_call = list(latency)
    for i, r in enumerate(requests):
        intent = _intent_of(r, i)
        if intent in seen:
            continue
        seen.add(intent)
        providers.clock.advance_to(r.t)  # photo searches: the free hourly allowance counts
        analysis = optimizer.analyze_task(r)
        model = optimizer.select_optimal_model(r).model
        text = r.type in TEXT_TYPES
        # A reworded prompt gets another answer length: the cheaper wording bounds both.
        prompts = {r.prompt, compress_prompt(r.prompt).text} if text else {r.prompt}
        provider = providers.for_model(model)
        calls += 1
        try:
            result = min((provider.simulate(Call(model, p, max_tokens=r.max_tokens,
                                                 batch=text and r.priority == "low"))
                          for p in sorted(prompts)), key=lambda res: res.cost_usd)
        except ProviderError:  # refused (a hard hourly limit): costs nothing, answers nothing
            latency[i] = one_call[i] = math.nan
            continue
        router_total += result.cost_usd
        latency[i] = _fastest_first_content(r, result, optimizer, catalog)
        one_call[i] = _fastest_first_content(r, result, optimizer, catalog, copies=1)
        premium = optimizer.premium_for(r.type)
        if premium is None:
            fixed += result.cost_usd
            continue
        n, level = counts[intent], analysis.complexity
        best += n * optimizer.quality.score(premium, level)
        items.append([(catalog.cost(m, result.usage), n * optimizer.quality.score(m, level))
                      for m in optimizer.candidates(r.type)])
    need = quality_bar * best
    return Limits(stats.hit_rate_ceiling, stats.exact_repeat_ceiling,
                  round(fixed + cheapest_at_quality(items, need), 9), round(router_total, 9),
                  calls, percentile([x for x in latency if not math.isnan(x)], 95),
                  percentile([x for x in one_call if not math.isnan(x)], 95))


def cheapest_at_quality(items: list[list[tuple[float, float]]], need: float) -> float:
    """The least total cost that picks (fractionally) one option per item with quality >= need.

    The LP relaxation of the multiple-choice knapsack: start each item at its cheapest option,
    then buy quality along each item's lower convex hull, the best quality per dollar first.
    """
    total, quality, steps = 0.0, 0.0, []
    for options in items:
        hull: list[tuple[float, float]] = []
        for c, q in sorted(options, key=lambda o: (o[0], -o[1])):
            if hull and q <= hull[-1][1]:
                continue   # costs more, gives no more
            while len(hull) >= 2 and _cross(hull[-2], hull[-1], (c, q)) >= 0:
                hull.pop()   # not on the lower-right hull: never worth buying
            hull.append((c, q))
        total += hull[0][0]
        quality += hull[0][1]
        steps += [(b[0] - a[0], b[1] - a[1]) for a, b in zip(hull, hull[1:])]
    steps.sort(key=lambda s: s[1] / s[0] if s[0] > 0 else math.inf, reverse=True)
    for dc, dq in steps:
        if quality >= need - 1e-12:
            break
        take = min(1.0, (need - quality) / dq)
        total += take * dc
        quality += take * dq
    return total


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _fastest_first_content(r: Request, result: Result, optimizer: CostOptimizer,
                           catalog: Any, *, copies: int = TIE_COPIES) -> float:
    """The first useful content of ``r`` on its fastest adequate model, at median speeds, with
    streamed text sent as ``copies`` tied copies."""
    info = catalog.model(result.model)
    if info.kind in DEFERRED_KINDS or (r.type in TEXT_TYPES and r.priority == "low") or (
            info.kind == "image" and result.usage.megapixels >= LARGE_IMAGE_MP):
        return NETWORK_RTT_S   # a handle: the work goes on behind it
    models = optimizer.adequate_models(r) if r.type in ("text", "analysis", "image") else [info.id]
    out = result.usage.output_tokens
    return min(_median_first_content_s(catalog.model(m), r.type, out, result.usage.megapixels, copies)
               for m in models)


def _median_first_content_s(info: Any, kind: str, output_tokens: int, megapixels: float,
                            copies: int) -> float:
    if info.kind == "text":
        ttft = float(info["ttft_s"])
        if kind in STREAMED_TYPES:   # the earliest of the tied copies' log-normal draws
            return ttft * math.exp(float(info["jitter"]) * _earliest_of(copies))
        return ttft + output_tokens / float(info["tokens_per_s"])
    if info.kind == "image":
        return float(info["queue_s"]) + float(info["gen_s_per_mp"]) * max(megapixels, 1)
    if info.kind == "photo":
        return float(info["latency_s"])
    return NETWORK_RTT_S


def _earliest_of(copies: int) -> float:
    """The median of the least of ``copies`` independent standard normal draws (0 for one):
    P(min <= z) = 1/2."""
    return NormalDist().inv_cdf(1 - 0.5 ** (1 / copies)) if copies > 1 else 0.0


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
    return sum(1 for o in run.outcomes if o.without_call
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
        wrong = labelled and o.without_call and (
            _served_intent(requests, run, o.index) != _intent_of(r, o.index))
        if o.error is None and not wrong and o.model is not None:
            got += q.score(o.model, level)
    return got / best if best else 1.0
