"""Grafana dashboards: generated JSON is fresh, well-formed, linked, and queries only what the agent exports.

The end-to-end test (tests/test_e2e_prometheus.py) runs every PromQL query against a real Prometheus;
this file checks statically what can be checked without one.
"""

from __future__ import annotations

import importlib.util
from collections import Counter

import pytest
from test_e2e_helpers import (
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


def _generator():
    spec = importlib.util.spec_from_file_location("dashboards_generate", DASHBOARDS_DIR / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_the_generator_output() -> None:
    generator = _generator()
    for uid in generator.DASHBOARDS:
        committed = (DASHBOARDS_DIR / f"{uid}.json").read_text()
        assert committed == generator.render(uid), f"{uid}.json is stale: run `python dashboards/generate.py`"
    assert set(load_dashboards()) == set(generator.DASHBOARDS)


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
