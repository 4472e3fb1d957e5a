"""Durable outbox: a lead captured while the CRM is down reaches it later, exactly once, in order,
even when the process holding the outbox is SIGKILLed mid-outage. Every test runs on both stores
(SQLite, and PostgreSQL on a real server): ``any_outbox``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from outbox_backends import OutboxBackend

from agent.crm import Contact, CrmSettings, build_crm
from telemetry import names

REPO = Path(__file__).resolve().parents[2]
N = 5
UPSERT = {"dependency": "crm", "operation": "upsert_contact"}


pytestmark = pytest.mark.usefixtures("fast_retries")


def lead(i: int) -> Contact:
    return Contact(name=f"Lead {i}", company="Acme", email=f"lead{i}@acme.com")


def settings(url: str, backend: OutboxBackend) -> CrmSettings:
    # Recovery 0 s: the breaker half-opens at once when the CRM is back (its timing is tested elsewhere).
    return backend.crm_settings(url, outbox_poll_interval_s=0.05, breaker_recovery_s=0.0)


def where(backend: OutboxBackend) -> tuple[str, str]:
    """``sales-agent outbox``'s option naming the backend's outbox."""
    return ("--url", backend.location) if backend.is_postgres else ("--path", backend.location)


async def wait_drained(crm, *, max_polls: int = 400) -> None:
    for _ in range(max_polls):
        if crm.outbox_stats().depth == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox not drained: {crm.outbox_stats()}")


async def crm_stats(admin: httpx.AsyncClient) -> dict:
    return (await admin.get("/admin/stats")).json()


async def contact(admin: httpx.AsyncClient, key: str) -> dict:
    r = await admin.post("/v1/contacts/lookup", json={"contact_key": key}, headers={"X-Tenant-Id": "acme"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_leads_captured_while_crm_is_down_are_delivered_once_it_recovers(crm_service, any_outbox, otel):
    url, admin = crm_service
    enq0 = otel.metric_value(names.OUTBOX_ENQUEUED, **UPSERT)
    del0 = otel.metric_value(names.OUTBOX_DELIVERED, **UPSERT)
    await admin.post("/admin/fault", json={"mode": "down"})
    crm = build_crm(settings(url, any_outbox))
    try:
        outcomes = [await crm.upsert_contact("acme", lead(i)) for i in range(N)]
        assert {o.status for o in outcomes} == {"queued"}
        assert "will sync to the CRM shortly" in outcomes[0].message
        stats = crm.outbox_stats()
        assert stats.depth == N and stats.oldest_age_s is not None
        assert otel.metric_value(names.OUTBOX_DEPTH, dependency="crm") == N
        assert otel.metric_value(names.OUTBOX_OLDEST_AGE, dependency="crm") > 0  # the first lead waits
        assert otel.metric_value(names.OUTBOX_ENQUEUED, **UPSERT) - enq0 == N
        assert (await crm_stats(admin))["contacts"] == 0

        await admin.post("/admin/fault", json={"mode": "ok"})
        await crm.start()
        await wait_drained(crm)

        s = await crm_stats(admin)
        assert s["contacts"] == N and s["writes_applied"] == N  # N contacts, 0 duplicates
        assert otel.metric_value(names.OUTBOX_DEPTH, dependency="crm") == 0
        assert otel.metric_value(names.OUTBOX_OLDEST_AGE, dependency="crm") == 0
        assert otel.metric_value(names.OUTBOX_DELIVERED, **UPSERT) - del0 == N
        assert otel.spans("outbox.deliver")
    finally:
        await crm.aclose()


async def test_writes_for_one_contact_are_delivered_in_order(crm_service, any_outbox):
    url, admin = crm_service
    await admin.post("/admin/fault", json={"mode": "down"})
    crm = build_crm(settings(url, any_outbox))
    try:
        ann = lead(1)
        assert (await crm.upsert_contact("acme", ann)).status == "queued"
        await admin.post("/admin/fault", json={"mode": "ok"})
        # The CRM is reachable again, but these must not overtake the queued upsert.
        assert (await crm.add_note("acme", "lead1@acme.com", "wants a demo")).status == "queued"
        status = await crm.set_lead_status("acme", "lead1@acme.com", "qualified", 80, "hot")
        assert status.status == "queued"
        await crm.drainer.drain_once()
        record = await contact(admin, "lead1@acme.com")
        assert [n["text"] for n in record["notes"]] == ["wants a demo"]
        assert record["lead_status"] == "qualified" and record["lead_band"] == "hot"
        assert await crm.outbox.dead_letters() == []
        # Nothing queued any more: the next write goes straight through.
        assert (await crm.add_note("acme", "lead1@acme.com", "follow up")).status == "synced"
    finally:
        await crm.aclose()


async def test_poison_entry_is_parked_and_does_not_block_the_queue(crm_service, any_outbox, otel, caplog):
    url, admin = crm_service
    failed0 = otel.metric_value(names.OUTBOX_FAILED, dependency="crm", operation="add_note")
    await admin.post("/admin/fault", json={"mode": "down"})
    crm = build_crm(settings(url, any_outbox))
    try:
        # A note for a contact that never reaches the CRM: the CRM will answer 404 forever.
        assert (await crm.add_note("acme", "ghost@acme.com", "hello?")).status == "queued"
        assert (await crm.upsert_contact("acme", lead(2))).status == "queued"
        await admin.post("/admin/fault", json={"mode": "ok"})
        with caplog.at_level(logging.ERROR, logger="agent.crm.outbox"):
            assert await crm.drainer.drain_once() == 1
        assert crm.outbox_stats().depth == 0
        (dead,) = await crm.outbox.dead_letters()
        assert dead["operation"] == "add_note" and "HTTP 404" in dead["last_error"]
        assert otel.metric_value(names.OUTBOX_FAILED, dependency="crm", operation="add_note") - failed0 == 1
        assert any("parked as dead letter" in r.getMessage() for r in caplog.records)
        await contact(admin, "lead2@acme.com")
    finally:
        await crm.aclose()


async def outbox_command(*args: str) -> tuple[int, str, str]:
    """``sales-agent outbox ...`` in its own process, as an operator runs it beside the agent."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli", "outbox", *args,
        cwd=REPO, env={**os.environ, "OTEL_SDK_DISABLED": "true"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_parked_entry_is_listed_counted_and_delivered_after_requeue(crm_service, any_outbox, otel):
    url, admin = crm_service
    await admin.post("/admin/fault", json={"mode": "down"})
    crm = build_crm(settings(url, any_outbox))
    try:
        assert (await crm.add_note("acme", "ghost@acme.com", "call back")).status == "queued"
        assert (await crm.add_note("acme", "ghost@acme.com", "sent deck")).status == "queued"
        await admin.post("/admin/fault", json={"mode": "ok"})
        await crm.drainer.drain_once()  # 404: no such contact, both parked
        assert otel.metric_value(names.OUTBOX_DEAD_LETTERS, dependency="crm") == 2

        code, out, _ = await outbox_command(*where(any_outbox), "list", "--status", "dead")
        assert code == 0
        assert out.count(" dead ") == 2 and "crm.add_note" in out and "HTTP 404" in out
        assert "ghost@acme.com" not in out, "contact keys are masked unless --reveal"
        code, out, _ = await outbox_command(*where(any_outbox), "list", "--json", "--reveal")
        listed = [json.loads(line) for line in out.splitlines()]
        assert [e["status"] for e in listed] == ["dead", "dead"]
        first = listed[0]
        assert first["contact_key"] == "ghost@acme.com" and "HTTP 404" in first["last_error"]

        # The cause is fixed (the contact now exists); the operator requeues one, then the rest.
        saved = await crm.upsert_contact("acme", Contact(name="Ghost", email="ghost@acme.com"))
        assert saved.status == "synced", saved
        code, out, _ = await outbox_command(*where(any_outbox), "requeue", str(first["id"]))
        assert (code, out.strip()) == (0, "requeued 1 parked entry")
        code, _, err = await outbox_command(*where(any_outbox), "requeue", str(first["id"]))
        assert code == 1 and "not parked" in err  # already back in the queue
        assert (await outbox_command(*where(any_outbox), "requeue", "--all"))[:2] == (
            0,
            "requeued 1 parked entry\n",
        )
        assert await crm.drainer.drain_once() == 2
        assert [n["text"] for n in (await contact(admin, "ghost@acme.com"))["notes"]] == [
            "call back",
            "sent deck",
        ]
        assert otel.metric_value(names.OUTBOX_DEAD_LETTERS, dependency="crm") == 0
        assert await crm.outbox.entries() == []
    finally:
        await crm.aclose()


async def test_outbox_command_refuses_a_missing_file_instead_of_creating_one(tmp_path):
    missing = tmp_path / "nope.sqlite3"
    code, _, err = await outbox_command("--path", str(missing), "list")
    assert code == 2 and "no outbox at" in err
    assert not missing.exists()


async def test_outbox_command_names_an_unreachable_database_without_its_password():
    from local_services.harness import free_port

    port = free_port()
    code, _, err = await outbox_command("--url", f"postgresql://agent:hunter2@127.0.0.1:{port}/crm", "list")
    assert code == 2, err
    assert f"postgresql://agent@127.0.0.1:{port}/crm" in err and "refused" in err.lower()
    assert "hunter2" not in err and len(err.strip().splitlines()) == 1


async def test_redelivery_after_a_crash_between_send_and_mark_is_applied_once(crm_service, any_outbox):
    url, admin = crm_service
    await admin.post("/admin/fault", json={"mode": "down"})
    crm = build_crm(settings(url, any_outbox))
    try:
        await crm.upsert_contact("acme", lead(3))
        await admin.post("/admin/fault", json={"mode": "ok"})
        (entry,) = await crm.outbox.pending()
        # The entry reached the CRM, but the process died before deleting the row ...
        payload, key = entry.payload["contact"], entry.idempotency_key
        await crm.crm.upsert_contact("acme", entry.contact_key, payload, key)
        await crm.drainer.drain_once()  # ... so the restarted drainer sends it again.
        s = await crm_stats(admin)
        assert s["writes_applied"] == 1 and s["idempotent_replays"] == 1 and s["contacts"] == 1
        assert crm.outbox_stats().depth == 0
    finally:
        await crm.aclose()


CHILD = """
import asyncio, sys
from agent.crm import Contact, CrmSettings, build_crm

async def main() -> None:
    url, outbox, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    where = {"outbox_url": outbox} if outbox.startswith("postgresql://") else {"outbox_path": outbox}
    crm = build_crm(CrmSettings(crm_url=url, **where, retries=0, outbox_poll_interval_s=0.05))
    await crm.start()
    for i in range(n):
        out = await crm.upsert_contact("acme", Contact(name=f"Lead {i}", email=f"lead{i}@acme.com"))
        note = await crm.add_note("acme", f"lead{i}@acme.com", "interested in a demo")
        print(out.status, note.status, flush=True)
    print("READY", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_outbox_survives_sigkill_of_the_agent_process(crm_service, any_outbox):
    url, admin = crm_service
    await admin.post("/admin/fault", json={"mode": "down"})
    env = {**os.environ, "OTEL_SDK_DISABLED": "true"}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, url, any_outbox.location, str(N),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        lines = []
        for _ in range(N + 1):
            line = (await asyncio.wait_for(child.stdout.readline(), timeout=60)).decode().strip()
            lines.append(line)
            if line == "READY" or not line:
                break
        assert lines == ["queued queued"] * N + ["READY"], lines
    finally:
        child.send_signal(signal.SIGKILL)  # mid-outage: no shutdown hook runs
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    assert any_outbox.rows("pending") == 2 * N
    assert (await crm_stats(admin))["contacts"] == 0

    # The CRM recovers; a new process opens the same outbox and its drainer delivers everything.
    await admin.post("/admin/fault", json={"mode": "ok"})
    crm = build_crm(settings(url, any_outbox))
    try:
        await crm.start()
        await wait_drained(crm)
    finally:
        await crm.aclose()
    s = await crm_stats(admin)
    assert s["contacts"] == N and s["notes"] == N and s["writes_applied"] == 2 * N  # 0 duplicates
    for i in range(N):
        notes = (await contact(admin, f"lead{i}@acme.com"))["notes"]
        assert [n["text"] for n in notes] == ["interested in a demo"]


async def test_simulate_refuses_an_unreachable_outbox_database_in_one_line():
    """Before its first call: exit 2, the URL named without its password (the worker's case, before it
    registers with LiveKit, is in test_bad_input.py)."""
    from local_services.harness import free_port

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_", "CRM_"))},
        "CRM_OUTBOX_URL": f"postgresql://agent:hunter2@127.0.0.1:{port}/crm",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OTEL_SDK_DISABLED": "true",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "simulate", "--calls", "1", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode() + err.decode()
    assert proc.returncode == 2, text[-2000:]
    assert f"postgresql://agent@127.0.0.1:{port}/crm" in text and "refused" in text.lower()
    assert "hunter2" not in text
