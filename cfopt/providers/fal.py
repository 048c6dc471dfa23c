"""Simulated fal.ai: FLUX images, Luma Ray 2 video (two models) and audio by the minute.

fal runs requests through a queue: time = queue wait + generation, each the catalog's median
times a seeded log-normal factor (``jitter``), times ``faults.slowdown``. The media arrives
whole, so ``first_content_s == latency_s``.

- Images (``flux_schnell``, ``flux_dev``): generation = ``gen_s_per_mp`` x megapixels (exact)
  x steps / ``default_steps``. Billed megapixels round up per image (``cfopt.pricing.megapixels``),
  so one usage prices under both profiles: per image (exercise) or per megapixel (list-2026).
- Video (``video_5s`` = Luma Ray 2, ``video_flash`` = Ray 2 Flash): one clip of
  ``Call.duration_s`` seconds (5 or 9) at ``Call.resolution`` (540p, 720p or 1080p), the model's
  defaults when not given. Usage ``videos``, ``video_seconds`` and ``video_clips`` ((seconds,
  resolution) per clip: the list profile prices a clip by both, as fal does). Generation time
  and bytes scale with seconds and with the pixel count (720p = (720/540)^2 of 540p).
- Audio (``audio_minute``): ``Call.minutes`` of audio, generation by the minute.

The media URL (``https://fal.media/files/<hash>.jpg|mp4|mp3``) and byte size are fixed by the
request (seed, model, prompt, size, steps, generation seed): fal itself draws a random
generation seed when none is given; cfopt derives it from the request so that replays agree.
fal's per-user concurrency limits are not modelled.

>>> from cfopt.providers.base import Call
>>> fal = FalProvider(seed=0)
>>> r = fal.send(Call("flux_dev", "a red fox in snow", width=1920, height=1080))
>>> r.usage.images, r.usage.megapixels, r.cost_usd     # list prices: per megapixel
(1, 3, 0.075)
>>> fal.send(Call("video_5s", "waves", duration_s=9, resolution="1080p")).cost_usd
4.0
>>> r.media_url.startswith("https://fal.media/files/") and r.media_url.endswith(".jpg")
True
"""
from __future__ import annotations

import random
import threading

from ..clock import Clock
from ..errors import InvalidRequest, NotFound
from ..pricing import ModelInfo, PriceCatalog, Usage, megapixels
from .base import Call, Faults, Provider, Result
from .sampling import draw_fault, jitter, short_id, stable_hash, unit_interval

__all__ = ["FalProvider", "MAX_IMAGE_SIDE", "MAX_AUDIO_MINUTES"]

MAX_IMAGE_SIDE = 4096      # px; fal's FLUX endpoints accept custom sizes, cfopt keeps them sane
MIN_IMAGE_SIDE = 64
MAX_AUDIO_MINUTES = 10.0
_LINES = {"540p": 540, "720p": 720, "1080p": 1080}
_EXT = {"image": "jpg", "video": "mp4", "audio": "mp3"}


