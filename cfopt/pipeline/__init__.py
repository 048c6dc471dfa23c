"""End to end: the ``Pipeline`` made of the course's stages, its scoring and the report.
"""
from .command import contributions, run_report
from .core import Pipeline, run_both
from .report import Targets, build_report, format_table, money, pct
from .score import Limits, false_hits, first_of_intent, limits, quality_kept
from .types import OPTIMIZATIONS, Outcome, PipelineConfig, RunResult

__all__ = ["Pipeline", "PipelineConfig", "Outcome", "RunResult", "OPTIMIZATIONS", "run_both",
           "build_report", "format_table", "Targets", "pct", "money", "run_report",
           "contributions", "Limits", "limits", "false_hits", "quality_kept", "first_of_intent"]
