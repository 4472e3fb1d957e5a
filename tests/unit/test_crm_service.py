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


def lookup(key: str) -> dict[str, str]:
    return {"contact_key": key}


async def test_contacts_are_isolated_per_tenant(crm):
    r = await crm.put("/v1/contacts", json={"contact_key": "ann@acme.com", "name": "Ann"}, headers=h("acme"))
    assert r.status_code == 201 and r.json()["created"] is True
    found = await crm.post("/v1/contacts/lookup", json=lookup("ann@acme.com"), headers=h("acme"))
    assert found.json()["name"] == "Ann"
    other = await crm.post("/v1/contacts/lookup", json=lookup("ann@acme.com"), headers=h("globex"))
    assert other.status_code == 404


async def test_the_contact_key_is_required_in_the_body(crm):
    r = await crm.put("/v1/contacts", json={"name": "Ann"}, headers=h("acme"))
    assert r.status_code == 422 and r.json()["error"] == "invalid_contact_key"


async def test_missing_tenant_header_is_rejected(crm):
    r = await crm.put("/v1/contacts", json={"contact_key": "x", "name": "Ann"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_tenant"


async def test_idempotency_key_applies_a_write_once_and_replays_the_response(crm):
    await crm.put("/v1/contacts", json={"contact_key": "bob", "name": "Bob"}, headers=h("acme"))
    await crm.put("/v1/contacts", json={"contact_key": "eve", "name": "Eve"}, headers=h("acme"))
    note = {"contact_key": "bob", "text": "hi"}
    first = await crm.post("/v1/contacts/notes", json=note, headers=h("acme", "k1"))
    again = await crm.post("/v1/contacts/notes", json=note, headers=h("acme", "k1"))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    assert (
        len((await crm.post("/v1/contacts/lookup", json=lookup("bob"), headers=h("acme"))).json()["notes"])
        == 1
    )
    # The same key for another request: another operation, or the same one for another contact.
    reused = await crm.put(
        "/v1/contacts/lead", json={"contact_key": "bob", "status": "new"}, headers=h("acme", "k1")
    )
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    other = await crm.post("/v1/contacts/notes", json={**note, "contact_key": "eve"}, headers=h("acme", "k1"))
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    stats = (await crm.get("/admin/stats")).json()
    assert stats["idempotent_replays"] == 1 and stats["notes"] == 1


async def test_note_for_unknown_contact_is_404(crm):
    r = await crm.post(
        "/v1/contacts/notes", json={"contact_key": "ghost", "text": "x"}, headers=h("acme", "k")
    )
    assert r.status_code == 404 and r.json()["error"] == "contact_not_found"


async def test_a_fault_ratio_hits_that_share_of_requests(crm):
    await crm.post("/admin/fault", json={"mode": "500", "ratio": 0.3})
    codes = [(await crm.get("/healthz")).status_code for _ in range(300)]
    assert set(codes) == {200, 500}
    assert 0.2 < codes.count(500) / len(codes) < 0.4  # 300 draws at p=0.3: a 4.8-sigma band
    bad = await crm.post("/admin/fault", json={"mode": "500", "ratio": 1.5})
    assert bad.status_code == 422


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
    await crm.put("/v1/contacts", json={"contact_key": "a@acme.com", "name": "Ann"}, headers=h("acme"))
    await crm.post("/admin/fault", json={"mode": "500"})
    assert (await crm.post("/admin/reset")).json() == {"reset": True}
    stats = (await crm.get("/admin/stats")).json()
    assert stats["fault"] == "ok" and stats["requests"] == 0 and stats["contacts"] == 1
