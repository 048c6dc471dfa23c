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
- **batch_api** text of low priority: through the Message Batches API at half price, one job
  per batch, answered when the job ends (minutes, not seconds): the API serves a job's results
  together, once its last request is done. Fine for work nobody is waiting on.
- **parallel** images, video, audio, photos: one call each.

Batches leave the queue when ``batch_size`` tasks wait or a task has waited ``max_wait_s``
(Message Batches work: ``batch_api_wait_s``, if set), and only while one of the ``concurrency``
call slots is free. A queued task that another call will answer (an urgent request for the same
work) can be taken back out (``take_over``). Under load, tasks wait in the aged-priority
queue, so an urgent task that arrives later still goes before older low ones. No
batch waits for the one before it to finish, and Message Batches submissions take no slot (the
API answers them when the job ends, minutes later).

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
from dataclasses import replace
from typing import Any, Awaitable, Iterable

from ..clock import Clock, VirtualClock
from ..errors import ConfigError, InvalidRequest
from ..events import Event, EventBus
from ..providers.base import DEFAULT_MAX_TOKENS, Call, Result
from .grouping import GROUP_SYSTEM, answer_pieces, group_prompt, split_answers
from .priority import PRIORITY_RANK, AgingQueue
from .resilience import Resilience, RetryPolicy
from .types import DEFAULT_MODELS, TEXT_TYPES, BatchConfig, BatchStats, Sender, Task, TaskResult

__all__ = ["BatchConfig", "Task", "TaskResult", "BatchStats", "BatchProcessor", "DEFAULT_MODELS",
           "group_prompt", "split_answers", "GROUP_SYSTEM"]


