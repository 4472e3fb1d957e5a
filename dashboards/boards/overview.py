"""Overview & SLO: call availability against the 99.9 % target, error budget, latency, errors.

The SLO panels read the recording rules of alert-rules/sales-agent-slo.rules.yml (all tenants).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import kit
from dashboards.alert_thresholds import alert_threshold, alert_thresholds
from dashboards.kit import ERROR_BUDGET, SLO_TARGET, Step, prom
from dashboards.metrics import counter, gauge, histogram, label
from dashboards.promql import APP_TENANT, or_zero, selector, sum_rate
from telemetry import names

UID = "sales-agent-overview"


def build() -> Dashboard:
    calls = counter(names.CALLS)
    errors = counter(names.ERRORS)
    tool_calls = counter(names.TOOL_CALLS)
    category, outcome = label(names.ERROR_CATEGORY), label(names.CALL_OUTCOME)
    # Burn rate = error ratio / budget; the fast-burn alert's windows page at these multiples.
    page_burn = [round(t / ERROR_BUDGET, 6) for t in alert_thresholds("SLOCallAvailabilityFastBurn")]
    ticket_burn = [round(t / ERROR_BUDGET, 6) for t in alert_thresholds("SLOCallAvailabilitySlowBurn")]
    burn_steps = kit.steps("green", Step(min(page_burn), "orange"), Step(max(page_burn), "red"))
    burn_1h = f"sales_agent:call_errors:ratio_rate1h / {ERROR_BUDGET:g}"
    tool_error_threshold = alert_threshold("HighErrorRate")
    board = (
        kit.board(
            UID,
            "Sales agent / Overview & SLO",
            "Call availability against the 99.9 % SLO, error budget, calls in progress, turn latency, "
            "errors.",
        )
        .with_row(dashboard.Row("Service level: 99.9 % call availability, 2 s response"))
        .with_panel(
            kit.stat_panel(
                "Call availability (30 d)",
                "sales_agent:call_availability:ratio_rate30d",
                unit="percentunit",
                thresholds=kit.below(SLO_TARGET),
                description="Share of calls not ending in error, all tenants (recording rule). "
                "Target 99.9 %.",
            )
        )
        .with_panel(
            kit.stat_panel(
                "Error budget left (30 d)",
                "sales_agent:call_error_budget_remaining:ratio30d",
                unit="percentunit",
                thresholds=kit.steps("red", Step(0.25, "orange"), Step(0.5, "green")),
                description="1 - (error ratio / 0.1 %). Negative: the month's budget is spent.",
            )
        )
        .with_panel(
            kit.stat_panel(
                "Calls in progress",
                f"sum({gauge(names.SESSIONS_ACTIVE)}{{{APP_TENANT}}})",
                description="Open sessions (one per call).",
            )
        )
        .with_panel(
            kit.stat_panel(
                "Burn rate (1 h)",
                burn_1h,
                unit="x",
                thresholds=burn_steps,
                description=f"Error ratio over the budget (0.1 %). {max(page_burn):g}x over 1 h pages "
                "(SLOCallAvailabilityFastBurn).",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Call availability vs 99.9 % target",
                [
                    prom("1 - sales_agent:call_errors:ratio_rate5m", "5 m"),
                    prom("1 - sales_agent:call_errors:ratio_rate1h", "1 h"),
                ],
                unit="percentunit",
                maximum=1,
                thresholds=kit.below(SLO_TARGET),
                description="The dashed line is the 99.9 % target.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Turn response latency vs 2 s target",
                kit.quantile_queries(histogram(names.TURN_RESPONSE_LATENCY), APP_TENANT),
                unit="s",
                thresholds=kit.turn_latency_steps(),
                description="The caller's wait (p50/p95/p99): end of the caller's turn -> the agent's first "
                "output of the reply (first audio in voice calls, first text in text calls), tool calls and "
                "fallbacks included; the Voice board splits voice turns out. Dashed lines: the 2 s "
                f"target and SlowTurnResponse's p95 threshold ({alert_threshold('SlowTurnResponse'):g} s). "
                "Exemplars open the trace in Tempo.",
                links=[
                    kit.link("Voice", "sales-agent-voice"),
                    kit.link("Calls (traces and logs)", "sales-agent-calls"),
                ],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Error budget burn rate",
                [
                    prom(burn_1h, "1 h"),
                    prom(f"sales_agent:call_errors:ratio_rate6h / {ERROR_BUDGET:g}", "6 h"),
                ],
                unit="x",
                thresholds=burn_steps,
                description=f"Pages at {max(page_burn):g}x (1 h) or {min(page_burn):g}x (6 h); tickets at "
                f"{max(ticket_burn):g}x (1 d) or {min(ticket_burn):g}x (3 d).",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Errors by category",
                [
                    prom(
                        or_zero(sum_rate(errors, APP_TENANT, [category]), {category: "none"}),
                        kit.legend(category),
                    )
                ],
                unit="ops",
                description="validation = bad input from the conversation; dependency = CRM/calendar/LLM; "
                "internal = ours.",
                links=[kit.link("Dependencies & resilience", "sales-agent-dependencies")],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Calls by outcome",
                [prom(sum_rate(calls, APP_TENANT, [outcome]), kit.legend(outcome))],
                unit="ops",
                links=[kit.link("Sessions & business", "sales-agent-sessions")],
            )
        )
        .with_panel(
            kit.ratio_panel(
                "Tool error rate",
                sum_rate(errors, selector(APP_TENANT, f'{category}!="validation"')),
                sum_rate(tool_calls, APP_TENANT),
                "dependency + internal errors / tool calls",
                thresholds=kit.above(tool_error_threshold),
                description=f"HighErrorRate pages above {kit.percent(tool_error_threshold)} "
                "(with at least 10 tool calls in 5 m). 0 when no tool call failed.",
            )
        )
    )
    return kit.finish(board)
