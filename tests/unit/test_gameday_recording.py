"""The game day's recordings: where the replayed checkpoints sit relative to what the live run saw."""

from __future__ import annotations

from pathlib import Path

import yaml
from gameday_fakes import SCRAPE_S, FakeClock, fake_game_day

from agent.gameday import record, run
from agent.gameday.observe import Notification
from agent.gameday.scenarios import Scenario


def _unexpected_check_times(path: Path) -> list[int]:
    (test,) = yaml.safe_load(path.read_text())["tests"]
    return [
        int(check["eval_time"].removesuffix("s"))
        for check in test["promql_expr_test"]
        if "alertname!~" in check["expr"]
    ]


def test_recording_checks_for_unexpected_alerts_only_after_the_scenario_before_ended(tmp_path, monkeypatch):
    """Measured 2026-12-01: instance-killed's 10-minute lead-in held llm-primary-down's fallback alert,
    which its recording then called unexpected. The minute checks start where the scenario before ended."""
    start = 1_796_000_010.0  # a multiple of the step
    monkeypatch.setattr(record, "http_json", lambda url, timeout_s: {"data": ["up"]})
    monkeypatch.setattr(
        record,
        "_range",
        lambda url, expr, s, e, step: [
            {"metric": {"__name__": "up", "job": "sales-agent", "instance": "a"},
             "values": [[t, "1"] for t in range(int(s), int(e) + 1, step)]}
        ],
    )  # fmt: skip
    out = record.write_promtool_test(
        "http://prometheus",
        scenario="instance-killed",
        description="d",
        start=start,
        end=start + 900,
        step_s=SCRAPE_S,
        injected_at=start + 600,
        recovered_at=start + 720,
        quiet_from=start + 590,
        expected=["SalesAgentNotReporting"],
        already_firing=[],
        allowed=["SalesAgentNotReporting"],
        runbook_base="https://runbooks.example.com/",
        out=tmp_path / "gameday-instance-killed.test.yml",
    )
    assert _unexpected_check_times(out) == [600, 660, 720, 780, 840]


def test_game_day_records_a_tail_after_the_resolution_and_hands_its_end_to_the_next(tmp_path, monkeypatch):
    """Measured 2026-12-01: llm-primary-down's recording ended seconds after the resolved notification; its
    replay, a step behind the live evaluation, still fired at the after-recovery checkpoint."""
    clock = FakeClock(1_796_000_000.0)
    phases: dict[str, float] = {}

    def sent(url: str) -> list[Notification]:
        labels = {"alertname": "X", "severity": "critical"}
        out = []
        if "inject" in phases and clock.now >= phases["inject"] + 30:
            out.append(Notification(phases["inject"] + 30, "page", "firing", labels))
        if "recover" in phases and clock.now >= phases["recover"] + 40:
            out.append(Notification(phases["recover"] + 40, "page", "resolved", labels))
        return out

    scenario = Scenario(
        name="s",
        severity="critical",
        description="d",
        expected=frozenset({"X"}),
        inject=lambda stack: phases.update(inject=clock.now),
        recover=lambda stack: phases.update(recover=clock.now),
    )
    day, recorded = fake_game_day(monkeypatch, tmp_path, clock, sent)

    first = day.run(scenario)
    resolved_at = phases["recover"] + 40
    assert first.time_to_resolve("X") == 40
    assert first.ended_at >= resolved_at + run.RECORD_TAIL_STEPS * SCRAPE_S
    assert recorded[0]["end"] == first.ended_at
    assert recorded[0]["quiet_from"] == day.started_at

    phases.clear()
    day.run(scenario)
    assert recorded[1]["quiet_from"] == first.ended_at


def test_the_next_recording_checks_for_unexpected_alerts_only_once_the_last_ones_aftermath_cleared(
    tmp_path, monkeypatch
):
    """Measured 2026-12-01: stt-down's tolerated STT fallback warning (a 5-minute window) still fired
    when its page had resolved and the scenario ended; the run waited for it, but tts-down's recording
    checked for unexpected alerts from stt-down's end and its replay called that warning unexpected."""
    clock = FakeClock(1_796_000_000.0)
    phases: dict[str, float] = {}
    warning = {"alertname": "FallbackWarning", "severity": "warning"}
    clears_at: dict[str, float] = {}

    def active(_stack: object) -> list[dict[str, str]]:
        if "recover" in phases and clock.now < clears_at.setdefault("t", phases["recover"] + 400):
            return [warning]  # the tolerated warning outlasts the scenario's page by minutes
        return []

    def sent(url: str) -> list[Notification]:
        labels = {"alertname": "X", "severity": "critical"}
        out = []
        if "inject" in phases and clock.now >= phases["inject"] + 30:
            out.append(Notification(phases["inject"] + 30, "page", "firing", labels))
        if "recover" in phases and clock.now >= phases["recover"] + 40:
            out.append(Notification(phases["recover"] + 40, "page", "resolved", labels))
        return out

    scenario = Scenario(
        name="s",
        severity="critical",
        description="d",
        expected=frozenset({"X"}),
        tolerated=frozenset({"FallbackWarning"}),
        inject=lambda stack: phases.update(inject=clock.now),
        recover=lambda stack: phases.update(recover=clock.now),
    )
    day, recorded = fake_game_day(monkeypatch, tmp_path, clock, sent, active=active)

    first = day.run(scenario)
    assert first.ended_at < clears_at["t"]  # the scenario ended while its warning still fired
    day.run(scenario)
    assert recorded[1]["quiet_from"] >= clears_at["t"] + run.RECORD_TAIL_STEPS * SCRAPE_S


def test_the_fault_stays_on_for_the_replays_lag_after_the_last_expected_notification(tmp_path, monkeypatch):
    """Measured 2026-12-01: tts-primary-down recovered 4 s after its notification, its warning firing
    live for 31 s; the replay, a step behind, did not fire it yet at the recording's recovery check."""
    clock = FakeClock(1_796_000_000.0)
    phases: dict[str, float] = {}

    def sent(url: str) -> list[Notification]:
        labels = {"alertname": "X", "severity": "warning"}
        out = []
        if "inject" in phases and clock.now >= phases["inject"] + 191:
            out.append(Notification(phases["inject"] + 191, "chat", "firing", labels))
        if "recover" in phases and clock.now >= phases["recover"] + 60:
            out.append(Notification(phases["recover"] + 60, "chat", "resolved", labels))
        return out

    scenario = Scenario(
        name="s",
        severity="warning",
        description="d",
        expected=frozenset({"X"}),
        inject=lambda stack: phases.update(inject=clock.now),
        recover=lambda stack: phases.update(recover=clock.now),
    )
    day, _ = fake_game_day(monkeypatch, tmp_path, clock, sent)
    result = day.run(scenario)
    assert result.time_to_notify("X") == 191
    assert result.recovered_at - result.notified["X"] >= run.RECORD_TAIL_STEPS * SCRAPE_S