class FalProvider(Provider):
    """fal.ai media models on a simulated queue."""

    name = "fal"
    kinds = ("image", "video", "audio")

    def __init__(self, *, seed: int = 0, clock: Clock | None = None,
                 catalog: PriceCatalog | None = None, faults: Faults | None = None) -> None:
        super().__init__(seed=seed, clock=clock, catalog=catalog, faults=faults)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._calls = 0

    def model_info(self, name: str) -> ModelInfo:
        """The fal model called ``name``; ``NotFound`` names the known ones."""
        ours = [m for m in self.catalog.models.values() if m.provider == self.name]
        for m in ours:
            if name == m.id or name in m.aliases:
                return m
        raise NotFound(f"model {name!r} not found; known fal models: "
                       f"{', '.join(m.id for m in ours)}", provider=self.name, model=str(name))

    def simulate(self, call: Call) -> Result:
        info = self.model_info(call.model)
        work, usage, size, params = self._plan(info, call)
        with self._lock:
            now = self.clock.now()
            self._calls += 1
            n = self._calls
            fault = draw_fault(self._rng, self.faults, provider=self.name, model=info.id)
            queue = info["queue_s"] * jitter(self._rng, info["jitter"])
            gen = work * jitter(self._rng, info["jitter"])
        if fault is not None:
            raise fault
        latency = (queue + gen) * self.faults.slowdown
        digest = short_id(22, self.seed, info.id, call.prompt, *params)
        url = f"https://fal.media/files/{digest}.{_EXT[info.kind]}"
        rid = f"{stable_hash(self.seed, 'request', n):016x}{stable_hash(digest, n):016x}"
        return Result(
            provider=self.name, model=info.id, kind=info.kind, content=url, usage=usage,
            cost_usd=self.catalog.cost(info.id, usage), latency_s=latency,
            first_content_s=latency, started_at=now,
            request_id=f"{rid[:8]}-{rid[8:12]}-{rid[12:16]}-{rid[16:20]}-{rid[20:32]}",
            media_url=url, size_bytes=size,
            extra={"endpoint": info["endpoint"], "queue_s": queue * self.faults.slowdown,
                   **{k: v for k, v in zip(("width", "height", "steps", "seed", "minutes",
                                            "duration_s", "resolution"), params)
                      if v is not None}})

    def _plan(self, info: ModelInfo, call: Call) -> tuple[float, Usage, int, tuple]:
        """(median generation seconds, usage, bytes, the parameters that fix the output)."""
        bad = dict(provider=self.name, model=info.id)
        if info.kind == "image":
            w, h = call.width, call.height
            for side in (w, h):
                if not isinstance(side, int) or not MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE:
                    raise InvalidRequest(f"image width and height must be integers from "
                                         f"{MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE}, got {w}x{h}", **bad)
            default = info["default_steps"]
            steps = default if call.steps is None else call.steps
            if not isinstance(steps, int) or not 1 <= steps <= info["max_steps"]:
                raise InvalidRequest(f"steps must be an integer from 1 to {info['max_steps']} "
                                     f"for {info.id}, got {steps!r}", **bad)
            gen_seed = call.seed if call.seed is not None else \
                int(unit_interval(self.seed, info.id, call.prompt, w, h, steps) * 2**31)
            mp = w * h / 1e6
            params = (w, h, steps, gen_seed)
            usage = Usage(images=1, megapixels=megapixels(w, h))
            return (info["gen_s_per_mp"] * mp * steps / default, usage,
                    self._bytes(info["bytes_per_mp"] * mp, info.id, call.prompt, *params), params)
        if info.kind == "video":
            seconds = info["default_duration"] if call.duration_s is None else call.duration_s
            res = info["default_resolution"] if call.resolution is None else call.resolution
            if seconds not in info["durations"] or isinstance(seconds, bool):
                raise InvalidRequest(f"duration must be one of {info['durations']} seconds for "
                                     f"{info.id}, got {seconds!r}", **bad)
            if res not in info["resolutions"]:
                raise InvalidRequest(f"resolution must be one of {', '.join(info['resolutions'])} "
                                     f"for {info.id}, got {res!r}", **bad)
            scale = seconds / info["default_duration"] * (
                _LINES[res] / _LINES[info["default_resolution"]]) ** 2
            params = (None, None, None, call.seed, None, seconds, res)
            usage = Usage(videos=1, video_seconds=float(seconds), video_clips=((seconds, res),))
            return (info["gen_s"] * scale, usage,
                    self._bytes(info["bytes_per_s"] * info["default_duration"] * scale, info.id,
                                call.prompt, *params), params)
        minutes = call.minutes
        if not isinstance(minutes, (int, float)) or not 0 < minutes <= MAX_AUDIO_MINUTES:
            raise InvalidRequest(f"minutes must be more than 0 and at most {MAX_AUDIO_MINUTES:g}, "
                                 f"got {minutes!r}", **bad)
        params = (None, None, None, call.seed, float(minutes))
        usage = Usage(audio_minutes=float(minutes))
        return (info["gen_s_per_minute"] * minutes, usage,
                self._bytes(info["bytes_per_minute"] * minutes, info.id, call.prompt, *params), params)

    def _bytes(self, typical: float, *request: object) -> int:
        # Compressed media size varies with content: +-15% around the catalog's typical figure.
        return max(1, round(typical * (0.85 + 0.30 * unit_interval(self.seed, "bytes", *request))))
