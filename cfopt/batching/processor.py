"""BatchProcessor: queue tasks by aged priority, take them 25 at a time, send each group its way.

Per batch, tasks are grouped by type and model, and each group takes the cheapest path that
keeps its promise:

- **grouped** text (high and medium priority): up to ``group_max`` prompts in one call that asks
  for a JSON array with one answer per prompt. If the answer does not split (bad JSON, wrong
  count), or the call fails, every task falls back to a call of its own; after
  ``group_give_up`` replies in a row that do not split, that model is no longer grouped. A
  group the API refuses for its size (its summed ``max_tokens`` over the tier's output tokens
  per minute) is sent again as two halves. A task's answer counts from the whole reply, not
  its first token: nothing can be split before the array is complete.
- **batch_api** text of low priority: through the Message Batches API at half price, answered
  when the batch ends (minutes, not seconds); fine for work nobody is waiting on.
- **parallel** images, video, audio, photos: one call each, at most ``concurrency`` at a time.

Every task submitted gets exactly one ``TaskResult``: its answer or its error, never both, never
none, never twice. The sender is any ``asend(call)``: a provider, or ``Resilience`` around one.

>>> from cfopt.providers import Providers
>>> clock = VirtualClock()
>>> bp = BatchProcessor(Providers(seed=0, clock=clock))
>>> for i, priority in enumerate(["low", "high", "medium"]):
...     bp.add_task(Task(f"img-{i}", "image", "a red kite", priority))
>>> [(r.id, r.path, r.ok) for r in clock.run(bp.process_all())]   # high, medium, then low
[('img-1', 'parallel', True), ('img-2', 'parallel', True), ('img-0', 'parallel', True)]
"""
from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from typing import Any, Iterable

from .types import (DEFAULT_MODELS, TEXT_TYPES, BatchConfig, BatchStats, Sender, Task,
                             TaskResult)
from ..clock import Clock, VirtualClock
from ..errors import ConfigError, InvalidRequest
from .grouping import GROUP_SYSTEM, group_prompt, split_answers
from .priority import PRIORITY_RANK, AgingQueue
from ..providers.base import DEFAULT_MAX_TOKENS, Call, Result

__all__ = ["BatchConfig", "Task", "TaskResult", "BatchStats", "BatchProcessor", "DEFAULT_MODELS",
           "group_prompt", "split_answers", "GROUP_SYSTEM"]


