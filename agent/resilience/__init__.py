"""Retry policy (stamina), circuit breakers and the dependency caller shared by every client."""

from agent.failures import parse_retry_after
from agent.resilience.breaker import BreakerState, CircuitBreaker
from agent.resilience.caller import DependencyCaller
from agent.resilience.cooldowns import Cooldowns
from agent.resilience.retry import (
    NO_RETRY,
    RetryPolicy,
    httpx_backoff_hook,
    is_transient,
    retry_async,
)
from agent.resilience.state import BreakerConfig, ResilienceState, process_resilience

__all__ = [
    "NO_RETRY",
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "Cooldowns",
    "DependencyCaller",
    "ResilienceState",
    "RetryPolicy",
    "httpx_backoff_hook",
    "is_transient",
    "parse_retry_after",
    "process_resilience",
    "retry_async",
]
