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
    unknown = max(run_all.ITEMS) + 1  # a fixed number becomes a real item when a bench is added
    with pytest.raises(SystemExit) as exited:
        run_all.main(["--only", str(unknown)])
    assert exited.value.code == 2
    assert f"unknown item(s) [{unknown}]" in capsys.readouterr().err
