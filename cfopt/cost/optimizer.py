"""Part 1: spend less per request. Task analysis, quality-aware routing, prompts, batches.

``CostOptimizer`` keeps the exercise's names. Its routing rule is one sentence: *send each task
to the cheapest model whose quality, at the task's complexity, meets the task's quality need.*
Quality is the share of the premium model's benchmark score (``[quality]`` in the catalog, with
sources), so a routing decision can be scored: ``quality_kept`` compares it with sending every
task to the premium model of its type. Text and images are routed and scored this way (text
against Claude Opus, images against flux_dev); video, audio and photo have one model each.

>>> opt = CostOptimizer()
>>> task = {"type": "analysis", "task": "sentiment_analysis", "max_tokens": 12,
...         "prompt": "Classify the sentiment of this review: great mug, keeps coffee hot."}
>>> choice = opt.select_optimal_model(task)
>>> choice.llm, choice.complexity, choice.expected_quality
('claude-sonnet-5-5', 'low', 0.9813)
>>> [opt.select_optimal_model({**task, "quality": q}).llm for q in ("low", "critical")]
['claude-haiku-5-5', 'claude-opus-5-5']
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .compress import DEFAULT_RULES, CompressionResult, CompressionRules, compress_prompt
from ..errors import ConfigError
from ..pricing import PriceCatalog, Usage, clip_usage, load_catalog, megapixels
from ..providers.base import DEFAULT_MAX_TOKENS, Call
from .quality import COMPLEXITIES, QUALITIES, QualityBar, QualityTable, load_quality
from ..tokens import count_tokens
from ..workload import PRIORITIES as _PRIORITIES, TYPES

__all__ = [
    "COMPLEXITIES", "QualityBar", "QualityTable", "load_quality", "TaskAnalysis", "ModelChoice",
    "Batch", "CostOptimizer", "PREMIUM",
]



def _premium_models() -> dict[str, str]:
    """Each request type's premium model, as the default catalog defines it (``premium``)."""
    catalog = load_catalog()
    kinds = {"text": "text", "analysis": "text", "image": "image", "video": "video",
             "audio": "audio", "photo": "photo"}
    return {t: catalog.premium(kind) for t, kind in kinds.items()}


# Each type's best model: what the baseline sends everything to, and quality is measured against.
# Derived from the catalog (its most expensive active model of each kind), defined nowhere else.
PREMIUM = _premium_models()
# Video, audio and photo are not routed (no cited quality scores to route them by): the premium.
_MEDIA_MODEL = {t: PREMIUM[t] for t in ("video", "audio", "photo")}
# The image a call makes by default (1024x1024), as fal bills it: 1.05 megapixels round up to 2.
_DEFAULT_CALL = Call("flux_dev", "an image")
ONE_IMAGE = Usage(images=1, megapixels=megapixels(_DEFAULT_CALL.width, _DEFAULT_CALL.height))

# The complexity rules, as data a learner can read and change. A known task name decides;
# otherwise words in the prompt; then length can only raise the level.
LOW_TASKS = frozenset({"social_caption", "email_subject", "seo_meta", "translation",
                       "sentiment_analysis", "keyword_extraction", "ticket_routing",
                       "newsletter_intro", "caption", "title", "tagging", "classification"})
MEDIUM_TASKS = frozenset({"blog_post", "product_description", "help_article", "summary",
                          "press_release"})
HIGH_TASKS = frozenset({"legal_notice", "health_copy", "research_report", "strategy",
                        "code_review", "financial_analysis"})
LOW_WORDS = ("classify", "caption", "extract", "translate", "subject line", "hashtag", "route this")
HIGH_WORDS = ("legal", "contract", "compliance", "medical", "patient", "diagnos", "prove",
              "step by step reasoning", "architecture", "debug", "strategy", "due diligence")
LONG_INPUT_TOKENS = 2000    # reading this much is a real task: at least medium
LONG_OUTPUT_TOKENS = 1500   # writing this much hangs together only with care: at least medium
HUGE_TOKENS = 6000          # either side this long: high


