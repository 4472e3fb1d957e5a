"""simulate's summary counts as failed every call the agent ended badly, not only those that raised."""

from __future__ import annotations

import re
from pathlib import Path

from agent.simulate.report import summarise, summary_table
from agent.simulate.runner import CallResult
from agent.vocabulary.call_outcome import CALL_OUTCOMES, FAILED_OUTCOMES

SLO_RULES = Path(__file__).resolve().parents[2] / "alert-rules" / "sales-agent-slo.rules.yml"


def _result(index: int, outcome: str, error: str | None = None) -> CallResult:
    return CallResult(
        index=index, script="s", tenant_id="acme", call_id=f"c{index}", outcome=outcome, error=error
    )


def test_failed_outcomes_are_call_outcomes_and_match_the_slo_rules() -> None:
    assert set(CALL_OUTCOMES) > FAILED_OUTCOMES
    match = re.search(r'call_outcome=~"([^"]+)"', SLO_RULES.read_text())
    assert match is not None
    assert set(match.group(1).split("|")) == FAILED_OUTCOMES


def test_calls_ended_badly_without_raising_are_counted_failed() -> None:
    results = [
        _result(0, "converted"),
        _result(1, "error"),  # the session failed: outcome "error", nothing raised in the runner
        _result(2, "failed"),  # every provider down: the caller was let down
        _result(3, "dropped"),  # the caller hung up: theirs, not a failure of ours
        _result(4, "error", error="TimeoutError: turn timed out"),  # raised: counted once
    ]
    summary = summarise(results, fallbacks=0, outbox_depth=0, outbox_oldest_age_s=None, wall_s=1.0)
    assert summary.failed_calls == 3
    table = summary_table(summary)
    rows = dict(zip(table.columns[0].cells, table.columns[1].cells, strict=True))
    assert rows["calls"] == "5 (3 failed)"
