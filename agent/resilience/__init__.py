"""Retry policy (stamina), circuit breakers and the dependency caller shared by every client."""

from agent.failures import parse_retry_after
from agent.resilience.breaker import BreakerState, CircuitBreaker
from agent.resilience.caller import DependencyCaller
from agent.resilience.retry import (
    NO_RETRY,
    RetryPolicy,
    httpx_backoff_hook,
    is_transient,
    retry_async,
)

__all__ = [
    "NO_RETRY",
    "BreakerState",
    "CircuitBreaker",
    "DependencyCaller",
    "RetryPolicy",
    "httpx_backoff_hook",
    "is_transient",
    "parse_retry_after",
    "retry_async",
]
