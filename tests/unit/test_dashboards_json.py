"""Grafana dashboards: generated JSON is fresh, well-formed, linked, and queries only what the agent exports.

The end-to-end test (tests/integration/test_e2e_prometheus.py) runs every PromQL query against a real
Prometheus; this file checks statically what can be checked without one: the JSON is the generator's
output, metric names follow telemetry/names.py through the exporter's rules, threshold lines carry the
alert rules' numbers, and "0 instead of No data" fallbacks keep label matching right.
"""

from __future__ import annotations

from collections import Counter

import promql_parser
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_helpers import (
    DASHBOARDS_DIR,
    NON_CATALOG_METRICS,
    check_logql,
    check_traceql,
    dashboard_queries,
    in_catalog,
    label_values_to_promql,
    load_dashboards,
    load_rule_groups,
    promql_metric_names,
    substitute_variables,
)

from dashboards import metrics
from dashboards.alert_thresholds import alert_threshold, alert_thresholds, thresholds_in
from dashboards.boards import BOARDS
from dashboards.generate import render
from telemetry import names

EXPECTED = {
    "sales-agent-overview",
    "sales-agent-llm",
    "sales-agent-dependencies",
    "sales-agent-sessions",
    "sales-agent-system",
    "sales-agent-calls",
    "sales-agent-voice",
}
# datasource type -> the fixed uid the compose stack provisions
DATASOURCE_UIDS = {name: name for name in ("prometheus", "tempo", "loki", "alertmanager")}


def test_committed_json_is_the_generator_output() -> None:
    for board in BOARDS:
        committed = (DASHBOARDS_DIR / f"{board.UID}.json").read_text()
        assert committed == render(board), (
            f"{board.UID}.json is stale: run `uv run python -m dashboards.generate`"
        )
    assert set(load_dashboards()) == {board.UID for board in BOARDS}


def test_the_seven_dashboards_exist_with_stable_uids() -> None:
    boards = load_dashboards()
    assert set(boards) == EXPECTED
    for stem, board in boards.items():
        assert board["uid"] == stem, "file name = uid, so links and provisioning stay stable"


@pytest.mark.parametrize("uid", sorted(EXPECTED))
def test_dashboard_structure(uid: str) -> None:
    board = load_dashboards()[uid]
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"environment", "instance", "tenant"} <= variables
    assert any(link["type"] == "dashboards" and "sales-agent" in link["tags"] for link in board["links"])
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = Counter(p["title"] for p in board["panels"])
    assert [t for t, n in titles.items() if n > 1] == []
    for p in board["panels"]:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        for ds in [p.get("datasource"), *(t.get("datasource") for t in p.get("targets", []))]:
            if ds:
                assert DATASOURCE_UIDS.get(ds["type"]) == ds["uid"], (p["title"], ds)
        if p["type"] != "row":
            assert p["targets"], f"{p['title']} has no query"


def test_calls_dashboard_has_tempo_search_loki_logs_and_exemplars() -> None:
    board = load_dashboards()["sales-agent-calls"]
    kinds = {(p["type"], p["datasource"]["type"]) for p in board["panels"] if p["type"] != "row"}
    assert ("table", "tempo") in kinds and ("logs", "loki") in kinds
    assert any(t.get("exemplar") for p in board["panels"] for t in p.get("targets", []))


def test_every_promql_metric_is_exported_by_the_agent_or_recorded() -> None:
    recorded = {r["record"] for g in load_rule_groups() for r in g["rules"] if "record" in r}
    unknown = set()
    for uid, title, kind, query in dashboard_queries():
        if kind != "prometheus":
            continue
        expr = label_values_to_promql(query) if query.startswith("label_values(") else query
        for metric in promql_metric_names(expr):
            if not (metric in recorded or metric in NON_CATALOG_METRICS or in_catalog(metric)):
                unknown.add((uid, title, metric))
    assert unknown == set()


def test_tempo_and_loki_queries_are_listed_and_well_formed() -> None:
    """These cannot run here (no Tempo/Loki binaries): list them and check their structure."""
    others = [query for query in dashboard_queries() if query[2] in {"tempo", "loki"}]
    assert {kind for _, _, kind, _ in others} == {"tempo", "loki"}
    for uid, title, kind, query in others:
        print(f"{kind:5} {uid} / {title}: {query}")
        substituted = substitute_variables(query)
        (check_traceql if kind == "tempo" else check_logql)(substituted)


def test_variable_substitution_covers_every_query() -> None:
    for _, _, _, query in dashboard_queries():
        substitute_variables(query)  # raises on an unknown variable


def test_syntax_checkers_reject_broken_queries() -> None:
    with pytest.raises(AssertionError):
        check_logql('service_name="x" | trace_id="1"')
    with pytest.raises(AssertionError):
        check_traceql('{ span.tenant.id = "a" && }')
    check_logql('{service_name="sales-agent"} | trace_id =~ ".*" |= "error"')
    check_traceql('{ resource.service.name = "sales-agent" && span.call.id =~ ".*" }')


