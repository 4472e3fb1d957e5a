"""One trace from the agent's CRM call into the CRM service; bad input never reaches the network."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from opentelemetry.trace import SpanKind

from agent.crm import Contact
from agent.errors import DependencyError, DependencyRejected, InvalidInput

pytestmark = pytest.mark.usefixtures("fast_retries")


async def requests_seen(admin: httpx.AsyncClient) -> int:
    return (await admin.get("/admin/stats")).json()["requests"]


async def test_crm_server_span_is_a_child_of_the_agent_httpx_client_span(crm_env, otel):
    crm, _ = crm_env
    await crm.upsert_contact("acme", Contact(name="Ann", email="ann@acme.com"))

    (logical,) = otel.spans("crm.upsert_contact")
    (server,) = [s for s in otel.spans() if s.kind is SpanKind.SERVER and s.name == "PUT /v1/contacts"]
    (client,) = [s for s in otel.spans() if s.kind is SpanKind.CLIENT and s.parent is not None
                 and s.parent.span_id == logical.context.span_id]  # fmt: skip
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id
    assert server.parent.is_remote  # it crossed the wire as a W3C traceparent
    assert server.context.trace_id == client.context.trace_id == logical.context.trace_id
    assert server.attributes["tenant.id"] == "acme"


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"email": "ann@"}, "email", "The email address is not valid"),
        ({"email": "ann at acme dot com"}, "email", "is not valid"),
        ({"email": "lee at umbrella.example.com"}, "email", "The email address is not valid"),
        ({"email": "lee@umbrella..example.com"}, "email", "The email address is not valid"),
        ({"phone": "12"}, "phone", "The phone number is not"),
        ({"phone": "+1 555 0100 999999"}, "phone", "include the country code"),
        ({}, "email", "Need an email address or a phone number"),
    ],
)
async def test_invalid_contact_is_rejected_before_any_network_call(crm_env, fields, field, fragment):
    _, admin = crm_env
    with pytest.raises(InvalidInput) as info:
        Contact(name="Ann", **fields)
    assert info.value.field == field
    assert fragment in info.value.message
    # The value never comes back: messages reach span events, logs and stderr.
    for value in fields.values():
        for part in re.split(r"[^0-9A-Za-z]+", value):
            if len(part) >= 3:
                assert part.lower() not in info.value.message.lower(), (part, info.value.message)
    assert await requests_seen(admin) == 0


def test_phone_is_normalised_to_e164():
    assert Contact(name="A", phone="(415) 555-2671").phone == "+14155552671"
    assert Contact(name="A", phone="+44 20 7946 0958").phone == "+442079460958"


async def test_facade_validates_arguments_before_any_network_call(crm_env):
    crm, admin = crm_env
    bad_calls = [
        (crm.add_note("acme", "not-an-email@", "x"), "contact_key"),
        (crm.add_note("acme", "ann@acme.com", "   "), "text"),
        (crm.set_lead_status("acme", "ann@acme.com", "hot", 50, "hot"), "status"),
        (crm.set_lead_status("acme", "ann@acme.com", "qualified", 150, "hot"), "score"),
        (crm.set_lead_status("acme", "ann@acme.com", "qualified", 50, "tepid"), "band"),
        (crm.upsert_contact("Not A Tenant!", Contact(name="A", email="a@acme.com")), "tenant_id"),
        (crm.list_free_slots("acme", days_ahead=0), "days_ahead"),
        (crm.book_meeting("acme", "ann@acme.com", datetime(2020, 1, 1, tzinfo=UTC)), "start"),
        (crm.book_meeting("acme", "ann@acme.com", datetime(2099, 1, 1)), "start"),
    ]
    for call, field in bad_calls:
        with pytest.raises(InvalidInput) as info:
            await call
        assert info.value.field == field, (field, info.value.message)
    assert await requests_seen(admin) == 0


async def test_calendar_slots_booking_and_cancel_through_the_facade(crm_env):
    crm, _ = crm_env
    slots = await crm.list_free_slots("acme", days_ahead=14, limit=3)
    assert len(slots) == 3 and all(s.start > datetime.now(UTC) for s in slots)
    booking = await crm.book_meeting("acme", "ann@acme.com", slots[0].start)
    assert booking.end - booking.start == timedelta(minutes=30)
    with pytest.raises(DependencyRejected) as info:
        await crm.book_meeting("acme", "bob@acme.com", slots[0].start)
    assert info.value.status_code == 409 and "already booked" in info.value.message
    await crm.cancel_meeting("acme", booking.booking_id)
    assert slots[0].start in [s.start for s in await crm.list_free_slots("acme", days_ahead=14, limit=3)]


async def test_reads_raise_dependency_errors_and_ping_reports_health(crm_env):
    crm, admin = crm_env
    await crm.ping("crm")
    await crm.ping("calendar")
    assert await crm.get_contact("acme", "nobody@acme.com") is None
    await admin.post("/admin/fault", json={"mode": "down"})
    with pytest.raises(DependencyError) as info:
        await crm.ping("crm")
    assert "crm is unavailable (HTTP 503" in info.value.message
    with pytest.raises(DependencyError):
        await crm.list_free_slots("acme")


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("abc", "it does not look like a phone number"),
        ("+999 1234", "the country code is missing or unknown"),
        ("+1 555 0100 99999999999999999", "it has too many digits"),
    ],
)
def test_unparsable_phone_says_why_in_our_words(phone: str, reason: str) -> None:
    """From phonenumbers' public reason code, not its private message attribute; never the number
    itself (the message reaches spans, logs and the LLM)."""
    with pytest.raises(InvalidInput) as info:
        Contact(name="A", phone=phone)
    assert info.value.message == f"The phone number is not valid: {reason}."
