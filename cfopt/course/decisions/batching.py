"""Part 4's decision: which work can wait for the Message Batches API.

The Message Batches API answers Claude requests at half price, but later: the simulated Claude
draws each batch request's turnaround from a log-normal (the catalog's ``batch_median_s`` and
``batch_sigma``, capped at ``batch_max_s``), where a live call takes seconds. A *deadline day*
is a day of ContentFlow's Claude work (``cfopt.workload.generate``, text and analysis only) in
which every kind of work (``blog_post``, ``ticket_routing``, ...) carries a deadline: each of
its jobs must be answered within ``deadline_s`` of its arrival. A *plan* names the kinds that go
through the Message Batches API; the rest go live. ``replay_plan`` replays the day through
``BatchProcessor`` with that plan, on a few provider seeds (the turnaround is random), and says
what it cost and which jobs came late; ``best_plan`` searches for the cheapest plan that meets
every deadline on those same replays without counting on luck (the best known answer a learner's
plan is measured against).

>>> day = deadline_day(0)
>>> len(day.requests) > 100 and all(k.deadline_s > 0 for k in day.kinds)
True
>>> everything_live = replay_plan(day, set())
>>> everything_live.met, everything_live.batched
(True, ())
>>> best = best_plan(day)
>>> best.met and best.cost_usd < everything_live.cost_usd
True

Each day's deadlines are drawn from three menus: seconds (someone is waiting), minutes (the
same day's publishing run) and hours. A deadline is only ever drawn where the simulated batch
path clearly fails it or clearly meets it for that kind's number of jobs over the replays (a miss
is either nearly certain or very unlikely, see ``_miss_chance``), so a sound plan does not pass or
fail by luck.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Iterable

from ...batching import BatchConfig, BatchProcessor, Task
from ...clock import VirtualClock
from ...errors import ConfigError
from ...pricing import PriceCatalog, load_catalog
from ...providers import Providers
from ...providers.base import Call
from ...providers.claude import ClaudeProvider
from ...workload import TEXT_TYPES, Request, generate

__all__ = ["WorkKind", "DeadlineDay", "PlanOutcome", "deadline_day", "replay_plan", "plan_cost",
           "best_plan", "batch_turnarounds", "human_duration", "REPLAYS", "SECONDS", "MINUTES", "HOURS"]

REPLAYS = 2                                    # provider seeds each plan is replayed on
SECONDS = (30.0, 60.0, 120.0)                  # someone is looking at a screen
MINUTES = tuple(m * 60.0 for m in (5, 10, 15, 20, 30, 45, 60))   # today's publishing run
# Deadlines of half an hour to an hour (beyond the batch path's median, within its "most batches
# finish within an hour") come up more often: they are the ones a plan most easily gets wrong.
_MINUTE_WEIGHTS = (1, 1, 1, 1, 2, 3, 3)
HOURS = tuple(h * 3600.0 for h in (6, 8, 12, 24, 48))            # tonight, tomorrow, this week
# Short answers may be wanted at once; long ones are never needed within seconds.
_SHORT = frozenset({"social_caption", "email_subject", "seo_meta", "translation", "summary",
                    "sentiment_analysis", "keyword_extraction", "ticket_routing"})
# A deadline is drawn only where the batch path's chance to miss it (over the replays) is clear:
# below _SAFE, or above _UNSAFE (a plan that gambles on such a kind loses on most days).
_SAFE, _UNSAFE = 0.01, 0.9


@dataclass(frozen=True, slots=True)
class WorkKind:
    """One kind of work of a day: its name, request type, number of jobs and deadline."""

    name: str
    type: str
    jobs: int
    deadline_s: float        # each job must be answered within this many seconds of its arrival


@dataclass(frozen=True)
class DeadlineDay:
    """A day of Claude work with a deadline per kind; ``kinds`` is what a plan decides from."""

    seed: int
    requests: tuple[Request, ...] = field(repr=False)
    deadlines: dict[str, float] = field(repr=False)
    replays: int = REPLAYS

    @property
    def kinds(self) -> list[WorkKind]:
        """The day's kinds of work, tightest deadline first (then by name)."""
        count: dict[str, int] = {}
        types: dict[str, str] = {}
        for r in self.requests:
            count[r.task] = count.get(r.task, 0) + 1
            types[r.task] = r.type
        return sorted((WorkKind(name, types[name], n, self.deadlines[name]) for name, n in count.items()),
                      key=lambda k: (k.deadline_s, k.name))

    def __repr__(self) -> str:
        return f"DeadlineDay(seed={self.seed}, jobs={len(self.requests)}, kinds={len(self.deadlines)})"


