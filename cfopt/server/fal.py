"""fal.ai's queue API: submit a generation, poll its status, fetch its result.

    POST /fal/{endpoint}                          -> {request_id, status_url, response_url, ...}
    GET  /fal/{endpoint}/requests/{id}/status     -> {status: IN_QUEUE | IN_PROGRESS | COMPLETED}
    GET  /fal/{endpoint}/requests/{id}            -> the result: images, a video or an audio file
    PUT  /fal/{endpoint}/requests/{id}/cancel     -> 202 CANCELLATION_REQUESTED | 400 ALREADY_COMPLETED

``endpoint`` is the model's fal.ai path (``fal-ai/flux/dev``, as on ``queue.fal.run``) or its
catalog id (``flux_dev``). The simulated fal.ai decides the outcome at submission; the status
then follows the server's clock: in the queue for the queue wait, in progress while generating,
completed after the whole latency. A fault other than a rate limit shows as a completed request
whose result is the error, as on fal.ai; a rate limit refuses the submission with 429. Errors
use fal.ai's ``{"detail": ...}`` shape. Video takes ``duration`` ("5s"/"9s" or 5/9) and
``resolution`` ("540p", "720p", "1080p"), and is priced by both. A request still in the queue
can be canceled (``cancel_url``): it is not billed and its result answers 400; one already
running or done answers 400 ``ALREADY_COMPLETED``, as on fal.ai.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ConfigError, InvalidRequest, ProviderError
from ..pricing import ModelInfo
from ..providers.base import Call, Result
from .state import ServerState
from .wire import WireError, provider_error, read_json, require_key

__all__ = ["FalJob", "submit", "status", "result", "cancel", "routes", "IMAGE_SIZES"]

# fal.ai's named image sizes (width, height).
IMAGE_SIZES = {"square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
               "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768),
               "landscape_16_9": (1024, 576)}
_CONTENT_TYPES = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg"}


@dataclass
class FalJob:
    """A submitted request: when it leaves the queue and completes, and its outcome."""

    request_id: str
    endpoint: str
    prompt: str
    submitted_at: float
    started_at: float
    done_at: float
    result: Result | None = None
    error: WireError | None = None
    canceled: bool = False

    def status(self, now: float) -> str:
        if self.canceled or now >= self.done_at:
            return "COMPLETED"
        return "IN_PROGRESS" if now >= self.started_at else "IN_QUEUE"


def _bad(message: str, status: int = 422) -> WireError:
    return WireError(status, "invalid_request_error", message, style="fal")


def _model(state: ServerState, endpoint: str) -> ModelInfo:
    for info in state.providers.fal.catalog.models.values():
        if info.provider == "fal" and endpoint in (info.id, info.figures.get("endpoint"), *info.aliases):
            return info
    raise WireError(404, "not_found_error", f"application {endpoint!r} not found", style="fal")


def _size(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("image_size")
    if size is None:
        return Call.__dataclass_fields__["width"].default, Call.__dataclass_fields__["height"].default
    if isinstance(size, str):
        if size not in IMAGE_SIZES:
            raise _bad(f"image_size: one of {', '.join(IMAGE_SIZES)} or {{width, height}}")
        return IMAGE_SIZES[size]
    if isinstance(size, dict) and all(type(size.get(k)) is int for k in ("width", "height")):
        return size["width"], size["height"]  # the simulated fal.ai checks the range
    raise _bad("image_size: width and height must be integers")


def _call(info: ModelInfo, body: Any) -> Call:
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _bad("prompt: field required")
    kw: dict[str, Any] = {}
    if info.kind == "image":
        kw["width"], kw["height"] = _size(body)
        for field, name in (("num_inference_steps", "steps"), ("seed", "seed")):
            if body.get(field) is not None:
                if type(body[field]) is not int or body[field] < 0:
                    raise _bad(f"{field}: must be a non-negative integer")
                kw[name] = body[field]
    elif info.kind == "video":
        duration = body.get("duration")
        if duration is not None:
            text = str(duration).removesuffix("s") if isinstance(duration, (str, int)) else ""
            if isinstance(duration, bool) or not text.isdigit():
                raise _bad("duration: one of '5s', '9s'")
            kw["duration_s"] = int(text)
        if body.get("resolution") is not None:
            if not isinstance(body["resolution"], str):
                raise _bad("resolution: one of '540p', '720p', '1080p'")
            kw["resolution"] = body["resolution"]
    elif info.kind == "audio" and body.get("seconds_total") is not None:
        seconds = body["seconds_total"]
        if not isinstance(seconds, (int, float)) or not 1 <= seconds <= 600:
            raise _bad("seconds_total: a number of seconds from 1 to 600")
        kw["minutes"] = seconds / 60
    try:
        return Call(model=info.id, prompt=prompt, **kw)
    except ConfigError as e:
        raise _bad(str(e)) from None


def _urls(request: Request, endpoint: str, request_id: str) -> dict[str, str]:
    base = f"{request.base_url}fal/{endpoint}/requests/{request_id}"
    return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}


def _job(state: ServerState, request: Request, endpoint: str) -> FalJob:
    job = state.fal_jobs.get(request.path_params["request_id"])
    if job is None or job.endpoint != endpoint:
        raise WireError(404, "not_found_error", "request not found", style="fal")
    return job


async def submit(request: Request) -> Response:
    """``POST /fal/{endpoint}``: queue a generation."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key, style="fal")
    endpoint = request.path_params["endpoint"]
    info = _model(state, endpoint)
    call = _call(info, await read_json(request, state.config.max_body_bytes, style="fal"))
    now, scale = state.clock.now(), state.config.time_scale
    try:
        planned = state.fault_plan.take("fal", model=info.id)
        if planned is not None:
            raise planned
        result = state.providers.fal.simulate(call)
    except InvalidRequest as e:   # fal answers a request it cannot run with 422
        raise _bad(str(e)) from None
    except ProviderError as e:
        wire = provider_error(e, time_scale=scale, style="fal")
        if e.status < 500:  # a bad request or a rate limit is refused at the door
            raise wire from None
        job = FalJob(state.new_uuid(), endpoint, call.prompt, now, now, now + e.after_s, error=wire)
    else:
        state.stats.add_cost(result.cost_usd)
        queue_s = min(result.latency_s, float(result.extra.get("queue_s", info.figures.get("queue_s", 0.0))))
        job = FalJob(result.request_id or state.new_uuid(), endpoint, call.prompt, now,
                     now + queue_s, now + result.latency_s, result=result)
    state.fal_jobs[job.request_id] = job
    return JSONResponse({"request_id": job.request_id, "status": "IN_QUEUE", "queue_position": 0,
                         **_urls(request, endpoint, job.request_id)})


