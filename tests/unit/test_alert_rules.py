"""Alert rules: every alert has a firing AND a quiet promtool case (promtool itself runs them in
tests/integration/test_config_tools.py).

Also the conventions operators rely on: CamelCase names, a known severity, a component (Alertmanager's
inhibition groups by it), summary/description/runbook_url, a runbook page that exists, a `for:` on
everything that pages or chats, and metric names that the catalog (telemetry/names.py) can produce.
"""

from __future__ import annotations

import re

import pytest
import yaml
from prometheus_helpers import (
    NON_CATALOG_METRICS,
    RULE_TESTS,
    RUNBOOK_BASE,
    RUNBOOKS_DIR,
    alert_rules,
    in_catalog,
    load_rule_groups,
    promql_metric_names,
)

SEVERITIES = {"critical", "warning", "info"}


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    defined = {rule["alert"] for rule in alert_rules()}
    assert defined, "no alerts found"
    assert defined - firing == set(), "alerts without a firing promtool case"
    assert defined - quiet == set(), "alerts without a non-firing promtool case"
    assert (firing | quiet) - defined == set(), "promtool tests name alerts that do not exist"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_conventions(rule: dict) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"(?:[A-Z][a-z0-9]*|[A-Z]{2,}(?=[A-Z][a-z]|$))+", name), f"{name} is not CamelCase"
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"].get("component"), "component label drives inhibition"
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"
    runbook = RUNBOOKS_DIR / f"{name}.md"
    assert runbook.is_file(), f"missing runbook {runbook}"
    text = runbook.read_text()
    assert name in text and "dashboard" in text.lower() and "```promql" in text, f"{runbook} is incomplete"
    if rule["labels"]["severity"] != "info":
        assert rule.get("for"), f"{name} pages or chats on a single evaluation"


def test_alert_names_are_unique() -> None:
    alerts = [rule["alert"] for rule in alert_rules()]
    assert len(alerts) == len(set(alerts))


def test_rule_metrics_exist_in_the_catalog() -> None:
    recorded = {rule["record"] for group in load_rule_groups() for rule in group["rules"] if "record" in rule}
    unknown: set[str] = set()
    for group in load_rule_groups():
        for rule in group["rules"]:
            for metric in promql_metric_names(rule["expr"]):
                if metric in recorded or metric in NON_CATALOG_METRICS or in_catalog(metric):
                    continue
                unknown.add(metric)
    assert unknown == set(), "metric names not produced by telemetry/names.py or psutil"


def test_every_runbook_belongs_to_an_alert() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    pages = {path.stem for path in RUNBOOKS_DIR.glob("*.md") if path.stem != "README"}
    assert pages - alerts == set(), "runbooks for alerts that no longer exist"


def test_rules_read_histogram_buckets_only_through_the_labels_the_game_day_records():
    """The game day records bucket series summed down to these labels (agent/gameday/record.py)."""
    from agent.gameday.record import BUCKET_LABELS

    for rule in (r for group in load_rule_groups() for r in group["rules"]):
        for metric, labels in BUCKET_LABELS.items():
            if metric not in rule["expr"]:
                continue
            groupings = re.findall(r"sum by \(([^)]*)\) \(rate\(" + metric, rule["expr"])
            assert groupings, f"{rule.get('alert') or rule.get('record')} reads {metric} without sum by"
            for grouping in groupings:
                used = {label.strip() for label in grouping.split(",")}
                assert used <= set(labels), (rule.get("alert"), used)


def test_every_rule_metric_the_game_day_needs_is_recorded():
    """record.rule_metric_names finds each raw metric the rules select (recorded rules excluded)."""
    from agent.gameday.record import rule_metric_names

    used = {m for g in load_rule_groups() for r in g["rules"] for m in promql_metric_names(r["expr"])}
    raw = {m for m in used if ":" not in m}
    assert set(rule_metric_names(raw)) == raw


