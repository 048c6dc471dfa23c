"""Simulated Claude: the Anthropic Messages API, offline, seeded, priced by the catalog.

One call: the request is checked (model, ``max_tokens``, context window), admitted by the
per-minute rate limits of the model's tier, maybe failed by an injected fault, then answered.

- **Usage.** ``input_tokens`` = cl100k tokens of the system prompt and the prompt plus a small
  framing constant (``framing_tokens`` in the catalog, 7: the role markers the API also counts).
  ``count_tokens(model, prompt, system)`` gives the same total, as Anthropic's
  ``/v1/messages/count_tokens`` does. The answer's length and words come from
  ``cfopt.providers.lengths`` and ``textgen`` (calibrated to the Azure LLM trace, Patel et
  al., "Splitwise", ISCA 2024) and are fixed by (seed, model, system, prompt); ``count_tokens(content)`` equals
  ``output_tokens`` exactly. An answer longer than ``max_tokens`` stops there:
  ``stop_reason="max_tokens"``, else ``"end_turn"``.
- **Grouped requests** (the format of ``cfopt.providers.grouped``: the grouped system prompt and
  a user message that is a JSON array of N prompts): the reply is a JSON array of N answers,
  each the answer that prompt would get alone, without a system prompt (same length, same words).
  Usage and latency are counted as for any call, on the whole reply: no answer is usable before
  the array is complete. ``max_tokens`` caps the whole reply: a longer one is cut there,
  mid-JSON, so it does not split. A share ``group_noncompliance`` of grouped replies (a catalog
  figure, a cfopt assumption; drawn from the seeded stream, one draw per grouped call) do not
  comply: a numbered list in prose instead of the array, or an array with one answer missing.
- **Latency.** TTFT and output speed are the catalog's figures at its ``speeds`` level
  (optimistic, median or pessimistic), each times a seeded log-normal factor (``jitter``), then
  times ``faults.slowdown``: latency = TTFT + output tokens / speed.
- **Stop sequences** (``Call.stop_sequences``): the answer stops where one first appears
  (``stop_reason="stop_sequence"``, the sequence in ``extra["stop_sequence"]``), and only the
  tokens before it are billed.
- **Prompt caching** (``Call.cache_system`` "5m" or "1h", or any leading part of the request
  with ``Call.cache_prefix`` and ``cache_ttl``: the server marks tools, system blocks, message
  blocks and top-level automatic caching this way): a prefix of at least the model's
  ``min_cacheable_tokens`` is written to the cache by the first call (billed as
  ``cache_creation_input_tokens`` or ``cache_creation_1h_input_tokens``) and read by later ones
  (``cache_read_input_tokens``); each hit refreshes the TTL, as Anthropic does. The entry becomes
  readable once the writing call's answer starts (its TTFT), so a burst of identical first calls
  all write, as on the real API. Shorter system prompts are simply not cached (no error, like
  the API). Assumption: a read skips prefill of the cached part, cutting TTFT by up to
  ``cache_read_ttft_cut`` (0.3) in proportion to the cached share of the input.
- **Batches** (``Call.batch``): billed with ``service_tier="batch"`` (the catalog halves the
  price); the answer arrives when the batch ends, drawn log-normal around ``batch_median_s``
  (15 min; Anthropic: "most batches finish in less than 1 hour"), capped at 24 h. Batch calls
  do not count against the Messages rate limits (the Batches API has its own queue limits, not
  modelled).
- **Rate limits**: see ``cfopt.providers.ratelimit`` (token buckets; OTPM charged ``max_tokens``
  at admission, the unused part given back when the answer ends). A request that can never fit
  a minute's limit is refused with ``InvalidRequest``.
- **Faults**: ``Faults`` rates, drawn from this provider's seeded stream (see ``sampling``).

>>> from cfopt.providers.base import Call
>>> claude = ClaudeProvider(seed=1)
>>> prompt = "Write a tagline for a bakery."
>>> r = claude.send(Call("haiku", prompt))
>>> r.model, r.stop_reason, r.usage.input_tokens == claude.count_tokens("haiku", prompt)
('claude-haiku-5-5', 'end_turn', True)
>>> from cfopt.tokens import count_tokens
>>> count_tokens(r.content) == r.usage.output_tokens
True
"""
from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from functools import lru_cache