class BatchProcessor:
    """Queue tasks by aged priority and process them in batches through ``sender``."""

    def __init__(self, sender: Sender, *, config: BatchConfig | None = None,
                 clock: Clock | None = None, models: dict[str, str] | None = None) -> None:
        self.sender = sender
        self.config = config if config is not None else BatchConfig()
        self.clock: Clock = clock or getattr(sender, "clock", None) or VirtualClock()
        self.models = {**DEFAULT_MODELS, **(models or {})}
        self.queue: AgingQueue[tuple[Task, float]] = AgingQueue(self.config.aging_s, self.clock)
        self.stats = BatchStats()
        self._ids: set[str] = set()
        self._semaphore: asyncio.Semaphore | None = None
        self._auto = itertools.count()
        self._bad_replies: dict[str, int] = {}   # model -> grouped replies in a row that failed to split

    def __repr__(self) -> str:
        return f"BatchProcessor(config={self.config!r}, pending={len(self.queue)})"

    # --- the queue ------------------------------------------------------------------------
    def add_task(self, task: Task) -> None:
        """Queue ``task``; its id must be new (so every id gets exactly one result)."""
        if task.id in self._ids:
            raise ConfigError(f"task id {task.id!r} was already submitted")
        if task.type not in self.models:
            raise ConfigError(f"unknown task type {task.type!r}; known: {', '.join(self.models)}")
        if task.priority not in PRIORITY_RANK:
            raise ConfigError(f"unknown priority {task.priority!r}; known: high, medium, low")
        self._ids.add(task.id)
        self.stats.submitted += 1
        self.queue.push((task, self.clock.now()), task.priority)

    def pending(self) -> int:
        return len(self.queue)

    def next_batch(self) -> list[tuple[Task, float]]:
        """Take the next ``batch_size`` tasks (with their arrival times) by aged priority."""
        return self.queue.pop_many(self.config.batch_size)

    # --- running --------------------------------------------------------------------------
    async def process_all(self) -> list[TaskResult]:
        """Process every queued task, batch after batch; return their results."""
        out: list[TaskResult] = []
        while len(self.queue):
            out += await self.process_batch(self.next_batch())
        return out

    async def run(self, tasks: Iterable[Task]) -> list[TaskResult]:
        """Replay ``tasks`` arriving at their ``at`` times; ``workers`` batches in flight."""
        out: list[TaskResult] = []
        wake = asyncio.Event()
        feeding = True

        async def feed() -> None:
            nonlocal feeding
            for task in sorted(tasks, key=lambda t: t.at or 0.0):
                if task.at is not None and task.at > self.clock.now():
                    await self.clock.asleep(task.at - self.clock.now())
                self.add_task(task)
                wake.set()
            feeding = False
            wake.set()

        async def work() -> None:
            while feeding or len(self.queue):
                waited = self.queue.oldest_wait()
                full = len(self.queue) >= self.config.batch_size
                # due within a nanosecond counts as due: a tinier timeout would not move a
                # clock that reads hundreds of seconds (float spacing), and the loop would spin
                due = waited >= self.config.max_wait_s - 1e-9
                if not len(self.queue) or (feeding and not full and not due):
                    wake.clear()
                    timeout = self.config.max_wait_s - waited if len(self.queue) else None
                    try:
                        await asyncio.wait_for(wake.wait(), timeout)
                    except asyncio.TimeoutError:
                        pass
                    continue
                out.extend(await self.process_batch(self.next_batch()))

        await asyncio.gather(feed(), *(work() for _ in range(self.config.workers)))
        return out

    async def process_batch(self, batch: list[tuple[Task, float]]) -> list[TaskResult]:
        """Process one batch; return exactly one ``TaskResult`` per task, in batch order."""
        self.stats.batches += 1
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.config.concurrency)
        started = self.clock.now()
        done: dict[str, TaskResult] = {}

        def settle(task: Task, enq: float, path: str, result: Result | None = None,
                   error: BaseException | None = None, cost: float = 0.0) -> None:
            if task.id in done:  # a second outcome for one task would be a bug: keep the first
                return
            done[task.id] = TaskResult(task.id, task.priority, path, result, error, cost, enq,
                                       started, self.clock.now())

        groups: dict[tuple[str, str, str], list[tuple[Task, float]]] = {}
        for task, enq in batch:
            model = task.model or self.models[task.type]
            if task.type in TEXT_TYPES:
                path = ("batch_api" if task.priority == "low" and self.config.batch_api_for_low
                        else "grouped" if self._groups(model) else "single")
            else:
                path = "parallel"
            groups.setdefault((path, task.type, model), []).append((task, enq))
        jobs = []
        for (path, _type, model), items in groups.items():
            if path == "grouped":
                for i in range(0, len(items), self.config.group_max):
                    jobs.append(self._grouped(items[i:i + self.config.group_max], model, settle))
            else:
                jobs.extend(self._single(t, e, model, path, settle) for t, e in items)
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        crash = next((o for o in outcomes if isinstance(o, BaseException)), None)
        results = []
        for task, enq in batch:  # whatever went wrong above, no task leaves without an outcome
            if task.id not in done:
                settle(task, enq, "single", error=crash or RuntimeError("task was not processed"))
            r = done[task.id]
            if r.ok:
                self.stats.succeeded += 1
            else:
                self.stats.failed += 1
            self.stats.by_path[r.path] = self.stats.by_path.get(r.path, 0) + 1
            results.append(r)
        return results

    # --- the paths ------------------------------------------------------------------------
    def _call(self, task: Task, model: str, batch: bool = False) -> Call:
        return Call(model, task.prompt, max_tokens=task.max_tokens, batch=batch)

    async def _send(self, call: Call) -> Result:
        self.stats.provider_calls += 1
        result = await self.sender.asend(call)
        self.stats.cost_usd += result.cost_usd
        return result

    async def _single(self, task: Task, enq: float, model: str, path: str, settle: Any) -> None:
        try:
            if path == "parallel":
                assert self._semaphore is not None
                async with self._semaphore:
                    self.stats.parallel_calls += 1
                    result = await self._send(self._call(task, model))
            else:
                batch = path == "batch_api"
                if batch:
                    self.stats.batch_api_calls += 1
                else:
                    self.stats.single_calls += 1
                result = await self._send(self._call(task, model, batch=batch))
        except Exception as error:  # each task owns its error; the batch goes on
            settle(task, enq, path, error=error)
        else:
            settle(task, enq, path, result=result, cost=result.cost_usd)

    def _groups(self, model: str) -> bool:
        return self.config.group_text and self._bad_replies.get(model, 0) < self.config.group_give_up

    def _reply_split(self, model: str, ok: bool) -> None:
        misses = 0 if ok else self._bad_replies.get(model, 0) + 1
        self._bad_replies[model] = misses
        if misses == self.config.group_give_up:
            self.stats.grouping_stopped.append(model)

    async def _grouped(self, items: list[tuple[Task, float]], model: str, settle: Any) -> None:
        if len(items) == 1:
            return await self._single(*items[0], model, "single", settle)
        system, prompt = group_prompt([t.prompt for t, _ in items])
        max_tokens = sum(t.max_tokens or DEFAULT_MAX_TOKENS for t, _ in items)
        self.stats.grouped_calls += 1
        answers = None
        try:
            result = await self._send(Call(model, prompt, system=system,
                                           max_tokens=min(max_tokens, 64000)))
        except InvalidRequest:
            # Refused for its size (more output tokens than the tier allows in a minute): two
            # groups of half the size may pass; a single task is sent alone, as always.
            half = len(items) // 2
            await asyncio.gather(self._grouped(items[:half], model, settle),
                                 self._grouped(items[half:], model, settle))
            return
        except Exception:
            pass  # a transient failure: retried the safe way, one call per task
        else:
            answers = split_answers(result.content, len(items))
            self._reply_split(model, answers is not None)
        if answers is None:
            self.stats.split_failures += 1
            await asyncio.gather(*(self._single(t, e, model, "single", settle) for t, e in items))
            return
        share = result.cost_usd / len(items)
        # No answer of a grouped reply is usable before the whole array is in and split.
        for (task, enq), answer in zip(items, answers):
            settle(task, enq, "grouped", cost=share, result=replace(
                result, content=answer, first_content_s=result.latency_s))
