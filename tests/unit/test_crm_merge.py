"""A later caller cannot erase a lead: contact upserts merge and a lower qualification from another call
becomes a note. The trial: "hot 100, CTO, phone" became "cold 0, role null, phone null" after a
second caller gave the same e-mail."""

from __future__ import annotations

import pytest

from agent.call_context import CallContext
from agent.crm import Contact
from agent.crm.facade import LEAD_KEPT_MESSAGE
from agent.tools import SalesTools

pytestmark = pytest.mark.usefixtures("fast_retries")

EMAIL = "dana@initech.example.com"
FIRST = {
    "name": "Dana Scully",
    "company": "Initech",
    "role": "CTO",
    "email": EMAIL,
    "phone": "+1 415 555 0100",
}
HOT = {"budget": 90000, "authority": "decision_maker", "need": "high", "timeline": "this_quarter"}
COLD = {"budget": 0, "authority": "none", "need": "low", "timeline": "none"}


def tools_for(crm, call_id: str) -> SalesTools:
    return SalesTools(CallContext(tenant_id="acme", session_id=f"s-{call_id}", call_id=call_id), crm)


async def record(admin) -> dict:
    response = await admin.post(
        "/v1/contacts/lookup", json={"contact_key": EMAIL}, headers={"X-Tenant-Id": "acme"}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_second_caller_cannot_erase_fields_or_demote_the_lead(crm_env) -> None:
    crm, admin = crm_env
    first = tools_for(crm, "call-1")
    await first.capture_basic_info(FIRST)
    await first.qualify_lead(HOT)

    second = tools_for(crm, "call-2")  # same e-mail, fewer details, a cold conversation
    await second.capture_basic_info({"name": "Dana Scully", "company": "Initech", "email": EMAIL})
    answer = await second.qualify_lead(COLD)

    saved = await record(admin)
    assert (saved["role"], saved["phone"], saved["company"]) == ("CTO", "+14155550100", "Initech")
    assert (saved["lead_status"], saved["lead_band"], saved["lead_score"]) == ("qualified", "hot", 100)
    assert [n["text"] for n in saved["notes"]] == [
        "Qualification from another call not applied: unqualified, cold, score 0.0 (kept hot, score 100.0)."
    ]
    assert LEAD_KEPT_MESSAGE in answer  # the LLM is told the lead was kept


async def test_the_same_call_can_correct_its_own_qualification_and_a_better_one_wins(crm_env) -> None:
    crm, admin = crm_env
    first = tools_for(crm, "call-1")
    await first.capture_basic_info(FIRST)
    await first.qualify_lead(HOT)
    await first.qualify_lead(COLD)  # the caller corrected themselves in the same call
    assert (await record(admin))["lead_band"] == "cold"

    second = tools_for(crm, "call-2")
    await second.capture_basic_info({"name": "Dana Scully", "company": "Initech", "email": EMAIL})
    await second.qualify_lead(HOT)  # a better qualification from another call replaces a lower one
    saved = await record(admin)
    assert (saved["lead_band"], saved["lead_score"], saved["role"]) == ("hot", 100, "CTO")


async def test_the_crm_merges_contact_fields_a_request_leaves_out_or_sends_empty(crm_service) -> None:
    _url, admin = crm_service
    headers = {"X-Tenant-Id": "acme"}
    key = {"contact_key": "ann@acme.com"}
    full = {**key, "name": "Ann", "company": "Acme", "role": "CTO", "phone": "+14155550100"}
    assert (await admin.put("/v1/contacts", json=full, headers=headers)).status_code == 201
    sparse = {**key, "name": "Ann Lee", "company": None, "role": "", "phone": None}
    assert (await admin.put("/v1/contacts", json=sparse, headers=headers)).status_code == 200
    saved = (await admin.post("/v1/contacts/lookup", json=key, headers=headers)).json()
    assert (saved["name"], saved["company"], saved["role"], saved["phone"]) == (
        "Ann Lee",
        "Acme",
        "CTO",
        "+14155550100",
    )


async def test_the_agent_sends_only_the_fields_it_captured(crm_env, otel) -> None:
    crm, _admin = crm_env
    sent: list[dict] = []
    real = crm.crm.upsert_contact

    async def spy(tenant_id, key, contact, idempotency_key):  # type: ignore[no-untyped-def]
        sent.append(contact)
        return await real(tenant_id, key, contact, idempotency_key)

    crm.crm.upsert_contact = spy
    await crm.upsert_contact("acme", Contact(name="Ann", email="ann@acme.com"))
    assert sent == [{"name": "Ann", "email": "ann@acme.com"}]
