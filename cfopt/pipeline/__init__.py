"""End to end: the ``Pipeline`` made of the course's stages, its replays, scoring and report.

- ``core``: ``Pipeline`` (stages cost, cache, latency, batching, monitor; hooks), ``run_both``;
  ``serving``: one run of it, the serving loop
- ``types``: ``PipelineConfig`` (the switches), ``Outcome``, ``RunResult``; ``env``: ``RunEnv``
- ``replay``: the dashboard's seam (``Controls``, ``PipelineReplay``, ``ProviderReplay``)
- ``score``: quality kept, false hits, the ceilings and floors (``limits``)
- ``report``: the exercise's report and its criteria; ``evaluate``: ``run_report``,
  ``contributions``, ``replay_cache``
"""
from .evaluate import CACHE_MODELS, CacheReplay, contributions, replay_cache, run_report
from .core import Pipeline, run_both
from .env import STAGES, RunEnv
from .replay import Controls, PipelineReplay, ProviderReplay, Replay, ReplaySummary
from .report import Targets, build_report, format_table, money, pct
from .score import QUALITY_BAR, Limits, false_hits, first_of_intent, limits, quality_kept
from .types import OPTIMIZATIONS, Outcome, PipelineConfig, RunResult

__all__ = ["Pipeline", "PipelineConfig", "Outcome", "RunResult", "OPTIMIZATIONS", "run_both",
           "build_report", "format_table", "Targets", "pct", "money", "run_report",
           "contributions", "replay_cache", "CacheReplay", "CACHE_MODELS", "Limits", "limits",
           "QUALITY_BAR", "false_hits", "quality_kept", "first_of_intent", "RunEnv", "STAGES",
           "Controls", "PipelineReplay", "ProviderReplay", "Replay", "ReplaySummary"]
