"""Circuit breaker: opens after the threshold, fails fast, half-opens after recovery, closes on success."""

from __future__ import annotations

import httpx
import pytest
import stamina

from agent.crm import Contact, CrmSettings, build_crm
from agent.errors import CircuitOpenError
from agent.resilience import BreakerState, CircuitBreaker
from local_services.crm_service import run_crm_service
from telemetry import names


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://dep.test/")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status, request=request))


async def _fail(status: int = 503) -> None:
    raise _http_error(status)


async def _ok() -> str:
    return "ok"


def gauge(otel, dependency: str) -> float:
    return otel.metric_value(names.BREAKER_STATE_GAUGE, dependency=dependency)


async def test_breaker_lifecycle_with_injected_clock(otel):
    clock = FakeClock()
    breaker = CircuitBreaker("dep-lifecycle", clock=clock)  # spec defaults: 5 / 60 s / 3
    transitions = lambda to: otel.metric_value(  # noqa: E731
        names.BREAKER_TRANSITIONS, dependency="dep-lifecycle", **{names.BREAKER_TO: to}
    )
    try:
        for _ in range(4):
            with pytest.raises(httpx.HTTPStatusError):
                await breaker.call(_fail)
        assert breaker.state is BreakerState.CLOSED
        with pytest.raises(httpx.HTTPStatusError):
            await breaker.call(_fail)
        assert breaker.state is BreakerState.OPEN
        assert gauge(otel, "dep-lifecycle") == 2
        assert transitions("open") == 1

        called = False

        async def should_not_run() -> None:
            nonlocal called
            called = True

        with pytest.raises(CircuitOpenError) as info:
            await breaker.call(should_not_run)
        assert not called and "circuit open" in info.value.message

        clock.now += 59.9
        assert breaker.state is BreakerState.OPEN
        clock.now += 0.1
        assert breaker.state is BreakerState.HALF_OPEN
        assert gauge(otel, "dep-lifecycle") == 1

        # Half-open admits 3 trial calls; 3 successes close the circuit.
        assert await breaker.call(_ok) == "ok"
        assert await breaker.call(_ok) == "ok"
        assert breaker.state is BreakerState.HALF_OPEN
        assert await breaker.call(_ok) == "ok"
        assert breaker.state is BreakerState.CLOSED
        assert gauge(otel, "dep-lifecycle") == 0
        assert transitions("closed") == 1
    finally:
        breaker.unregister()


async def test_failure_in_half_open_reopens_and_trial_calls_are_limited():
    clock = FakeClock()
    breaker = CircuitBreaker("dep-halfopen", failure_threshold=1, recovery_s=10, clock=clock)
    try:
        with pytest.raises(httpx.HTTPStatusError):
            await breaker.call(_fail)
        clock.now += 10
        for _ in range(3):  # three trial slots, taken by in-flight calls
            breaker.acquire()
        with pytest.raises(CircuitOpenError):
            breaker.acquire()
        breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
    finally:
        breaker.unregister()


async def test_4xx_and_successes_do_not_count_against_the_breaker():
    breaker = CircuitBreaker("dep-4xx", failure_threshold=2, clock=FakeClock())
    try:
        for _ in range(5):
            with pytest.raises(httpx.HTTPStatusError):
                await breaker.call(lambda: _fail(404))
        with pytest.raises(httpx.HTTPStatusError):
            await breaker.call(_fail)
        await breaker.call(_ok)  # success resets the consecutive-failure count
        with pytest.raises(httpx.HTTPStatusError):
            await breaker.call(_fail)
        assert breaker.state is BreakerState.CLOSED
    finally:
        breaker.unregister()


