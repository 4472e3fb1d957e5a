"""What every board shares, built with Grafana's typed builders (grafana-foundation-sdk).

- Datasources by the fixed uids the compose stack provisions (deploy/grafana/provisioning):
  ``prometheus``, ``tempo``, ``loki``.
- Variables on every board: ``environment`` (the deployment.environment.name resource attribute,
  which only target_info carries), ``instance`` (agent instances of that environment; "All" expands
  to exactly those) and ``tenant``. App queries select ``job="sales-agent"`` plus those variables.
- Links: every board lists the others (tag ``sales-agent``, variables and time range kept).
- Panel factories with the project's defaults (legend at the bottom, shared tooltip, threshold
  lines drawn dashed) so a board module says only what differs.

The SDK places panels left to right and wraps a line once it is full (24 columns), so each board
module chooses widths that add up to 24 per line; ``finish`` numbers the panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

from dashboards.alert_thresholds import alert_threshold
from dashboards.metrics import Histogram, counter, label
from dashboards.promql import APP, QUANTILES, quantile, ratio
from telemetry import names

PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="prometheus")
TEMPO = model.DataSourceRef(type_val="tempo", uid="tempo")
LOKI = model.DataSourceRef(type_val="loki", uid="loki")
TAG = "sales-agent"
# Product targets (README): 99.9 % of calls without error (the 0.001 error budget of
# alert-rules/sales-agent-slo.rules.yml) and a 2 s response; the alert thresholds come from the rules.
SLO_TARGET = 0.999
ERROR_BUDGET = round(1 - SLO_TARGET, 12)
RESPONSE_TARGET_S = 2.0

REF_IDS = "ABCDEFGHIJ"
GRID_WIDTH = 24

Panel = TypeVar("Panel", timeseries.Panel, stat.Panel, statetimeline.Panel, table.Panel)


# --- queries ------------------------------------------------------------------------------------
def prom(
    expr: str,
    legend: str = "__auto",
    *,
    instant: bool = False,
    exemplar: bool = False,
    as_table: bool = False,
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().datasource(PROMETHEUS).expr(expr).legend_format(legend)
    query = query.instant() if instant else query.range()
    if exemplar:
        query = query.exemplar(True)
    if as_table:
        query = query.format(prometheus_model.PromQueryFormat.TABLE)
    return query


def legend(*labels: str, sep: str = " ") -> str:
    """A legend naming each series by its labels: legend("a", "b") -> "{{a}} {{b}}"."""
    return sep.join("{{" + name + "}}" for name in labels)


def quantile_queries(
    histogram: Histogram, sel: str, by: Sequence[str] = (), *, exemplar: bool = True
) -> list[prometheus.Dataquery]:
    """p50, p95 and p99 of a histogram (legend "p95", or "<label> p95" per ``by`` group)."""
    prefix = legend(*by) + " " if by else ""
    return [
        prom(quantile(q, histogram, sel, by), f"{prefix}p{q * 100:g}", exemplar=exemplar) for q in QUANTILES
    ]


# --- thresholds ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """From ``value`` upwards the panel is ``color`` (Grafana's threshold semantics)."""

    value: float
    color: str


def steps(base: str, *levels: Step) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                model.Threshold(value=None, color=base),
                *(model.Threshold(value=s.value, color=s.color) for s in levels),
            ]
        )
    )


def above(value: float, color: str = "red") -> dashboard.ThresholdsConfig:
    """Bad at or above ``value`` (an alert that fires when the series goes over it)."""
    return steps("green", Step(value, color))


def below(value: float) -> dashboard.ThresholdsConfig:
    """Bad below ``value`` (an alert that fires when the series falls under it)."""
    return steps("red", Step(value, "green"))


def turn_latency_steps() -> dashboard.ThresholdsConfig:
    """Orange from the 2 s response target, red from SlowTurnResponse's p95 threshold."""
    return steps("green", Step(RESPONSE_TARGET_S, "orange"), Step(alert_threshold("SlowTurnResponse"), "red"))


def percent(ratio: float) -> str:
    """0.05 -> "5 %" (for descriptions that quote a rule's threshold)."""
    return f"{ratio * 100:g} %"


# --- panels -------------------------------------------------------------------------------------
def with_queries(panel: Panel, queries: Sequence[prometheus.Dataquery]) -> Panel:
    """Adds the queries with ref ids A, B, ... in order."""
    if len(queries) > len(REF_IDS):
        raise ValueError(f"at most {len(REF_IDS)} queries per panel")
    for ref_id, query in zip(REF_IDS, queries, strict=False):
        panel = panel.with_target(query.ref_id(ref_id))
    return panel


