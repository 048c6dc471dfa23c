"""Your functions from Parts 1 to 5 as pipeline stages: the capstone's "yours" column.

Each stage is the library's class with the seams you wrote handed to your code; whatever you
did not bring (a missing notebook, a stub) stays the library's:

- cost, ``YourCostOptimizer``: ``route(analysis)`` picks the model of every text and analysis
  request; ``abbreviate(text, long, short)`` compresses prompts, once per phrase of the rules
  (politeness and spaces are left as they are);
- cache, ``YourCacheManager``: ``my_cache_key(...)`` makes the key of every look-up and store;
  ``LeastFrequentlyUsed`` evicts from the memory layer;
- latency, ``YourPerformanceOptimizer``: ``should_flush(...)`` says when a micro-batch of
  interactive text goes (micro-batching runs only with ``max_batch_size`` above 1);
- batching, ``YourBatchProcessor``: ``my_effective_rank(...)`` orders the deferred queue;
  ``my_backoff(...)`` is the wait before a retry (when a call failed without a retry-after);
- monitor, ``YourMonitor``: ``percentile`` and ``trend_per_min`` make its median, p95, p99 and
  trends; ``long_tail(monitor, period)`` is one more recommendation rule.

03's ``time_to_useful`` is a measurement, not a stage: both columns are measured by the report's
one definition, so they are compared fairly.

Every function you bring is wrapped in a ``Counted``: how often the replay called it, and the
first call that raised, with its arguments. ``your_stages(brought)`` builds the stages from
what ``cfopt.course.learner.bring_all`` found.

>>> stages, counted = your_stages({})      # nothing brought: the library's behaviour throughout
>>> sorted(stages), counted
(['batching', 'cache', 'cost', 'latency', 'monitor'], {})
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from ..batching.priority import PRIORITY_RANK, AgingQueue
from ..batching.processor import BatchProcessor
from ..batching.resilience import Resilience
from ..cache.keys import output_params
from ..cache.layers.memory import MemoryLayer
from ..cache.manager import CacheManager
from ..cache.semantic import BoundedSemanticLayer
from ..cost.compress import CompressionResult
from ..cost.optimizer import CostOptimizer, ModelChoice
from ..errors import ConfigError
from ..latency.coalesce import QueryOptimizer
from ..latency.microbatch import MicroBatcher
from ..latency.optimizer import PerformanceOptimizer
from ..monitoring.monitor import MonitorConfig, PerformanceMonitor
from ..monitoring.recommendations import DEFAULT_RULES
from ..pipeline import Pipeline
from ..providers.base import Call
from ..tokens import count_tokens

__all__ = ["Counted", "YourCostOptimizer", "YourCacheManager", "YourPerformanceOptimizer",
           "YourBatchProcessor", "YourMonitor", "your_stages", "run_yours", "Yours", "YourCodeError", "WHERE"]

# Where each of your functions runs, for the capstone's table.
WHERE: dict[str, tuple[str, str]] = {
    "route": ("cost", "the model of every text and analysis request"),
    "abbreviate": ("cost", "prompt compression, once per phrase of the rules"),
    "my_cache_key": ("cache", "the key of every look-up and store"),
    "LeastFrequentlyUsed": ("cache", "the memory layer's eviction (popitem calls)"),
    "time_to_useful": ("-", "a measurement: both columns use the report's one definition"),
    "should_flush": ("latency", "whether a micro-batch goes (micro-batching on only)"),
    "my_effective_rank": ("batching", "which deferred task leaves the queue next"),
    "my_backoff": ("batching", "the wait before a retry (only when a call fails)"),
    "percentile": ("monitor", "the monitor's median, p95 and p99"),
    "trend_per_min": ("monitor", "the monitor's trend per minute"),
    "long_tail": ("monitor", "one more recommendation rule"),
}


class YourCodeError(Exception):
    """Your code raised, or returned what its seam cannot use. Not a ``CfoptError`` on purpose:
    the pipeline counts those as failed requests, this one stops the replay and is told."""


class Counted:
    """Your function, counting its calls; the first call that raised is kept and told, and
    stops the replay (``YourCodeError``)."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name, self.fn = name, fn
        self.calls = 0
        self.error: str | None = None

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        try:
            return self.fn(*args)
        except YourCodeError:
            raise
        except Exception as e:
            shown = ", ".join(_short(a) for a in args)
            message = f"{self.name}({shown}) raised {type(e).__name__}: {e}"
            self.error = self.error or message
            raise YourCodeError(message) from e

    def __repr__(self) -> str:
        return f"Counted({self.name!r}, calls={self.calls})"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- cost: route and abbreviate -------------------------------------------------------------------