async def test_open_breaker_stops_requests_reaching_the_crm(tmp_path, otel):
    """Against the real service: after 5 failed attempts no request reaches it; writes are queued."""
    ann = Contact(name="Ann", email="ann@acme.com")
    async with run_crm_service(tmp_path / "crm.sqlite3") as url, httpx.AsyncClient(base_url=url) as admin:
        settings = CrmSettings(crm_url=url, outbox_path=str(tmp_path / "outbox.sqlite3"), retries=3)
        clock = FakeClock()
        crm = build_crm(settings, clock=clock)
        try:
            await admin.post("/admin/fault", json={"mode": "500"})
            with stamina.set_testing(True, attempts=10, cap=True):
                first = await crm.upsert_contact("acme", ann)  # 4 attempts, all 500
                second = await crm.upsert_contact("acme", ann.model_copy(update={"email": "b@acme.com"}))
                seen = (await admin.get("/admin/stats")).json()["requests"]
                assert seen == 5  # 4 + 1: the 5th failure opened the breaker, the retry failed fast
                assert crm.crm_caller.breaker.state is BreakerState.OPEN
                assert gauge(otel, "crm") == 2
                for i in range(3):
                    out = await crm.upsert_contact("acme", ann.model_copy(update={"email": f"c{i}@acme.com"}))
                    assert out.status == "queued"
                assert (await admin.get("/admin/stats")).json()["requests"] == seen  # fail fast: no request
                assert first.status == second.status == "queued"

                # Recovery: the CRM is back, 60 s pass, the drainer's trial calls close the breaker.
                await admin.post("/admin/fault", json={"mode": "ok"})
                clock.now += 60
                assert crm.crm_caller.breaker.state is BreakerState.HALF_OPEN
                assert gauge(otel, "crm") == 1
                delivered = await crm.drainer.drain_once()
                assert delivered == 5
                assert crm.crm_caller.breaker.state is BreakerState.CLOSED
                assert gauge(otel, "crm") == 0
        finally:
            await crm.aclose()


async def test_a_half_open_breaker_with_no_traffic_is_probed_until_it_knows(otel):
    from agent.resilience.probe import BreakerProber

    clock = FakeClock()
    breaker = CircuitBreaker("dep-idle", failure_threshold=1, recovery_s=60, clock=clock)
    dependency_up = False
    pings = 0

    async def ping() -> None:
        nonlocal pings
        pings += 1
        if not dependency_up:
            raise _http_error(503)

    prober = BreakerProber(breaker, ping, interval_s=1)
    try:
        with pytest.raises(httpx.HTTPStatusError):
            await breaker.call(_fail)
        await prober.probe_once()  # open: nothing to probe
        assert breaker.state is BreakerState.OPEN and pings == 0
        clock.now += 61  # recovery period over, and no call comes
        await prober.probe_once()  # the dependency is still down: the probe re-opens the breaker
        assert pings == 1 and breaker.state is BreakerState.OPEN
        assert gauge(otel, "dep-idle") == BreakerState.OPEN
        dependency_up = True
        clock.now += 61
        await prober.probe_once()  # recovered: the trial budget of probes closes it
        assert breaker.state is BreakerState.CLOSED and pings == 1 + breaker.half_open_max_calls
        await prober.probe_once()  # closed: never probed
        assert pings == 1 + breaker.half_open_max_calls
    finally:
        breaker.unregister()


async def test_the_runtime_probes_its_crm_and_calendar_breakers(tmp_path):
    from agent.app_settings import AppSettings
    from agent.llm import ProviderConfig
    from agent.runtime import start_runtime
    from agent.tenants import TenantRegistry

    async with run_crm_service(tmp_path / "crm.sqlite3") as url:
        chain = [ProviderConfig(name="p", kind="local", model="p-model", api_base=f"{url}/v1")]
        settings = AppSettings.from_env(
            llm={"chain": chain}, crm={"crm_url": url, "outbox_path": str(tmp_path / "outbox.sqlite3")}
        )
        runtime = await start_runtime(
            settings, tenants=TenantRegistry.from_mapping({"tenants": {"acme": {"display_name": "Acme"}}})
        )
        try:
            probed = {p.breaker for p in runtime.breaker_probers}
            assert probed == {runtime.crm.crm_caller.breaker, runtime.crm.calendar_caller.breaker}
            assert all(p._task is not None and not p._task.done() for p in runtime.breaker_probers)
        finally:
            await runtime.aclose()
