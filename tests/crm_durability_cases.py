"""The write path is durable before its first attempt, keeps order per contact across live, queued
and parallel writes, lets one drainer own an entry at a time, and keeps delivering when the outbox
storage fails (disk full). Counts are taken at the local CRM (its stats and its own database).

Cases, not a test module: ``tests/unit/test_crm_durability.py`` runs them on SQLite and
``tests/integration/test_crm_durability_postgres.py`` on PostgreSQL, through ``outbox_backend``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina
from outbox_backends import OutboxBackend, removals_held

from agent.crm import Contact, CrmSettings, build_crm
from agent.crm.outbox_store import StorageError
from telemetry import names

pytestmark = pytest.mark.usefixtures("fast_retries")

N = 5


def lead(i: int) -> Contact:
    return Contact(name=f"Lead {i}", company="Acme", email=f"lead{i}@acme.com")


def settings(url: str, backend: OutboxBackend, **overrides: Any) -> CrmSettings:
    values = {"outbox_poll_interval_s": 0.05, "breaker_recovery_s": 0.0, **overrides}
    return backend.crm_settings(url, **values)


async def stats(admin: httpx.AsyncClient) -> dict[str, Any]:
    return (await admin.get("/admin/stats")).json()


def notes_in_crm(crm_db: Path, key: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(crm_db)) as db:
        rows = db.execute("SELECT text FROM notes WHERE contact_key=? ORDER BY id", (key,)).fetchall()
    return [r[0] for r in rows]


async def until(predicate: Any, *, polls: int = 400, every: float = 0.025) -> None:
    for _ in range(polls):
        if await predicate():
            return
        await asyncio.sleep(every)
    raise AssertionError("condition not reached")


async def test_a_write_is_in_the_outbox_before_its_first_attempt(crm_service, outbox_backend) -> None:
    """Kill the process while the first request is in flight and the write must still be on disk."""
    url, admin = crm_service
    crm = build_crm(settings(url, outbox_backend))
    try:
        await crm.outbox.pending()  # the file exists before the write
        await admin.post("/admin/fault", json={"mode": "slow", "delay_s": 1.0, "count": 1})
        write = asyncio.create_task(crm.upsert_contact("acme", lead(1)))

        async def request_arrived() -> bool:
            return (await stats(admin))["requests"] >= 1

        await until(request_arrived)
        assert outbox_backend.rows() == 1  # committed before the request was sent
        outcome = await write
        assert outcome.status == "synced"
        await crm.settle()
        assert outbox_backend.rows() == 0  # and removed once the CRM had it
    finally:
        await crm.aclose()


async def test_a_delivered_write_answers_before_its_removal_lands(crm_service, outbox_backend) -> None:
    """The removal of a delivered entry is bookkeeping: the tool's answer does not wait for it. Until
    it lands the entry stays claimed: the contact's next write waits its turn, the drainer leaves it."""
    url, admin = crm_service
    crm = build_crm(settings(url, outbox_backend))
    try:
        with removals_held(crm.outbox.store) as removal_may_run:
            first = await asyncio.wait_for(crm.upsert_contact("acme", lead(1)), 5)  # old code: held here
            assert first.status == "synced"
            assert outbox_backend.rows() == 1  # delivered; its removal not landed yet
            assert await crm.drainer.drain_once() == 0  # still claimed by the live write: not sent again
            second = asyncio.create_task(crm.add_note("acme", "lead1@acme.com", "after"))
            await asyncio.sleep(0.3)
            assert not second.done()  # behind the first one's removal: the contact's order holds
            removal_may_run.set()
            assert (await asyncio.wait_for(second, 5)).status == "synced"
        await crm.settle()
        assert outbox_backend.rows() == 0
        assert (await stats(admin))["writes_applied"] == 2
    finally:
        await crm.aclose()


