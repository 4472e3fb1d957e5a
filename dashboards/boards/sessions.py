"""Sessions & business: active, ended and expired sessions, call success; leads, meetings, conversion."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import kit
from dashboards.alert_thresholds import alert_threshold
from dashboards.kit import prom
from dashboards.metrics import counter, gauge, histogram, label
from dashboards.promql import APP_TENANT, or_zero, ratio, selector, sum_increase, sum_rate
from telemetry import names

UID = "sales-agent-sessions"


def build() -> Dashboard:
    calls, ended = counter(names.CALLS), counter(names.SESSIONS_ENDED)
    leads, meetings = counter(names.LEADS_CAPTURED), counter(names.MEETINGS_BOOKED)
    tenant, call_outcome = label(names.TENANT_ID), label(names.CALL_OUTCOME)
    session_outcome, band = label(names.SESSION_OUTCOME), label(names.LEAD_BAND)
    operation, outcome = label(names.OPERATION), label(names.OUTCOME)
    success_floor = alert_threshold("LowCallSuccessRate")
    expiry_ceiling = alert_threshold("HighSessionExpiryRate")
    board = (
        kit.board(
            UID,
            "Sales agent / Sessions & business",
            "Active, expired and idle sessions, call success; leads, qualifications, meetings, conversion.",
        )
        .with_row(dashboard.Row("Sessions"))
        .with_panel(
            kit.timeseries_panel(
                "Active sessions by tenant",
                [
                    prom(
                        f"sum by ({tenant}) ({gauge(names.SESSIONS_ACTIVE)}{{{APP_TENANT}}})",
                        kit.legend(tenant),
                    )
                ],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Sessions ended by outcome (completed / expired / idle / evicted / error)",
                [
                    prom(
                        sum_rate(ended, APP_TENANT, [session_outcome], fn="increase"),
                        kit.legend(session_outcome),
                    )
                ],
                description="expired and idle = reaped by the cleaner (see Session expiry rate).",
            )
        )
        .with_panel(
            kit.ratio_panel(
                "Call success rate",
                sum_rate(calls, selector(APP_TENANT, f'{call_outcome}!~"error|failed|dropped"')),
                sum_rate(calls, APP_TENANT),
                "calls that reached an outcome / calls",
                thresholds=kit.below(success_floor),
                description=f"LowCallSuccessRate warns below {kit.percent(success_floor)} per tenant "
                "(5 m window). Not successful: error, failed (the agent failed the caller), dropped.",
            )
        )
        .with_panel(
            kit.ratio_panel(
                "Session expiry rate",
                sum_rate(ended, selector(APP_TENANT, f'{session_outcome}=~"expired|idle"')),
                sum_rate(ended, APP_TENANT),
                "expired or idle / sessions ended",
                thresholds=kit.above(expiry_ceiling),
                description="Sessions reaped by the cleaner instead of ending. HighSessionExpiryRate warns "
                f"above {kit.percent(expiry_ceiling)} (15 m window). 0 when none expired.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Sessions started",
                [prom(sum_rate(counter(names.SESSIONS_STARTED), APP_TENANT, [tenant]), kit.legend(tenant))],
                unit="ops",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Call duration",
                kit.quantile_queries(histogram(names.CALL_DURATION), APP_TENANT, exemplar=False),
                unit="s",
            )
        )
        .with_row(dashboard.Row("Business"))
        .with_panel(kit.stat_panel("Leads captured", or_zero(sum_increase(leads, APP_TENANT))))
        .with_panel(kit.stat_panel("Meetings booked", or_zero(sum_increase(meetings, APP_TENANT))))
        .with_panel(
            kit.stat_panel(
                "Conversion rate (converted calls / calls)",
                ratio(
                    sum_increase(calls, selector(APP_TENANT, f'{call_outcome}="converted"')),
                    sum_increase(calls, APP_TENANT),
                ),
                unit="percentunit",
            )
        )
        .with_panel(
            kit.stat_panel(
                "Meetings per captured lead",
                ratio(sum_increase(meetings, APP_TENANT), sum_increase(leads, APP_TENANT)),
                unit="percentunit",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Leads qualified by band",
                [
                    prom(
                        sum_rate(counter(names.LEADS_QUALIFIED), APP_TENANT, [band], fn="increase"),
                        kit.legend(band),
                    )
                ],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Calls by tenant and outcome",
                [
                    prom(
                        sum_rate(calls, APP_TENANT, [tenant, call_outcome], fn="increase"),
                        kit.legend(tenant, call_outcome),
                    )
                ],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Tool usage by operation",
                [
                    prom(
                        sum_rate(counter(names.TOOL_CALLS), APP_TENANT, [operation, outcome]),
                        kit.legend(operation, outcome),
                    )
                ],
                unit="ops",
                width=24,
            )
        )
    )
    return kit.finish(board)