@dataclass(frozen=True)
class PlanOutcome:
    """What a plan did on a day: its cost (mean over the replays) and the jobs answered late."""

    batched: tuple[str, ...]                 # the kinds sent through the Message Batches API
    cost_usd: float
    jobs: int                                # jobs per replay
    missed: int                              # late or failed jobs, over all replays
    missed_by_kind: dict[str, int]           # kind -> late jobs, over all replays
    latest_s: dict[str, float]               # kind -> the slowest answer (s after arrival), any replay
    replays: int

    @property
    def met(self) -> bool:
        """Whether every job of every replay was answered within its deadline."""
        return self.missed == 0


def _miss_chance(deadline_s: float, draws: int, catalog: PriceCatalog | None = None) -> float:
    """The chance that at least one of ``draws`` batch requests comes back after ``deadline_s``."""
    figures = (catalog or load_catalog()).provider_figures.get("anthropic", {})
    median, sigma = float(figures.get("batch_median_s", 900.0)), float(figures.get("batch_sigma", 0.8))
    if deadline_s >= float(figures.get("batch_max_s", 86400.0)):
        return 0.0
    one = 1.0 - NormalDist().cdf(math.log(deadline_s / median) / sigma)
    return 1.0 - (1.0 - one) ** draws


def deadline_day(seed: int = 0, *, n: int = 300, duration_s: float = 600.0,
                 replays: int = REPLAYS) -> DeadlineDay:
    """Return the day of Claude work of ``generate(n, seed=seed, duration_s=...)`` with deadlines.

    The deadlines are drawn per kind from ``SECONDS`` (short answers only), ``MINUTES`` and
    ``HOURS``, seeded by ``seed``; a draw the batch path would pass or fail by luck is drawn again.
    """
    if isinstance(replays, bool) or not isinstance(replays, int) or replays < 1:
        raise ConfigError(f"replays must be a positive integer, got {replays!r}")
    requests = tuple(r for r in generate(n, seed=seed, duration_s=duration_s) if r.type in TEXT_TYPES)
    if not requests:
        raise ConfigError(f"generate({n}, seed={seed}) has no text or analysis requests")
    jobs: dict[str, int] = {}
    for r in requests:
        jobs[r.task] = jobs.get(r.task, 0) + 1
    rng = random.Random(f"cfopt-deadline-day:{seed}")
    catalog = load_catalog()
    deadlines: dict[str, float] = {}
    for name in sorted(jobs):
        menus = (SECONDS, MINUTES, HOURS) if name in _SHORT else (MINUTES, HOURS)
        for _ in range(50):
            menu = rng.choice(menus)
            deadline = (rng.choices(MINUTES, _MINUTE_WEIGHTS)[0] if menu is MINUTES
                        else rng.choice(menu))
            chance = _miss_chance(deadline, jobs[name] * replays, catalog)
            if chance < _SAFE or chance > _UNSAFE:
                break
        else:  # nothing clear after 50 draws (a kind of one or two jobs): a day is clear
            deadline = HOURS[-1]
        deadlines[name] = deadline
    return DeadlineDay(seed, requests, deadlines, replays)