class YourCostOptimizer(CostOptimizer):
    """``CostOptimizer`` whose text routing asks ``route(analysis)`` and whose compression
    applies ``abbreviate(text, long, short)`` with each phrase of the rules (politeness and
    spaces are left as they are)."""

    def __init__(self, *, route: Callable[[Any], str] | None = None,
                 abbreviate: Callable[[str, str, str], str] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.route, self.abbreviate = route, abbreviate

    def select_optimal_model(self, task: Any) -> ModelChoice:
        choice = super().select_optimal_model(task)
        if self.route is None or choice.llm is None:
            return choice
        a = self.analyze_task(task)
        got = self.route(a)
        try:
            info = self.catalog.model(got)
        except (ConfigError, KeyError, TypeError):
            info = None
        if info is None or info.kind != "text":
            raise YourCodeError(f"your route returned {got!r} for a {a.quality} {a.complexity}-"
                              f"complexity {a.type} task: not a Claude model of the catalog")
        q = self.quality.score(info.id, a.complexity)
        return replace(choice, model=info.id, llm=info.id, expected_quality=q,
                       worst_case_cost_usd=self.estimate_cost(task, info.id),
                       rationale=f"your route: {info.id}, which keeps {q:.1%}; it needs {a.need:.0%}")

    def optimize_prompt(self, prompt: str, *, system: str | None = None) -> CompressionResult:
        if self.abbreviate is None:
            return super().optimize_prompt(prompt, system=system)
        text = prompt
        for long, short in self.rules.phrases:
            text = self.abbreviate(text, long, short)
            if not isinstance(text, str):
                raise YourCodeError(f"your abbreviate returned {type(text).__name__} for the phrase "
                                  f"{long!r}; it returns the text")
        return CompressionResult(prompt, text, count_tokens(prompt), count_tokens(text))


# -- cache: my_cache_key and LeastFrequentlyUsed ---------------------------------------------------
class YourCacheManager(CacheManager):
    """``CacheManager`` whose keys come from ``key(provider, model, prompt, params, tenant)`` and
    whose memory layer evicts with ``memory_class`` (a ``cachetools.Cache`` subclass)."""

    def __init__(self, *, key: Callable[..., str] | None = None, memory_class: type | None = None,
                 **kw: Any) -> None:
        kw.setdefault("semantic", BoundedSemanticLayer())   # the pipeline's default stage
        super().__init__(**kw)
        self.key, self.memory_class = key, memory_class

    def key_for(self, call: Call, tenant: str) -> tuple[str, str, tuple]:
        if self.key is None:
            return super().key_for(call, tenant)
        info = self.catalog.model(call.model)
        params = output_params(call, info.kind)
        key = self.key(info.provider, info.id, call.prompt, params, tenant)
        if not isinstance(key, str) or not key.startswith(f"{tenant}:"):
            raise YourCodeError(f"your my_cache_key returned {_short(key)} for tenant {tenant!r}: a "
                              f"key is a string that starts with the tenant and ':'")
        return key, info.kind, (tenant, info.id, json.dumps(params, sort_keys=True))

    def bind(self, env: Any) -> None:
        super().bind(env)
        if self.memory_class is None or self._given or self._layers is None:
            return
        self._layers = [MemoryLayer(max_entries=self._memory_entries, clock=env.clock,
                                    cache_class=self.memory_class)
                        if isinstance(layer, MemoryLayer) else layer for layer in self._layers]


def _counted_class(name: str, cls: type) -> tuple[type, Counted]:
    """A subclass of ``cls`` whose ``popitem`` calls are counted (and raise as they would)."""
    counter = Counted(f"{name}.popitem", lambda self: cls.popitem(self))
    sub = type(cls.__name__, (cls,), {"popitem": lambda self: counter(self)})
    return sub, counter


# -- latency: should_flush ---------------------------------------------------------------------------
class _YourMicroBatcher(MicroBatcher):
    """A micro-batcher that asks ``should_flush`` when an item arrives and when the oldest item
    has waited ``max_wait_s``. A batch held past twice that goes anyway (``overruled``): a rule
    that never says yes must not stall the replay."""

    def __init__(self, *args: Any, should_flush: Callable[..., bool], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.should_flush = should_flush
        self.overruled = 0

    async def submit(self, item: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._items.append((item, self.clock.now(), future))
        self.stats.items += 1
        self._decide()
        return await future

    def _decide(self) -> None:
        if not self._items:
            return
        go = self.should_flush(len(self._items), self._waited(), self.max_batch_size, self.max_wait_s)
        if not isinstance(go, bool):
            raise YourCodeError(f"your should_flush returned {go!r}; it returns True or False")
        if not go and self._waited() >= 2 * self.max_wait_s:
            self.overruled += 1
            go = True
        if go:
            self._flush(full=len(self._items) >= self.max_batch_size)
        if self._items and self._timer is None:
            waited = self._waited()
            due = self.max_wait_s if waited < self.max_wait_s else 2 * self.max_wait_s
            self._timer = asyncio.get_running_loop().call_later(due - waited, self._wake)

    def _waited(self) -> float:
        # Due within a nanosecond counts as due: a timer that short would not move a clock that
        # reads hundreds of seconds (float spacing), and the loop would spin.
        waited = self.clock.now() - self._items[0][1]
        for due in (self.max_wait_s, 2 * self.max_wait_s):
            if due - 1e-9 <= waited < due:
                return due
        return waited

    def _wake(self) -> None:
        self._timer = None
        try:
            self._decide()
        except Exception as e:   # in a timer: fail the waiting callers, or they would wait forever
            items, self._items = self._items, []
            for _, _, future in items:
                if not future.done():
                    future.set_exception(e)

    def _flush(self, full: bool) -> None:
        super()._flush(full)
        if self._timer is not None and self._items:   # leftovers: ask again, not the library
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(self.max_wait_s, self._wake)


class _YourQueries(QueryOptimizer):
    def __init__(self, *args: Any, should_flush: Callable[..., bool], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.should_flush = should_flush

    async def _dispatch(self, call: Call) -> Any:
        if not self._mergeable(call):
            return await self._send(call)
        model = self.catalog.model(call.model).id
        if model not in self._batchers:
            self._batchers[model] = _YourMicroBatcher(
                self.send_grouped, max_batch_size=self.max_batch_size, max_wait_s=self.max_wait_s,
                clock=self.clock, should_flush=self.should_flush)
        return await self._batchers[model].submit(call)


class YourPerformanceOptimizer(PerformanceOptimizer):
    """``PerformanceOptimizer`` whose micro-batches go when ``should_flush(waiting,
    oldest_wait_s, max_batch_size, max_wait_s)`` says so (with ``max_batch_size`` above 1)."""

    def __init__(self, *, should_flush: Callable[..., bool] | None = None, **kw: Any) -> None:
        kw.setdefault("max_batch_size", 1)   # the pipeline's default: each call at once
        super().__init__(**kw)
        self.should_flush = should_flush

    def bind(self, env: Any) -> None:
        super().bind(env)
        if self.should_flush is not None:
            self.queries = _YourQueries(self.sender, max_batch_size=self.max_batch_size,
                                        max_wait_s=self.max_wait_s, clock=env.clock,
                                        catalog=env.catalog, should_flush=self.should_flush)


# -- batching: my_effective_rank and my_backoff --------------------------------------------------------
class _RankedQueue(AgingQueue):
    """The aging queue, ordered by your ``rank(priority, waited_s, aging_s)`` at the moment of
    each pop (lowest first; ties: first in, first out)."""

    def __init__(self, rank: Callable[..., float], aging_s: float | None, clock: Any) -> None:
        super().__init__(aging_s, clock)
        self.rank = rank
        self._items: list[tuple[int, float, str, Any]] = []

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Any, priority: str = "medium", *, at: float | None = None) -> None:
        if priority not in PRIORITY_RANK:
            raise ConfigError(f"priority must be one of {', '.join(PRIORITY_RANK)}, got {priority!r}")
        self._items.append((next(self._seq), self.clock.now() if at is None else at, priority, item))

    def _order(self) -> list[tuple[float, int, int]]:
        now = self.clock.now()
        out = []
        for i, (seq, t, priority, _) in enumerate(self._items):
            rank = self.rank(priority, now - t, self.aging_s)
            if isinstance(rank, bool) or not isinstance(rank, (int, float)):
                raise YourCodeError(f"your my_effective_rank returned {rank!r} for {priority!r}; it "
                                  "returns a number")
            out.append((float(rank), seq, i))
        return sorted(out)

    def pop(self) -> Any:
        if not self._items:
            raise IndexError("pop from an empty queue")
        _, _, i = self._order()[0]
        return self._items.pop(i)[-1]

    def pop_many(self, n: int) -> list[Any]:
        return [self.pop() for _ in range(min(n, len(self._items)))]

    def __iter__(self) -> Any:
        return (self._items[i][-1] for _, _, i in self._order())

    def remove(self, match: Callable[[Any], bool]) -> Any:
        for i, entry in enumerate(self._items):
            if match(entry[-1]):
                return self._items.pop(i)[-1]
        return None

    def oldest_wait(self) -> float:
        if not self._items:
            return 0.0
        return self.clock.now() - min(t for _, t, _, _ in self._items)


class _YourResilience(Resilience):
    """Retries whose backoff (when the error names no retry-after) is ``backoff(retry, base_s,
    cap_s, rng)``."""

    def __init__(self, *args: Any, backoff: Callable[..., float], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.backoff = backoff

    def _decide(self, req: Any, error: Any) -> tuple[str, Any]:
        action, value = super()._decide(req, error)
        after = getattr(error, "retry_after", None)
        if action != "wait" or (after is not None and after > 0):
            return action, value
        wait = self.backoff(req.retries, self.policy.base_s, self.policy.cap_s, self._rng)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not wait >= 0:
            raise YourCodeError(f"your my_backoff returned {wait!r} for retry {req.retries}; it "
                              "returns seconds, 0 or more")
        deadline = self.policy.deadline_s
        if deadline is not None and self.clock.now() + wait - req.started > deadline:
            return "raise", None
        return "wait", float(wait)


class YourBatchProcessor(BatchProcessor):
    """``BatchProcessor`` whose queue order is ``effective_rank(priority, waited_s, aging_s)``
    and whose retries wait ``backoff(retry, base_s, cap_s, rng)``."""

    def __init__(self, *, effective_rank: Callable[..., float] | None = None,
                 backoff: Callable[..., float] | None = None, **kw: Any) -> None:
        self.effective_rank, self.backoff = effective_rank, backoff
        super().__init__(**kw)

    def _reset(self) -> None:
        super()._reset()
        if getattr(self, "effective_rank", None) is not None:
            self.queue = _RankedQueue(self.effective_rank, self.config.aging_s, self.clock)

    async def _dispatch(self) -> None:
        try:
            await super()._dispatch()
        except YourCodeError as e:   # in a task of its own: fail the waiters, or they would hang
            for future in self._waiters.values():
                if not future.done():
                    future.set_exception(e)

    def bind(self, env: Any) -> None:
        super().bind(env)
        if self.backoff is not None and self.resilience is not None:
            self.resilience = _YourResilience(env.transport, policy=self.retry, clock=env.clock,
                                              catalog=env.catalog, seed=env.seed, bus=env.bus,
                                              backoff=self.backoff)
            self.sender = env.sender = self.resilience


# -- monitor: percentile, trend_per_min and long_tail -----------------------------------------------------
class YourMonitor(PerformanceMonitor):
    """``PerformanceMonitor`` whose median, p95 and p99 come from ``percentile(values, q)``,
    whose trend from ``trend_per_min(times, values)``, and with ``long_tail`` as one more rule."""

    def __init__(self, *, percentile: Callable[..., float] | None = None,
                 trend_per_min: Callable[..., float] | None = None,
                 long_tail: Callable[..., Any] | None = None, **kw: Any) -> None:
        kw.setdefault("config", MonitorConfig(retention_s=None))
        rules = list(kw.pop("rules", DEFAULT_RULES))
        super().__init__(rules=rules + ([long_tail] if long_tail is not None else []), **kw)
        self.percentile, self.trend_per_min = percentile, trend_per_min

    def get_stats(self, metric: str, period: float | None = None) -> Any:
        stats = super().get_stats(metric, period)
        if stats.count == 0 or (self.percentile is None and self.trend_per_min is None):
            return stats
        times, values = self.series(metric, period)
        t, v = times.tolist(), values.tolist()
        changes: dict[str, float] = {}
        if self.percentile is not None:
            changes.update(median=float(self.percentile(v, 50)), p95=float(self.percentile(v, 95)),
                           p99=float(self.percentile(v, 99)))
        if self.trend_per_min is not None:
            changes["trend_per_min"] = float(self.trend_per_min(t, v))
        return replace(stats, **changes)


# -- all of it --------------------------------------------------------------------------------------------
def your_stages(brought: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Counted]]:
    """The five stages built from ``brought`` (a ``Brought`` per notebook, or a plain mapping
    of name to object), and the ``Counted`` wrapper of each function used.

    Each call makes fresh stages (a stage keeps state between the runs it is bound to).
    """
    found: dict[str, Any] = {}
    for value in brought.values():
        found.update(getattr(value, "found", None) or {})
    if not any(hasattr(v, "found") for v in brought.values()):
        found.update({k: v for k, v in brought.items() if callable(v)})
    counted: dict[str, Counted] = {}

    def take(name: str) -> Any:
        fn = found.get(name)
        if fn is None:
            return None
        if isinstance(fn, type):
            sub, counter = _counted_class(name, fn)
            counted[name] = counter
            return sub
        counted[name] = Counted(name, fn)
        return counted[name]

    library = Pipeline()   # its default stages: yours start from the same knobs
    stages = {
        "cost": YourCostOptimizer(route=take("route"), abbreviate=take("abbreviate")),
        "cache": YourCacheManager(key=take("my_cache_key"), memory_class=take("LeastFrequentlyUsed")),
        "latency": YourPerformanceOptimizer(should_flush=take("should_flush"),
                                            max_batch_size=library.latency.max_batch_size),
        "batching": YourBatchProcessor(effective_rank=take("my_effective_rank"), backoff=take("my_backoff"),
                                       config=library.batching.config),
        "monitor": YourMonitor(percentile=take("percentile"), trend_per_min=take("trend_per_min"),
                               long_tail=take("long_tail")),
    }
    return stages, counted


@dataclass
class Yours:
    """One replay of your stages: the report, or why there is none, and your functions' calls."""

    report: dict[str, Any] | None
    counted: dict[str, Counted]
    error: str | None = None

    def calls(self) -> list[dict[str, Any]]:
        """One row per function: where it runs and how often this replay called it."""
        return [{"function": name, "stage": WHERE[name][0], "called": c.calls,
                 "where": WHERE[name][1], "raised": c.error or ""}
                for name, c in self.counted.items()]


def run_yours(day: Any, brought: Mapping[str, Any], *, faults: Any = None,
              **knobs: Any) -> Yours:
    """Replay ``day`` (a ``cfopt.course.decisions.capstone.Day``) through your stages, with
    ``knobs`` (``set_params`` keywords) and ``faults``; an error of your code is caught and told
    with the call that raised it."""
    stages, counted = your_stages(brought)
    pipeline = Pipeline(faults=faults, **stages).set_params(**knobs)
    try:
        report = day.report(pipeline, checked=False)
    except YourCodeError as e:
        error = str(e)
    else:
        return Yours(report, counted)
    del pipeline, stages   # with the error: what holds the stopped replay's requests
    _quietly_collect()
    return Yours(None, counted, error)


def _quietly_collect() -> None:
    """Let the stopped replay's unfinished requests go without a warning each (a stopped hour
    leaves thousands): the error itself is what the learner needs to read."""
    log = logging.getLogger("asyncio")
    level, hook = log.level, sys.unraisablehook
    log.setLevel(logging.CRITICAL)
    sys.unraisablehook = lambda unraisable: None
    try:
        gc.collect()
    finally:
        log.setLevel(level)
        sys.unraisablehook = hook
