"""A registry of async health checks, run concurrently with per-check timeouts and a short cache.

Probes (Kubernetes, a load balancer, Compose) hit ``/ready`` every few seconds from several places;
the cache and the single in-flight run keep that from turning into a load on the CRM and the LLM
providers. A *critical* failing check makes the process not ready; a non-critical one only marks
it degraded (e.g. the outbox backlog or telemetry export: calls still work).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.health.instruments import instruments
from telemetry import names

# A check returns None/True (healthy), False, (healthy, details) or raises (unhealthy).
CheckReturn = bool | tuple[bool, Mapping[str, Any]] | None
Check = Callable[[], Awaitable[CheckReturn]]
HealthStatus = Literal["ok", "degraded", "fail"]

log = logging.getLogger(__name__)


class HealthSettings(BaseSettings):
    """``SALES_AGENT_HEALTH_*``: where ``/health`` and ``/ready`` are served and how checks run."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_HEALTH_", extra="ignore", frozen=True)

    # /health and /ready (0 = off). /metrics is SALES_AGENT_METRICS_PORT (telemetry settings).
    port: int = Field(default=0, ge=0, le=65535)
    host: str = "127.0.0.1"
    # Results younger than this are served from cache (probes come every few seconds).
    cache_ttl_s: float = Field(default=5.0, ge=0)
    # Default per-check timeout; a check that takes longer counts as unhealthy.
    check_timeout_s: float = Field(default=2.0, gt=0)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    healthy: bool
    critical: bool
    duration_s: float
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "critical": self.critical,
            "duration_s": round(self.duration_s, 6),
            "details": dict(self.details),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    checks: tuple[CheckResult, ...]
    checked_at: datetime

    @property
    def ready(self) -> bool:
        return all(c.healthy for c in self.checks if c.critical)

    @property
    def status(self) -> HealthStatus:
        if not self.ready:
            return "fail"
        return "ok" if all(c.healthy for c in self.checks) else "degraded"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ready": self.ready,
            "checked_at": self.checked_at.isoformat(),
            "checks": {c.name: c.to_json() for c in self.checks},
        }


@dataclass(frozen=True, slots=True)
class _Registration:
    check: Check
    critical: bool
    timeout_s: float


def _short_error(exc: BaseException) -> str:
    # Type plus a bounded message: enough for an operator, never a full dump into the probe body.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class HealthRegistry:
    def __init__(
        self, settings: HealthSettings | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        # No settings: the defaults, not the environment (entry points pass theirs).
        self._settings = settings or HealthSettings.model_construct()
        self._clock = clock
        self._checks: dict[str, _Registration] = {}
        self._cached: tuple[float, HealthReport] | None = None
        self._inflight: asyncio.Task[HealthReport] | None = None

    def register(
        self, name: str, check: Check, *, critical: bool = True, timeout_s: float | None = None
    ) -> None:
        if not name or name in self._checks:
            raise ValueError(f"health check name must be unique and non-empty: {name!r}")
        if not callable(check):
            raise TypeError(f"health check {name!r} must be an async callable (see callable_check)")
        self._checks[name] = _Registration(check, critical, timeout_s or self._settings.check_timeout_s)
        self._cached = None

    def names(self) -> list[str]:
        return list(self._checks)

    async def run(self, *, use_cache: bool = True) -> HealthReport:
        """All checks, concurrently; a fresh-enough cached report is returned as is."""
        if use_cache and self._cached is not None:
            at, report = self._cached
            if self._clock() - at < self._settings.cache_ttl_s:
                return report
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.get_running_loop().create_task(self._run_all(), name="health-checks")
        # Shielded: one probe disconnecting must not cancel the run other probes are waiting on.
        return await asyncio.shield(self._inflight)

    async def _run_all(self) -> HealthReport:
        results = await asyncio.gather(*(self._run_one(n, r) for n, r in self._checks.items()))
        report = HealthReport(tuple(results), datetime.now(UTC))
        self._cached = (self._clock(), report)
        return report

    async def _run_one(self, name: str, reg: _Registration) -> CheckResult:
        started = time.perf_counter()
        healthy, details, error = False, {}, None
        try:
            async with asyncio.timeout(reg.timeout_s):
                outcome = await reg.check()
            healthy, details = _normalise(outcome)
        except TimeoutError:
            error = f"timed out after {reg.timeout_s:g}s"
        except Exception as exc:
            error = _short_error(exc)
        duration = time.perf_counter() - started
        attrs = {names.HEALTH_CHECK: name}
        ins = instruments()
        ins.status.set(1 if healthy else 0, attrs)
        ins.duration.set(duration, attrs)
        if not healthy:
            log.warning(
                "health check %s failed%s: %s",
                name,
                " (critical)" if reg.critical else "",
                error or details,
                extra={names.HEALTH_CHECK: name},
            )
        return CheckResult(name, healthy, reg.critical, duration, details, error)


def _normalise(outcome: CheckReturn) -> tuple[bool, Mapping[str, Any]]:
    if outcome is None:
        return True, {}
    if isinstance(outcome, bool):
        return outcome, {}
    if isinstance(outcome, tuple) and len(outcome) == 2:
        healthy, details = outcome
        return bool(healthy), dict(details or {})
    raise TypeError(f"a health check must return None, a bool or (bool, dict); got {type(outcome).__name__}")
