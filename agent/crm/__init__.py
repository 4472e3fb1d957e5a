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
from agent.resilience import BreakerConfig, DependencyCaller, ResilienceState


def build_crm(
    settings: CrmSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    resilience: ResilienceState | None = None,
) -> ResilientCrm:
    """The production wiring: pooled httpx clients, one breaker per dependency, the outbox (a file,
    or a PostgreSQL database; ``StorageError`` naming it when it cannot be opened).

    ``settings`` come from the entry point's settings root. ``resilience``: where the breakers live.
    The worker passes ``process_resilience()`` so every job's client shares one breaker per
    dependency; without it the facade gets its own (closed with it), whose recovery timing runs on
    ``clock`` (tests inject a fake one). An unusable outbox file raises ``OutboxUnusable`` (exit 2).
    """
    owned = resilience is None
    state = resilience if resilience is not None else ResilienceState(clock=clock)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None

    def client(url: str) -> object:
        return pooled_client(
            url,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            max_connections=settings.max_connections,
            api_key=api_key,
        )

    breaker_config = BreakerConfig(
        failure_threshold=settings.breaker_failure_threshold,
        recovery_s=settings.breaker_recovery_s,
        half_open_max_calls=settings.breaker_half_open_max_calls,
    )

    def caller(dependency: str, url: str) -> DependencyCaller:
        breaker = state.breaker(dependency, url, breaker_config)
        return DependencyCaller(
            dependency, breaker, settings.retry_policy(), settings.retry_policy_overrides()
        )

    calendar_url = settings.calendar_url or settings.crm_url
    policy = settings.retry_policy()
    # How long a claim on an outbox entry holds: one live write with all its retries and waits.
    lease_s = (policy.timeout_s or 30.0) + settings.connect_timeout_s + settings.read_timeout_s

    # First: a database that cannot be reached fails here, before any client is opened.
    outbox = Outbox(
        settings.outbox_location,
        lease_s=lease_s,
        timeout_s=settings.outbox_timeout_s,
        pool_size=settings.outbox_pool_size,
    )
    return ResilientCrm(
        crm=HttpCrmBackend(client(settings.crm_url)),  # type: ignore[arg-type]
        calendar=HttpCalendarBackend(client(calendar_url)),  # type: ignore[arg-type]
        crm_caller=caller("crm", settings.crm_url),
        calendar_caller=caller("calendar", calendar_url),
        outbox=outbox,
        drain_interval_s=settings.outbox_poll_interval_s,
        on_close=state.close if owned else None,
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