def human_duration(seconds: float) -> str:
    """Return ``seconds`` the way a deadline is said: ``'45 s'``, ``'30 min'``, ``'6 h'``.

    >>> human_duration(45), human_duration(1800), human_duration(5400), human_duration(86400)
    ('45 s', '30 min', '1.5 h', '24 h')
    """
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def _names(day: DeadlineDay, batch_kinds: Iterable[str]) -> tuple[str, ...]:
    if isinstance(batch_kinds, (str, bytes)) or not isinstance(batch_kinds, Iterable):
        raise ConfigError(f"a plan is a set of kind names, got {type(batch_kinds).__name__}")
    names = set()
    for name in batch_kinds:
        if isinstance(name, WorkKind):
            raise ConfigError(f"a plan names each kind by its name (a str), got the WorkKind {name.name!r}")
        if name not in day.deadlines:
            raise ConfigError(f"{name!r} is not a kind of work of this day; its kinds are "
                              f"{', '.join(sorted(day.deadlines))}")
        names.add(name)
    return tuple(sorted(names))


def _replay_once(day: DeadlineDay, batched: frozenset[str], seed: int) -> tuple[float, dict[str, int], dict[str, float]]:
    clock = VirtualClock()
    bp = BatchProcessor(Providers(seed=seed, clock=clock), config=BatchConfig(group_text=False))
    # "low" text goes through the Message Batches API; live work keeps its urgency, never "low"
    tasks = [Task(r.id, r.type, r.prompt,
                  "low" if r.task in batched else ("high" if r.priority == "high" else "medium"),
                  max_tokens=r.max_tokens, at=r.t) for r in day.requests]
    results = clock.run(bp.run(tasks))
    by_id = {r.id: r for r in day.requests}
    late: dict[str, int] = {}
    latest: dict[str, float] = {}
    for res in results:
        req = by_id[res.id]
        took = res.finished_at - req.t
        latest[req.task] = max(latest.get(req.task, 0.0), took)
        if not res.ok or took > day.deadlines[req.task] + 1e-9:
            late[req.task] = late.get(req.task, 0) + 1
    return bp.stats.cost_usd, late, latest


def replay_plan(day: DeadlineDay, batch_kinds: Iterable[str]) -> PlanOutcome:
    """Replay ``day`` with the kinds in ``batch_kinds`` on the Message Batches API, the rest live."""
    batched = _names(day, batch_kinds)
    costs, late, latest = [], {}, {}
    for i in range(day.replays):
        cost, late_i, latest_i = _replay_once(day, frozenset(batched), seed=day.seed * 101 + i)
        costs.append(cost)
        for kind, n in late_i.items():
            late[kind] = late.get(kind, 0) + n
        for kind, s in latest_i.items():
            latest[kind] = max(latest.get(kind, 0.0), s)
    return PlanOutcome(batched, sum(costs) / len(costs), len(day.requests), sum(late.values()),
                       dict(sorted(late.items())), dict(sorted(latest.items())), day.replays)


def plan_cost(day: DeadlineDay, batch_kinds: Iterable[str]) -> float | None:
    """The cost of a plan on ``day`` (mean over the replays), or None if it misses a deadline."""
    outcome = replay_plan(day, batch_kinds)
    return outcome.cost_usd if outcome.met else None


def best_plan(day: DeadlineDay) -> PlanOutcome:
    """The cheapest plan found that meets every deadline of ``day`` on its replays, without luck.

    Every batched kind costs half, so the more kinds batched the cheaper. A kind is a candidate
    for the batch path only if the catalog's turnaround model gives it less than a 1% chance of a
    late answer over the replays: a kind that met its deadline on these replays by luck would miss
    it on most other days, and a plan that counts on luck is not the best known answer. Start with
    every candidate batched and send live each kind that came late, until none does.
    """
    catalog = load_catalog()
    batched = {k.name for k in day.kinds if _miss_chance(k.deadline_s, k.jobs * day.replays, catalog) < _SAFE}
    while True:
        outcome = replay_plan(day, batched)
        late = batched & set(outcome.missed_by_kind)
        if not late:
            return outcome
        batched -= late


def batch_turnarounds(n: int = 2000, seed: int = 0, model: str = "haiku") -> list[float]:
    """Return the turnarounds (s) of ``n`` simulated Message Batches requests, in draw order."""
    claude = ClaudeProvider(seed=seed)
    return [claude.simulate(Call(model, f"Write a tagline for shop number {i}.", max_tokens=64,
                                 batch=True)).latency_s for i in range(n)]