async def test_parallel_writes_for_one_contact_keep_their_order(
    crm_service, tmp_path, outbox_backend
) -> None:
    """As LiveKit runs a reply's tool calls: the first write's request fails once and is retried
    after its backoff; the second, started meanwhile, must not land before it."""
    url, admin = crm_service
    crm = build_crm(settings(url, outbox_backend, retry_wait_initial_s=0.2, retry_jitter_s=0))

    async def second_write() -> Any:
        await asyncio.sleep(0.05)  # inside the first one's backoff
        return await crm.add_note("acme", "lead1@acme.com", "second")

    try:
        assert (await crm.upsert_contact("acme", lead(1))).status == "synced"
        await admin.post("/admin/fault", json={"mode": "down", "count": 1})
        with stamina.set_testing(False):  # the real backoff is the window the second write lands in
            first, second = await asyncio.gather(
                crm.add_note("acme", "lead1@acme.com", "first"), second_write()
            )
        assert (first.status, second.status) == ("synced", "synced")
        assert notes_in_crm(tmp_path / "crm.sqlite3", "lead1@acme.com") == ["first", "second"]
        assert (await stats(admin))["writes_applied"] == 3
    finally:
        await crm.aclose()


async def test_a_write_behind_a_queued_one_queues_too(crm_service, tmp_path, outbox_backend) -> None:
    url, admin = crm_service
    crm = build_crm(settings(url, outbox_backend, retries=0))
    try:
        await admin.post("/admin/fault", json={"mode": "down"})
        assert (await crm.upsert_contact("acme", lead(1))).status == "queued"
        await admin.post("/admin/fault", json={"mode": "ok"})
        assert (await crm.add_note("acme", "lead1@acme.com", "after")).status == "queued"
        assert (await stats(admin))["requests"] == 1  # the note did not overtake the queued upsert
        assert await crm.drainer.drain_once() == 2
        assert notes_in_crm(tmp_path / "crm.sqlite3", "lead1@acme.com") == ["after"]
    finally:
        await crm.aclose()


async def test_two_drainers_on_one_outbox_send_each_entry_once(crm_service, outbox_backend) -> None:
    url, admin = crm_service
    one = build_crm(settings(url, outbox_backend, retries=0))
    two = build_crm(settings(url, outbox_backend, retries=0))
    try:
        await admin.post("/admin/fault", json={"mode": "down"})
        for i in range(N):
            assert (await one.upsert_contact("acme", lead(i))).status == "queued"
        await admin.post("/admin/fault", json={"mode": "ok"})
        before = (await stats(admin))["requests"]
        delivered = await asyncio.gather(one.drainer.drain_once(), two.drainer.drain_once())
        assert sum(delivered) == N
        s = await stats(admin)
        assert s["requests"] - before == N  # not 2 N: one owner per entry
        assert s["contacts"] == N and s["idempotent_replays"] == 0
    finally:
        await one.aclose()
        await two.aclose()


