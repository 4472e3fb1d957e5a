"""The sales agent's function tools, one object per call.

Every tool runs inside ``error_handled`` (the spec's ``withErrorHandling``): a span named after the
tool with tenant/session/call ids, the tool and error metrics, a log line on failure, and a
``ToolError`` with a clear message for the LLM so the call goes on.

Isolation: whose records a tool reads or writes comes from ``call_context.tenant_id`` and the
contact captured earlier in THIS call, never from the LLM's arguments (the argument models forbid
extra fields). A prompt therefore cannot reach another tenant's or another caller's records.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from livekit.agents.llm import RawFunctionTool, find_function_tools, function_tool

from agent import business_metrics
from agent.call_context import CallContext
from agent.error_handling import error_handled
from agent.errors import DependencyRejected, InvalidInput
from agent.tools.args import (
    BookMeetingArgs,
    CaptureBasicInfoArgs,
    CheckAvailabilityArgs,
    EndCallArgs,
    LogNoteArgs,
    QualifyLeadArgs,
    parse_args,
    tool_schema,
)
from agent.tools.scoring import LeadScore, score_lead
from agent.vocabulary.call_outcome import EndCallChoice
from agent.vocabulary.lead_band import LeadBand

if TYPE_CHECKING:
    from agent.crm import ResilientCrm

log = logging.getLogger(__name__)

EndCallHook = Callable[[EndCallChoice], Awaitable[None]]

# CRM lead status written by qualify_lead, by band (agent.crm.models.LEAD_STATUSES).
LEAD_STATUS_BY_BAND: dict[LeadBand, str] = {"hot": "qualified", "warm": "qualified", "cold": "unqualified"}
MAX_SLOTS_OFFERED = 5
SLOT_REJECTED_STATUSES = frozenset({409, 422})  # slot taken / not bookable (e.g. in the past)


def _no_contact(operation: str) -> InvalidInput:
    return InvalidInput(
        f"no contact has been captured in this call yet; call capture_basic_info before {operation}",
        error_type="no_contact",
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


class SalesTools:
    """Tools for one call. ``call_context`` is read by ``error_handled`` for span/metric attributes."""

    def __init__(
        self, call_context: CallContext, crm: ResilientCrm, on_end_call: EndCallHook | None = None
    ) -> None:
        self.call_context = call_context
        self._crm = crm
        self._on_end_call = on_end_call
        self.contact_key: str | None = None
        self.lead: LeadScore | None = None
        self.meetings_booked = 0
        self.outcome: EndCallChoice | None = None

    def function_tools(self) -> list[RawFunctionTool]:
        """The tools bound to this call, for ``Agent(tools=...)``."""
        return [tool for tool in find_function_tools(self) if isinstance(tool, RawFunctionTool)]

    @property
    def _tenant(self) -> str:
        return self.call_context.tenant_id

    def _require_contact(self, operation: str) -> str:
        if self.contact_key is None:
            raise _no_contact(operation)
        return self.contact_key

    @function_tool(
        raw_schema=tool_schema(
            "capture_basic_info",
            "Save the prospect's contact details to the CRM once you know their name, company and an "
            "email or phone number. Call it again to correct details.",
            CaptureBasicInfoArgs,
        )
    )
    @error_handled("capture_basic_info")
    async def capture_basic_info(self, raw_arguments: dict[str, Any]) -> str:
        from agent.crm.models import Contact, contact_key

        args = parse_args(CaptureBasicInfoArgs, raw_arguments)
        contact = Contact(
            name=args.name, company=args.company, role=args.role, email=args.email, phone=args.phone
        )
        outcome = await self._crm.upsert_contact(self._tenant, contact)
        self.contact_key = contact_key(contact)
        business_metrics.lead_captured(self._tenant)
        return f"Contact details for {args.name} at {args.company}: {outcome.message}"

    @function_tool(
        raw_schema=tool_schema(
            "qualify_lead",
            "Score the lead (BANT) once you know their budget, authority, need and timeline; saves the "
            "score and band (hot/warm/cold) to the CRM.",
            QualifyLeadArgs,
        )
    )
    @error_handled("qualify_lead")
    async def qualify_lead(self, raw_arguments: dict[str, Any]) -> str:
        args = parse_args(QualifyLeadArgs, raw_arguments)
        key = self._require_contact("qualify_lead")
        lead = score_lead(args.budget, args.authority, args.need, args.timeline)
        outcome = await self._crm.set_lead_status(
            self._tenant,
            key,
            LEAD_STATUS_BY_BAND[lead.band],
            lead.score,
            lead.band,
            self.call_context.call_id,
        )
        self.lead = lead
        business_metrics.lead_qualified(self._tenant, lead.band)
        advice = {
            "hot": "Offer a meeting now.",
            "warm": "Offer a meeting if they are open to it.",
            "cold": "Do not push for a meeting; offer to follow up later.",
        }[lead.band]
        return f"Lead scored {lead.score}/100 ({lead.band}). {advice} Lead status {outcome.message}"

    @function_tool(
        raw_schema=tool_schema(
            "check_availability",
            "List free meeting slots (UTC) in the next days_ahead days, to offer the prospect.",
            CheckAvailabilityArgs,
        )
    )
    @error_handled("check_availability")
    async def check_availability(self, raw_arguments: dict[str, Any]) -> str:
        args = parse_args(CheckAvailabilityArgs, raw_arguments)
        slots = await self._crm.list_free_slots(
            self._tenant, days_ahead=args.days_ahead, limit=MAX_SLOTS_OFFERED
        )
        if not slots:
            return f"No free slots in the next {args.days_ahead} days. Offer a callback instead."
        listed = ", ".join(_iso(slot.start) for slot in slots)
        return f"Free slots (UTC): {listed}. Offer two or three; book the chosen one with book_meeting."

    @function_tool(
        raw_schema=tool_schema(
            "book_meeting",
            "Book a meeting with the prospect at a slot returned by check_availability.",
            BookMeetingArgs,
        )
    )
    @error_handled("book_meeting")
    async def book_meeting(self, raw_arguments: dict[str, Any]) -> str:
        args = parse_args(BookMeetingArgs, raw_arguments)
        key = self._require_contact("book_meeting")
        try:
            booking = await self._crm.book_meeting(self._tenant, key, args.slot_start)
        except DependencyRejected as exc:
            if exc.status_code not in SLOT_REJECTED_STATUSES:
                raise
            # The calendar refused this slot (taken meanwhile, in the past): the LLM can fix that itself.
            raise InvalidInput(
                "that slot is no longer available; call check_availability and offer another one",
                field="slot_start",
                error_type=exc.error_type,
            ) from exc
        self.meetings_booked += 1
        business_metrics.meeting_booked(self._tenant)
        booking_id = getattr(booking, "booking_id", None) or getattr(booking, "id", "")
        return f"Meeting booked for {_iso(args.slot_start)} UTC (confirmation {booking_id})."

    @function_tool(
        raw_schema=tool_schema(
            "log_note",
            "Add a short factual note about the prospect to their CRM record.",
            LogNoteArgs,
        )
    )
    @error_handled("log_note")
    async def log_note(self, raw_arguments: dict[str, Any]) -> str:
        args = parse_args(LogNoteArgs, raw_arguments)
        key = self._require_contact("log_note")
        outcome = await self._crm.add_note(self._tenant, key, args.note)
        return f"Note {outcome.message}"

    @function_tool(
        raw_schema=tool_schema(
            "end_call",
            "End the call after saying goodbye. outcome: converted, not_interested or callback.",
            EndCallArgs,
        )
    )
    @error_handled("end_call")
    async def end_call(self, raw_arguments: dict[str, Any]) -> str:
        args = parse_args(EndCallArgs, raw_arguments)
        self.outcome = args.outcome
        log.info("end_call requested: %s", args.outcome, extra=self.call_context.span_attributes())
        if self._on_end_call is not None:
            await self._on_end_call(args.outcome)
        return f"The call is ending (outcome {args.outcome}). Say a brief, friendly goodbye."
