"""Unsplash's photo search: ``GET /unsplash/search/photos?query=...&per_page=...``.

The answer is the simulated Unsplash's JSON page with the ``X-Ratelimit-Limit`` and
``X-Ratelimit-Remaining`` headers. When a demo app's hourly limit is used up (profile
``list-2026``) the answer is what Unsplash sends: HTTP 403 with the plain-text body
"Rate Limit Exceeded". The key comes as ``Authorization: Client-ID KEY`` (or ``client_id=`` in
the query, which the access log never prints). The simulation serves the first page of results.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ProviderError, RateLimited
from ..providers.base import Call
from .state import ServerState
from .wire import WireError, provider_error, require_key

__all__ = ["search_photos", "routes", "MAX_PER_PAGE"]

MAX_PER_PAGE = 30  # Unsplash's own cap


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise WireError(400, "invalid_request_error", f"{name} must be an integer from 1 to {high}",
                        style="unsplash")
    return int(raw)


async def search_photos(request: Request) -> Response:
    """``GET /unsplash/search/photos``."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key, style="unsplash")
    query = request.query_params.get("query", "")
    if not query.strip():
        raise WireError(400, "invalid_request_error", "query is missing", style="unsplash")
    per_page = _int_param(request, "per_page", 10, MAX_PER_PAGE)
    if _int_param(request, "page", 1, 10_000) != 1:
        raise WireError(400, "invalid_request_error", "page: the simulation serves page 1 only",
                        style="unsplash")
    unsplash = state.providers.unsplash
    try:
        planned = state.fault_plan.take("unsplash", model="unsplash-search")
        if planned is not None:
            raise planned
        result = unsplash.simulate(Call("unsplash-search", query, per_page=per_page))
    except RateLimited as e:
        await state.clock.asleep(e.after_s)
        raise WireError(403, "rate_limit_error", "Rate Limit Exceeded", style="unsplash",
                        headers=unsplash.rate_limit_headers()) from None
    except ProviderError as e:
        await state.clock.asleep(e.after_s)
        raise provider_error(e, time_scale=state.config.time_scale, style="unsplash") from None
    state.stats.add_cost(result.cost_usd)
    await state.clock.asleep(result.latency_s)
    headers = {"X-Ratelimit-Limit": str(result.extra["ratelimit_limit"]),
               "X-Ratelimit-Remaining": str(result.extra["ratelimit_remaining"]),
               "cfopt-cost-usd": f"{result.cost_usd:.9f}"}
    return Response(result.content, media_type="application/json", headers=headers)


def routes() -> list[Route]:
    return [Route("/unsplash/search/photos", search_photos, methods=["GET"])]