async def status(request: Request) -> Response:
    """``GET /fal/{endpoint}/requests/{id}/status``."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key, style="fal")
    endpoint = request.path_params["endpoint"]
    job = _job(state, request, endpoint)
    now = state.clock.now()
    body: dict[str, Any] = {"status": job.status(now), "request_id": job.request_id,
                            **_urls(request, endpoint, job.request_id)}
    if body["status"] == "IN_QUEUE":
        body["queue_position"] = 0
    else:
        body["logs"] = None
    if body["status"] == "COMPLETED" and job.result is not None:
        body["metrics"] = {"inference_time": round(job.done_at - job.started_at, 6)}
    return JSONResponse(body)


def _media(r: Result) -> dict[str, Any]:
    name = (r.media_url or "").rsplit("/", 1)[-1]
    return {"url": r.media_url, "content_type": _CONTENT_TYPES[r.kind], "file_name": name,
            "file_size": r.size_bytes}


async def result(request: Request) -> Response:
    """``GET /fal/{endpoint}/requests/{id}``: the generated media, once completed."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key, style="fal")
    job = _job(state, request, request.path_params["endpoint"])
    if job.status(state.clock.now()) != "COMPLETED":
        raise _bad("Request is still in progress", status=400)
    if job.canceled:
        raise _bad("request was canceled", status=400)
    if job.error is not None:
        raise job.error
    r = job.result
    assert r is not None
    if r.kind == "image":
        w, h = r.extra.get("width", 1024), r.extra.get("height", 1024)
        body: dict[str, Any] = {
            "images": [{"url": r.media_url, "width": w, "height": h,
                        "content_type": _CONTENT_TYPES["image"], "file_size": r.size_bytes}],
            "timings": {"inference": round(job.done_at - job.started_at, 6)},
            "seed": r.extra.get("seed"), "has_nsfw_concepts": [False], "prompt": job.prompt}
    elif r.kind == "video":
        body = {"video": _media(r)}
    else:
        body = {"audio_file": _media(r)}
    return JSONResponse(body)


async def cancel(request: Request) -> Response:
    """``PUT /fal/{endpoint}/requests/{id}/cancel``: cancel a request still in the queue."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key, style="fal")
    job = _job(state, request, request.path_params["endpoint"])
    if job.canceled:
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)
    if job.status(state.clock.now()) != "IN_QUEUE":
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
    job.canceled = True
    if job.result is not None:   # never generated: never billed
        state.stats.add_cost(-job.result.cost_usd)
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)


def routes() -> list[Route]:
    """The fal.ai routes, most specific first."""
    return [Route("/fal/{endpoint:path}/requests/{request_id}/status", status, methods=["GET"]),
            Route("/fal/{endpoint:path}/requests/{request_id}/cancel", cancel, methods=["PUT"]),
            Route("/fal/{endpoint:path}/requests/{request_id}", result, methods=["GET"]),
            Route("/fal/{endpoint:path}", submit, methods=["POST"])]
