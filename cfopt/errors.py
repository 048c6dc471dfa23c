"""Every error cfopt raises, in one tree.

    CfoptError
    ├── ConfigError              an impossible argument or a bad catalog entry (also ValueError)
    │   └── SandboxUnavailable   cfopt grade cannot isolate submissions on this machine
    ├── WorkloadError            a bad workload line: file, line number and field (also ValueError)
    ├── BudgetExceeded           a call would take a budget past its cap
    ├── BudgetStoreError         the budget store cannot take a reservation (unreachable,
    │                            saturated, or its counters were reset): no call is sent
    └── ProviderError            a provider call failed; ``status`` is its HTTP status
        ├── InvalidRequest       400: the request itself is wrong (never retried)
        ├── AuthenticationError  401: missing or wrong API key (never retried)
        ├── NotFound             404: unknown model or resource (never retried)
        ├── RateLimited          429: too many requests or tokens; ``retry_after`` seconds
        ├── ServerError          500: the provider failed (retryable)
        ├── Overloaded           529: the provider is overloaded (retryable)
        └── ProviderTimeout      no answer within the timeout (retryable)

``ProviderError.retryable`` says whether a retry can help; ``after_s`` is how long the call
took before it failed, so simulations charge the caller's time honestly.
"""
from __future__ import annotations

__all__ = [
    "CfoptError", "ConfigError", "SandboxUnavailable", "WorkloadError", "BudgetExceeded", "BudgetStoreError",
    "ProviderError",
    "InvalidRequest", "AuthenticationError", "NotFound", "RateLimited", "ServerError",
    "Overloaded", "ProviderTimeout",
]


class CfoptError(Exception):
    """Base of every error cfopt raises."""


class ConfigError(CfoptError, ValueError):
    """An impossible argument or a bad catalog entry."""


class SandboxUnavailable(ConfigError):
    """``cfopt grade`` cannot build a sandbox here (no bubblewrap, no namespaces); says why."""


class WorkloadError(CfoptError, ValueError):
    """A workload line that cannot be accepted; names the file, the line and the field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path, self.line, self.field = path, line, field
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        suffix = f" (field {field!r})" if field else ""
        super().__init__(f"{prefix}{message}{suffix}")


class BudgetExceeded(CfoptError):
    """A call would take the named budget past its cap."""

    def __init__(self, budget: str, limit_usd: float, spent_usd: float, requested_usd: float) -> None:
        self.budget, self.limit_usd = budget, limit_usd
        self.spent_usd, self.requested_usd = spent_usd, requested_usd
        super().__init__(
            f"{budget} budget of ${limit_usd:,.2f} exceeded: ${spent_usd:,.4f} spent or reserved, "
            f"this call needs up to ${requested_usd:,.4f}")


class BudgetStoreError(CfoptError):
    """The budget store could not do an operation; budgets fail closed, so no call is sent.

    ``reason`` is one of ``REASONS``: "unreachable" (no answer), "saturated" (no free
    connection in time), "timeout" (no reply in time), "reset" (the counters were lost: an
    operator must run ``cfopt budget reconcile``), "ledger" (the usage ledger cannot be
    written) or "error" (any other store failure).
    """

    REASONS = ("unreachable", "saturated", "timeout", "reset", "ledger", "error")

    def __init__(self, message: str, *, reason: str = "error") -> None:
        self.reason = reason if reason in self.REASONS else "error"
        super().__init__(message)


class ProviderError(CfoptError):
    """A provider call failed."""

    status: int = 500
    error_type: str = "api_error"  # Anthropic's error type name for this failure
    retryable: bool = False

    def __init__(self, message: str, *, provider: str = "", model: str = "",
                 after_s: float = 0.0) -> None:
        self.provider, self.model, self.after_s = provider, model, after_s
        super().__init__(message)


class InvalidRequest(ProviderError):
    status, error_type = 400, "invalid_request_error"


class AuthenticationError(ProviderError):
    status, error_type = 401, "authentication_error"


class NotFound(ProviderError):
    status, error_type = 404, "not_found_error"


class RateLimited(ProviderError):
    status, error_type, retryable = 429, "rate_limit_error", True

    def __init__(self, message: str, *, retry_after: float, **kw) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(ProviderError):
    status, error_type, retryable = 500, "api_error", True


class Overloaded(ProviderError):
    status, error_type, retryable = 529, "overloaded_error", True


class ProviderTimeout(ProviderError):
    status, error_type, retryable = 504, "timeout_error", True
