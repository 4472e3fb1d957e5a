"""The local CRM + calendar service honours the REST contract (agent/crm/README.md)."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from local_services.crm_service import run_crm_service


@pytest.fixture
async def crm(tmp_path):
    async with run_crm_service(tmp_path / "crm.sqlite3") as url, httpx.AsyncClient(base_url=url) as client:
        yield client


def h(tenant: str, key: str | None = None) -> dict[str, str]:
    headers = {"X-Tenant-Id": tenant}
    if key:
        headers["Idempotency-Key"] = key
    return headers


async def test_contacts_are_isolated_per_tenant(crm):
    r = await crm.put("/v1/contacts/ann%40acme.com", json={"name": "Ann"}, headers=h("acme"))
    assert r.status_code == 201 and r.json()["created"] is True
    assert (await crm.get("/v1/contacts/ann%40acme.com", headers=h("acme"))).json()["name"] == "Ann"
    assert (await crm.get("/v1/contacts/ann%40acme.com", headers=h("globex"))).status_code == 404


async def test_missing_tenant_header_is_rejected(crm):
    r = await crm.put("/v1/contacts/x", json={"name": "Ann"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_tenant"


async def test_idempotency_key_applies_a_write_once_and_replays_the_response(crm):
    await crm.put("/v1/contacts/bob", json={"name": "Bob"}, headers=h("acme"))
    first = await crm.post("/v1/contacts/bob/notes", json={"text": "hi"}, headers=h("acme", "k1"))
    again = await crm.post("/v1/contacts/bob/notes", json={"text": "hi"}, headers=h("acme", "k1"))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len((await crm.get("/v1/contacts/bob", headers=h("acme"))).json()["notes"]) == 1
    reused = await crm.put("/v1/contacts/bob/lead", json={"status": "new"}, headers=h("acme", "k1"))
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    stats = (await crm.get("/admin/stats")).json()
    assert stats["idempotent_replays"] == 1 and stats["notes"] == 1


async def test_note_for_unknown_contact_is_404(crm):
    r = await crm.post("/v1/contacts/ghost/notes", json={"text": "x"}, headers=h("acme", "k"))
    assert r.status_code == 404 and r.json()["error"] == "contact_not_found"


async def test_slots_booking_double_booking_and_cancel(crm):
    query = {"days_ahead": 14, "limit": 3}
    slots = (await crm.get("/v1/calendar/slots", params=query, headers=h("acme"))).json()
    assert len(slots["slots"]) == 3
    start = slots["slots"][0]["start"]
    assert datetime.fromisoformat(start).tzinfo is not None
    body = {"contact_key": "bob", "start": start, "duration_minutes": 30}
    booked = await crm.post("/v1/calendar/bookings", json=body, headers=h("acme", "b1"))
    assert booked.status_code == 201
    taken = await crm.post("/v1/calendar/bookings", json=body, headers=h("acme", "b2"))
    assert taken.status_code == 409 and taken.json()["error"] == "slot_taken"
    # Another tenant's calendar is untouched.
    other = await crm.post("/v1/calendar/bookings", json=body, headers=h("globex", "b3"))
    assert other.status_code == 201
    after = (await crm.get("/v1/calendar/slots", params=query, headers=h("acme"))).json()
    assert start not in [s["start"] for s in after["slots"]]
    booking_id = booked.json()["booking_id"]
    path = f"/v1/calendar/bookings/{booking_id}"
    assert (await crm.delete(path, headers=h("acme", "c1"))).status_code == 200
    assert (await crm.delete(path, headers=h("acme", "c2"))).status_code == 404


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"mode": "down"}, 503), ({"mode": "500"}, 500), ({"mode": "429", "retry_after": 3}, 429)],
)
async def test_fault_injection_modes(crm, fault, status):
    assert (await crm.post("/admin/fault", json={**fault, "count": 1})).status_code == 200
    r = await crm.get("/healthz")
    assert r.status_code == status
    if status == 429:
        assert r.headers["Retry-After"] == "3"
    assert (await crm.get("/healthz")).status_code == 200  # count=1: back to ok
    assert (await crm.get("/admin/stats")).json()["faulted"] == 1


async def test_fault_reset_drops_the_connection(crm):
    await crm.post("/admin/fault", json={"mode": "down", "style": "reset", "count": 1})
    with pytest.raises(httpx.TransportError):
        await crm.get("/healthz")
    assert (await crm.get("/healthz")).status_code == 200


async def test_unknown_fault_mode_is_rejected(crm):
    r = await crm.post("/admin/fault", json={"mode": "explode"})
    assert r.status_code == 422


async def test_reset_clears_counters_and_fault_but_keeps_the_data(crm):
    await crm.put("/v1/contacts/a@acme.com", json={"name": "Ann"}, headers=h("acme"))
    await crm.post("/admin/fault", json={"mode": "500"})
    assert (await crm.post("/admin/reset")).json() == {"reset": True}
    stats = (await crm.get("/admin/stats")).json()
    assert stats["fault"] == "ok" and stats["requests"] == 0 and stats["contacts"] == 1
