"""Part 1, cost: analyse a task, route it to the cheapest adequate model, compress prompts safely,
and hold spending to budgets with alerts.

The stage the pipeline runs is ``CostOptimizer``; ``UsageTracker`` keeps the budgets.
"""
from .budget import BudgetConfig, BudgetStore, MemoryStore, RedisStore, Reservation, UsageStats, UsageTracker
from .budget_redis import reconcile
from .ledger import UsageLedger
from .compress import DEFAULT_RULES, CompressionResult, CompressionRules, compress_prompt, naive_compress
from .optimizer import PREMIUM, Batch, CostOptimizer, ModelChoice, TaskAnalysis
from .quality import COMPLEXITIES, QUALITIES, QualityBar, QualityTable, elo_share, load_quality
from .spans import protected_spans

__all__ = ["CostOptimizer", "PREMIUM", "TaskAnalysis", "ModelChoice", "Batch",
           "QualityBar", "QualityTable", "COMPLEXITIES", "QUALITIES", "load_quality", "elo_share",
           "CompressionRules", "CompressionResult", "DEFAULT_RULES", "compress_prompt",
           "naive_compress", "protected_spans",
           "BudgetConfig", "UsageTracker", "UsageStats", "Reservation", "BudgetStore",
           "MemoryStore", "RedisStore", "UsageLedger", "reconcile"]
