"""The agent package's instruments (tools and errors, sessions, business metrics), and ``install_all``.

Created from an injected meter (``telemetry.instruments``), never at import. Each subpackage that
records metrics has its own ``instruments.py`` (``agent.crm``, ``agent.health``, ``agent.llm``,
``agent.resilience``, ``agent.speech``); ``install_all`` points every one of them at one MeterProvider.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry.metrics import Meter, MeterProvider

from telemetry import names
from telemetry.instruments import InstrumentSet


class AgentInstruments:
    def __init__(self, meter: Meter) -> None:
        # Tools and errors (agent.error_handling: the spec's withErrorHandling)
        self.tool_calls = meter.create_counter(
            names.TOOL_CALLS,
            unit="{call}",
            description="Tool executions by operation and outcome (ok | error)",
        )
        self.tool_duration = meter.create_histogram(
            names.TOOL_DURATION, unit="s", description="Tool execution time, including CRM/calendar calls"
        )
        self.errors = meter.create_counter(
            names.ERRORS,
            unit="{error}",
            description="Errors by category (validation | dependency | internal)",
        )
        # Sessions (agent.sessions)
        self.sessions_active = meter.create_up_down_counter(
            names.SESSIONS_ACTIVE, unit="{session}", description="Open sessions in this process"
        )
        self.sessions_started = meter.create_counter(
            names.SESSIONS_STARTED, unit="{session}", description="Sessions opened"
        )
        self.sessions_ended = meter.create_counter(
            names.SESSIONS_ENDED, unit="{session}", description="Sessions closed, by session.outcome"
        )
        self.sessions_rejected = meter.create_counter(
            names.SESSIONS_REJECTED, unit="{session}", description="Sessions refused for lack of capacity"
        )
        self.session_duration = meter.create_histogram(
            names.SESSION_DURATION, unit="s", description="Session lifetime from open to close"
        )
        # Business (agent.business_metrics)
        self.leads_captured = meter.create_counter(
            names.LEADS_CAPTURED, unit="{lead}", description="Leads whose contact details were captured"
        )
        self.leads_qualified = meter.create_counter(
            names.LEADS_QUALIFIED,
            unit="{lead}",
            description="Leads qualified, by lead.band (hot | warm | cold)",
        )
        self.meetings_booked = meter.create_counter(
            names.MEETINGS_BOOKED, unit="{meeting}", description="Meetings booked on the calendar"
        )
        self.calls = meter.create_counter(
            names.CALLS, unit="{call}", description="Calls ended, by call.outcome"
        )
        self.call_duration = meter.create_histogram(
            names.CALL_DURATION, unit="s", description="Call duration, by call.outcome"
        )
        # Turns (agent.turn_recorder): recorded as each reply starts, in text and voice calls
        self.turn_response_latency = meter.create_histogram(
            names.TURN_RESPONSE_LATENCY,
            unit="s",
            description="The caller's wait: end of their turn to the agent's first output of the reply",
        )
        self.turn_stage_duration = meter.create_histogram(
            names.TURN_STAGE_DURATION, unit="s", description="The caller's wait by stage"
        )
        self.turn_interruptions = meter.create_counter(
            names.TURN_INTERRUPTIONS, unit="{interruption}", description="Replies the caller talked over"
        )
        self.turn_silence_gap = meter.create_histogram(
            names.TURN_SILENCE_GAP, unit="s", description="Silences inside a reply (its audio ran dry)"
        )
        self.turn_unanswered = meter.create_counter(
            names.TURN_UNANSWERED, unit="{turn}", description="Caller turns that got no reply"
        )


INSTRUMENTS = InstrumentSet(AgentInstruments)
instruments = INSTRUMENTS.get


def _all_sets() -> list[InstrumentSet[object]]:
    from agent.crm import instruments as crm
    from agent.health import instruments as health
    from agent.llm import instruments as llm
    from agent.resilience import instruments as resilience
    from agent.speech import instruments as speech

    sets = [INSTRUMENTS, crm.INSTRUMENTS, health.INSTRUMENTS, llm.INSTRUMENTS, resilience.INSTRUMENTS]
    return [*sets, speech.INSTRUMENTS]  # type: ignore[list-item]


def install_all(meter_provider: MeterProvider | None = None) -> None:
    """Create every agent instrument from ``meter_provider`` (the global one when None)."""
    for instrument_set in _all_sets():
        instrument_set.install(meter_provider)


@contextlib.contextmanager
def all_installed(meter_provider: MeterProvider) -> Iterator[None]:
    """Every agent instrument records into ``meter_provider`` inside the block (tests)."""
    with contextlib.ExitStack() as stack:
        for instrument_set in _all_sets():
            stack.enter_context(instrument_set.installed(meter_provider))
        yield
