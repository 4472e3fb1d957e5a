"""Ready-made health checks. Each factory returns an async ``Check`` for ``HealthRegistry.register``.

The dependency-specific ones are thin, duck-typed wrappers over the other modules' public APIs
(``ResilientCrm.ping`` / ``outbox_stats``, ``RouterLLM.check_provider``, the telemetry handle), so
this package imports none of them.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp

from agent.health.registry import Check, CheckReturn


def callable_check(fn: Callable[[], CheckReturn | Awaitable[CheckReturn]]) -> Check:
    """Wrap a sync or async function returning None/bool/(bool, details) (or raising)."""

    async def check() -> CheckReturn:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        return result

    return check


def http_check(url: str, *, expect: Callable[[int], bool] = lambda status: 200 <= status < 400) -> Check:
    """Healthy when ``GET url`` answers with an accepted status (default 2xx/3xx).

    aiohttp's client is used (not httpx) so probes don't add client spans to the traces every few
    seconds; the registry's per-check timeout bounds the request.
    """

    async def check() -> CheckReturn:
        async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as resp:
            return expect(resp.status), {"status_code": resp.status}

    return check


def event_loop_lag_check(max_s: float = 0.5, *, probe_s: float = 0.01) -> Check:
    """Healthy while a ``probe_s`` sleep overshoots by at most ``max_s`` (a busy or blocked loop)."""

    async def check() -> CheckReturn:
        started = time.perf_counter()
        await asyncio.sleep(probe_s)
        lag = max(0.0, time.perf_counter() - started - probe_s)
        return lag <= max_s, {"lag_s": round(lag, 6), "max_s": max_s}

    return check


class _Pingable(Protocol):
    async def ping(self, dependency: Literal["crm", "calendar"]) -> None: ...


def dependency_check(crm: _Pingable, dependency: Literal["crm", "calendar"]) -> Check:
    """``crm.ping(dependency)``: healthy unless it raises (DependencyError, CircuitOpenError...)."""

    async def check() -> CheckReturn:
        await crm.ping(dependency)
        return True, {"dependency": dependency}

    return check


def outbox_backlog_check(crm: Any, max_depth: int = 100, max_age_s: float = 300.0) -> Check:
    """Healthy while the CRM outbox holds at most ``max_depth`` entries, none older than ``max_age_s``,
    and its storage works.

    A backlog means CRM writes are queued, not lost: register it as non-critical. A failing storage
    (``storage_error``: a full disk, an unreadable file, an unreachable database) means new writes are
    tried live only and are lost if that fails too; calls still run, so it stays non-critical, but the
    check says so instead of reporting an empty, healthy queue it could not read.
    """

    async def check() -> CheckReturn:
        stats = crm.outbox_stats()
        if inspect.isawaitable(stats):
            stats = await stats
        age = stats.oldest_age_s
        storage_error = getattr(stats, "storage_error", None)
        healthy = storage_error is None and stats.depth <= max_depth and (age is None or age <= max_age_s)
        return healthy, {
            "depth": stats.depth,
            "oldest_age_s": None if age is None else round(age, 3),
            "max_depth": max_depth,
            "max_age_s": max_age_s,
            "storage_error": storage_error,
        }

    return check


def llm_provider_check(llm: Any, name: str) -> Check:
    """``await llm.check_provider(name) -> (ok, details)`` of the Router-backed LLM."""

    async def check() -> CheckReturn:
        ok, details = await llm.check_provider(name)
        return bool(ok), dict(details or {})

    return check


def otlp_export_check(telemetry: Any, *, connect_timeout_s: float = 1.0) -> Check:
    """OTLP export health from ``telemetry.export_status()`` (``telemetry.setup.Telemetry``).

    Healthy when OTLP is off, or the collector accepts a TCP connection and no signal's last export
    failed. The TCP probe answers before the first export batch (metrics go out every 15 s).
    Register as non-critical: lost telemetry must not stop calls.
    """

    async def check() -> CheckReturn:
        status: Mapping[str, Any] = telemetry.export_status()
        endpoint = status.get("endpoint")
        if not status.get("otlp_enabled") or not endpoint:
            return True, {"otlp": "disabled"}
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        default_port = 4317 if str(status.get("protocol", "")).startswith("grpc") else 4318
        port = parts.port or default_port
        signals: Mapping[str, Mapping[str, Any]] = status.get("signals") or {}
        failing = sorted(name for name, sig in signals.items() if not sig.get("healthy", True))
        details: dict[str, Any] = {"endpoint": f"{parts.hostname}:{port}", "failing_signals": failing}
        for name in failing:
            details[f"{name}_last_error"] = signals[name].get("last_error")
        async with asyncio.timeout(connect_timeout_s):
            _, writer = await asyncio.open_connection(parts.hostname, port)
        writer.close()
        await writer.wait_closed()
        return not failing, details

    return check
