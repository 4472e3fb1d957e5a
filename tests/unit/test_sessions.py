"""SessionManager: expiry and idle cleanup on a controllable clock, capacity, per-tenant overrides."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from agent.errors import InvalidInput
from agent.session_settings import SessionSettings
from agent.sessions import CapacityExceeded, SessionManager, SessionOutcome
from agent.tenants import TenantRegistry
from telemetry import names

TENANTS = TenantRegistry.from_mapping(
    {
        "tenants": {
            "acme": {"display_name": "Acme"},
            "globex": {
                "display_name": "Globex",
                "sessions": {"expiry_minutes": 15, "inactivity_minutes": 2, "max_sessions": 2},
            },
        }
    }
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60.0


class Resource:
    """Stands in for an agent session: on_close says goodbye and releases."""

    def __init__(self) -> None:
        self.closed_with: list[SessionOutcome] = []

    async def on_close(self, outcome: SessionOutcome) -> None:
        self.closed_with.append(outcome)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> SessionManager:
    return SessionManager(SessionSettings(), TENANTS, clock=clock)


def _ended(otel, tenant: str, outcome: str) -> float:
    attrs = {names.TENANT_ID: tenant, names.SESSION_OUTCOME: outcome}
    return otel.metric_value(names.SESSIONS_ENDED, **attrs)


def test_spec_defaults(monkeypatch):
    for var in ("EXPIRY_MINUTES", "CLEANUP_INTERVAL_MINUTES", "MAX_SESSIONS", "INACTIVITY_MINUTES"):
        monkeypatch.delenv(f"SALES_AGENT_SESSION_{var}", raising=False)
    s = SessionSettings()
    assert (s.expiry_minutes, s.cleanup_interval_minutes, s.max_sessions, s.inactivity_minutes) == (
        30,
        5,
        1000,
        5,
    )


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("SALES_AGENT_SESSION_EXPIRY_MINUTES", "45")
    monkeypatch.setenv("SALES_AGENT_SESSION_MAX_SESSIONS", "20")
    s = SessionSettings()
    assert s.expiry_minutes == 45
    assert s.max_sessions == 20


async def test_idle_session_is_closed_politely_and_activity_extends(otel, manager, clock):
    before_idle = _ended(otel, "acme", "idle")
    active_before = otel.metric_value(names.SESSIONS_ACTIVE, **{names.TENANT_ID: "acme"})
    quiet, busy = Resource(), Resource()
    manager.open("s-quiet", "acme", quiet.on_close)
    manager.open("s-busy", "acme", busy.on_close)
    assert otel.metric_value(names.SESSIONS_ACTIVE, **{names.TENANT_ID: "acme"}) == active_before + 2

    for _ in range(4):  # 4 x 1.5 min: busy keeps talking, quiet says nothing for 6 min
        clock.advance(1.5)
        assert manager.touch("s-busy")
    assert await manager.sweep() == {"s-quiet": "idle"}
    assert quiet.closed_with == ["idle"]
    assert busy.closed_with == []
    assert "s-quiet" not in manager
    assert "s-busy" in manager
    assert _ended(otel, "acme", "idle") == before_idle + 1
    assert otel.metric_value(names.SESSIONS_ACTIVE, **{names.TENANT_ID: "acme"}) == active_before + 1
    await manager.close("s-busy")


async def test_expiry_is_a_hard_lifetime(otel, manager, clock):
    before = _ended(otel, "acme", "expired")
    res = Resource()
    manager.open("s-long", "acme", res.on_close)
    for _ in range(30):  # active every minute for 30 minutes
        clock.advance(1)
        manager.touch("s-long")
        if res.closed_with:
            break
        await manager.sweep()
    assert res.closed_with == ["expired"]
    assert _ended(otel, "acme", "expired") == before + 1
    assert otel.metric_value(names.SESSION_DURATION, **{names.SESSION_OUTCOME: "expired"}) >= 1


async def test_per_tenant_override(manager, clock):
    acme, globex = Resource(), Resource()
    manager.open("s-acme", "acme", acme.on_close)
    manager.open("s-globex", "globex", globex.on_close)
    clock.advance(3)  # past globex's 2 min inactivity, within acme's 5
    assert await manager.sweep() == {"s-globex": "idle"}
    assert manager.limits_for("globex").expiry_s == 15 * 60
    assert manager.limits_for("acme").expiry_s == 30 * 60
    await manager.close("s-acme")


async def test_capacity_refusal_and_load(otel, clock):
    manager = SessionManager(SessionSettings(max_sessions=3), TENANTS, clock=clock)
    rejected = otel.metric_value(names.SESSIONS_REJECTED, **{names.SESSION_REJECT_REASON: "capacity"})
    tenant_rejected = otel.metric_value(
        names.SESSIONS_REJECTED, **{names.SESSION_REJECT_REASON: "tenant_capacity", names.TENANT_ID: "globex"}
    )
    res = Resource()
    manager.open("g1", "globex", res.on_close)
    manager.open("g2", "globex", res.on_close)
    with pytest.raises(CapacityExceeded) as info:  # globex's share is 2
        manager.open("g3", "globex", res.on_close)
    assert info.value.reason == "tenant_capacity"
    manager.open("a1", "acme", res.on_close)
    assert manager.load() == 1.0
    with pytest.raises(CapacityExceeded, match="worker at capacity"):
        manager.open("a2", "acme", res.on_close)
    capacity = {names.SESSION_REJECT_REASON: "capacity"}
    assert otel.metric_value(names.SESSIONS_REJECTED, **capacity) == rejected + 1
    assert (
        otel.metric_value(
            names.SESSIONS_REJECTED,
            **{names.SESSION_REJECT_REASON: "tenant_capacity", names.TENANT_ID: "globex"},
        )
        == tenant_rejected + 1
    )
    await manager.close("a1")
    assert manager.load() == pytest.approx(2 / 3)
    manager.open("a2", "acme", res.on_close)  # room again
    await manager.stop()
    assert len(manager) == 0
    assert res.closed_with.count("evicted") == 3


def test_open_validates_tenant_and_duplicates(manager):
    res = Resource()
    with pytest.raises(InvalidInput, match="unknown tenant"):
        manager.open("s1", "initech", res.on_close)
    manager.open("s1", "acme", res.on_close)
    with pytest.raises(InvalidInput, match="already open"):
        manager.open("s1", "acme", res.on_close)


async def test_close_is_idempotent_and_reentrant(otel, manager):
    before = _ended(otel, "acme", "completed")

    async def on_close(outcome: SessionOutcome) -> None:
        # The owner's shutdown path may call close again from inside the callback.
        assert await manager.close("s1") is False

    manager.open("s1", "acme", on_close)
    assert await manager.close("s1") is True
    assert await manager.close("s1") is False
    assert manager.touch("s1") is False
    assert _ended(otel, "acme", "completed") == before + 1


async def test_slow_or_failing_on_close_does_not_block_cleanup(clock, caplog):
    manager = SessionManager(SessionSettings(close_timeout_s=0.05), TENANTS, clock=clock)
    never = asyncio.Event()

    async def hangs(outcome: SessionOutcome) -> None:
        await never.wait()

    async def fails(outcome: SessionOutcome) -> None:
        raise RuntimeError("goodbye failed")

    manager.open("s-hang", "acme", hangs)
    manager.open("s-fail", "acme", fails)
    clock.advance(6)
    assert await manager.sweep() == {"s-hang": "idle", "s-fail": "idle"}
    assert len(manager) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("did not finish within" in m for m in messages)
    assert any("on_close failed" in m for m in messages)


async def test_closed_session_is_not_referenced(manager, clock):
    res = Resource()
    ref = weakref.ref(res)
    handle = manager.open("s-gc", "acme", res.on_close)
    handle_ref = weakref.ref(handle)
    del res, handle
    clock.advance(10)
    await manager.sweep()
    gc.collect()
    assert ref() is None, "the manager kept the closed session's resources alive"
    assert handle_ref() is None


async def test_cleanup_loop_runs_sweeps(clock):
    # A tiny real interval: the loop itself is what is under test; the fake clock decides idleness.
    manager = SessionManager(SessionSettings(cleanup_interval_minutes=0.0001), TENANTS, clock=clock)
    closed = asyncio.Event()

    async def on_close(outcome: SessionOutcome) -> None:
        closed.set()

    manager.open("s-loop", "acme", on_close)
    clock.advance(6)
    manager.start()
    await asyncio.wait_for(closed.wait(), timeout=10)
    await manager.stop()
    assert len(manager) == 0


async def test_ten_thousand_sessions_leave_no_growth(manager, clock):
    baseline = (len(manager._sessions), len(manager._per_tenant))
    for i in range(10_000):
        tenant = "acme" if i % 2 else "globex"
        res = Resource()
        manager.open(f"s-{i}", tenant, res.on_close)
        manager.touch(f"s-{i}")
        if i % 3 == 0:
            clock.advance(20)
            await manager.sweep()
        else:
            await manager.close(f"s-{i}")
    await manager.sweep()
    assert (len(manager._sessions), len(manager._per_tenant)) == baseline == (0, 0)


def test_calls_from_several_threads_keep_the_structures_consistent(clock):
    # livekit's thread executor runs each job in its own thread and event loop.
    import threading

    manager = SessionManager(SessionSettings(max_sessions=10_000), TENANTS, clock=clock)

    def job(worker: int) -> None:
        async def run() -> None:
            for i in range(500):
                sid = f"t{worker}-{i}"
                manager.open(sid, "acme", Resource().on_close)
                manager.touch(sid)
                await manager.close(sid)

        asyncio.run(run())

    threads = [threading.Thread(target=job, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert len(manager) == 0 and manager.count("acme") == 0
