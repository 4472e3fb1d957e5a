"""The benchmarks' pure helpers: goal verdicts, import-chain analysis, run_all's argument checks."""

from __future__ import annotations

import pytest

from bench import run_all
from bench.bench_failover import failover_verdicts
from bench.bench_startup import importers_of


def test_importers_follow_importtime_nesting() -> None:
    # importtime lists children before their importer, one indent level deeper.
    entries = [
        (1, "yaml", 5, 5),
        (0, "agent.tenants", 1, 6),
        (2, "litellm", 10, 4_000_000),
        (1, "agent.llm.chain", 5, 4_100_000),
        (0, "agent.llm", 1, 4_200_000),
        (0, "litellm.router", 3, 300),
    ]
    assert importers_of(entries, "litellm") == ["agent.llm", "litellm"]
    assert importers_of(entries, "numpy") == []


def test_failover_verdicts_compare_each_scenario_with_the_healthy_primary() -> None:
    p50_ms = {
        "healthy primary": 13.16,
        "primary refused": 34.70,  # +21.5: within 50 ms
        "primary 500": 94.86,  # +81.7: over 50 ms
        "primary in cooldown": 11.17,  # -2.0: within 5 ms
        "primary hang (deadline)": 330.21,  # 300 ms deadline + 13 healthy + 17: within 50 ms
    }
    verdicts = failover_verdicts(p50_ms, deadline_ms=300.0)
    assert [v.split()[0] for v in verdicts] == ["PASS", "MISS", "PASS", "PASS"]
    assert "primary 500" in verdicts[1] and "+81.7 ms" in verdicts[1]
    assert failover_verdicts({"primary 500": 90.0}, deadline_ms=300.0) == [], "no baseline, no verdict"


def test_run_all_rejects_unknown_items(capsys: pytest.CaptureFixture[str]) -> None:
    unknown = max(run_all.ITEMS) + 1
    with pytest.raises(SystemExit) as exited:
        run_all.main(["--only", str(unknown)])
    assert exited.value.code == 2
    assert f"unknown item(s) [{unknown}]" in capsys.readouterr().err


def _goal_rows(summary: run_all.Table) -> dict[str, list[tuple[str, str]]]:
    rows: dict[str, list[tuple[str, str]]] = {}
    for goal, result, measured in summary.rows:
        rows.setdefault(goal, []).append((result, measured))
    return rows


def test_goal_summary_names_every_goal_of_issues_8_and_13() -> None:
    from bench._common import Table, verdict

    throughput = Table("3. Throughput", ["x"])
    throughput.verdicts.append(
        verdict("telemetry on >= 0.95x off (calls/s), text mode", False, "worst 0.90x")
    )
    trace = Table("12a. Spans of one call", ["x"])
    trace.verdicts.append(verdict("span budget: no orphans", True, "108 -> 66 spans per call"))
    exit_table = Table("7. Exit", ["x"])
    exit_table.verdicts.append(verdict("bounded by one shutdown timeout", True, "1.2 s"))
    failed = Table("8. Against the peers: FAILED", [])
    summary = run_all.summary_table([throughput, trace, exit_table, failed], items=[3, 7, 8, 12])
    rows = _goal_rows(summary)

    issue_13 = [goal for goal in rows if goal.startswith("issue 13.")]
    assert {goal.split(":")[0] for goal in issue_13} == {f"issue 13.{n}" for n in range(1, 6)}
    assert {goal.split(":")[0] for goal in rows if goal.startswith("issue 8.")} == {
        f"issue 8.{n}" for n in range(1, 7)
    }
    # One measured line can decide two goals (issue 8 item 3 is issue 13 goal 1's text mode).
    assert rows["issue 8.3: throughput, telemetry on vs off"] == [
        ("MISS", "telemetry on >= 0.95x off (calls/s), text mode: worst 0.90x")
    ]
    assert rows["issue 13.1: telemetry on >= 0.95x off, text mode"][0][0] == "MISS"
    assert rows["issue 13.1: span budget: readable trace, no orphans"][0][0] == "PASS"
    # What nothing measures is said so, never PASS.
    assert rows["issue 13.5: voice density"][0][0] == "not run"  # item 13 was not in this run
    assert rows["issue 13.1: telemetry on >= 0.95x off, voice mode"][0][0] == "not measured"
    assert rows["issue 13.4: start-up in seconds"][0] == ("not run", "item 6 was not in this run (--only)")
    assert rows["issue 13.2: against the peers, in instructions"][0][0] == "FAILED"
    # Goal lines of other issues' items are kept, under their item.
    assert rows["item 7"] == [("PASS", "bounded by one shutdown timeout: 1.2 s")]


def test_an_item_that_adds_goal_lines_plugs_into_its_goal() -> None:
    """Issue 13 goal 4 takes every goal line item 6 prints (its start-up rework adds them)."""
    from bench._common import Table, verdict

    startup = Table("6a. Start-up", ["x"])
    summary = run_all.summary_table([startup], items=[6])
    assert _goal_rows(summary)["issue 13.4: start-up in seconds"][0][0] == "not measured"
    startup.verdicts.append(verdict("simulate prints its first line within 1 s", True, "0.4 s"))
    summary = run_all.summary_table([startup], items=[6])
    assert _goal_rows(summary)["issue 13.4: start-up in seconds"] == [
        ("PASS", "simulate prints its first line within 1 s: 0.4 s")
    ]
