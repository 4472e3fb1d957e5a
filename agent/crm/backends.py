"""The CRM / calendar interfaces and their HTTP implementation (the contract in README.md).

``CrmBackend`` / ``CalendarBackend`` are what ``ResilientCrm`` needs from a CRM; a HubSpot or
Salesforce adapter implements the same Protocols. Each method makes ONE attempt and raises httpx
errors (``HTTPStatusError`` for non-2xx, ``TransportError`` subclasses); retries, breakers, the
outbox and error translation are layered on top by ``ResilientCrm``.

The contact key (an e-mail address or a phone number) travels in the request body, never in the URL:
a URL is what ends up everywhere - the httpx client span's ``url.full``, the server's access log and
span, a proxy's log, the text of an ``HTTPStatusError`` (and so stamina's retry log) - and an
escaped key (``%40``, ``%2B``) there slips past pattern-based redaction. A lookup is therefore a POST.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from agent.crm.models import Booking, Slot
from telemetry.http_semconv import opt_in_stable_http_semconv


class CrmBackend(Protocol):
    async def upsert_contact(
        self, tenant_id: str, contact_key: str, contact: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]: ...

    async def add_note(
        self, tenant_id: str, contact_key: str, text: str, idempotency_key: str
    ) -> dict[str, Any]: ...

    async def set_lead_status(
        self, tenant_id: str, contact_key: str, lead: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]: ...

    async def get_contact(self, tenant_id: str, contact_key: str) -> dict[str, Any] | None: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


class CalendarBackend(Protocol):
    async def list_free_slots(self, tenant_id: str, days_ahead: int, limit: int) -> list[Slot]: ...

    async def book(
        self, tenant_id: str, contact_key: str, start: datetime, duration_minutes: int, idempotency_key: str
    ) -> Booking: ...

    async def cancel(self, tenant_id: str, booking_id: str, idempotency_key: str) -> None: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


def pooled_client(
    base_url: str,
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_connections: int,
    api_key: str | None,
) -> httpx.AsyncClient:
    """One pooled, traced client per dependency, with explicit timeouts (httpx's default is 5 s for all)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    client = httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
    # Client span per request + W3C traceparent injection, so the CRM's server span joins our trace.
    # If telemetry setup already instrumented httpx process-wide, a second wrapper would double the spans.
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        opt_in_stable_http_semconv()  # before the first instrumentation fixes the conventions
        HTTPXClientInstrumentor.instrument_client(client)
    return client


class _HttpBase:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _send(
        self,
        method: str,
        path: str,
        tenant_id: str | None,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {}
        if tenant_id is not None:
            headers["X-Tenant-Id"] = tenant_id
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = await self.client.request(method, path, json=json, params=params, headers=headers)
        response.raise_for_status()
        return response

    async def ping(self) -> None:
        await self._send("GET", "/healthz", None)

    async def aclose(self) -> None:
        await self.client.aclose()


class HttpCrmBackend(_HttpBase):
    async def upsert_contact(
        self, tenant_id: str, contact_key: str, contact: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]:
        body = {**contact, "contact_key": contact_key}
        r = await self._send("PUT", "/v1/contacts", tenant_id, json=body, idempotency_key=idempotency_key)
        return r.json()

    async def add_note(
        self, tenant_id: str, contact_key: str, text: str, idempotency_key: str
    ) -> dict[str, Any]:
        body = {"contact_key": contact_key, "text": text}
        r = await self._send(
            "POST", "/v1/contacts/notes", tenant_id, json=body, idempotency_key=idempotency_key
        )
        return r.json()

    async def set_lead_status(
        self, tenant_id: str, contact_key: str, lead: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]:
        body = {**lead, "contact_key": contact_key}
        r = await self._send(
            "PUT", "/v1/contacts/lead", tenant_id, json=body, idempotency_key=idempotency_key
        )
        return r.json()

    async def get_contact(self, tenant_id: str, contact_key: str) -> dict[str, Any] | None:
        try:
            r = await self._send("POST", "/v1/contacts/lookup", tenant_id, json={"contact_key": contact_key})
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                return None
            raise
        return r.json()


class HttpCalendarBackend(_HttpBase):
    async def list_free_slots(self, tenant_id: str, days_ahead: int, limit: int) -> list[Slot]:
        r = await self._send(
            "GET", "/v1/calendar/slots", tenant_id, params={"days_ahead": days_ahead, "limit": limit}
        )
        return [
            Slot(start=datetime.fromisoformat(s["start"]), end=datetime.fromisoformat(s["end"]))
            for s in r.json()["slots"]
        ]

    async def book(
        self, tenant_id: str, contact_key: str, start: datetime, duration_minutes: int, idempotency_key: str
    ) -> Booking:
        body = {"contact_key": contact_key, "start": start.isoformat(), "duration_minutes": duration_minutes}
        r = await self._send(
            "POST", "/v1/calendar/bookings", tenant_id, json=body, idempotency_key=idempotency_key
        )
        data = r.json()
        return Booking(
            booking_id=data["booking_id"],
            contact_key=data["contact_key"],
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
        )

    async def cancel(self, tenant_id: str, booking_id: str, idempotency_key: str) -> None:
        await self._send(
            "DELETE",
            f"/v1/calendar/bookings/{quote(booking_id, safe='')}",
            tenant_id,
            idempotency_key=idempotency_key,
        )