@dataclass(frozen=True, slots=True)
class TaskAnalysis:
    """What a task needs: its complexity, the quality bar it must meet, and why."""

    type: str
    task: str | None
    complexity: str
    quality: str
    need: float
    input_tokens: int
    max_tokens: int
    priority: str
    reasons: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model that serves a task (``llm`` or ``image`` per the exercise) and why."""

    model: str
    llm: str | None
    image: str | None
    complexity: str
    need: float | None
    expected_quality: float | None   # share of the premium model's quality; None: not scored
    worst_case_cost_usd: float
    rationale: str

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass
class Batch:
    """Requests of one type for one model, with what they should cost."""

    type: str
    model: str
    requests: list[Any]
    estimated_cost_usd: float          # every request at standard prices, output at its max
    batchable: list[Any]               # low-priority text: may wait for the Message Batches API
    estimated_cost_with_discount_usd: float

    @property
    def discount_eligible(self) -> int:
        """How many of the requests may use the Message Batches discount."""
        return len(self.batchable)


def _field(task: Any, name: str, default: Any = None) -> Any:
    return task.get(name, default) if isinstance(task, Mapping) else getattr(task, name, default)


class CostOptimizer:
    """Route tasks to the cheapest adequate model, compress prompts, group batches.

    As the pipeline's ``cost`` stage, ``bind(env)`` makes it price with the run's catalog (the
    profile the pipeline runs under). ``default_models`` names each type's model when routing
    is off (default: the premium one, ``PREMIUM``). Knobs: ``quality_bar``, ``rules``.
    """

    KNOBS = ("quality_bar", "rules", "default_models")

    def __init__(self, catalog: PriceCatalog | None = None, *, quality_bar: QualityBar | None = None,
                 quality: QualityTable | None = None, rules: CompressionRules = DEFAULT_RULES,
                 default_models: Mapping[str, str] | None = None) -> None:
        self.quality_bar = quality_bar if quality_bar is not None else QualityBar()
        self.quality = quality if quality is not None else load_quality()
        self.rules = rules
        unknown = sorted(set(default_models or {}) - set(TYPES))
        if unknown:
            raise ConfigError(f"default_models names unknown types {unknown}; known: {', '.join(TYPES)}")
        self.default_models = {**PREMIUM, **(default_models or {})}
        self._use(catalog if catalog is not None else load_catalog())

    def _use(self, catalog: PriceCatalog) -> None:
        self.catalog = catalog
        self._text_models = [m.id for m in catalog.text_models() if m.id in self.quality.scores]
        if self.quality.premium not in self._text_models:
            raise ConfigError(f"the premium model {self.quality.premium!r} has no price or score")
        self._image_models = sorted(
            (m.id for m in catalog.models.values()
             if m.kind == "image" and m.id in self.quality.scores),
            key=lambda m: catalog.cost(m, ONE_IMAGE))   # cheapest first

    def __repr__(self) -> str:
        return f"CostOptimizer(catalog={self.catalog!r}, quality_bar={self.quality_bar!r})"

    def bind(self, env: Any) -> None:
        """Price with the run's catalog (``env.catalog``)."""
        if env.catalog is not self.catalog:
            self._use(env.catalog)

    def default_model(self, kind: str) -> str:
        """The model a task of type ``kind`` goes to when routing is off."""
        if kind not in self.default_models:
            raise ConfigError(f"task type must be one of {', '.join(TYPES)}, got {kind!r}")
        return self.default_models[kind]

    # -- task analysis ------------------------------------------------------------------------
    def analyze_task(self, task: Any) -> TaskAnalysis:
        """Work out a task's complexity and quality need, with the rules that fired."""
        kind, prompt = _field(task, "type"), _field(task, "prompt")
        if kind not in TYPES:
            raise ConfigError(f"task type must be one of {', '.join(TYPES)}, got {kind!r}")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("task prompt must be a non-empty string")
        quality = _field(task, "quality", "standard") or "standard"
        priority = _field(task, "priority", "medium") or "medium"
        if quality not in QUALITIES:
            raise ConfigError(f"task quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
        if priority not in _PRIORITIES:
            raise ConfigError(f"task priority must be one of {', '.join(_PRIORITIES)}, got {priority!r}")
        max_tokens = _field(task, "max_tokens")
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or max_tokens < 1):
            raise ConfigError(f"task max_tokens must be a positive integer, got {max_tokens!r}")
        name = _field(task, "task")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"task name must be a string or None, got {type(name).__name__}")
        input_tokens = count_tokens(prompt)
        out = max_tokens or DEFAULT_MAX_TOKENS
        level, reasons = self._complexity(kind, name, prompt.lower(), input_tokens, out)
        return TaskAnalysis(kind, name, level, quality, self.quality_bar.need(quality),
                            input_tokens, out, priority, tuple(reasons))

    def _complexity(self, kind: str, name: str | None, text: str, tokens_in: int,
                    tokens_out: int) -> tuple[str, list[str]]:
        if name in HIGH_TASKS:
            level, why = 2, f"task {name!r} is in HIGH_TASKS"
        elif name in MEDIUM_TASKS:
            level, why = 1, f"task {name!r} is in MEDIUM_TASKS"
        elif name in LOW_TASKS:
            level, why = 0, f"task {name!r} is in LOW_TASKS"
        elif any(w in text for w in HIGH_WORDS):
            level, why = 2, "the prompt names high-stakes or reasoning-heavy work"
        elif any(w in text for w in LOW_WORDS) or tokens_out <= 100:
            level, why = 0, "a short, closed-form job (classify, extract, caption; <= 100 output tokens)"
        else:
            level, why = 1, "an open-ended writing task"
        reasons = [why]
        # Length can only raise the level: a long read or a long answer is harder to get right.
        raised = None
        if max(tokens_in, tokens_out) >= HUGE_TOKENS and level < 2:
            level, raised = 2, f"over {HUGE_TOKENS} tokens in or out: high"
        elif (tokens_in >= LONG_INPUT_TOKENS or tokens_out >= LONG_OUTPUT_TOKENS) and level < 1:
            level, raised = 1, "a long input or output: at least medium"
        elif kind == "analysis" and level == 0 and tokens_out > 100:
            level, raised = 1, "an analysis with a long answer: at least medium"
        if raised:
            reasons.append(raised)
        if kind == "image":
            reasons.append("image: routed by the same quality rule as text")
        elif kind not in ("text", "analysis"):
            reasons.append(f"{kind}: one model, nothing to choose")
        return COMPLEXITIES[level], reasons

    # -- routing ------------------------------------------------------------------------------
    def premium_for(self, kind: str) -> str | None:
        """The model a task of type ``kind`` is scored against; None: the type is not scored."""
        if kind in ("text", "analysis"):
            return self.quality.premium
        if kind == "image" and self._image_models:
            return self.quality.premium_of(self._image_models[0])
        return None

    def candidates(self, kind: str) -> list[str]:
        """The scored models a task of type ``kind`` may go to, cheapest first."""
        if kind in ("text", "analysis"):
            return self._text_models
        if kind == "image" and self._image_models:
            return self._image_models
        raise ConfigError(f"no quality scores for {kind} models; add a benchmark to [quality]")

    def adequate_models(self, task: Any) -> list[str]:
        """The text or image models that meet the task's quality need, cheapest first."""
        a = task if isinstance(task, TaskAnalysis) else self.analyze_task(task)
        ok = [m for m in self.candidates(a.type)
              if self.quality.score(m, a.complexity) >= a.need - 1e-9]
        return ok or [self.premium_for(a.type)]  # nothing meets the bar: the best there is

    def select_optimal_model(self, task: Any) -> ModelChoice:
        """The cheapest model that meets the task's quality need, and why."""
        a = self.analyze_task(task)
        if a.type in ("text", "analysis", "image"):
            model = self.adequate_models(a)[0]
            q = self.quality.score(model, a.complexity)
            models = self.candidates(a.type)
            cheaper = models[: models.index(model)]
            why = (f"{a.complexity} complexity ({a.reasons[0]}); " if a.type != "image" else
                   "image: ")
            why += (f"{a.quality} quality needs {a.need:.0%} of {self.premium_for(a.type)}; "
                     f"{model} keeps {q:.1%}")
            if cheaper:
                why += "; " + ", ".join(f"{m} keeps only {self.quality.score(m, a.complexity):.1%}"
                                        for m in cheaper)
            text = a.type != "image"
            return ModelChoice(model, model if text else None, None if text else model,
                               a.complexity, a.need, q, self.estimate_cost(task, model), why)
        model = _MEDIA_MODEL[a.type]
        return ModelChoice(model, None, None, a.complexity, None, None,
                           self.estimate_cost(task, model), f"{a.type}: the one model offered")

    def estimate_cost(self, task: Any, model: str, *, output_tokens: int | None = None,
                      batch: bool = False) -> float:
        """What ``task`` costs on ``model``: output at ``output_tokens`` or its ``max_tokens``."""
        info = self.catalog.model(model)
        if info.kind == "text":
            prompt = _field(task, "prompt")
            out = output_tokens if output_tokens is not None else (_field(task, "max_tokens")
                                                                   or DEFAULT_MAX_TOKENS)
            usage = Usage(input_tokens=count_tokens(prompt), output_tokens=out,
                          service_tier="batch" if batch else "standard")
        elif info.kind == "image":
            usage = ONE_IMAGE
        elif info.kind == "video":
            usage = clip_usage(info)
        elif info.kind == "audio":
            usage = Usage(audio_minutes=1.0)
        else:
            usage = Usage(requests=1, billable_requests=1)   # worst case: past the free allowance
        return self.catalog.cost(model, usage)

    def quality_kept(self, tasks: Iterable[Any], models: Iterable[str]) -> float:
        """Quality of these routing decisions over sending every scored task to its premium model.

        Text, analysis and image tasks are scored (``premium_for``); each counts once.
        """
        got = best = 0.0
        for task, model in zip(tasks, models, strict=True):
            premium = self.premium_for(_field(task, "type"))
            if premium is not None:
                level = self.analyze_task(task).complexity
                got += self.quality.score(model, level)
                best += self.quality.score(premium, level)
        return got / best if best else 1.0

    # -- prompts ------------------------------------------------------------------------------
    def optimize_prompt(self, prompt: str, *, system: str | None = None) -> CompressionResult:
        """Compress ``prompt`` safely; a ``system`` prompt (the cached prefix) is never touched."""
        del system  # named so callers see it is left alone: prompt caching must still match it
        return compress_prompt(prompt, rules=self.rules)

    def optimize_call(self, call: Call) -> Call:
        """``call`` with its prompt compressed; the system prompt (the cached prefix) untouched."""
        return replace(call, prompt=compress_prompt(call.prompt, rules=self.rules).text)

    def compress_prompt(self, prompt: str, *, keep_prefix: str | int = 0) -> str:
        """The compressed text of ``prompt``, its first ``keep_prefix`` characters kept as is."""
        return compress_prompt(prompt, rules=self.rules, keep_prefix=keep_prefix).text

    # -- batches ------------------------------------------------------------------------------
    def batch_requests(self, requests: Iterable[Any]) -> list[Batch]:
        """Group requests by type and chosen model, with estimated costs and batch eligibility."""
        groups: dict[tuple[str, str], Batch] = {}
        for r in requests:
            choice = self.select_optimal_model(r)
            key = (_field(r, "type"), choice.model)
            b = groups.get(key) or groups.setdefault(key, Batch(key[0], key[1], [], 0.0, [], 0.0))
            b.requests.append(r)
            b.estimated_cost_usd += choice.worst_case_cost_usd
            if key[0] in ("text", "analysis") and _field(r, "priority", "medium") == "low":
                b.batchable.append(r)
                b.estimated_cost_with_discount_usd += self.estimate_cost(r, choice.model, batch=True)
            else:
                b.estimated_cost_with_discount_usd += choice.worst_case_cost_usd
        return sorted(groups.values(), key=lambda b: (-b.estimated_cost_usd, b.type, b.model))