from ..clock import Clock
from ..errors import ConfigError, InvalidRequest, NotFound, RateLimited
from ..pricing import ModelInfo, PriceCatalog, Usage
from ..tokens import count_tokens as _count, encoding
from .base import DEFAULT_MAX_TOKENS, Call, Faults, Provider, Result
from .grouped import answer_array, read_group
from .ratelimit import LimitStatus, RateLimiter
from .sampling import draw_fault, jitter, short_id, stable_hash
from .lengths import output_length
from .textgen import compose

__all__ = ["ClaudeProvider"]
_TTL_S = {"5m": 300.0, "1h": 3600.0}
_REFUSED_AFTER_S = 0.05  # a request refused by the rate limiter comes back at once
_CUT_MARGIN = 64         # tokens written past a grouped reply's max_tokens before cutting it


@dataclass(slots=True)
class _CacheEntry:
    readable_from: float
    expires_at: float


@lru_cache(maxsize=8192)
def _answer(seed: int, model: str, system: str | None, prompt: str, max_tokens: int,
            length_scale: float) -> tuple[str, int, str]:
    """(text, output tokens, stop reason) for a request: a pure function, so it is cached."""
    natural = output_length(seed, model, system, prompt, length_scale)
    n = min(natural, max_tokens)
    stop = "max_tokens" if natural > max_tokens else "end_turn"
    text = compose(n, prompt, key=stable_hash(seed, model, system, prompt),
                   complete=stop == "end_turn")
    return text, n, stop


@lru_cache(maxsize=1024)
def _grouped_answer(seed: int, model: str, prompts: tuple[str, ...], max_tokens: int,
                    length_scale: float, slip: float | None) -> tuple[str, int, str]:
    """(text, output tokens, stop reason) of a grouped request; a ``slip`` in [0, 1) does not comply."""
    if slip is not None and slip >= 0.5:  # one answer left out: the count is wrong
        drop = min(int((slip - 0.5) * 2 * len(prompts)), len(prompts) - 1)
        prompts = prompts[:drop] + prompts[drop + 1:]
    # Each answer as the prompt alone (no system prompt) gets it. An answer longer than the
    # whole reply may be is written only to a margin past max_tokens: the reply is cut before
    # that, and ``compose`` writes the same words as for the full answer until near its end.
    answers = [_answer(seed, model, None, p, max_tokens + _CUT_MARGIN, length_scale)[0]
               for p in prompts]
    if slip is None or slip >= 0.5:
        text = answer_array(answers)
    else:  # prose instead of JSON (the answers hold no brackets, so nothing to split)
        text = "Here are the answers:\n\n" + "\n\n".join(
            f"{i}. {a}" for i, a in enumerate(answers, 1))
    n = _count(text)
    if n <= max_tokens:
        return text, n, "end_turn"
    # Cut at max_tokens tokens. Re-counting a cut text can come out a token longer (the cut
    # re-merges differently), so step back until it fits: the count stays exact.
    ids = encoding().encode(text, disallowed_special=())
    for k in range(max_tokens, 0, -1):
        text = encoding().decode(ids[:k])
        n = _count(text)
        if n <= max_tokens:
            break
    return text, n, "max_tokens"