@pytest.mark.parametrize(
    "leak",
    [
        b"dana.a1b2c3.0@initech.example.com",
        b"PUT /v1/contacts/dana.a1b2c3.0%40initech.example.com",
        b"DANA.A1B2C3.0%40INITECH.EXAMPLE.COM",
        b'{"email": "lee.a1b2c3.1\\u0040umbrella.example.com"}',
        b"The email address 'lee.a1b2c3.1 at umbrella.example.com' is not valid",
        b"phone +1 415 555 0004",
        b"tel:%2B14155550004",
        b"415-555-0004",
        b"x=+1%20415%20555%200004",
        b"someone@example.org",
    ],
)
def test_game_day_scan_finds_contact_data_in_every_encoding(leak):
    from agent.gameday.scan import scan_bytes

    assert scan_bytes("body", b"\x0a\x12" + leak + b"\x00")


def test_game_day_scan_is_quiet_on_clean_telemetry():
    from agent.gameday.scan import scan_bytes

    clean = (
        b"url.full http://127.0.0.1:8200/v1/contacts [EMAIL] [PHONE] tenant.id acme "
        b"trace 5f0c2a9e41b34d7f9a0e3c1b2d4f6a81 alertmanager@localhost 2026-11-30T21:41:37Z 127.0.0.1:4155"
    )
    assert scan_bytes("body", clean) == []
    assert scan_bytes("body", b"key sk-gameday-canary", secrets=["sk-gameday-canary"])


def test_gameday_command_lists_scenarios_and_rejects_unknown_ones():
    from agent.gameday.command import main
    from agent.gameday.scenarios import SCENARIOS

    names = {s.name for s in SCENARIOS}
    assert {"crm-down", "crm-30pct-errors", "llm-primary-down", "llm-all-down", "instance-killed",
            "host-cpu-saturated", "collector-down"} <= names  # fmt: skip
    defined = {rule["alert"] for rule in alert_rules()}
    for scenario in SCENARIOS:
        assert scenario.expected and scenario.expected | scenario.tolerated <= defined, scenario.name
    assert main(["--list"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["--scenarios", "crm-down,no-such-fault"])
    assert exit_info.value.code == 2


def test_game_day_scan_ignores_a_stray_at_sign_in_binary_protobuf():
    from agent.gameday.scan import scan_bytes

    # Measured in the 2026-11-30 game day: a span's fixed64 timestamp around 0x40 read "9@g.BX".
    assert scan_bytes("body", b"\x0fllm_request_run0\x019@g.BX\xf3\xec\x18A") == []


GAME_DAY_RECORDINGS = [path for path in RULE_TESTS if path.name.startswith("gameday-")]


def test_game_day_recordings_are_of_current_scenarios_and_expect_their_alerts():
    """`sales-agent gameday --record-dir alert-rules/tests` writes one promtool file per scenario; the
    promtool run of tests/integration/test_config_tools.py replays them against the rules. Each must be
    of a scenario that still exists and expect that scenario's alerts to fire."""
    from agent.gameday.scenarios import SCENARIOS

    by_name = {scenario.name: scenario for scenario in SCENARIOS}
    assert GAME_DAY_RECORDINGS, "no game day recording in alert-rules/tests"
    for path in GAME_DAY_RECORDINGS:
        name = path.name.removeprefix("gameday-").removesuffix(".test.yml")
        assert name in by_name, f"{path.name}: no scenario {name!r} (re-record or delete it)"
        (test,) = yaml.safe_load(path.read_text())["tests"]
        assert test["input_series"] and test["promql_expr_test"]
        fired = {
            sample["labels"]
            for check in test["promql_expr_test"]
            for sample in check.get("exp_samples", [])
            if "labels" in sample
        }
        for alert in by_name[name].expected:
            assert any(f'alertname="{alert}"' in labels for labels in fired), (
                f"{path.name}: {alert} never fires"
            )


def test_every_game_day_scenario_has_a_recording():
    """Every scenario was run live and its recording is replayed by promtool in CI: a new scenario
    lands with its `sales-agent gameday --scenarios NAME --record-dir alert-rules/tests` file."""
    from agent.gameday.scenarios import SCENARIOS

    recorded = {path.name.removeprefix("gameday-").removesuffix(".test.yml") for path in GAME_DAY_RECORDINGS}
    missing = sorted(scenario.name for scenario in SCENARIOS if scenario.name not in recorded)
    assert not missing, f"scenarios without a live recording in alert-rules/tests: {missing}"
