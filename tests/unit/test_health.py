"""Health registry, check factories and the /health + /ready endpoints over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from agent.errors import CircuitOpenError
from agent.health import (
    HealthRegistry,
    HealthServer,
    HealthSettings,
    callable_check,
    dependency_check,
    event_loop_lag_check,
    http_check,
    llm_provider_check,
    otlp_export_check,
    outbox_backlog_check,
)
from telemetry import names


@asynccontextmanager
async def fake_dependency() -> AsyncIterator[tuple[str, web.AppRunner]]:
    """A real HTTP server on 127.0.0.1 with ``GET /healthz``; yields its base URL and runner."""
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", runner
    finally:
        await runner.cleanup()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        return resp.status, await resp.json()


async def test_ready_turns_503_when_a_critical_dependency_goes_down(otel):
    async with fake_dependency() as (dep_url, dep_runner):
        registry = HealthRegistry(HealthSettings(cache_ttl_s=0, check_timeout_s=2))
        registry.register("crm", http_check(f"{dep_url}/healthz"), critical=True)
        registry.register("event_loop", event_loop_lag_check(max_s=5.0), critical=True)
        registry.register("outbox", callable_check(lambda: (False, {"depth": 500})), critical=False)

        async with HealthServer(registry, "127.0.0.1", 0) as server, aiohttp.ClientSession() as http:
            assert server.port > 0
            status, body = await _get(http, f"{server.url}/ready")
            assert status == 200
            assert body["ready"] is True
            assert body["status"] == "degraded"  # the non-critical outbox check fails
            assert set(body["checks"]) == {"crm", "event_loop", "outbox"}
            assert body["checks"]["crm"]["healthy"] is True
            assert body["checks"]["crm"]["details"] == {"status_code": 200}
            assert body["checks"]["outbox"] == {
                "healthy": False,
                "critical": False,
                "duration_s": body["checks"]["outbox"]["duration_s"],
                "details": {"depth": 500},
                "error": None,
            }
            assert otel.metric_value(names.HEALTH_CHECK_STATUS, **{names.HEALTH_CHECK: "crm"}) == 1

            await dep_runner.cleanup()  # the CRM goes down

            status, body = await _get(http, f"{server.url}/ready")
            assert status == 503
            assert body["ready"] is False
            assert body["status"] == "fail"
            crm = body["checks"]["crm"]
            assert crm["healthy"] is False and crm["critical"] is True
            assert "ClientConnectorError" in crm["error"] or "Connect" in crm["error"]
            assert body["checks"]["event_loop"]["healthy"] is True

            status, body = await _get(http, f"{server.url}/health")
            assert status == 200
            assert body["status"] == "alive"

            assert otel.metric_value(names.HEALTH_CHECK_STATUS, **{names.HEALTH_CHECK: "crm"}) == 0
            durations = otel.metric_points(names.HEALTH_CHECK_DURATION)
            assert any(attrs.get(names.HEALTH_CHECK) == "crm" for attrs, _ in durations)


async def test_checks_run_concurrently():
    # Each check waits for the other: only a concurrent run completes both.
    a_started, b_started = asyncio.Event(), asyncio.Event()

    async def check_a() -> bool:
        a_started.set()
        await b_started.wait()
        return True

    async def check_b() -> bool:
        b_started.set()
        await a_started.wait()
        return True

    registry = HealthRegistry(HealthSettings(check_timeout_s=10))
    registry.register("a", check_a)
    registry.register("b", check_b)
    report = await registry.run()
    assert report.ready and report.status == "ok"


async def test_timeout_and_exception_make_a_check_unhealthy():
    never = asyncio.Event()

    async def hangs() -> bool:
        await never.wait()
        return True

    async def raises() -> bool:
        raise RuntimeError("database is locked\nsecond line not shown")

    registry = HealthRegistry()
    registry.register("hangs", hangs, timeout_s=0.05)
    registry.register("raises", raises, critical=False)
    report = await registry.run()
    by_name = {c.name: c for c in report.checks}
    assert by_name["hangs"].error == "timed out after 0.05s"
    assert by_name["raises"].error == "RuntimeError: database is locked"
    assert report.status == "fail"


async def test_results_are_cached_and_concurrent_probes_share_one_run():
    now = [0.0]
    calls = 0
    release = asyncio.Event()

    async def counted() -> bool:
        nonlocal calls
        calls += 1
        await release.wait()
        return True

    registry = HealthRegistry(HealthSettings(cache_ttl_s=5, check_timeout_s=10), clock=lambda: now[0])
    registry.register("dep", counted)
    probes = [asyncio.ensure_future(registry.run()) for _ in range(5)]
    for _ in range(50):  # let every probe reach the shared run (bounded)
        await asyncio.sleep(0)
    release.set()
    reports = await asyncio.gather(*probes)
    assert calls == 1
    assert all(r is reports[0] for r in reports)

    now[0] = 4.9
    assert await registry.run() is reports[0]
    now[0] = 5.1
    assert await registry.run() is not reports[0]
    assert calls == 2
    assert await registry.run(use_cache=False) is not None
    assert calls == 3


def test_register_rejects_duplicates():
    registry = HealthRegistry()
    registry.register("x", callable_check(lambda: True))
    with pytest.raises(ValueError, match="unique"):
        registry.register("x", callable_check(lambda: True))


@dataclass
class _Stats:
    depth: int
    oldest_age_s: float | None


class _FakeCrm:
    def __init__(self) -> None:
        self.down: set[str] = set()
        self.stats = _Stats(0, None)

    async def ping(self, dependency: str) -> None:
        if dependency in self.down:
            raise CircuitOpenError(f"{dependency} circuit open", dependency=dependency)

    def outbox_stats(self) -> _Stats:
        return self.stats


class _FakeLlm:
    async def check_provider(self, name: str) -> tuple[bool, dict]:
        return name != "openai", {"cooling_down": name == "openai"}


async def test_dependency_outbox_and_llm_factories():
    crm = _FakeCrm()
    registry = HealthRegistry(HealthSettings(cache_ttl_s=0))
    registry.register("crm", dependency_check(crm, "crm"))
    registry.register("calendar", dependency_check(crm, "calendar"))
    registry.register("outbox", outbox_backlog_check(crm, max_depth=10, max_age_s=60), critical=False)
    registry.register("llm.primary", llm_provider_check(_FakeLlm(), "primary"))
    registry.register("llm.openai", llm_provider_check(_FakeLlm(), "openai"), critical=False)

    report = await registry.run()
    by_name = {c.name: c for c in report.checks}
    assert by_name["crm"].healthy and by_name["calendar"].healthy
    assert by_name["outbox"].healthy
    assert by_name["llm.primary"].healthy
    assert not by_name["llm.openai"].healthy and by_name["llm.openai"].details == {"cooling_down": True}
    assert report.ready

    crm.down.add("calendar")
    crm.stats = _Stats(3, 120.0)
    report = await registry.run()
    by_name = {c.name: c for c in report.checks}
    assert by_name["calendar"].error == "CircuitOpenError: calendar circuit open"
    assert not by_name["outbox"].healthy
    assert by_name["outbox"].details["oldest_age_s"] == 120.0
    assert not report.ready


def _telemetry(endpoint: str | None, failing: dict[str, str] | None = None) -> SimpleNamespace:
    """Shaped like ``telemetry.setup.Telemetry.export_status()``."""
    failing = failing or {}
    signals = {
        s: {"healthy": s not in failing, "failures": int(s in failing), "last_error": failing.get(s)}
        for s in ("traces", "metrics", "logs")
    }
    status = {"otlp_enabled": endpoint is not None, "endpoint": endpoint, "protocol": "http/protobuf"}
    return SimpleNamespace(export_status=lambda: {**status, "signals": signals})


async def test_otlp_export_check():
    assert await otlp_export_check(_telemetry(None))() == (True, {"otlp": "disabled"})

    async with fake_dependency() as (url, runner):
        reachable = otlp_export_check(_telemetry(url))
        ok, details = await reachable()
        assert ok and details["endpoint"] == url.removeprefix("http://")
        assert details["failing_signals"] == []

        ok, details = await otlp_export_check(_telemetry(url, {"traces": "HTTP 503"}))()
        assert not ok
        assert details["failing_signals"] == ["traces"]
        assert details["traces_last_error"] == "HTTP 503"

        await runner.cleanup()  # the collector goes away
        registry = HealthRegistry()
        registry.register("otlp", reachable, critical=False)
        report = await registry.run()
        assert not report.checks[0].healthy
        assert report.ready  # non-critical


async def test_otlp_export_check_reads_the_real_telemetry_handle(otel):
    # The test session installs telemetry without OTLP.
    assert await otlp_export_check(otel.telemetry)() == (True, {"otlp": "disabled"})
