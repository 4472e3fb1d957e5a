"""Calls: follow one call - Tempo search by tenant or call id, its logs from Loki, latency exemplars.

Adds two text-box variables, ``call_id`` and ``trace_id`` (regexes). Clicking a trace id's "Show
this call's logs" link sets ``trace_id``; Loki keeps the trace id as OTLP structured metadata, which
a label filter reads.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, logs, loki, table, tempo
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import tempo as tempo_model

from dashboards import kit
from dashboards.kit import LOKI, PROMETHEUS, TEMPO, prom
from dashboards.metrics import counter, histogram, label
from dashboards.promql import APP, APP_TENANT, quantile, sum_increase
from telemetry import names

UID = "sales-agent-calls"


def _regex_textbox(name: str, title: str) -> dashboard.TextBoxVariable:
    return (
        dashboard.TextBoxVariable(name)
        .label(title)
        .default_value(".*")
        .current(model.VariableOption(text=".*", value=".*"))
    )


def build() -> model.Dashboard:
    tenant, call_outcome = label(names.TENANT_ID), label(names.CALL_OUTCOME)
    operation, provider = label(names.OPERATION), label(names.GEN_AI_PROVIDER_NAME)
    traceql = (
        f'{{ resource.service.name = "sales-agent" && span.{names.TENANT_ID} =~ "${{tenant:regex}}" '
        f'&& span.{names.CALL_ID} =~ "$call_id" }}'
    )
    logql = f'{{service_name="sales-agent"}} | trace_id =~ "$trace_id" | {tenant} =~ "${{tenant:regex}}"'
    show_logs = {
        "title": "Show this call's logs",
        "url": f"/d/{UID}?var-trace_id=${{__value.raw}}&${{__url_time_range}}&var-tenant=${{tenant}}",
    }
    recent_calls = (
        table.Panel()
        .title("Recent calls (Tempo search by tenant / call id)")
        .description(
            "Spans with call.id and tenant.id (the call's root span). Click a trace id to open it, "
            "or 'Show this call's logs' to filter the logs below."
        )
        .datasource(TEMPO)
        .span(24)
        .height(10)
        .with_target(
            tempo.TempoQuery()
            .datasource(TEMPO)
            .ref_id("A")
            .query_type("traceql")
            .query(traceql)
            .limit(50)
            .table_type(tempo_model.SearchTableType.TRACES)
        )
        .override_by_name("traceID", [model.DynamicConfigValue(id_val="links", value=[show_logs])])
    )
    call_logs = (
        logs.Panel()
        .title("Logs of the selected trace (Loki)")
        .description("Set trace_id (or click a trace in the table). The trace_id field links back to Tempo.")
        .datasource(LOKI)
        .span(24)
        .height(10)
        .with_target(loki.Dataquery().datasource(LOKI).ref_id("A").expr(logql).query_type("range"))
        .show_time(True)
        .wrap_log_message(True)
        .sort_order(common.LogsSortOrder.DESCENDING)
        .enable_log_details(True)
    )
    outcomes_table = kit.with_queries(
        table.Panel()
        .title("Calls by tenant and outcome (time range)")
        .datasource(PROMETHEUS)
        .span(12)
        .height(8)
        .show_header(True),
        [
            prom(
                sum_increase(counter(names.CALLS), APP_TENANT, [tenant, call_outcome]),
                instant=True,
                as_table=True,
            )
        ],
    )
    board = (
        kit.board(
            UID,
            "Sales agent / Calls",
            "Follow one call: Tempo search by tenant or call id, its logs from Loki, latency exemplars.",
        )
        .with_variable(_regex_textbox("call_id", "Call id (regex)"))
        .with_variable(_regex_textbox("trace_id", "Trace id (regex)"))
        .with_row(dashboard.Row("Recent calls"))
        .with_panel(recent_calls)
        .with_panel(call_logs)
        .with_row(dashboard.Row("Latency with exemplars (click a dot to open the trace)"))
        .with_panel(
            kit.timeseries_panel(
                "Turn response latency",
                kit.quantile_queries(histogram(names.TURN_RESPONSE_LATENCY), APP_TENANT),
                unit="s",
                thresholds=kit.turn_latency_steps(),
                description="The caller's wait: end of their turn -> the agent's first output of the reply.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Tool duration by operation (p95)",
                [
                    prom(
                        quantile(0.95, histogram(names.TOOL_DURATION), APP, [operation]),
                        kit.legend(operation),
                        exemplar=True,
                    )
                ],
                unit="s",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "LLM time to first token (p95)",
                [
                    prom(
                        quantile(0.95, histogram(names.LLM_TIME_TO_FIRST_TOKEN), APP, [provider]),
                        kit.legend(provider),
                        exemplar=True,
                    )
                ],
                unit="s",
            )
        )
        .with_panel(outcomes_table)
    )
    return kit.finish(board)