def _placed(panel: Panel, title: str, description: str, width: int, height: int) -> Panel:
    return panel.title(title).description(description).datasource(PROMETHEUS).span(width).height(height)


def timeseries_panel(
    title: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    thresholds: dashboard.ThresholdsConfig | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    links: Sequence[dashboard.DashboardLink] = (),
) -> timeseries.Panel:
    panel = (
        _placed(timeseries.Panel(), title, description, width, height)
        .unit(unit)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(common_builder.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    if links:
        panel = panel.links(list(links))
    return with_queries(panel, queries)


def ratio_panel(
    title: str,
    numerator: str,
    denominator: str,
    legend: str,
    *,
    thresholds: dashboard.ThresholdsConfig,
    description: str,
    width: int = 12,
    height: int = 8,
) -> timeseries.Panel:
    """A share over time (0-1) with its alert's line; 0 while the numerator has no series yet."""
    return timeseries_panel(
        title,
        [prom(ratio(numerator, denominator), legend)],
        unit="percentunit",
        maximum=1,
        thresholds=thresholds,
        description=description,
        width=width,
        height=height,
    )


def stat_panel(
    title: str,
    expr: str,
    *,
    unit: str = "short",
    description: str = "",
    thresholds: dashboard.ThresholdsConfig | None = None,
    width: int = 6,
    height: int = 5,
) -> stat.Panel:
    panel = (
        _placed(stat.Panel(), title, description, width, height)
        .unit(unit)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .color_mode(common.BigValueColorMode.VALUE)
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds).color_scheme(
            dashboard.FieldColor().mode(model.FieldColorModeId.THRESHOLDS)
        )
    return with_queries(panel, [prom(expr, instant=True)])


def state_timeline_panel(
    title: str,
    query: prometheus.Dataquery,
    *,
    states: dict[str, tuple[str, str]],
    thresholds: dashboard.ThresholdsConfig,
    description: str = "",
) -> statetimeline.Panel:
    """A full-width timeline; ``states`` maps a value to (text, color)."""
    mapping = model.ValueMap(
        options={
            value: model.ValueMappingResult(text=text, color=color) for value, (text, color) in states.items()
        }
    )
    panel = (
        _placed(statetimeline.Panel(), title, description, GRID_WIDTH, 6)
        .mappings([mapping])
        .thresholds(thresholds)
        .color_scheme(dashboard.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
    )
    return with_queries(panel, [query])


def link(title: str, uid: str) -> dashboard.DashboardLink:
    """A panel link to another board, keeping the time range and the variables."""
    return dashboard.DashboardLink(title).url(f"/d/{uid}?${{__url_time_range}}&${{__all_variables}}")


# --- boards -------------------------------------------------------------------------------------
def _query_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(PROMETHEUS)
        .query({"query": query, "refId": f"{name}-var"})
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .multi(True)
        .current(model.VariableOption(text="All", value="$__all"))
    )


def board(uid: str, title: str, description: str) -> dashboard.Dashboard:
    """A board with the shared settings, variables and links; the caller adds rows and panels."""
    started = counter(names.SESSIONS_STARTED)
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("browser")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .version(1)
        .refresh("30s")
        .time("now-1h", "now")
        # An explicit empty list (Grafana adds its built-in annotations); the SDK default is "{}".
        .annotations([])
        .with_variable(
            _query_variable(
                "environment",
                "Environment",
                'label_values(target_info{job="sales-agent"}, deployment_environment_name)',
            )
            .multi(False)
            .all_value(".*")
        )
        # No custom "All" value: All expands to the instances of the chosen environment.
        .with_variable(
            _query_variable(
                "instance",
                "Instance",
                'label_values(target_info{job="sales-agent", '
                'deployment_environment_name=~"$environment"}, instance)',
            )
        )
        .with_variable(
            _query_variable(
                "tenant", "Tenant", f"label_values({started}{{{APP}}}, {label(names.TENANT_ID)})"
            ).all_value(".*")
        )
        .link(
            dashboard.DashboardLink("Sales agent dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(False)
            .include_vars(True)
            .keep_time(True)
        )
    )


def finish(builder: dashboard.Dashboard) -> model.Dashboard:
    """Build, number the panels in reading order (Grafana needs unique ids), check they fit the grid."""
    built = builder.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
        grid = panel.grid_pos
        if grid is None or grid.x + grid.w > GRID_WIDTH:
            raise ValueError(
                f"{built.uid}: panel {panel.title!r} does not fit the {GRID_WIDTH}-column grid ({grid}); "
                "make the widths of each line add up to 24"
            )
    return built
