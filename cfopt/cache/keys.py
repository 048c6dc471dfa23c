"""Cache keys: a hash of everything that changes a provider's answer, under a tenant prefix.

A key is ``tenant:provider:model:digest``. The digest covers the exact model id (aliases are
resolved, so "haiku" and its full id share entries), the normalized prompt and every parameter
that changes the output. Parameters that change only price or delivery (``batch``,
``cache_system``) are left out, so a batched request can be served from an interactive one.
The readable prefix lets ``invalidate("acme:*")`` or ``"*:fal:flux_dev:*"`` select entries.

>>> from cfopt.providers.base import Call
>>> a = cache_key(Call("haiku", "Please write a haiku about cats."), tenant="acme")
>>> a == cache_key(Call("haiku", "write a haiku about CATS"), tenant="acme")
True
>>> a == cache_key(Call("haiku", "write a haiku about cats"), tenant="globex")
False
>>> a.split(":")[:3]
['acme', 'anthropic', 'claude-haiku-5-5']
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping

from ..errors import ConfigError
from ..pricing import PriceCatalog, load_catalog
from ..providers.base import DEFAULT_MAX_TOKENS, Call
from .normalize import normalize_prompt

__all__ = ["cache_key", "make_key", "output_params", "check_tenant"]

_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # no ':' or glob characters: prefixes stay exact


def check_tenant(tenant: str) -> str:
    """Return ``tenant`` if it can be a key prefix, else raise ``ConfigError``."""
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise ConfigError(f"tenant must be 1-64 letters, digits, '_', '.' or '-', got {tenant!r}")
    return tenant


def make_key(provider: str, model: str, prompt: str, params: Mapping[str, Any], *,
             tenant: str) -> str:
    """Return the cache key for one request: tenant, provider and model prefix, then a digest."""
    check_tenant(tenant)
    for name, value in (("provider", provider), ("model", model)):
        if not isinstance(value, str) or not value or ":" in value:
            raise ConfigError(f"{name} must be a non-empty string without ':', got {value!r}")
    body = {"tenant": tenant, "provider": provider, "model": model,
            "prompt": normalize_prompt(prompt),
            "params": dict(params)}
    try:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except TypeError as e:
        raise ConfigError(f"cache key parameters must be JSON values: {e}") from None
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
    return f"{tenant}:{provider}:{model}:{digest}"


def output_params(call: Call, kind: str) -> dict[str, Any]:
    """Return the parameters of ``call`` that change the output of a ``kind`` model."""
    if kind == "text":
        # The system prompt is kept verbatim: its wording is an instruction, not a request.
        return {"max_tokens": call.max_tokens or DEFAULT_MAX_TOKENS, "system": call.system}
    if kind in ("image", "video"):
        return {"width": call.width, "height": call.height, "steps": call.steps, "seed": call.seed}
    if kind == "audio":
        return {"minutes": call.minutes, "seed": call.seed}
    if kind == "photo":
        return {"per_page": call.per_page}
    raise ConfigError(f"unknown model kind {kind!r}")


def cache_key(call: Call, *, tenant: str, catalog: PriceCatalog | None = None) -> str:
    """Return the cache key of ``call`` for ``tenant``."""
    info = (catalog or load_catalog()).model(call.model)
    return make_key(info.provider, info.id, call.prompt, output_params(call, info.kind),
                    tenant=tenant)
