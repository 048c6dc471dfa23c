"""The Models API: ``GET /v1/models`` and ``GET /v1/models/{model_id}``.

It lists exactly the Claude models the simulated Messages API accepts, by their IDs (the SDK's
``client.models.list()`` reads this), newest first, cursor-paged like every Anthropic list
(``limit``, ``after_id``, ``before_id``). A model can be retrieved by its ID or by an alias the
real API accepts (``claude-haiku-4-5``); cfopt's nicknames ("haiku") are refused, as the real
API refuses them.

>>> from cfopt.providers import Providers
>>> [m["id"] for m in model_objects(Providers().catalog)][:3]
['claude-haiku-5-5', 'claude-sonnet-5-5', 'claude-opus-5-5']
"""
from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import NotFound
from ..pricing import ModelInfo, PriceCatalog
from .state import ServerState
from .wire import WireError, page, page_params, require_anthropic

__all__ = ["model_objects", "model_object", "list_models", "retrieve_model", "routes"]


def display_name(info: ModelInfo) -> str:
    """``claude-haiku-4-5-20251001`` -> ``Claude Haiku 4.5``."""
    parts = re.sub(r"-\d{8}$", "", info.id).split("-")
    return " ".join([p.capitalize() for p in parts if not p.isdigit()] + [".".join(p for p in parts if p.isdigit())])


def model_object(info: ModelInfo) -> dict[str, Any]:
    """One model in the Models API's shape (with the limits the API also reports)."""
    return {"type": "model", "id": info.id, "display_name": display_name(info),
            "created_at": f"{info['released']}T00:00:00Z",
            "max_input_tokens": info["context_window"], "max_tokens": info["max_output_tokens"]}


def model_objects(catalog: PriceCatalog) -> list[dict[str, Any]]:
    """Every Claude model the simulated API accepts, newest release first."""
    text = [m for m in catalog.models.values() if m.kind == "text"]
    return [model_object(m) for m in sorted(text, key=lambda m: (m["released"], m.id), reverse=True)]


async def list_models(request: Request) -> Response:
    """``GET /v1/models``."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    limit, after, before = page_params(request)
    items = model_objects(state.providers.catalog)
    return JSONResponse(page(items, [m["id"] for m in items], limit, after, before))


async def retrieve_model(request: Request) -> Response:
    """``GET /v1/models/{model_id}``: by ID or by an alias the real API accepts."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    name = request.path_params["model_id"]
    try:
        info = state.providers.claude.model_info(name, api=True)
    except NotFound:
        raise WireError(404, "not_found_error", f"model: {name}") from None
    return JSONResponse(model_object(info))


def routes() -> list[Route]:
    return [Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"])]
