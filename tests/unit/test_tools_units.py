"""The tools' pure parts: BANT scoring, argument parsing and schemas (no network, no session)."""

from __future__ import annotations

import pytest
from livekit.agents.llm import RawFunctionTool

from agent.call_context import CallContext
from agent.errors import InvalidInput
from agent.tools import SalesTools, score_lead
from agent.tools.args import BookMeetingArgs, CaptureBasicInfoArgs, QualifyLeadArgs, parse_args
from agent.tools.scoring import band_for, budget_points


@pytest.mark.parametrize(
    ("budget", "authority", "need", "timeline", "score", "band"),
    [
        (80_000, "decision_maker", "high", "this_quarter", 100, "hot"),
        (0, "none", "low", "none", 0, "cold"),
        (20_000, "influencer", "medium", "this_half", 15 + 12 + 12 + 15, "warm"),
        (5_000, "decision_maker", "high", "this_year", 5 + 25 + 25 + 8, "warm"),
        (10_000, "influencer", "medium", "none", 15 + 12 + 12, "cold"),
    ],
)
def test_score_and_band(budget, authority, need, timeline, score, band) -> None:
    lead = score_lead(budget, authority, need, timeline)
    assert (lead.score, lead.band) == (score, band)


def test_band_thresholds_and_budget_steps() -> None:
    assert [band_for(s) for s in (39, 40, 69, 70)] == ["cold", "warm", "warm", "hot"]
    assert [budget_points(b) for b in (0, 0.5, 9_999, 10_000, 49_999, 50_000)] == [0, 5, 5, 15, 15, 25]


def test_parse_args_names_each_bad_field_without_echoing_values() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_args(QualifyLeadArgs, {"budget": -5, "authority": "ceo", "need": "high", "secret": "x"})
    message = caught.value.message
    assert "budget:" in message and "authority:" in message
    assert "timeline: this field is required" in message
    assert "secret: unexpected argument" in message
    assert "ceo" not in message and "-5" not in message  # values may be personal data: never echoed
    assert caught.value.category == "validation"
    assert caught.value.field == "budget"


def test_naive_slot_is_read_as_utc() -> None:
    args = parse_args(BookMeetingArgs, {"slot_start": "2030-01-07T10:00"})
    assert args.slot_start.utcoffset() is not None and args.slot_start.utcoffset().total_seconds() == 0


def test_tools_schemas_are_what_the_llm_sees() -> None:
    tools = SalesTools(CallContext("acme", "s", "c"), crm=None)  # type: ignore[arg-type]
    by_name = {t.info.name: t for t in tools.function_tools()}
    assert set(by_name) == {
        "capture_basic_info",
        "qualify_lead",
        "check_availability",
        "book_meeting",
        "log_note",
        "end_call",
    }
    assert all(isinstance(t, RawFunctionTool) for t in by_name.values())
    params = by_name["capture_basic_info"].info.raw_schema["parameters"]
    assert params["required"] == ["name", "company"]
    assert params["additionalProperties"] is False
    assert set(params["properties"]) == set(CaptureBasicInfoArgs.model_fields)
    assert by_name["end_call"].info.raw_schema["parameters"]["properties"]["outcome"]["enum"] == [
        "converted",
        "not_interested",
        "callback",
    ]
