"""CRM + calendar facade: validated input, stamina retries, circuit breakers, durable outbox."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.crm.backends import (
    CalendarBackend,
    CrmBackend,
    HttpCalendarBackend,
    HttpCrmBackend,
    pooled_client,
)
from agent.crm.facade import ResilientCrm
from agent.crm.models import Booking, Contact, OutboxStats, Slot, WriteOutcome, contact_key
from agent.crm.outbox import Outbox
from agent.crm.settings import CrmSettings
from agent.resilience import CircuitBreaker, DependencyCaller


def build_crm(settings: CrmSettings, *, clock: Callable[[], float] = time.monotonic) -> ResilientCrm:
    """The production wiring: pooled httpx clients, one breaker per dependency, the outbox file.

    ``settings`` come from the entry point's settings root. ``clock`` drives the breakers' recovery
    timing (tests inject a fake one). An unusable outbox file raises ``OutboxUnusable`` (exit 2).
    """
    api_key = settings.api_key.get_secret_value() if settings.api_key else None

    def client(url: str) -> object:
        return pooled_client(
            url,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            max_connections=settings.max_connections,
            api_key=api_key,
        )

    def caller(dependency: str) -> DependencyCaller:
        breaker = CircuitBreaker(
            dependency,
            failure_threshold=settings.breaker_failure_threshold,
            recovery_s=settings.breaker_recovery_s,
            half_open_max_calls=settings.breaker_half_open_max_calls,
            clock=clock,
        )
        return DependencyCaller(
            dependency, breaker, settings.retry_policy(), settings.retry_policy_overrides()
        )

    return ResilientCrm(
        crm=HttpCrmBackend(client(settings.crm_url)),  # type: ignore[arg-type]
        calendar=HttpCalendarBackend(client(settings.calendar_url or settings.crm_url)),  # type: ignore[arg-type]
        crm_caller=caller("crm"),
        calendar_caller=caller("calendar"),
        outbox=Outbox(settings.outbox_path),
        drain_interval_s=settings.outbox_poll_interval_s,
    )


__all__ = [
    "Booking",
    "CalendarBackend",
    "Contact",
    "CrmBackend",
    "CrmSettings",
    "OutboxStats",
    "ResilientCrm",
    "Slot",
    "WriteOutcome",
    "build_crm",
    "contact_key",
]
