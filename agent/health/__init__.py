"""Health checks and the ``/health`` + ``/ready`` endpoints."""

from agent.health.checks import (
    callable_check,
    dependency_check,
    event_loop_lag_check,
    http_check,
    llm_provider_check,
    otlp_export_check,
    outbox_backlog_check,
)
from agent.health.registry import Check, CheckResult, HealthRegistry, HealthReport, HealthSettings
from agent.health.server import HealthServer

__all__ = [
    "Check",
    "CheckResult",
    "HealthRegistry",
    "HealthReport",
    "HealthServer",
    "HealthSettings",
    "callable_check",
    "dependency_check",
    "event_loop_lag_check",
    "http_check",
    "llm_provider_check",
    "otlp_export_check",
    "outbox_backlog_check",
]
