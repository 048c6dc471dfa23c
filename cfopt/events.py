"""Events: how every stage tells the monitor what happened, without knowing who listens.

A stage publishes small ``Event`` records on an ``EventBus``; the monitor, the dashboard and the
tests subscribe. Publishing to a bus nobody listens to costs almost nothing.

>>> bus = EventBus()
>>> seen = []
>>> unsubscribe = bus.subscribe(seen.append)
>>> bus.publish(Event(t=1.0, kind="alert", name="daily budget 50%", value=25.0))
>>> seen[0].name
'daily budget 50%'
>>> unsubscribe(); bus.publish(Event(t=2.0, kind="metric", name="cost_usd", value=0.01)); len(seen)
1
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Event", "EventBus"]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at clock time ``t``.

    ``kind`` groups events: "metric" (a measured value), "alert" (a threshold crossed),
    "anomaly" (a sudden shift), "error" (a request that ended without an answer), "retry" (one
    failed attempt that resilience will retry or route elsewhere). ``data`` holds the details.
    """

    t: float
    kind: str
    name: str
    value: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


class EventBus:
    """A synchronous publish/subscribe hub; a listener that raises never stops the others."""

    __slots__ = ("_listeners", "errors")

    def __init__(self) -> None:
        self._listeners: list[Callable[[Event], None]] = []
        self.errors = 0  # listener exceptions swallowed so far

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener`` with every event from now on; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return unsubscribe

    def publish(self, event: Event) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken dashboard must not break the pipeline
                self.errors += 1
