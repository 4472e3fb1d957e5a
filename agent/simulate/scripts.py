"""Scripted caller conversations for ``simulate``.

The local LLM provider turns a user message's ``/tool NAME {json}`` lines into exactly those tool
calls and answers plain lines with a canned sales reply, so a script fixes the whole conversation:
which tools run with which arguments, including deliberately bad ones. ``{slot}`` in a line is
replaced by a slot the last ``check_availability`` returned (or an hour from now, so a booking
still goes to the calendar when no slots were listed); ``{won}`` by ``converted`` when this call
booked a meeting, else ``callback`` (a calendar outage turns a sale into a follow-up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.vocabulary.call_outcome import CallOutcome


@dataclass(frozen=True)
class Script:
    name: str
    turns: tuple[str, ...]
    # What the script aims for (None: the caller hangs up without end_call -> "dropped").
    expected_outcome: CallOutcome | None


@dataclass
class Prospect:
    name: str
    company: str
    role: str
    email: str
    phone: str


@dataclass
class ScriptState:
    """What a running script learned from tool results so far."""

    slots: list[str] = field(default_factory=list)
    meeting_booked: bool = False


def tool(tool_name: str, /, **args: Any) -> str:
    return f"/tool {tool_name} {json.dumps(args)}"


def prospect_for(index: int, run_id: str) -> Prospect:
    first = ("Dana", "Lee", "Sam", "Ari", "Kim", "Noa", "Max", "Ira")[index % 8]
    company = ("Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne")[index % 6]
    return Prospect(
        name=f"{first} Example",
        company=f"{company} Ltd",
        role=("Head of Engineering", "CTO", "Operations Lead", "VP Sales")[index % 4],
        email=f"{first.lower()}.{run_id}.{index}@{company.lower()}.example.com",
        phone=f"+1 415 555 {index % 10000:04d}",
    )


def converted(p: Prospect, index: int) -> Script:
    return Script(
        "converted",
        (
            f"Hi, this is {p.name} from {p.company}. We are looking at options for this.",
            tool(
                "capture_basic_info",
                name=p.name,
                company=p.company,
                role=p.role,
                email=p.email,
                phone=p.phone,
            ),
            "We spend about eighty thousand a year, I sign off on it, and we need it this quarter.",
            tool(
                "qualify_lead", budget=80000, authority="decision_maker", need="high", timeline="this_quarter"
            ),
            tool("check_availability", days_ahead=7),
            tool("book_meeting", slot_start="{slot}"),
            tool("log_note", note="Wants a demo for the platform team; currently evaluating two vendors."),
            tool("end_call", outcome="{won}"),
        ),
        "converted",
    )


def bad_input(p: Prospect, index: int) -> Script:
    """Bad tool arguments first (missing field, malformed email), then the corrected call."""
    return Script(
        "bad_input",
        (
            f"Hello, {p.name} here.",
            tool("capture_basic_info", name=p.name, email=p.email),  # company missing
            tool("capture_basic_info", name=p.name, company=p.company, email=p.email.replace("@", " at ")),
            tool("capture_basic_info", name=p.name, company=p.company, role=p.role, email=p.email),
            "Honestly we have no budget and no plans this year.",
            tool("qualify_lead", budget=0, authority="influencer", need="low", timeline="none"),
            tool("log_note", note="Not a fit this year; no budget."),
            tool("end_call", outcome="not_interested"),
        ),
        "not_interested",
    )


def callback(p: Prospect, index: int) -> Script:
    return Script(
        "callback",
        (
            f"Hi, it's {p.name}. I'm about to go into a meeting.",
            tool("capture_basic_info", name=p.name, company=p.company, role=p.role, phone=p.phone),
            tool("qualify_lead", budget=20000, authority="influencer", need="medium", timeline="this_half"),
            tool("log_note", note="Asked to be called back next Tuesday afternoon."),
            tool("end_call", outcome="callback"),
        ),
        "callback",
    )


def no_show(p: Prospect, index: int) -> Script:
    """The caller drops off mid-call: no end_call, the call ends as ``dropped``."""
    return Script(
        "no_show",
        (
            "Hello? Sorry, who is this?",
            tool("capture_basic_info", name=p.name, company=p.company, email=p.email),
            "Sorry, you're breaking up...",
        ),
        None,
    )


# The first five cover every outcome (so `--calls 5` shows them all); over the whole rotation one call
# in ten is dropped, so the demo's call success rate (90 %) sits clear of LowCallSuccessRate's 80 %.
SCRIPT_ROTATION = (
    converted, bad_input, converted, callback, no_show, converted, converted, callback, converted, bad_input,
)  # fmt: skip


def script_for(index: int, run_id: str) -> Script:
    """The ``index``-th call's script: a fixed rotation, so N calls always cover the same mix."""
    return SCRIPT_ROTATION[index % len(SCRIPT_ROTATION)](prospect_for(index, run_id), index)


def render_turn(turn: str, state: ScriptState, index: int) -> str:
    turn = turn.replace("{won}", "converted" if state.meeting_booked else "callback")
    if "{slot}" not in turn:
        return turn
    if state.slots:
        # Spread concurrent calls over the offered slots so they don't all race for the first one.
        slot = state.slots[index % len(state.slots)]
    else:
        slot = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0).isoformat()
    return turn.replace("{slot}", slot)
