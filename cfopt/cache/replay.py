"""Replay a workload through a CacheManager on the virtual clock and count where answers came from.

Requests are anything with ``t``, ``type``, ``prompt`` and optionally ``max_tokens``, ``task``,
``quality`` and ``intent`` (``cfopt.workload.Request`` fits). ``intent`` is read only to score
hits afterwards: a hit that served an answer made for another intent is a false hit.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import ProviderError
from ..providers.base import Call
from .manager import CacheManager

__all__ = ["ReplayReport", "call_for", "replay", "MODELS"]

MODELS = {"text": "haiku", "analysis": "haiku", "image": "flux_schnell", "video": "video_5s",
          "audio": "audio_minute", "photo": "unsplash-search"}


def call_for(request: Any, models: dict[str, str] = MODELS) -> Call:
    """Return the provider call that answers ``request``."""
    text = request.type in ("text", "analysis")
    return Call(models[request.type], request.prompt,
                max_tokens=getattr(request, "max_tokens", None) if text else None)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Where each request's answer came from, what was paid and what was wrong."""

    requests: int
    by_source: dict[str, int] = field(default_factory=dict)
    provider_calls: int = 0
    errors: int = 0
    false_hits: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0     # what the cached answers cost when they were first made

    @property
    def hit_rate(self) -> float:
        return (self.requests - self.provider_calls - self.errors) / self.requests if self.requests else 0.0

    @property
    def false_hit_rate(self) -> float:
        return self.false_hits / self.requests if self.requests else 0.0


def replay(requests: Iterable[Any], manager: CacheManager, *, tenant: str = "contentflow",
           models: dict[str, str] = MODELS) -> ReplayReport:
    """Send every request through ``manager`` at its arrival time; return the counts."""
    clock = manager.clock
    sources: Counter[str] = Counter()
    intent_of: dict[str, Any] = {}
    n = calls = errors = false = 0
    cost = saved = 0.0
    for r in requests:
        n += 1
        advance_to = getattr(clock, "advance_to", None)
        if advance_to is not None:
            advance_to(r.t)
        try:
            served = manager.fetch(call_for(r, models), tenant=tenant, type=r.type,
                                   task=getattr(r, "task", None),
                                   quality=getattr(r, "quality", "standard") or "standard")
        except ProviderError:
            errors += 1
            sources["error"] += 1
            continue
        sources[served.source] += 1
        intent = getattr(r, "intent", None)
        if served.source == "provider":
            calls += 1
            cost += served.result.cost_usd
            intent_of[served.key] = intent
        else:
            saved += served.result.cost_usd
            if served.source != "coalesced" and intent is not None:
                false += intent_of.get(served.key, intent) != intent
    return ReplayReport(n, dict(sources), calls, errors, false, round(cost, 9), round(saved, 9))