class ClaudeProvider(Provider):
    """Claude models (haiku, sonnet, opus) behind a simulated Anthropic Messages API."""

    name = "anthropic"
    kinds = ("text",)

    def __init__(self, *, seed: int = 0, clock: Clock | None = None,
                 catalog: PriceCatalog | None = None, faults: Faults | None = None,
                 group_noncompliance: float | None = None) -> None:
        super().__init__(seed=seed, clock=clock, catalog=catalog, faults=faults)
        figures = self.catalog.provider_figures.get("anthropic", {})
        self.framing_tokens = int(figures.get("framing_tokens", 7))
        self.group_noncompliance = (float(figures.get("group_noncompliance", 0.02))
                                    if group_noncompliance is None else group_noncompliance)
        self._ttft_cut = float(figures.get("cache_read_ttft_cut", 0.3))
        self._batch = (float(figures.get("batch_median_s", 900.0)),
                       float(figures.get("batch_sigma", 0.8)),
                       float(figures.get("batch_max_s", 86400.0)))
        self._rng = random.Random(seed)
        self._limiter = RateLimiter()
        self._cache: dict[tuple[str, str], _CacheEntry] = {}
        self._lock = threading.Lock()  # the live server calls from several threads
        self._calls = 0

    @property
    def group_noncompliance(self) -> float:
        """The share of grouped replies that do not comply (0 to 1; settable, e.g. in tests)."""
        return self._group_noncompliance

    @group_noncompliance.setter
    def group_noncompliance(self, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ConfigError(f"group_noncompliance must be a number from 0 to 1, got {rate!r}")
        self._group_noncompliance = float(rate)

    # --- lookups --------------------------------------------------------------------------
    def model_info(self, name: str, *, api: bool = False) -> ModelInfo:
        """The text model called ``name``; ``NotFound`` names the known ones.

        cfopt's nicknames ("haiku") resolve too, unless ``api`` is true: then only the names
        the real API accepts (``ModelInfo.api_names``) do, as on the wire.
        """
        text = [m for m in self.catalog.models.values() if m.kind == "text"]
        for m in text:
            if name in (m.api_names if api else (m.id, *m.aliases)):
                return m
        known = ", ".join(n for m in text for n in (m.api_names if api else (m.id, *m.aliases)))
        raise NotFound(f"model {name!r} not found; known Claude models: {known}",
                       provider=self.name, model=str(name))

    def count_tokens(self, model: str, prompt: str, system: str | None = None) -> int:
        """Input tokens of a request: what ``usage`` bills in total (uncached + cache writes + reads)."""
        self.model_info(model)
        return (_count(system) if system else 0) + _count(prompt) + self.framing_tokens

    def rate_limit_status(self, model: str) -> LimitStatus:
        """What remains now of the per-minute limits of ``model``'s tier."""
        info = self.model_info(model)
        with self._lock:
            return self._limiter.status(self.catalog.rate_class(info.id),
                                        self.catalog.rate_limit(info.id), self.clock.now())

    # --- one call -------------------------------------------------------------------------
    def simulate(self, call: Call) -> Result:
        info = self.model_info(call.model)
        max_tokens = DEFAULT_MAX_TOKENS if call.max_tokens is None else call.max_tokens
        if not isinstance(max_tokens, int) or not 1 <= max_tokens <= info["max_output_tokens"]:
            raise InvalidRequest(f"max_tokens must be an integer from 1 to {info['max_output_tokens']} "
                                 f"for {info.id}, got {max_tokens!r}", provider=self.name, model=info.id)
        system_t = _count(call.system) if call.system else 0
        prompt_t = _count(call.prompt) + self.framing_tokens
        if system_t + prompt_t + max_tokens > info["context_window"]:
            raise InvalidRequest(
                f"prompt is too long: {system_t + prompt_t} input tokens + max_tokens {max_tokens} "
                f"> {info['context_window']} context window of {info.id}",
                provider=self.name, model=info.id)
        prefix, prefix_t, ttl = self._cached_prefix(call, system_t, prompt_t)
        # Shorter prefixes are simply not cached (no error, like the API).
        cacheable = prefix is not None and prefix_t >= info["min_cacheable_tokens"]
        with self._lock:
            return self._run(call, info, max_tokens, system_t, prompt_t,
                             (prefix, prefix_t, ttl) if cacheable else None)

    @staticmethod
    def _cached_prefix(call: Call, system_t: int, prompt_t: int) -> tuple[str | None, int, str | None]:
        """(text, tokens, ttl) of the leading part of the request marked for prompt caching."""
        if call.cache_system:
            return (call.system, system_t, call.cache_system) if call.system else (None, 0, None)
        if call.cache_prefix is None:
            return None, 0, None
        full = f"{call.system}\n\n{call.prompt}" if call.system else call.prompt
        if not full.startswith(call.cache_prefix):
            raise InvalidRequest("the cached prefix is not a leading part of the request",
                                 provider="anthropic", model=call.model)
        # A prefix never counts more than the whole input (tokens merge across the cut).
        return call.cache_prefix, min(_count(call.cache_prefix), system_t + prompt_t), call.cache_ttl

    def _run(self, call: Call, info: ModelInfo, max_tokens: int, system_t: int, prompt_t: int,
             cached: tuple[str, int, str] | None) -> Result:
        now = self.clock.now()
        cacheable = cached is not None
        prefix, prefix_t, ttl = cached if cached is not None else ("", 0, None)
        key = (info.id, prefix)
        entry = self._cache.get(key) if cacheable else None
        hit = entry is not None and entry.readable_from <= now < entry.expires_at
        uncached = system_t + prompt_t - prefix_t
        tier = self.catalog.rate_class(info.id)
        group = read_group(call.system, call.prompt)
        if not call.batch:
            # ITPM counts uncached input and cache writes, not cache reads (cache-aware ITPM).
            counted = uncached + (prefix_t if cacheable and not hit else 0)
            wait, which = self._limiter.admit(tier, self.catalog.rate_limit(info.id), now=now,
                                              input_tokens=counted, max_tokens=max_tokens)
            if math.isinf(wait):
                raise InvalidRequest(f"request needs more {which.replace('_', ' ')} than the "
                                     f"{self.catalog.rate_tier} per-minute limit of {tier} allows",
                                     provider=self.name, model=info.id)
            if wait > 0:
                raise RateLimited(f"{info.id}: {which.replace('_', ' ')} per minute exceeded for "
                                  f"{self.catalog.rate_tier}; retry after {wait:.3f} s",
                                  retry_after=wait, after_s=_REFUSED_AFTER_S,
                                  provider=self.name, model=info.id)
        self._calls += 1
        fault = draw_fault(self._rng, self.faults, provider=self.name, model=info.id)
        ttft = info["ttft_s"] * jitter(self._rng, info["jitter"])
        speed = info["tokens_per_s"] / jitter(self._rng, info["jitter"])
        batch_s = min(self._batch[0] * jitter(self._rng, self._batch[1]), self._batch[2])
        slip = None
        if group is not None:  # one draw per grouped call whatever the rate: the stream stays aligned
            u = self._rng.random()
            slip = u / self.group_noncompliance if u < self.group_noncompliance else None
        if fault is not None:
            if not call.batch:  # a failed call used no output tokens
                self._limiter.settle(tier, at=now + fault.after_s, estimated=max_tokens, actual=0)
            raise fault

        scale = float(info.figures.get("length_scale", 1.0))
        if group is None:
            text, n_out, stop = _answer(self.seed, info.id, call.system, call.prompt, max_tokens, scale)
        else:
            text, n_out, stop = _grouped_answer(self.seed, info.id, tuple(group), max_tokens, scale, slip)
        stop_sequence = None
        if call.stop_sequences:
            text, n_out, stop, stop_sequence = _cut_at_stop(text, n_out, stop, call.stop_sequences)
        if hit:
            ttft *= 1 - self._ttft_cut * prefix_t / (system_t + prompt_t)
        slow = self.faults.slowdown
        first = ttft * slow
        latency = batch_s * slow if call.batch else (ttft + n_out / speed) * slow
        if call.batch:
            first = latency  # batch results arrive whole, when the batch ends
        else:
            self._limiter.settle(tier, at=now + latency, estimated=max_tokens, actual=n_out)

        usage = self._usage(call, uncached, prefix_t, ttl, n_out, cacheable, hit)
        if cacheable:
            ttl = _TTL_S[ttl]
            if hit:
                entry.expires_at = max(entry.expires_at, now + ttl)
            elif entry is not None and entry.expires_at > now:  # another write still under way
                entry.readable_from = min(entry.readable_from, now + first)
                entry.expires_at = max(entry.expires_at, now + first + ttl)
            else:
                self._cache[key] = _CacheEntry(now + first, now + first + ttl)
        return Result(
            provider=self.name, model=info.id, kind="text", content=text, usage=usage,
            cost_usd=self.catalog.cost(info.id, usage), latency_s=latency, first_content_s=first,
            started_at=now, request_id="msg_" + short_id(24, self.seed, self._calls),
            stop_reason=stop,
            extra={"cache": ("read" if hit else "write") if cacheable else None,
                   "output_tokens_per_s": speed / slow, "stop_sequence": stop_sequence,
                   "grouped": None if group is None else len(group)})

    @staticmethod
    def _usage(call: Call, uncached: int, prefix_t: int, ttl: str | None, n_out: int,
               cacheable: bool, hit: bool) -> Usage:
        write_5m = prefix_t if cacheable and not hit and ttl == "5m" else 0
        write_1h = prefix_t if cacheable and not hit and ttl == "1h" else 0
        return Usage(input_tokens=uncached, output_tokens=n_out,
                     cache_creation_input_tokens=write_5m, cache_creation_1h_input_tokens=write_1h,
                     cache_read_input_tokens=prefix_t if hit else 0,
                     service_tier="batch" if call.batch else "standard")


def _cut_at_stop(text: str, n_out: int, stop: str,
                 sequences: tuple[str, ...]) -> tuple[str, int, str, str | None]:
    """The answer cut before the first stop sequence in it (the API does not return the sequence)."""
    found = [(i, seq) for seq in sequences if seq and (i := text.find(seq)) >= 0]
    if not found:
        return text, n_out, stop, None
    at, seq = min(found)
    cut = text[:at]
    return cut, _count(cut) if cut else 0, "stop_sequence", seq
