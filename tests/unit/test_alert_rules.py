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