# --- metric names: telemetry/names.py through the Prometheus exporter's rules ---------------------
def _exported_names(kind: str, otel_name: str, unit: str) -> set[str]:
    """What the real OTel Prometheus exporter writes for one instrument (a private registry)."""
    registry = CollectorRegistry()
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry, disable_target_info=True)]
    )
    try:
        meter = provider.get_meter("names-check")
        if kind == "counter":
            meter.create_counter(otel_name, unit=unit).add(1, {"dependency": "crm"})
        elif kind == "up_down_counter":
            meter.create_up_down_counter(otel_name, unit=unit).add(1)
        elif kind == "gauge":
            meter.create_gauge(otel_name, unit=unit).set(1)
        else:
            meter.create_histogram(otel_name, unit=unit).record(1)
        text = generate_latest(registry).decode()
    finally:
        provider.shutdown()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.parametrize(
    ("kind", "otel_name", "unit"),
    [
        ("counter", names.CALLS, "{call}"),
        ("counter", names.LLM_COST, "{USD}"),
        ("counter", "system.network.io", "By"),
        ("counter", "process.cpu.time", "s"),
        ("up_down_counter", names.SESSIONS_ACTIVE, "{session}"),
        ("up_down_counter", "process.memory.usage", "By"),
        ("gauge", names.OUTBOX_OLDEST_AGE, "s"),
        ("gauge", "system.cpu.utilization", "1"),
        ("gauge", names.LLM_PROVIDER_AVAILABLE, ""),
        ("histogram", names.TURN_RESPONSE_LATENCY, "s"),
        ("histogram", names.CALL_DURATION, "s"),
    ],
)
def test_prometheus_names_match_the_real_exporter(kind: str, otel_name: str, unit: str) -> None:
    exported = _exported_names(kind, otel_name, unit)
    if kind == "counter":
        expected = {metrics.counter(otel_name, unit)}
    elif kind == "histogram":
        family = metrics.histogram(otel_name, unit)
        expected = {family.bucket, family.count, family.sum}
    else:
        expected = {metrics.gauge(otel_name, unit)}
    assert exported == expected


def test_attribute_keys_become_the_exporters_label_names() -> None:
    registry = CollectorRegistry()
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry, disable_target_info=True)]
    )
    attributes = [names.GEN_AI_PROVIDER_NAME, names.CALL_OUTCOME, names.BREAKER_TO, names.TENANT_ID]
    try:
        provider.get_meter("labels-check").create_counter("x").add(1, dict.fromkeys(attributes, "v"))
        text = generate_latest(registry).decode()
    finally:
        provider.shutdown()
    (sample,) = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert {metrics.label(key) for key in attributes} <= set(sample.labels)


def test_unknown_units_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="furlong"):
        metrics.gauge("x.distance", "furlong")


def _prometheus_forms(otel_name: str) -> set[str]:
    family = metrics.histogram(otel_name)
    return {
        metrics.counter(otel_name),
        metrics.gauge(otel_name),
        metrics.gauge(otel_name, "s"),
        family.bucket,
        family.count,
        family.sum,
    }


def _promql_of_boards() -> list[str]:
    return [query for _, _, kind, query in dashboard_queries() if kind == "prometheus"]


def test_every_app_metric_in_the_dashboards_is_a_names_constant() -> None:
    catalog = {
        form
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str) and value.startswith("sales_agent.")
        for form in _prometheus_forms(value)
    }
    recorded = {r["record"] for g in load_rule_groups() for r in g["rules"] if "record" in r}
    for query in _promql_of_boards():
        expr = label_values_to_promql(query) if query.startswith("label_values(") else query
        for metric in promql_metric_names(expr):
            if metric.startswith("sales_agent_"):
                assert metric in catalog, (
                    f"{metric} (in {query!r}) is no form of a telemetry/names.py constant"
                )
            else:
                assert metric in recorded or metric in NON_CATALOG_METRICS, metric


def test_a_renamed_metric_regenerates_its_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    before = "".join(render(board) for board in BOARDS)
    assert (
        "sales_agent_calls_total" in before and "sales_agent_turn_response_latency_seconds_bucket" in before
    )

    monkeypatch.setattr(names, "CALLS", "sales_agent.phone_calls")
    monkeypatch.setattr(names, "TURN_RESPONSE_LATENCY", "sales_agent.turn.wait")
    after = "".join(render(board) for board in BOARDS)

    assert "sales_agent_calls_total" not in after
    assert "sales_agent_turn_response_latency_seconds" not in after
    assert after.count("sales_agent_phone_calls_total") == before.count("sales_agent_calls_total")
    assert after.count("sales_agent_turn_wait_seconds_bucket") == before.count(
        "sales_agent_turn_response_latency_seconds_bucket"
    )


