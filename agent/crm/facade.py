"""``ResilientCrm``: the agent's one door to the CRM and the calendar.

Validates input (``InvalidInput`` before any network call), stamps every write with an idempotency
key and commits it to the outbox before its first attempt, runs each call through its dependency's
breaker and stamina retry policy, and answers a write that cannot be delivered now with a truthful
"saved, will sync shortly" outcome (the outbox's drainer delivers it).
Reads and bookings need an answer during the call, so they raise ``DependencyError`` /
``CircuitOpenError`` / ``DependencyRejected`` instead.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

from agent.crm.backends import CalendarBackend, CrmBackend
from agent.crm.models import (
    LEAD_STATUSES,
    Booking,
    Contact,
    OutboxStats,
    Slot,
    WriteOutcome,
    contact_key,
    validate_contact_key,
)
from agent.crm.outbox import ClaimState, Outbox, OutboxDrainer, OutboxEntry, StorageError
from agent.errors import DependencyError, DependencyRejected, InvalidInput
from agent.resilience import NO_RETRY, DependencyCaller
from agent.vocabulary.lead_band import LEAD_BANDS
from agent.vocabulary.tenant_id import is_tenant_id
from telemetry import names

MAX_NOTE_CHARS = 4000
SYNCED_MESSAGE = "Saved to the CRM."
LEAD_KEPT_MESSAGE = (
    "Saved as a note: the CRM keeps the higher qualification an earlier call gave this contact."
)
QUEUED_MESSAGE = "Saved; the CRM is not reachable right now, so it will sync to the CRM shortly."


def _check_tenant(tenant_id: str) -> str:
    if not is_tenant_id(tenant_id):
        raise InvalidInput(
            f"Unknown or malformed tenant id {tenant_id!r}.",
            field="tenant_id",
            error_type="malformed_tenant_id",
        )
    return tenant_id


class ResilientCrm:
    def __init__(
        self,
        crm: CrmBackend,
        calendar: CalendarBackend,
        crm_caller: DependencyCaller,
        calendar_caller: DependencyCaller,
        outbox: Outbox,
        *,
        drain_interval_s: float = 2.0,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.crm = crm
        self.calendar = calendar
        self.crm_caller = crm_caller
        self.calendar_caller = calendar_caller
        self.outbox = outbox
        self.drainer = OutboxDrainer(outbox, self._deliver, interval_s=drain_interval_s)
        self._on_close = on_close

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the outbox drainer (delivers what an earlier process left behind, too)."""
        self.drainer.start()

    async def settle(self) -> None:
        """Until the delivered writes' removals have landed (``Outbox.complete_later``)."""
        await self.outbox.settle()

    async def aclose(self) -> None:
        await self.drainer.stop()
        await self.outbox.settle()
        await self.crm.aclose()
        await self.calendar.aclose()
        self.outbox.close()
        if self._on_close is not None:  # e.g. a private resilience state's breakers stop reporting
            self._on_close()

    async def __aenter__(self) -> ResilientCrm:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # --- CRM writes -------------------------------------------------------------------------
    async def upsert_contact(self, tenant_id: str, contact: Contact) -> WriteOutcome:
        if not isinstance(contact, Contact):
            raise InvalidInput("contact must be a validated Contact.", field="contact")
        # Only what the caller gave: the CRM merges, so a field left out never erases a stored one.
        return await self._write(
            tenant_id,
            contact_key(contact),
            "upsert_contact",
            {"contact": contact.model_dump(exclude_none=True)},
        )

    async def add_note(self, tenant_id: str, contact_key: str, text: str) -> WriteOutcome:
        key = validate_contact_key(contact_key)
        text = (text or "").strip()
        if not text:
            raise InvalidInput("The note is empty.", field="text")
        if len(text) > MAX_NOTE_CHARS:
            raise InvalidInput(f"The note is longer than {MAX_NOTE_CHARS} characters.", field="text")
        return await self._write(tenant_id, key, "add_note", {"text": text})

    async def set_lead_status(
        self,
        tenant_id: str,
        contact_key: str,
        status: str,
        score: float,
        band: str,
        source: str | None = None,
    ) -> WriteOutcome:
        """``source``: the call this qualification comes from. The CRM lets a lower score replace a
        lead only from the same call (a correction); from another call it is kept as a note."""
        key = validate_contact_key(contact_key)
        if status not in LEAD_STATUSES:
            raise InvalidInput(f"Lead status must be one of {', '.join(LEAD_STATUSES)}.", field="status")
        if not isinstance(score, int | float) or math.isnan(score) or not 0 <= score <= 100:
            raise InvalidInput("Lead score must be a number from 0 to 100.", field="score")
        if band not in LEAD_BANDS:
            raise InvalidInput(f"Lead band must be one of {', '.join(LEAD_BANDS)}.", field="band")
        return await self._write(
            tenant_id,
            key,
            "set_lead_status",
            {"lead": {"status": status, "score": float(score), "band": band, "source": source}},
        )

    async def _write(self, tenant_id: str, key: str, operation: str, payload: dict[str, Any]) -> WriteOutcome:
        """Outbox first: the write is durable before its first attempt and removed once delivered.

        A SIGKILL at any instant leaves it delivered or in the outbox (a restarted process sends it;
        the idempotency key makes a second delivery a replay). The live attempt only decides what the
        caller hears. Order per contact: the write goes live only as its contact's head; behind a
        write another task is sending, it waits for that one; behind a queued one, it queues.
        """
        tenant_id = _check_tenant(tenant_id)
        idempotency_key = uuid.uuid4().hex
        trace.get_current_span().set_attribute(names.IDEMPOTENCY_KEY, idempotency_key)
        write = _LiveWrite(tenant_id, key, operation, payload, idempotency_key)
        try:
            entry_id, state = await self.outbox.add(
                dependency="crm",
                operation=operation,
                tenant_id=tenant_id,
                contact_key=key,
                payload=payload,
                idempotency_key=idempotency_key,
            )
            if state is ClaimState.WAIT:
                state, error = await self.outbox.wait_turn(entry_id, self.outbox.lease.seconds)
            else:
                error = None
        except StorageError:
            return await self._write_without_outbox(write)
        if state is ClaimState.QUEUED:
            self.outbox.note_queued(entry_id, "crm", operation, tenant_id)
            return WriteOutcome("queued", QUEUED_MESSAGE, idempotency_key)
        if state is ClaimState.DONE:  # the drainer delivered it while this one waited its turn
            return WriteOutcome("synced", SYNCED_MESSAGE, idempotency_key)
        if state is ClaimState.PARKED:
            raise DependencyRejected(
                error or "the CRM rejected this write", dependency="crm", status_code=422
            )
        try:
            response = await self._send_live(write)
        except DependencyRejected:
            await self.outbox.complete(entry_id)  # the CRM refused it: the tool reports why, nothing to send
            raise
        except DependencyError as exc:
            await self.outbox.release(entry_id, exc.message)
            self.outbox.note_queued(entry_id, "crm", operation, tenant_id)
            return WriteOutcome("queued", QUEUED_MESSAGE, idempotency_key)
        except BaseException:  # cancelled (barge-in): the entry is durable; the drainer sends it
            await asyncio.shield(self.outbox.release(entry_id, None))
            raise
        self.outbox.complete_later(entry_id)  # the CRM has it: the caller need not wait for the mark
        return _synced(response, idempotency_key)

    async def _send_live(self, write: _LiveWrite) -> dict[str, Any]:
        return await self.crm_caller.call(
            write.operation,
            lambda: self._send(write),
            span_attributes={names.TENANT_ID: write.tenant_id, names.IDEMPOTENCY_KEY: write.idempotency_key},
        )

    async def _write_without_outbox(self, write: _LiveWrite) -> WriteOutcome:
        """The outbox cannot store the write (disk full...): try it live, and say so if that fails too."""
        try:
            overtakes = await self.outbox.has_pending("crm", write.tenant_id, write.contact_key)
        except StorageError:
            overtakes = False  # unreadable too: nothing can be kept in order with it
        failure = (
            "The CRM write could not be saved: the local outbox storage is failing "
            "(see the OutboxStorageFailing alert)"
        )
        if overtakes:
            raise DependencyError(
                f"{failure} and earlier writes for this contact are still queued.",
                dependency="crm",
                error_type=names.ERROR_OUTBOX_STORAGE,
            )
        try:
            response = await self._send_live(write)
        except DependencyRejected:
            raise
        except DependencyError as exc:
            raise DependencyError(
                f"{failure} and the CRM is not reachable ({exc.message}). It was NOT saved.",
                dependency="crm",
                error_type=names.ERROR_OUTBOX_STORAGE,
            ) from exc
        return _synced(response, write.idempotency_key)

    async def _send(self, entry: _LiveWrite | OutboxEntry) -> dict[str, Any]:
        p = entry.payload
        args = (entry.tenant_id, entry.contact_key)
        if entry.operation == "upsert_contact":
            return await self.crm.upsert_contact(*args, p["contact"], entry.idempotency_key)
        if entry.operation == "add_note":
            return await self.crm.add_note(*args, p["text"], entry.idempotency_key)
        if entry.operation == "set_lead_status":
            lead = {k: v for k, v in p["lead"].items() if v is not None}
            return await self.crm.set_lead_status(*args, lead, entry.idempotency_key)
        raise DependencyRejected(
            f"unknown CRM operation {entry.operation!r}", dependency="crm", status_code=400
        )

    async def _deliver(self, entry: OutboxEntry) -> None:
        """Drainer delivery: one attempt per pass (the drainer's poll loop is the retry)."""
        await self.crm_caller.call(
            entry.operation,
            lambda: self._send(entry),
            policy=NO_RETRY,
            span_attributes={names.TENANT_ID: entry.tenant_id},
        )

    # --- CRM reads --------------------------------------------------------------------------
    async def get_contact(self, tenant_id: str, contact_key: str) -> dict[str, Any] | None:
        tenant_id, key = _check_tenant(tenant_id), validate_contact_key(contact_key)
        return await self.crm_caller.call(
            "get_contact",
            lambda: self.crm.get_contact(tenant_id, key),
            span_attributes={names.TENANT_ID: tenant_id},
        )

    # --- calendar ---------------------------------------------------------------------------
    async def list_free_slots(self, tenant_id: str, days_ahead: int = 7, limit: int = 5) -> list[Slot]:
        tenant_id = _check_tenant(tenant_id)
        if not isinstance(days_ahead, int) or not 1 <= days_ahead <= 60:
            raise InvalidInput("days_ahead must be a whole number of days from 1 to 60.", field="days_ahead")
        if not isinstance(limit, int) or not 1 <= limit <= 20:
            raise InvalidInput("limit must be from 1 to 20.", field="limit")
        return await self.calendar_caller.call(
            "list_free_slots",
            lambda: self.calendar.list_free_slots(tenant_id, days_ahead, limit),
            span_attributes={names.TENANT_ID: tenant_id},
        )

    async def book_meeting(
        self, tenant_id: str, contact_key: str, start: datetime, duration_minutes: int = 30
    ) -> Booking:
        tenant_id, key = _check_tenant(tenant_id), validate_contact_key(contact_key)
        if not isinstance(start, datetime) or start.tzinfo is None:
            raise InvalidInput("The meeting start must be a date and time with a timezone.", field="start")
        if start <= datetime.now(UTC):
            raise InvalidInput("The meeting start is in the past; pick a future slot.", field="start")
        if not isinstance(duration_minutes, int) or not 5 <= duration_minutes <= 240:
            raise InvalidInput("The meeting must last 5 to 240 minutes.", field="duration_minutes")
        idempotency_key = uuid.uuid4().hex  # a retried booking must not book twice
        return await self.calendar_caller.call(
            "book_meeting",
            lambda: self.calendar.book(tenant_id, key, start, duration_minutes, idempotency_key),
            span_attributes={names.TENANT_ID: tenant_id, names.IDEMPOTENCY_KEY: idempotency_key},
        )

    async def cancel_meeting(self, tenant_id: str, booking_id: str) -> None:
        tenant_id = _check_tenant(tenant_id)
        if not isinstance(booking_id, str) or not booking_id.strip():
            raise InvalidInput("The booking id is empty.", field="booking_id")
        idempotency_key = uuid.uuid4().hex
        await self.calendar_caller.call(
            "cancel_meeting",
            lambda: self.calendar.cancel(tenant_id, booking_id.strip(), idempotency_key),
            span_attributes={names.TENANT_ID: tenant_id},
        )

    # --- health / stats ---------------------------------------------------------------------
    async def ping(self, dependency: Literal["crm", "calendar"]) -> None:
        """One direct request (no retries, no breaker): health checks report what is true now."""
        caller, backend = (
            (self.crm_caller, self.crm) if dependency == "crm" else (self.calendar_caller, self.calendar)
        )
        try:
            await backend.ping()
        except Exception as exc:
            raise caller.translate(exc) from exc

    def outbox_stats(self) -> OutboxStats:
        return self.outbox.stats()


def _synced(response: object, idempotency_key: str) -> WriteOutcome:
    if isinstance(response, dict) and response.get("applied") is False:
        return WriteOutcome("synced", LEAD_KEPT_MESSAGE, idempotency_key)
    return WriteOutcome("synced", SYNCED_MESSAGE, idempotency_key)


class _LiveWrite:
    """A write on its first (live) attempt; same shape as an OutboxEntry for ``_send``."""

    __slots__ = ("contact_key", "idempotency_key", "operation", "payload", "tenant_id")

    def __init__(
        self, tenant_id: str, contact_key: str, operation: str, payload: dict[str, Any], idempotency_key: str
    ) -> None:
        self.tenant_id = tenant_id
        self.contact_key = contact_key
        self.operation = operation
        self.payload = payload
        self.idempotency_key = idempotency_key
