"""Lazy loading: answer with what is ready now, hand out handles for the slow parts.

A ContentFlow page may need an article (seconds), a hero image (seconds), a video (a minute
or more) and a voice-over. Waiting for all of it makes the reader wait for the slowest part.
``LazyLoader.load(parts)`` sends every part at once, waits only for the *critical* ones and
returns a ``LazyContent`` whose deferred parts are ``Handle`` objects the caller can poll
(``handle.status``) or await (``await handle``). Deferred: video, audio, and images of at least
``large_image_mp`` megapixels (1 by default: a full-size 1024x1024 image, ~1 s to make even on
flux schnell and 180-250 kB to send; the page shows a placeholder until it is in). Smaller
images (thumbnails, icons) come back whole, with the critical parts.

>>> from cfopt.providers import Providers
>>> clock = VirtualClock()
>>> loader = LazyLoader(Providers(seed=0, clock=clock))
>>> async def page():
...     content = await loader.load({"article": Call("haiku", "Write a tagline for a bakery."),
...                                  "clip": Call("video_5s", "A baker at dawn")})
...     first = (content.status, sorted(content.ready), round(clock.now(), 1) < 5)
...     await content.complete()
...     return first, content.status, content.handles["clip"].status
>>> clock.run(page())
(('partial', ['article'], True), 'complete', 'complete')
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Generator, Mapping

from ..clock import Clock, VirtualClock
from ..pricing import PriceCatalog, load_catalog
from ..providers.base import Call, Result, Sender

__all__ = ["Handle", "LazyContent", "LazyLoader", "is_deferred", "DEFERRED_KINDS", "LARGE_IMAGE_MP"]

DEFERRED_KINDS = ("video", "audio")
LARGE_IMAGE_MP = 1.0   # megapixels (real pixels, not the billed, rounded-up figure)


def is_deferred(call: Call, catalog: PriceCatalog, large_image_mp: float = LARGE_IMAGE_MP) -> bool:
    """Say whether ``call`` is slow enough to go behind a handle.

    >>> cat = load_catalog()
    >>> [is_deferred(Call("flux_schnell", "a fox", width=w, height=h), cat) for w, h in
    ...  ((512, 512), (1024, 1024), (2048, 2048))]
    [False, True, True]
    >>> is_deferred(Call("video_5s", "waves"), cat), is_deferred(Call("haiku", "hi"), cat)
    (True, False)
    """
    kind = catalog.model(call.model).kind
    if kind in DEFERRED_KINDS:
        return True
    return kind == "image" and call.width * call.height >= large_image_mp * 1_000_000


class Handle:
    """A part still being made: poll ``status`` / ``done()``, or ``await`` it for the result."""

    def __init__(self, name: str, task: asyncio.Task, clock: Clock) -> None:
        self.name, self._task, self._clock = name, task, clock
        self.issued_at = clock.now()
        self.completed_at: float | None = None
        task.add_done_callback(self._finished)

    def __repr__(self) -> str:
        return f"Handle({self.name!r}, status={self.status!r})"

    def _finished(self, _task: asyncio.Task) -> None:
        self.completed_at = self._clock.now()

    @property
    def status(self) -> str:
        """'pending', 'complete' or 'failed'."""
        if not self._task.done():
            return "pending"
        return "failed" if self._task.cancelled() or self._task.exception() else "complete"

    def done(self) -> bool:
        return self._task.done()

    def result(self) -> Result:
        """The result now; raises if it failed, ``asyncio.InvalidStateError`` if not ready."""
        return self._task.result()

    def __await__(self) -> Generator[Any, None, Result]:
        return self._task.__await__()


@dataclass
class LazyContent:
    """What ``load`` returns: critical parts ready (or failed), deferred parts as handles."""

    ready: dict[str, Result] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    handles: dict[str, Handle] = field(default_factory=dict)
    first_content_at: float = 0.0      # when the caller got this object: its response time

    @property
    def status(self) -> str:
        """'partial' while a handle is pending, else 'complete'."""
        return "partial" if any(not h.done() for h in self.handles.values()) else "complete"

    async def complete(self) -> dict[str, Result | BaseException]:
        """Wait for every deferred part; return each part's result or error."""
        names = list(self.handles)
        outs = await asyncio.gather(*(self.handles[n] for n in names), return_exceptions=True)
        return {**self.ready, **self.errors, **dict(zip(names, outs))}


class LazyLoader:
    """Send all parts at once; return when the critical ones are in."""

    def __init__(self, sender: Sender, *, clock: Clock | None = None,
                 catalog: PriceCatalog | None = None, large_image_mp: float = LARGE_IMAGE_MP) -> None:
        self.sender = sender
        self.clock: Clock = clock or getattr(sender, "clock", None) or VirtualClock()
        self.catalog = catalog or getattr(sender, "catalog", None) or load_catalog()
        self.large_image_mp = large_image_mp

    async def load(self, parts: Mapping[str, Call]) -> LazyContent:
        """Start every part; wait for the critical ones only."""
        content = LazyContent()
        critical: dict[str, asyncio.Task] = {}
        for name, call in parts.items():
            task = asyncio.ensure_future(self.sender.asend(call))
            if is_deferred(call, self.catalog, self.large_image_mp):
                content.handles[name] = Handle(name, task, self.clock)
            else:
                critical[name] = task
        outs = await asyncio.gather(*critical.values(), return_exceptions=True)
        for name, out in zip(critical, outs):
            if isinstance(out, BaseException):
                content.errors[name] = out
            else:
                content.ready[name] = out
        content.first_content_at = self.clock.now()
        return content