class BatchProcessor:
    """Queue tasks by aged priority and process them in batches through ``sender``.

    On its own it sends through ``sender`` (a provider, ``Providers``, or ``Resilience``). As
    the pipeline's ``batching`` stage, ``bind(env)`` wraps the run's transport in retries
    (``Resilience`` with ``retry``, when the run's ``resilience`` switch is on) and makes that the
    sender every stage uses (``env.sender``); the pipeline then ``submit``s its deferred work.
    """

    KNOBS = ("config", "retry", "models")

    def __init__(self, sender: Sender | None = None, *, config: BatchConfig | None = None,
                 clock: Clock | None = None, models: dict[str, str] | None = None,
                 retry: RetryPolicy | None = None, bus: EventBus | None = None) -> None:
        self.sender = sender
        self.config = config if config is not None else BatchConfig()
        self.clock: Clock = clock or getattr(sender, "clock", None) or VirtualClock()
        self.models = {**DEFAULT_MODELS, **(models or {})}
        # No per-attempt timeout by default: Message Batches jobs and videos take minutes (the
        # providers' own timeouts still fail a hung call).
        self.retry = retry if retry is not None else RetryPolicy(timeout_s=None)
        self.bus = bus
        self.resilience: Resilience | None = None
        self._reset()

    def _reset(self) -> None:
        self.queue: AgingQueue[tuple[Task, float]] = AgingQueue(self.config.aging_s, self.clock)
        self.stats = BatchStats()
        self._ids: set[str] = set()
        self._bad_replies: dict[str, int] = {}   # model -> grouped replies in a row that failed to split
        self._waiters: dict[str, asyncio.Future[TaskResult]] = {}
        self._order: list[str] = []              # task ids in the order they left the queue
        self._dispatcher: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._slots: asyncio.Semaphore | None = None
        self._busy = 0
        self._changed: asyncio.Event | None = None
        self._flushing = False

    def __repr__(self) -> str:
        return f"BatchProcessor(config={self.config!r}, pending={len(self.queue)})"

    # --- as the pipeline's stage ------------------------------------------------------------
    def bind(self, env: Any) -> None:
        """Send through ``env.transport`` with retries; set ``env.sender``; start empty."""
        self.clock, self.bus = env.clock, env.bus
        if env.config.resilience:
            self.resilience = Resilience(env.transport, policy=self.retry, clock=env.clock,
                                         catalog=env.catalog, seed=env.seed, bus=env.bus)
            self.sender = self.resilience
        else:
            self.resilience, self.sender = None, env.transport
        env.sender = self.sender
        self._reset()

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
        self.stats.queued_max = max(self.stats.queued_max, len(self.queue))

    def pending(self) -> int:
        return len(self.queue)

    def take_over(self, task_id: str, answer: Awaitable[Result]) -> bool:
        """Let another call answer ``task_id`` if it has not left the queue; say whether so.

        For the pipeline: an urgent request for the same work as a queued low-priority task
        makes its call now, and the task gets that call's answer (path ``taken_over``, no cost
        of its own) instead of waiting for a call of its own. If that call fails, the task goes
        back to the queue with its place (its arrival time), and goes its own way as before.
        """
        found = self.queue.remove(lambda item: item[0].id == task_id)
        if found is None:
            return False
        task, enq = found
        self.stats.taken_over += 1

        async def wait() -> None:
            started = self.clock.now()
            try:
                result = await answer
            except Exception:
                self.stats.taken_over -= 1
                self.queue.push((task, enq), task.priority, at=enq)
                self._kick()
                return
            future = self._waiters.pop(task.id, None)
            self.stats.succeeded += 1
            self.stats.by_path["taken_over"] = self.stats.by_path.get("taken_over", 0) + 1
            if future is not None and not future.done():
                future.set_result(TaskResult(task.id, task.priority, "taken_over", result, None,
                                             0.0, enq, started, self.clock.now()))

        job = asyncio.ensure_future(wait())
        self._running.add(job)
        job.add_done_callback(self._running.discard)
        return True

    def next_batch(self) -> list[tuple[Task, float]]:
        """Take the next ``batch_size`` tasks (with their arrival times) by aged priority."""
        batch = self.queue.pop_many(self.config.batch_size)
        self._order.extend(task.id for task, _ in batch)
        return batch

    # --- running --------------------------------------------------------------------------
    async def submit(self, task: Task) -> TaskResult:
        """Queue ``task`` and wait for its result; batches leave as the config says."""
        future = self._future(task.id)
        self.add_task(task)
        self._kick()
        return await future

    async def process_all(self) -> list[TaskResult]:
        """Process every queued task; return their results in the order they left the queue.

        Batches go one after another as soon as a call slot is free: none waits for the batch
        before it to finish (a Message Batches job may take an hour).
        """
        futures = [self._future(task.id) for task, _ in self.queue]
        first = len(self._order)
        self._flushing = True
        try:
            self._kick()
            by_id = {r.id: r for r in await asyncio.gather(*futures)}
        finally:
            self._flushing = False
        return [by_id[i] for i in self._order[first:] if i in by_id]

    async def run(self, tasks: Iterable[Task]) -> list[TaskResult]:
        """Replay ``tasks`` arriving at their ``at`` times; results in the order they left the queue."""
        pending = []
        first = len(self._order)
        for task in sorted(tasks, key=lambda t: t.at or 0.0):
            if task.at is not None and task.at > self.clock.now():
                await self.clock.asleep(task.at - self.clock.now())
            pending.append(asyncio.ensure_future(self.submit(task)))
        by_id = {r.id: r for r in await asyncio.gather(*pending)}
        return [by_id[i] for i in self._order[first:] if i in by_id]

    def _future(self, task_id: str) -> asyncio.Future[TaskResult]:
        if task_id not in self._waiters:
            self._waiters[task_id] = asyncio.get_running_loop().create_future()
        return self._waiters[task_id]

    def _kick(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
            self._slots = asyncio.Semaphore(self.config.concurrency)
        self._changed.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.ensure_future(self._dispatch())

    async def _dispatch(self) -> None:
        """Send batches while tasks wait: a full batch at once, a partial one after max_wait_s,
        and only while a call slot is free, so the queue (not the slots) decides who goes next."""
        assert self._changed is not None
        while len(self.queue):
            # the least time any task has left to wait (0 or less: due)
            left = 0.0 if self._full() else self._left()
            # due within a nanosecond counts as due: a tinier timeout would not move a clock
            # that reads hundreds of seconds (float spacing), and the loop would spin
            due = left <= 1e-9
            busy = self._busy >= self.config.concurrency
            if not due or busy:
                self._changed.clear()
                timeout = None if busy else left
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
                continue
            batch = self._take(self.config.concurrency - self._busy)
            if self.bus is not None:
                self.bus.publish(Event(self.clock.now(), "metric", "batch_size", float(len(batch)),
                                       {"stage": "batching", "queued": len(self.queue)}))
            job = asyncio.ensure_future(self._finish(batch))
            self._running.add(job)
            job.add_done_callback(self._running.discard)
            await asyncio.sleep(0)   # let the batch take its slots before looking again

    def _full(self) -> bool:
        return self._flushing or len(self.queue) >= self.config.batch_size

    def _window(self, task: Task) -> float:
        """How long ``task`` may wait for others before it goes."""
        wait = self.config.batch_api_wait_s
        if wait is not None and self._path(task)[0] == "batch_api":
            return wait
        return self.config.max_wait_s

    def _left(self) -> float:
        now = self.clock.now()
        return min(self._window(task) - (now - enq) for task, enq in self.queue)

    def _take(self, free: int) -> list[tuple[Task, float]]:
        """The next batch that fits in ``free`` call slots: the rest wait in the queue, where a
        later urgent task can still pass them. A grouped call takes one slot for up to
        ``group_max`` tasks, a Message Batches task none, any other task one. Tasks still
        within their wait (``batch_api_wait_s``) stay, unless the queue holds a full batch."""
        batch: list[tuple[Task, float]] = []
        grouped: dict[str, int] = {}
        need = 0
        full, now = self._full(), self.clock.now()
        early: list[tuple[Task, float]] = []
        while len(self.queue) and len(batch) < self.config.batch_size:
            task, enq = self.queue.pop()
            if not full and now - enq < self._window(task) - 1e-9:
                early.append((task, enq))
                continue
            path, model = self._path(task)
            more = (0 if path == "batch_api" else
                    int(grouped.get(model, 0) % self.config.group_max == 0) if path == "grouped"
                    else 1)
            if batch and need + more > free:
                self.queue.push((task, enq), task.priority, at=enq)
                break
            if path == "grouped":
                grouped[model] = grouped.get(model, 0) + 1
            need += more
            batch.append((task, enq))
        for task, enq in early:
            self.queue.push((task, enq), task.priority, at=enq)
        self._order.extend(task.id for task, _ in batch)
        return batch

    def _path(self, task: Task) -> tuple[str, str]:
        """The path ``task`` takes and the model it goes to."""
        model = task.call.model if task.call is not None else task.model or self.models[task.type]
        if task.type not in TEXT_TYPES:
            return "parallel", model
        if task.priority == "low" and self.config.batch_api_for_low:
            return "batch_api", model
        return ("grouped" if self._groups(model) and self._plain(task) else "single"), model

    async def _finish(self, batch: list[tuple[Task, float]]) -> None:
        await self.process_batch(batch)   # each task's waiter heard as soon as it settled

    async def process_batch(self, batch: list[tuple[Task, float]]) -> list[TaskResult]:
        """Process one batch; return exactly one ``TaskResult`` per task, in batch order."""
        self.stats.batches += 1
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.concurrency)
        started = self.clock.now()
        done: dict[str, TaskResult] = {}

        def settle(task: Task, enq: float, path: str, result: Result | None = None,
                   error: BaseException | None = None, cost: float = 0.0) -> None:
            if task.id in done:  # a second outcome for one task would be a bug: keep the first
                return
            done[task.id] = TaskResult(task.id, task.priority, path, result, error, cost, enq,
                                       started, self.clock.now())
            # Its waiter hears at once: a task never waits for the slowest one of its batch.
            future = self._waiters.pop(task.id, None)
            if future is not None and not future.done():
                future.set_result(done[task.id])

        groups: dict[tuple[str, str, str], list[tuple[Task, float]]] = {}
        for task, enq in batch:
            path, model = self._path(task)
            groups.setdefault((path, task.type, model), []).append((task, enq))
        jobs, batch_job = [], []
        for (path, _type, model), items in groups.items():
            if path == "grouped":
                for i in range(0, len(items), self.config.group_max):
                    jobs.append(self._grouped(items[i:i + self.config.group_max], model, settle))
            elif path == "batch_api":  # one Message Batches job per batch, any mix of models
                batch_job.extend((t, e, model) for t, e in items)
            else:
                jobs.extend(self._single(t, e, model, path, settle) for t, e in items)
        if batch_job:
            jobs.append(self._batch_job(batch_job, settle))
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        crash = next((o for o in outcomes if isinstance(o, BaseException)), None)
        results = []
        for task, enq in batch:  # whatever went wrong above, no task leaves without an outcome
            if task.id not in done:
                settle(task, enq, self._path(task)[0],
                       error=crash or RuntimeError("task was not processed"))
            r = done[task.id]
            if r.ok:
                self.stats.succeeded += 1
            else:
                self.stats.failed += 1
            self.stats.by_path[r.path] = self.stats.by_path.get(r.path, 0) + 1
            results.append(r)
        return results

    @staticmethod
    def _plain(task: Task) -> bool:
        """Whether a task's call may be grouped: no system prompt of its own to keep."""
        return task.call is None or task.call.system is None

    async def _slot(self):
        assert self._slots is not None
        await self._slots.acquire()
        self._busy += 1

    def _free(self) -> None:
        assert self._slots is not None
        self._busy -= 1
        self._slots.release()
        if self._changed is not None:
            self._changed.set()

    # --- the paths ------------------------------------------------------------------------
    def _call(self, task: Task, model: str, batch: bool = False) -> Call:
        if task.call is not None:
            return replace(task.call, batch=batch)
        return Call(model, task.prompt, max_tokens=task.max_tokens, batch=batch)

    async def _send(self, call: Call, *, slot: bool = True) -> Result:
        if self.sender is None:
            raise ConfigError("this BatchProcessor has no sender: pass one, or bind it to a run")
        if slot:   # Message Batches submissions take no slot: the API answers them later
            await self._slot()
        try:
            self.stats.provider_calls += 1
            result = await self.sender.asend(call)
        finally:
            if slot:
                self._free()
        self.stats.cost_usd += result.cost_usd
        return result

    async def _single(self, task: Task, enq: float, model: str, path: str, settle: Any) -> None:
        try:
            if path == "parallel":
                self.stats.parallel_calls += 1
            else:
                self.stats.single_calls += 1
            result = await self._send(self._call(task, model))
        except Exception as error:  # each task owns its error; the batch goes on
            settle(task, enq, path, error=error)
        else:
            settle(task, enq, path, result=result, cost=result.cost_usd)

    async def _batch_job(self, items: list[tuple[Task, float, str]], settle: Any) -> None:
        """One Message Batches job: each request runs in its own time, but the API serves the
        results only once the whole job has ended, so every task hears at the slowest one's end
        (as ``cfopt serve``'s batches do). An errored request comes back then too."""
        self.stats.batch_api_jobs += 1
        self.stats.batch_api_calls += len(items)
        outs = await asyncio.gather(
            *(self._send(self._call(t, model, batch=True), slot=False) for t, _, model in items),
            return_exceptions=True)
        cancelled = None
        for (task, enq, _), out in zip(items, outs):
            if isinstance(out, BaseException):  # each task owns its error; the job goes on
                settle(task, enq, "batch_api", error=out)
                if not isinstance(out, Exception) and cancelled is None:
                    cancelled = out   # passed on once every task of the job has its outcome
            else:
                settle(task, enq, "batch_api", result=out, cost=out.cost_usd)
        if cancelled is not None:
            raise cancelled

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
        # No answer of a grouped reply is usable before the whole array is in and split.
        pieces = answer_pieces(replace(result, first_content_s=result.latency_s), answers)
        for (task, enq), piece in zip(items, pieces):
            settle(task, enq, "grouped", cost=piece.cost_usd, result=piece)