class FailingWrites:
    """The outbox storage with a full disk: reads work, every write fails as SQLite's would."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in {"add", "claim", "claim_heads", "complete", "release", "release_owner", "park", "requeue"}:

            def full(*_args: Any, **_kwargs: Any) -> Any:
                raise StorageError("outbox: database or disk is full")

            return full
        return getattr(self._store, name)


async def test_storage_failures_never_stop_delivery_of_what_is_queued(
    crm_service, outbox_backend, otel, caplog
):
    url, admin = crm_service
    crm = build_crm(settings(url, outbox_backend, retries=0))
    step = {names.OUTBOX_STEP: "complete"}
    errors_before = otel.metric_value(names.OUTBOX_STORAGE_ERRORS, **step)
    try:
        await admin.post("/admin/fault", json={"mode": "down"})
        for i in range(8):
            assert (await crm.upsert_contact("acme", lead(i))).status == "queued"
        await admin.post("/admin/fault", json={"mode": "ok"})
        real_store, crm.outbox.store = crm.outbox.store, FailingWrites(crm.outbox.store)
        before = (await stats(admin))["requests"]
        with caplog.at_level(logging.ERROR, logger="agent.crm.outbox"):
            assert await crm.drainer.drain_once() == 8
            for _ in range(3):  # later passes must not send anything again
                assert await crm.drainer.drain_once() == 0
        s = await stats(admin)
        assert s["requests"] - before == 8 and s["contacts"] == 8 and s["idempotent_replays"] == 0
        assert crm.outbox_stats().depth == 0  # delivered, though the file could not say so
        assert outbox_backend.rows() == 8
        assert otel.metric_value(names.OUTBOX_STORAGE_ERRORS, **step) > errors_before
        assert any("outbox storage failed" in r.getMessage() for r in caplog.records)

        # Space is back: the next pass removes them from the file, and sends nothing.
        crm.outbox.store = real_store
        assert await crm.drainer.drain_once() == 0
        assert outbox_backend.rows() == 0
        assert (await stats(admin))["requests"] - before == 8
    finally:
        await crm.aclose()


async def test_a_write_the_outbox_cannot_store_is_tried_live_and_never_reported_saved_falsely(
    crm_service, tmp_path, outbox_backend
) -> None:
    from agent.errors import DependencyError

    url, admin = crm_service
    crm = build_crm(settings(url, outbox_backend, retries=0))
    try:
        crm.outbox.store = FailingWrites(crm.outbox.store)
        assert (await crm.upsert_contact("acme", lead(1))).status == "synced"  # the CRM has it
        await admin.post("/admin/fault", json={"mode": "down"})
        with pytest.raises(DependencyError, match="NOT saved") as raised:
            await crm.upsert_contact("acme", lead(2))
        assert raised.value.error_type == "outbox_storage_failed"
    finally:
        await crm.aclose()


class FailingReads:
    """The outbox storage unreadable: the queue's depth and age cannot be read."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def pending_stats(self) -> Any:
        raise StorageError("outbox: disk I/O error")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_outbox_health_reports_failing_storage_until_it_works_again(
    crm_service, outbox_backend
) -> None:
    """/health said "outbox healthy, depth 0" while no write could be stored and the queue was unreadable."""
    from agent.health import outbox_backlog_check

    url, _admin = crm_service
    crm = build_crm(settings(url, outbox_backend, retries=0))
    check = outbox_backlog_check(crm)
    try:
        healthy, details = await check()
        assert healthy and details["storage_error"] is None
        real_store = crm.outbox.store

        crm.outbox.store = FailingWrites(real_store)
        assert (await crm.upsert_contact("acme", lead(1))).status == "synced"  # tried live: the CRM has it
        healthy, details = await check()
        assert not healthy
        assert details["storage_error"] == "add: outbox: database or disk is full"

        crm.outbox.store = FailingReads(real_store)
        healthy, details = await check()
        assert not healthy and details["depth"] == 0  # not "empty and healthy": it could not be read
        assert "read: outbox: disk I/O error" in details["storage_error"]

        crm.outbox.store = real_store  # storage back: the next write and read clear both
        assert (await crm.upsert_contact("acme", lead(2))).status == "synced"
        healthy, details = await check()
        assert healthy and details["storage_error"] is None
    finally:
        await crm.aclose()


async def test_parallel_tool_calls_of_one_reply_keep_order_at_the_crm(
    crm_service, tmp_path, outbox_backend
) -> None:
    """The trial's case through LiveKit: one LLM reply with two log_note calls, run in parallel; the
    first one's request fails once. 3 of 3 runs landed out of order."""
    import json
    import uuid

    from agent.app_settings import AppSettings
    from agent.call_context import CallContext
    from agent.llm import LLMSettings, ProviderConfig
    from agent.runtime import start_runtime
    from agent.sales_call import SalesCall
    from agent.tenants import TenantRegistry
    from local_services.llm_provider import run_llm_provider

    url, admin = crm_service
    async with run_llm_provider("primary") as primary:
        chain = [ProviderConfig(name="primary", kind="local", model="m", api_base=primary.url)]
        llm = LLMSettings(chain=chain)
        crm = settings(url, outbox_backend, retry_wait_initial_s=0.2, retry_jitter_s=0)
        runtime = await start_runtime(
            AppSettings.from_env().model_copy(update={"llm": llm, "crm": crm}),
            tenants=TenantRegistry.from_mapping({"tenants": {"acme": {"display_name": "Acme"}}}),
        )
        call_ctx = CallContext(tenant_id="acme", session_id=uuid.uuid4().hex, call_id="order-1")
        call = SalesCall(call_ctx, runtime.services, greet_on_enter=False)
        try:
            await call.start()
            contact = {"name": "Ann Lee", "company": "Acme", "email": "ann@acme.com"}
            await call.session.run(user_input=f"/tool capture_basic_info {json.dumps(contact)}")
            await admin.post("/admin/fault", json={"mode": "down", "count": 1})
            notes = "\n".join(f'/tool log_note {{"note": "{text}"}}' for text in ("first", "second"))
            with stamina.set_testing(False):
                await asyncio.wait_for(call.session.run(user_input=notes), 30)
        finally:
            await call.aclose()
            await runtime.aclose()
    assert notes_in_crm(tmp_path / "crm.sqlite3", "ann@acme.com") == ["first", "second"]
