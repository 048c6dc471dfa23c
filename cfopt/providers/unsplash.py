"""Simulated Unsplash photo search (``GET /search/photos``): fast, free up to a limit per hour.

``Call.prompt`` is the query and ``Call.per_page`` the page size (1 to 30, as on the API).
The content is JSON shaped like Unsplash's response: ``total``, ``total_pages`` and ``results``,
each with ``id``, ``description``, ``alt_description``, ``urls`` (raw, full, regular, small,
thumb: hot-link URLs on images.unsplash.com, which Unsplash's terms require instead of
re-hosting), ``user`` (name, username) and ``links`` (html, download_location). The same seed
and query always give the same page.

The hourly allowance is counted per clock hour (``[k*3600, (k+1)*3600)`` on the injected
clock) and reset when the hour rolls, like Unsplash's ``X-Ratelimit-Remaining``:

- profile ``exercise``: past ``free_per_hour`` (50) a search still succeeds, and is billed
  (``usage.billable_requests=1``, ``price_after_free`` each);
- profile ``list-2026``: ``hard_limit_per_hour`` (5,000, an approved production app; a demo app
  gets 50) refuses the search past it with ``RateLimited`` until the hour ends (``retry_after`` = seconds left in the hour). The
  real API answers this with HTTP **403** and the body "Rate Limit Exceeded", not 429; cfopt
  keeps one error class for "too many requests" and records the real status here.

``rate_limit_headers()`` gives ``X-Ratelimit-Limit`` and ``X-Ratelimit-Remaining`` for a server.

>>> import json
>>> from cfopt.providers.base import Call
>>> unsplash = UnsplashProvider(seed=0)
>>> page = json.loads(unsplash.send(Call("unsplash-search", "mountain lake", per_page=3)).content)
>>> len(page["results"]), page["results"][0]["urls"]["small"][:34]
(3, 'https://images.unsplash.com/photo-')
>>> unsplash.rate_limit_headers()
{'X-Ratelimit-Limit': '5000', 'X-Ratelimit-Remaining': '4999'}
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from functools import lru_cache

from ..clock import Clock
from ..errors import InvalidRequest, NotFound, RateLimited
from ..pricing import ModelInfo, PriceCatalog, Usage
from .base import Call, Faults, Provider, Result
from .sampling import base62, draw_fault, jitter, short_id, stable_hash

__all__ = ["UnsplashProvider", "MAX_PER_PAGE", "search_page"]

MAX_PER_PAGE = 30
_HOUR = 3600.0
_SCENES = ("at sunrise", "in soft light", "from above", "close-up", "on a wooden table",
           "in the city", "in nature", "in black and white", "with a blurred background",
           "at golden hour", "on a white background", "in winter")
_FIRST = ("Anna", "Marco", "Yuki", "Lena", "Tom", "Priya", "Jonas", "Sofia", "Ravi", "Chloe",
          "Mateo", "Ingrid", "Kwame", "Elif", "Noah", "Mei")
_LAST = ("Berg", "Rossi", "Tanaka", "Novak", "Hughes", "Patel", "Lindqvist", "Garcia", "Rao",
         "Martin", "Silva", "Olsen", "Mensah", "Kaya", "Fischer", "Chen")
_COLORS = ("#0c2626", "#d9d9d9", "#738c8c", "#f3e0c0", "#262626", "#a6c0d9", "#40590c", "#8c5940")


def _photo(seed: int, query: str, i: int) -> dict:
    """Search result ``i`` for ``query``: every figure read from one 64-byte digest."""
    d = hashlib.blake2b(repr((seed, query, i)).encode("utf-8")).digest()
    pid, ixid = base62(d[:11]), base62(d[11:43])
    x = int.from_bytes(d[43:], "big")  # 168 bits left to draw the rest from

    def pick(options):
        nonlocal x
        x, r = divmod(x, len(options))
        return options[r]
    stamp, shape = pick(range(1_400_000_000_000, 1_730_000_000_000)), pick(range(2**48))
    first, last, scene = pick(_FIRST), pick(_LAST), pick(_SCENES)
    username = f"{first}{last}{pick(range(10, 99))}".lower()
    width = pick((4000, 5472, 6000, 3648))
    raw = f"https://images.unsplash.com/photo-{stamp}-{shape:012x}?ixid={ixid}&ixlib=rb-4.1.0"
    q = query.strip()
    return {
        "id": pid,
        "width": width,
        "height": pick((width * 2 // 3, width * 3 // 4, width * 3 // 2)),
        "color": pick(_COLORS),
        "description": f"{q.capitalize()} {scene}" if pick(range(5)) < 3 else None,
        "alt_description": f"a photo of {q.lower()} {scene}",
        "urls": {"raw": raw,
                 "full": raw + "&crop=entropy&cs=srgb&fm=jpg&q=85",
                 "regular": raw + "&cs=tinysrgb&fit=max&fm=jpg&q=80&w=1080",
                 "small": raw + "&cs=tinysrgb&fit=max&fm=jpg&q=80&w=400",
                 "thumb": raw + "&cs=tinysrgb&fit=max&fm=jpg&q=80&w=200"},
        "likes": pick(range(2000)),
        "user": {"id": short_id(11, seed, "user", username), "username": username,
                 "name": f"{first} {last}", "links": {"html": f"https://unsplash.com/@{username}"}},
        "links": {"self": f"https://api.unsplash.com/photos/{pid}",
                  "html": f"https://unsplash.com/photos/{pid}",
                  "download": f"https://unsplash.com/photos/{pid}/download?ixid={ixid}",
                  "download_location": f"https://api.unsplash.com/photos/{pid}/download?ixid={ixid}"},
    }


@lru_cache(maxsize=4096)
def search_page(seed: int, query: str, per_page: int) -> str:
    """The JSON of page 1 of the search for ``query``: fixed by (seed, query, per_page)."""
    key = query.strip().lower()
    h = stable_hash(seed, "unsplash", key)
    total = int(10 ** (1 + 3.5 * (h % 10_000) / 10_000))  # 10 to ~31,600 matches
    results = [_photo(seed, key, i) for i in range(min(per_page, total))]
    return json.dumps({"total": total, "total_pages": math.ceil(total / per_page),
                       "results": results}, separators=(",", ":"))


class UnsplashProvider(Provider):
    """Unsplash photo search with the hourly allowance of the catalog's profile."""

    name = "unsplash"
    kinds = ("photo",)

    def __init__(self, *, seed: int = 0, clock: Clock | None = None,
                 catalog: PriceCatalog | None = None, faults: Faults | None = None) -> None:
        super().__init__(seed=seed, clock=clock, catalog=catalog, faults=faults)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._hour = -1       # index of the clock hour being counted
        self._used = 0        # searches counted in that hour

    def model_info(self, name: str) -> ModelInfo:
        """The photo-search model called ``name``; ``NotFound`` names the known ones."""
        ours = [m for m in self.catalog.models.values() if m.provider == self.name]
        for m in ours:
            if name == m.id or name in m.aliases:
                return m
        raise NotFound(f"model {name!r} not found; known Unsplash models: "
                       f"{', '.join(m.id for m in ours)}", provider=self.name, model=str(name))

    @property
    def limit_per_hour(self) -> int:
        """The hard limit if the profile has one, else the free allowance."""
        return self.catalog.photo.hard_limit_per_hour or self.catalog.photo.free_per_hour

    def _roll(self, now: float) -> None:
        hour = math.floor(now / _HOUR)
        if hour != self._hour:
            self._hour, self._used = hour, 0

    def remaining(self) -> int:
        """Searches left in this clock hour (free ones, or allowed ones under a hard limit)."""
        with self._lock:
            self._roll(self.clock.now())
            return max(0, self.limit_per_hour - self._used)

    def rate_limit_headers(self) -> dict[str, str]:
        """The ``X-Ratelimit-*`` headers Unsplash would send now."""
        return {"X-Ratelimit-Limit": str(self.limit_per_hour),
                "X-Ratelimit-Remaining": str(self.remaining())}

    def simulate(self, call: Call) -> Result:
        info = self.model_info(call.model)
        if not isinstance(call.per_page, int) or not 1 <= call.per_page <= MAX_PER_PAGE:
            raise InvalidRequest(f"per_page must be an integer from 1 to {MAX_PER_PAGE}, "
                                 f"got {call.per_page!r}", provider=self.name, model=info.id)
        photo = self.catalog.photo
        with self._lock:
            now = self.clock.now()
            self._roll(now)
            if photo.hard_limit_per_hour and self._used >= photo.hard_limit_per_hour:
                wait = (self._hour + 1) * _HOUR - now
                raise RateLimited(f"Rate Limit Exceeded: {photo.hard_limit_per_hour} searches per "
                                  f"hour used; the allowance resets in {wait:.0f} s",
                                  retry_after=wait, after_s=info["latency_s"] * self.faults.slowdown,
                                  provider=self.name, model=info.id)
            self._used += 1
            billable = int(self._used > photo.free_per_hour)
            remaining = max(0, self.limit_per_hour - self._used)
            rid = short_id(16, self.seed, "search", self._hour, self._used)
            fault = draw_fault(self._rng, self.faults, provider=self.name, model=info.id)
            latency = info["latency_s"] * jitter(self._rng, info["jitter"]) * self.faults.slowdown
        if fault is not None:
            raise fault
        usage = Usage(requests=1, billable_requests=billable)
        return Result(
            provider=self.name, model=info.id, kind="photo",
            content=search_page(self.seed, call.prompt, call.per_page), usage=usage,
            cost_usd=self.catalog.cost(info.id, usage), latency_s=latency,
            first_content_s=latency, started_at=now,
            request_id=rid,
            extra={"ratelimit_limit": self.limit_per_hour, "ratelimit_remaining": remaining})
