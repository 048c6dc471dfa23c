"""The BatchProcessor's vocabulary: a task, its one result, the switches and the running totals.

``Task`` checks its fields when made, so a bad one fails where it is written, not in a batch:

>>> Task("t-1", "text", "hello").priority
'medium'
>>> Task("t-2", "text", "hello", max_tokens=0)
Traceback (most recent call last):
...
cfopt.errors.ConfigError: Task.max_tokens must be a positive integer, got 0
>>> BatchConfig(batch_size=10).group_max
10
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..workload import TEXT_TYPES
from ..providers.base import Call, Result, Sender

__all__ = ["BatchConfig", "Task", "TaskResult", "BatchStats", "DEFAULT_MODELS", "TEXT_TYPES",
           "Sender"]

DEFAULT_MODELS = {"text": "claude-haiku-5-5", "analysis": "claude-haiku-5-5",
                  "image": "flux_schnell", "video": "video_5s", "audio": "audio_minute",
                  "photo": "unsplash-search"}


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """How the processor batches: sizes, waits, aging, concurrency and which paths it uses."""

    batch_size: int = 25            # tasks taken from the queue at a time
    max_wait_s: float = 0.5         # a partial batch goes once its oldest task waited this long
    aging_s: float | None = 30.0    # a waiting task climbs a priority level per aging_s
    # Calls out at once (grouped, single and media calls, all batches together). While every
    # slot is busy, tasks wait in the aged-priority queue, so a later urgent task still goes
    # first. Message Batches submissions take no slot: they are answered later, by the API.
    concurrency: int = 8
    group_max: int = 10             # prompts per grouped text call
    group_text: bool = True
    # A model that keeps ignoring the grouped format doubles the calls: after this many replies
    # in a row that do not split, its text goes one call per task.
    group_give_up: int = 3
    batch_api_for_low: bool = True  # low-priority text through the Message Batches API
    # Message Batches work may wait longer than the rest before it goes: its job takes minutes
    # anyway, and meanwhile an urgent request for the same work can take it over (the
    # pipeline's ``take_over``: one call instead of two). None: ``max_wait_s``, as any task.
    batch_api_wait_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "concurrency", "group_max", "group_give_up"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_s < 0 or (self.aging_s is not None and self.aging_s <= 0):
            raise ConfigError("max_wait_s must be >= 0 and aging_s positive or None")
        if self.batch_api_wait_s is not None and not self.batch_api_wait_s >= 0:
            raise ConfigError(f"batch_api_wait_s must be >= 0 or None, got {self.batch_api_wait_s!r}")


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work: what to make, how urgent, with which model (None: the type's default)."""

    id: str
    type: str
    prompt: str
    priority: str = "medium"
    model: str | None = None
    max_tokens: int | None = None
    at: float | None = None         # when it arrives, for ``run``; None: at once
    call: Call | None = None        # the exact call to make (the pipeline's); None: built from the fields

    def __post_init__(self) -> None:
        for name in ("id", "type", "prompt", "priority"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"Task.{name} must be a string, got {getattr(self, name)!r}")
        if self.call is not None and not isinstance(self.call, Call):
            raise ConfigError(f"Task.call must be a Call or None, got {type(self.call).__name__}")
        if self.model is not None and not isinstance(self.model, str):
            raise ConfigError(f"Task.model must be a string or None, got {self.model!r}")
        if self.max_tokens is not None and (isinstance(self.max_tokens, bool) or
                                            not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise ConfigError(f"Task.max_tokens must be a positive integer, got {self.max_tokens!r}")

    @classmethod
    def from_request(cls, request: Any, model: str | None = None, index: int = 0) -> "Task":
        """A task for a workload ``Request`` (its ``intent`` is never read)."""
        return cls(request.id or f"req-{index}", request.type, request.prompt, request.priority,
                   model, request.max_tokens, request.t)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The one outcome of one task: ``result`` or ``error``."""

    id: str
    priority: str
    path: str                       # grouped | single | batch_api | parallel | taken_over
    result: Result | None = None
    error: BaseException | None = None
    cost_usd: float = 0.0           # this task's share of what its calls cost
    enqueued_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def queued_s(self) -> float:
        return self.started_at - self.enqueued_at


@dataclass
class BatchStats:
    """What the processor did; ``cost_usd`` counts every provider call once."""

    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    batches: int = 0
    provider_calls: int = 0
    grouped_calls: int = 0
    split_failures: int = 0         # grouped calls whose answer did not split, or that failed
    grouping_stopped: list[str] = field(default_factory=list)   # models no longer grouped
    single_calls: int = 0
    batch_api_calls: int = 0        # requests sent through Message Batches
    batch_api_jobs: int = 0         # the jobs they went in (one per batch that had any)
    parallel_calls: int = 0
    queued_max: int = 0             # the longest the queue got
    taken_over: int = 0             # tasks answered by another call for the same work (``take_over``)
    cost_usd: float = 0.0
    by_path: dict[str, int] = field(default_factory=dict)