# --- thresholds: the alert rules' numbers, drawn on the panels that show what the alert watches ----
PANEL_ALERTS = {
    ("sales-agent-system", "CPU"): "HighCpuUsage",
    ("sales-agent-system", "Host memory used"): "HighSystemMemoryUsage",
    ("sales-agent-system", "Event loop lag"): "EventLoopLagHigh",
    ("sales-agent-overview", "Tool error rate"): "HighErrorRate",
    ("sales-agent-overview", "Turn response latency vs 2 s target"): "SlowTurnResponse",
    ("sales-agent-calls", "Turn response latency"): "SlowTurnResponse",
    ("sales-agent-dependencies", "Latency by dependency and operation (p95)"): "SlowDependencyResponse",
    ("sales-agent-dependencies", "Oldest outbox entry age"): "OutboxBacklogStale",
    ("sales-agent-llm", "Turn failure rate (every provider failed)"): "LLMFailureRateHigh",
    ("sales-agent-sessions", "Call success rate"): "LowCallSuccessRate",
    ("sales-agent-sessions", "Session expiry rate"): "HighSessionExpiryRate",
}
# Ratio panels whose query must select the same series as their alert (up to the board's variables).
RATIO_PANELS = {
    ("sales-agent-overview", "Tool error rate"): "HighErrorRate",
    ("sales-agent-llm", "Turn failure rate (every provider failed)"): "LLMFailureRateHigh",
    ("sales-agent-sessions", "Call success rate"): "LowCallSuccessRate",
    ("sales-agent-sessions", "Session expiry rate"): "HighSessionExpiryRate",
}


def _panel(uid: str, title: str) -> dict:
    matches = [p for p in load_dashboards()[uid]["panels"] if p["title"] == title]
    assert len(matches) == 1, f"{uid} has no panel {title!r}"
    return matches[0]


@pytest.mark.parametrize(("uid", "title"), sorted(PANEL_ALERTS))
def test_threshold_lines_equal_the_alert_rule_thresholds(uid: str, title: str) -> None:
    panel = _panel(uid, title)
    defaults = panel["fieldConfig"]["defaults"]
    steps = [step["value"] for step in defaults["thresholds"]["steps"]]
    assert alert_threshold(PANEL_ALERTS[uid, title]) in steps
    assert defaults["custom"]["thresholdsStyle"]["mode"] == "dashed", "threshold lines are drawn"


def test_burn_rate_lines_are_the_fast_burn_alerts_multiples() -> None:
    defaults = _panel("sales-agent-overview", "Error budget burn rate")["fieldConfig"]["defaults"]
    steps = [step["value"] for step in defaults["thresholds"]["steps"]]
    assert steps[1:] == [round(t / 0.001, 6) for t in alert_thresholds("SLOCallAvailabilityFastBurn")]


def _selected_series(query: str) -> set[tuple[str, frozenset[tuple[str, str, str]]]]:
    """(metric, matchers) of every selector, leaving out the dashboard's job/instance/tenant scope."""
    scope = {"job", "instance", metrics.label(names.TENANT_ID)}
    found: set[tuple[str, frozenset[tuple[str, str, str]]]] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = frozenset(
                (m.name, str(m.op), m.value) for m in node.matchers.matchers if m.name not in scope
            )
            found.add((node.name, matchers))

    promql_parser.walk(promql_parser.parse(substitute_variables(query)), visit)
    return found


@pytest.mark.parametrize(("uid", "title"), sorted(RATIO_PANELS))
def test_ratio_panels_select_the_series_their_alert_selects(uid: str, title: str) -> None:
    (target,) = _panel(uid, title)["targets"]
    rule = next(
        r for g in load_rule_groups() for r in g["rules"] if r.get("alert") == RATIO_PANELS[uid, title]
    )
    assert _selected_series(target["expr"]) == _selected_series(rule["expr"])


def test_thresholds_are_the_strict_comparisons_not_the_traffic_guards() -> None:
    assert thresholds_in(
        "(sum(rate(a[5m])) / sum(rate(b[5m]))) > 0.10 and on() sum(increase(b[5m])) >= 10"
    ) == [0.1]
    assert thresholds_in("x > (14.4 * 0.001) or y > (6 * 0.001)") == [0.006, 0.0144]
    assert thresholds_in("0.8 > x") == [0.8]
    assert thresholds_in("x > bool 3") == []
    with pytest.raises(ValueError, match="SalesAgentNotReporting"):
        alert_threshold("SalesAgentNotReporting")
    with pytest.raises(KeyError):
        alert_threshold("NoSuchAlert")


# --- "0 instead of No data" keeps label matching right -------------------------------------------
def _zero_fallbacks(expr: str) -> list[promql_parser.BinaryExpr]:
    found: list[promql_parser.BinaryExpr] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.BinaryExpr) and str(node.op) == "or" and "vector(" in str(node.rhs):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_zero_fallbacks_match_on_no_labels() -> None:
    """`or on() vector(0)`: a bare `or vector(0)` adds a stray 0 series beside every labelled series."""
    fallbacks = 0
    for query in _promql_of_boards():
        if query.startswith("label_values("):
            continue
        for node in _zero_fallbacks(substitute_variables(query)):
            fallbacks += 1
            matching = node.modifier.matching if node.modifier else None
            assert matching is not None and list(matching.labels) == [], f"`or` without on(): {query}"
            assert str(matching.type) == "LabelModifierType.Include", query
    assert fallbacks >= 10
