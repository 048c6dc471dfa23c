"""What the pipeline lends its stages for one run: ``RunEnv``.

A stage is configured when it is made (its knobs) and bound to a run by ``stage.bind(env)``
when the run starts: from the environment it takes the clock, the event bus, the price catalog
of the run's profile and the senders below it. A stage used on its own gets the same things
through its constructor, so the exercise's classes work inside and outside the pipeline.

The senders form one chain, bottom to top::

    providers  <-  counter      every call that reaches a provider is counted and priced here
               <-  transport    set by the latency stage: pooled connections, payload compression
               <-  sender       set by the batching stage: the transport with retries and fallbacks

Stages send through ``env.sender`` (read when they send, so the order of binding does not
matter); nothing above the counter can make a call the report does not see.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..clock import VirtualClock
from ..events import Event, EventBus
from ..pricing import PriceCatalog
from ..providers import Providers
from ..providers.base import Sender
from .network import CountingSender
from .types import PipelineConfig

__all__ = ["RunEnv", "STAGES", "STAGE_OF"]

STAGES = ("cost", "cache", "latency", "batching", "monitor")
# Which stage each switch of ``PipelineConfig`` belongs to.
STAGE_OF = {"routing": "cost", "compression": "cost", "cache": "cache", "dedup": "cache",
            "coalescing": "latency", "lazy": "latency", "pooling": "latency", "tying": "latency",
            "batching": "batching", "resilience": "batching"}


@dataclass
class RunEnv:
    """One run's shared things: clock, bus, catalog, providers, switches and the sender chain."""

    clock: VirtualClock
    bus: EventBus
    providers: Providers
    config: PipelineConfig
    seed: int
    tmp: str                          # a private folder, removed when the run ends
    counter: CountingSender
    disk_path: Any = None             # a cache file to share between runs (else one in tmp)
    redis_url: str | None = None
    redis_namespace: str | None = None
    transport: Sender | None = None   # set by the latency stage
    sender: Sender | None = None      # set by the batching stage
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def catalog(self) -> PriceCatalog:
        return self.providers.catalog

    def publish(self, stage: str, name: str, value: float | None = None, **data: Any) -> None:
        """Publish a metric event of ``stage`` at the clock's time."""
        self.bus.publish(Event(self.clock.now(), "metric", name, value, {"stage": stage, **data}))
