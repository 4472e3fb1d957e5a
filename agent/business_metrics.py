"""Business metrics by tenant: leads captured and qualified, meetings booked, call outcomes.

Labels are bounded: tenant ids come from the tenant registry, bands and outcomes from the fixed
sets below (anything else is refused with ``InvalidInput`` so an LLM-chosen value can't create a
new series).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from opentelemetry import metrics

from agent.errors import InvalidInput
from telemetry import names

LeadBand = Literal["hot", "warm", "cold"]
# converted / not_interested / callback: end_call's outcome; dropped: the caller left while the agent
# was answering; failed: the caller left after the agent failed them; error: the session itself failed.
CallOutcome = Literal["converted", "not_interested", "callback", "dropped", "failed", "error"]
LEAD_BANDS: Final = frozenset(get_args(LeadBand))
CALL_OUTCOMES: Final = frozenset(get_args(CallOutcome))

_meter = metrics.get_meter("sales_agent")
_leads_captured = _meter.create_counter(
    names.LEADS_CAPTURED, unit="{lead}", description="Leads whose contact details were captured"
)
_leads_qualified = _meter.create_counter(
    names.LEADS_QUALIFIED, unit="{lead}", description="Leads qualified, by lead.band (hot | warm | cold)"
)
_meetings_booked = _meter.create_counter(
    names.MEETINGS_BOOKED, unit="{meeting}", description="Meetings booked on the calendar"
)
_calls = _meter.create_counter(names.CALLS, unit="{call}", description="Calls ended, by call.outcome")
_call_duration = _meter.create_histogram(
    names.CALL_DURATION, unit="s", description="Call duration, by call.outcome"
)


def _check(value: str, allowed: frozenset[str], what: str) -> None:
    if value not in allowed:
        choices = ", ".join(sorted(allowed))
        raise InvalidInput(f"{what} must be one of {choices}; got {value!r:.40}", field=what)


def lead_captured(tenant: str) -> None:
    _leads_captured.add(1, {names.TENANT_ID: tenant})


def lead_qualified(tenant: str, band: LeadBand) -> None:
    _check(band, LEAD_BANDS, "band")
    _leads_qualified.add(1, {names.TENANT_ID: tenant, names.LEAD_BAND: band})


def meeting_booked(tenant: str) -> None:
    _meetings_booked.add(1, {names.TENANT_ID: tenant})


def call_ended(tenant: str, outcome: CallOutcome, duration_s: float) -> None:
    _check(outcome, CALL_OUTCOMES, "outcome")
    if duration_s < 0:
        raise ValueError(f"call duration cannot be negative: {duration_s}")
    attrs = {names.TENANT_ID: tenant, names.CALL_OUTCOME: outcome}
    _calls.add(1, attrs)
    _call_duration.record(duration_s, attrs)
