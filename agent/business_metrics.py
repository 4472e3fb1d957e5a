"""Business metrics by tenant: leads captured and qualified, meetings booked, call outcomes.

Labels are bounded: tenant ids come from the tenant registry, bands and outcomes from their
vocabularies in ``agent/vocabulary/`` (anything else is refused with ``InvalidInput`` so an
LLM-chosen value can't create a new series).
"""

from __future__ import annotations

from agent.errors import InvalidInput
from agent.instruments import instruments
from agent.vocabulary.call_outcome import CALL_OUTCOMES, CallOutcome
from agent.vocabulary.lead_band import LEAD_BANDS, LeadBand
from telemetry import names


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        choices = ", ".join(sorted(allowed))
        raise InvalidInput(f"{what} must be one of {choices}; got {value!r:.40}", field=what)


def lead_captured(tenant: str) -> None:
    instruments().leads_captured.add(1, {names.TENANT_ID: tenant})


def lead_qualified(tenant: str, band: LeadBand) -> None:
    _check(band, LEAD_BANDS, "band")
    instruments().leads_qualified.add(1, {names.TENANT_ID: tenant, names.LEAD_BAND: band})


def meeting_booked(tenant: str) -> None:
    instruments().meetings_booked.add(1, {names.TENANT_ID: tenant})


def call_ended(tenant: str, outcome: CallOutcome, duration_s: float) -> None:
    _check(outcome, CALL_OUTCOMES, "outcome")
    if duration_s < 0:
        raise ValueError(f"call duration cannot be negative: {duration_s}")
    attrs = {names.TENANT_ID: tenant, names.CALL_OUTCOME: outcome}
    ins = instruments()
    ins.calls.add(1, attrs)
    ins.call_duration.record(duration_s, attrs)
