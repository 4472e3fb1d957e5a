# ruff: noqa: E501  (PromQL expressions read better on one line than split across string fragments)
"""Writes the Grafana dashboards in this folder (``python dashboards/generate.py``).

Seven dashboards share variables, datasource uids, selectors and links, so they are generated from one
place instead of hand-edited JSON; tests/test_dashboards_json.py checks the committed JSON is this
script's output. Grafana provisioning (deploy/grafana/provisioning/dashboards) loads the *.json files.

Conventions:
- Datasource uids ``prometheus``, ``tempo``, ``loki`` (provisioned by the compose stack).
- Variables on every dashboard: ``environment`` (the deployment.environment.name resource attribute,
  which only target_info carries), ``instance`` (agent instances in that environment; "All" expands
  to exactly those instances) and ``tenant``; app queries select ``job="sales-agent"``.
- Metric names are the Prometheus forms of telemetry/names.py (see alert-rules/sales-agent.rules.yml).
- The SLO panels read the recording rules of alert-rules/sales-agent-slo.rules.yml (all tenants).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent
PROM = {"type": "prometheus", "uid": "prometheus"}
TEMPO = {"type": "tempo", "uid": "tempo"}
LOKI = {"type": "loki", "uid": "loki"}
TAG = "sales-agent"
SLO_TARGET = 0.999
RESPONSE_TARGET_S = 2.0

# Selectors used by every app query.
S = 'job="sales-agent", instance=~"$instance"'
ST = S + ', tenant_id=~"$tenant"'
RATE = "$__rate_interval"

Json = dict[str, Any]


# --- building blocks ---------------------------------------------------------------------------
def target(
    expr: str, legend: str = "", *, instant: bool = False, exemplar: bool = False, fmt: str = ""
) -> Json:
    t: Json = {"datasource": PROM, "expr": expr, "legendFormat": legend or "__auto", "range": not instant}
    if instant:
        t["instant"] = True
    if exemplar:
        t["exemplar"] = True
    if fmt:
        t["format"] = fmt
    return t


def _thresholds(steps: list[tuple[float | None, str]]) -> Json:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def panel(
    kind: str,
    title: str,
    targets: list[Json],
    *,
    unit: str = "short",
    description: str = "",
    w: int = 12,
    h: int = 8,
    thresholds: list[tuple[float | None, str]] | None = None,
    mappings: list[Json] | None = None,
    options: Json | None = None,
    custom: Json | None = None,
    overrides: list[Json] | None = None,
    links: list[Json] | None = None,
    datasource: Json = PROM,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Json:
    defaults: Json = {"unit": unit}
    if thresholds:
        defaults["thresholds"] = _thresholds(thresholds)
        defaults["color"] = {"mode": "thresholds"}
    if mappings:
        defaults["mappings"] = mappings
    if custom:
        defaults["custom"] = custom
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    refs = iter("ABCDEFGHIJ")
    p: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "gridPos": {"w": w, "h": h},
        "targets": [{"refId": next(refs), **t} for t in targets],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if links:
        p["links"] = links
    return p


def ts(title: str, targets: list[Json], **kw: Any) -> Json:
    kw.setdefault(
        "options", {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    )
    return panel("timeseries", title, targets, **kw)


def stat(title: str, expr: str, **kw: Any) -> Json:
    kw.setdefault("w", 6)
    kw.setdefault("h", 5)
    kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"})
    return panel("stat", title, [target(expr, instant=True)], **kw)


def quantiles(metric: str, selector: str, by: str = "", *, exemplar: bool = True) -> list[Json]:
    group = f"le{', ' + by if by else ''}"
    prefix = "{{" + by + "}} " if by else ""
    return [
        target(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"{prefix}p{int(q * 100)}",
            exemplar=exemplar,
        )
        for q in (0.5, 0.95, 0.99)
    ]


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


def link(title: str, uid: str) -> Json:
    return {"title": title, "url": f"/d/{uid}?${{__url_time_range}}&${{__all_variables}}"}


def variables(extra: list[Json] | None = None) -> Json:
    def query_var(name: str, label: str, query: str, **kw: Any) -> Json:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": PROM,
            "definition": query,
            "query": {"query": query, "refId": f"{name}-var"},
            "refresh": 2,
            "sort": 1,
            "includeAll": True,
            "multi": kw.pop("multi", True),
            "current": {"text": "All", "value": "$__all"},
            **kw,
        }

    return {
        "list": [
            query_var(
                "environment",
                "Environment",
                'label_values(target_info{job="sales-agent"}, deployment_environment_name)',
                allValue=".*",
                multi=False,
            ),
            # No custom "All" value: All expands to the instances of the chosen environment.
            query_var(
                "instance",
                "Instance",
                'label_values(target_info{job="sales-agent", deployment_environment_name=~"$environment"}, instance)',
            ),
            query_var(
                "tenant",
                "Tenant",
                'label_values(sales_agent_sessions_started_total{job="sales-agent", instance=~"$instance"}, tenant_id)',
                allValue=".*",
            ),
            *(extra or []),
        ]
    }


def layout(panels: list[Json]) -> list[Json]:
    """Left-to-right, top-to-bottom placement on Grafana's 24-column grid; ids in order."""
    x = y = row_h = 0
    for number, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24 or p["type"] == "row":
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"].update({"x": x, "y": y})
        p["id"] = number
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return panels


def dashboard(
    uid: str, title: str, description: str, panels: list[Json], extra_vars: list[Json] | None = None
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": variables(extra_vars),
        "annotations": {"list": []},
        "links": [
            {
                "title": "Sales agent dashboards",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": layout(panels),
    }


PERCENT_SLO = [(None, "red"), (SLO_TARGET, "green")]
BREAKER_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green"},
            "1": {"text": "half-open", "color": "yellow"},
            "2": {"text": "open", "color": "red"},
        },
    }
]
UP_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "cooling down", "color": "red"},
            "1": {"text": "available", "color": "green"},
        },
    }
]


# --- dashboards --------------------------------------------------------------------------------
def overview() -> Json:
    panels = [
        row("Service level: 99.9 % call availability, 2 s response"),
        stat(
            "Call availability (30 d)",
            "sales_agent:call_availability:ratio_rate30d",
            unit="percentunit",
            thresholds=PERCENT_SLO,
            description="Share of calls not ending in error, all tenants (recording rule). Target 99.9 %.",
        ),
        stat(
            "Error budget left (30 d)",
            "sales_agent:call_error_budget_remaining:ratio30d",
            unit="percentunit",
            thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")],
            description="1 - (error ratio / 0.1 %). Negative: the month's budget is spent.",
        ),
        stat(
            "Calls in progress",
            f"sum(sales_agent_sessions_active{{{ST}}})",
            description="Open sessions (one per call).",
        ),
        stat(
            "Burn rate (1 h)",
            f"sales_agent:call_errors:ratio_rate1h / {1 - SLO_TARGET:g}",
            unit="x",
            thresholds=[(None, "green"), (6, "orange"), (14.4, "red")],
            description="Error ratio over the budget (0.1 %). 14.4x over 1 h pages (SLOCallAvailabilityFastBurn).",
        ),
        ts(
            "Call availability vs 99.9 % target",
            [
                target("1 - sales_agent:call_errors:ratio_rate5m", "5 m"),
                target("1 - sales_agent:call_errors:ratio_rate1h", "1 h"),
                target(f"vector({SLO_TARGET})", "target 99.9 %"),
            ],
            unit="percentunit",
            maximum=1,
        ),
        ts(
            "Caller's wait (turn response) vs 2 s target",
            [
                *quantiles("sales_agent_turn_response_latency_seconds", ST),
                target(f"vector({RESPONSE_TARGET_S})", "target 2 s"),
            ],
            unit="s",
            description="End of the caller's turn -> the agent's first output of the reply (first audio in "
            "voice calls, first text in text calls), tool calls and fallbacks included; voice and text "
            "turns together (the Voice dashboard splits them). Exemplars open the trace in Tempo.",
            links=[link("Voice", "sales-agent-voice"), link("Calls (traces and logs)", "sales-agent-calls")],
        ),
        ts(
            "Error budget burn rate",
            [
                target(f"sales_agent:call_errors:ratio_rate1h / {1 - SLO_TARGET:g}", "1 h"),
                target(f"sales_agent:call_errors:ratio_rate6h / {1 - SLO_TARGET:g}", "6 h"),
            ],
            unit="x",
            description="Page at 14.4x (1 h) or 6x (6 h); ticket at 3x (1 d) or 1x (3 d).",
        ),
        ts(
            "Errors by category",
            [
                target(
                    f"sum by (error_category) (rate(sales_agent_errors_total{{{ST}}}[{RATE}]))",
                    "{{error_category}}",
                )
            ],
            unit="ops",
            description="validation = bad input from the conversation; dependency = CRM/calendar/LLM; internal = ours.",
            links=[link("Dependencies & resilience", "sales-agent-dependencies")],
        ),
        ts(
            "Calls by outcome",
            [
                target(
                    f"sum by (call_outcome) (rate(sales_agent_calls_total{{{ST}}}[{RATE}]))",
                    "{{call_outcome}}",
                )
            ],
            unit="ops",
            links=[link("Sessions & business", "sales-agent-sessions")],
        ),
        ts(
            "Tool error rate",
            [
                target(
                    f'sum(rate(sales_agent_errors_total{{{ST}, error_category!="validation"}}[{RATE}])) '
                    f"/ sum(rate(sales_agent_tool_calls_total{{{ST}}}[{RATE}]))",
                    "dependency + internal errors / tool calls",
                )
            ],
            unit="percentunit",
            description="HighErrorRate pages above 10 % (with at least 10 tool calls in 5 m).",
        ),
    ]
    return dashboard(
        "sales-agent-overview",
        "Sales agent / Overview & SLO",
        "Call availability against the 99.9 % SLO, error budget, calls in progress, turn latency, errors.",
        panels,
    )


def llm() -> Json:
    by_provider = "gen_ai_provider_name"
    panels = [
        row("Requests, errors and fallbacks"),
        ts(
            "Provider attempts by outcome",
            [
                target(
                    f"sum by ({by_provider}, outcome) (rate(sales_agent_llm_requests_total{{{S}}}[{RATE}]))",
                    "{{gen_ai_provider_name}} {{outcome}}",
                )
            ],
            unit="reqps",
        ),
        ts(
            "Provider errors by type",
            [
                target(
                    f'sum by ({by_provider}, error_type) (rate(sales_agent_llm_requests_total{{{S}, outcome="error"}}[{RATE}]))',
                    "{{gen_ai_provider_name}} {{error_type}}",
                )
            ],
            unit="reqps",
        ),
        ts(
            "Fallbacks (from -> to, reason)",
            [
                target(
                    f"sum by (fallback_from, fallback_to, fallback_reason) "
                    f"(rate(sales_agent_llm_fallbacks_total{{{S}}}[{RATE}]))",
                    "{{fallback_from}} -> {{fallback_to}} ({{fallback_reason}})",
                )
            ],
            unit="ops",
        ),
        ts(
            "Turns: ok vs failed on every provider",
            [
                target(
                    f"sum by (outcome) (rate(sales_agent_llm_completions_total{{{ST}}}[{RATE}]))",
                    "{{outcome}}",
                )
            ],
            unit="ops",
            description="failed = the whole chain failed; the caller heard the fallback line (LLMFailureRateHigh).",
        ),
        panel(
            "state-timeline",
            "Provider availability (cooldown)",
            [
                target(
                    f"min by ({by_provider}) (sales_agent_llm_provider_available{{{S}}})",
                    "{{gen_ai_provider_name}}",
                )
            ],
            w=24,
            h=6,
            mappings=UP_MAPPINGS,
            thresholds=[(None, "red"), (1, "green")],
            description="0 = the Router has the provider in cooldown after failures.",
        ),
        row("Latency"),
        ts(
            "Time to first token by provider",
            quantiles("sales_agent_llm_time_to_first_token_seconds", S, by_provider),
            unit="s",
        ),
        ts(
            "Attempt duration by provider",
            quantiles("sales_agent_llm_attempt_duration_seconds", S, by_provider),
            unit="s",
        ),
        row("Tokens and cost"),
        ts(
            "Tokens by provider, model and type",
            [
                target(
                    f"sum by ({by_provider}, gen_ai_request_model, gen_ai_token_type) "
                    f"(rate(sales_agent_llm_tokens_total{{{ST}}}[{RATE}]))",
                    "{{gen_ai_provider_name}} {{gen_ai_request_model}} {{gen_ai_token_type}}",
                )
            ],
            unit="short",
        ),
        ts(
            "Tokens by tenant",
            [
                target(
                    f"sum by (tenant_id) (rate(sales_agent_llm_tokens_total{{{ST}}}[{RATE}]))",
                    "{{tenant_id}}",
                )
            ],
            unit="short",
        ),
        ts(
            "Cost by provider and model (USD, over the time range)",
            [
                target(
                    f"sum by ({by_provider}, gen_ai_request_model) (increase(sales_agent_llm_cost_usd_total{{{ST}}}[$__range]))",
                    "{{gen_ai_provider_name}} {{gen_ai_request_model}}",
                )
            ],
            unit="currencyUSD",
            description="From LiteLLM's bundled cost map; local and unmapped models cost 0.",
        ),
        ts(
            "Cost by tenant (USD, over the time range)",
            [
                target(
                    f"sum by (tenant_id) (increase(sales_agent_llm_cost_usd_total{{{ST}}}[$__range]))",
                    "{{tenant_id}}",
                )
            ],
            unit="currencyUSD",
        ),
    ]
    return dashboard(
        "sales-agent-llm",
        "Sales agent / LLM providers",
        "Attempts, errors and fallbacks per provider, time to first token, tokens and cost, cooldowns.",
        panels,
    )


def dependencies() -> Json:
    dep = 'dependency=~"crm|calendar"'
    panels = [
        row("CRM and calendar"),
        ts(
            "Latency by dependency and operation (p95)",
            [
                target(
                    f"histogram_quantile(0.95, sum by (le, dependency, operation) "
                    f"(rate(sales_agent_dependency_duration_seconds_bucket{{{S}}}[{RATE}])))",
                    "{{dependency}} {{operation}}",
                    exemplar=True,
                )
            ],
            unit="s",
            description="Whole call including retries. Exemplars open the trace.",
        ),
        ts(
            "Calls by outcome",
            [
                target(
                    f"sum by (dependency, outcome) (rate(sales_agent_dependency_duration_seconds_count{{{S}}}[{RATE}]))",
                    "{{dependency}} {{outcome}}",
                )
            ],
            unit="ops",
            description="ok | error (after retries) | circuit_open (failed fast) | rejected (4xx).",
        ),
        ts(
            "Retries",
            [
                target(
                    f"sum by (dependency, operation, outcome) (rate(sales_agent_dependency_retries_total{{{S}}}[{RATE}]))",
                    "{{dependency}} {{operation}} {{outcome}}",
                )
            ],
            unit="ops",
        ),
        ts(
            "Breaker transitions",
            [
                target(
                    f"sum by (dependency, circuit_breaker_to_state) "
                    f"(increase(sales_agent_circuit_breaker_transitions_total{{{S}}}[$__range]))",
                    "{{dependency}} -> {{circuit_breaker_to_state}}",
                )
            ],
            unit="short",
        ),
        panel(
            "state-timeline",
            "Circuit breaker state",
            [
                target(
                    f"max by (dependency) (sales_agent_circuit_breaker_state{{{S}, {dep}}})", "{{dependency}}"
                )
            ],
            w=24,
            h=6,
            mappings=BREAKER_MAPPINGS,
            thresholds=[(None, "green"), (1, "yellow"), (2, "red")],
        ),
        row("Durable outbox (CRM writes that could not be delivered yet)"),
        ts(
            "Outbox depth",
            [target(f"sum by (dependency) (sales_agent_outbox_depth{{{S}}})", "{{dependency}}")],
            unit="short",
        ),
        ts(
            "Oldest outbox entry age",
            [target(f"max by (dependency) (sales_agent_outbox_oldest_age_seconds{{{S}}})", "{{dependency}}")],
            unit="s",
            thresholds=[(None, "green"), (300, "red")],
            custom={"thresholdsStyle": {"mode": "dashed"}},
            description="OutboxBacklogStale warns above 5 minutes.",
        ),
        ts(
            "Outbox flow",
            [
                target(
                    f"sum by (dependency) (rate(sales_agent_outbox_enqueued_total{{{S}}}[{RATE}]))",
                    "{{dependency}} enqueued",
                ),
                target(
                    f"sum by (dependency) (rate(sales_agent_outbox_delivered_total{{{S}}}[{RATE}]))",
                    "{{dependency}} delivered",
                ),
            ],
            unit="ops",
        ),
        ts(
            "Parked writes (dead letters)",
            [target(f"max by (dependency) (sales_agent_outbox_dead_letters{{{S}}})", "{{dependency}}")],
            unit="short",
            thresholds=[(None, "green"), (1, "red")],
            custom={"thresholdsStyle": {"mode": "dashed"}},
            description=(
                "Queued writes the dependency rejected (4xx), kept for an operator: "
                "`sales-agent outbox list --status dead`, then `requeue`. OutboxDeadLetters warns above 0."
            ),
        ),
    ]
    return dashboard(
        "sales-agent-dependencies",
        "Sales agent / Dependencies & resilience",
        "CRM and calendar latency, errors and retries, circuit breakers, the durable outbox.",
        panels,
    )


def sessions() -> Json:
    panels = [
        row("Sessions"),
        ts(
            "Active sessions by tenant",
            [target(f"sum by (tenant_id) (sales_agent_sessions_active{{{ST}}})", "{{tenant_id}}")],
        ),
        ts(
            "Sessions ended by outcome (completed / expired / idle / evicted / error)",
            [
                target(
                    f"sum by (session_outcome) (increase(sales_agent_sessions_ended_total{{{ST}}}[{RATE}]))",
                    "{{session_outcome}}",
                )
            ],
            description="expired and idle = reaped by the cleaner (HighSessionExpiryRate above 20 %).",
        ),
        ts(
            "Sessions started",
            [
                target(
                    f"sum by (tenant_id) (rate(sales_agent_sessions_started_total{{{ST}}}[{RATE}]))",
                    "{{tenant_id}}",
                )
            ],
            unit="ops",
        ),
        ts(
            "Call duration",
            quantiles("sales_agent_call_duration_seconds", ST, exemplar=False),
            unit="s",
        ),
        row("Business"),
        stat("Leads captured", f"sum(increase(sales_agent_leads_captured_total{{{ST}}}[$__range]))"),
        stat("Meetings booked", f"sum(increase(sales_agent_meetings_booked_total{{{ST}}}[$__range]))"),
        stat(
            "Conversion rate (converted calls / calls)",
            f'(sum(increase(sales_agent_calls_total{{{ST}, call_outcome="converted"}}[$__range])) or vector(0)) '
            f"/ sum(increase(sales_agent_calls_total{{{ST}}}[$__range]))",
            unit="percentunit",
        ),
        stat(
            "Meetings per captured lead",
            f"sum(increase(sales_agent_meetings_booked_total{{{ST}}}[$__range])) "
            f"/ sum(increase(sales_agent_leads_captured_total{{{ST}}}[$__range]))",
            unit="percentunit",
        ),
        ts(
            "Leads qualified by band",
            [
                target(
                    f"sum by (lead_band) (increase(sales_agent_leads_qualified_total{{{ST}}}[{RATE}]))",
                    "{{lead_band}}",
                )
            ],
        ),
        ts(
            "Calls by tenant and outcome",
            [
                target(
                    f"sum by (tenant_id, call_outcome) (increase(sales_agent_calls_total{{{ST}}}[{RATE}]))",
                    "{{tenant_id}} {{call_outcome}}",
                )
            ],
        ),
        ts(
            "Tool usage by operation",
            [
                target(
                    f"sum by (operation, outcome) (rate(sales_agent_tool_calls_total{{{ST}}}[{RATE}]))",
                    "{{operation}} {{outcome}}",
                )
            ],
            unit="ops",
            w=24,
        ),
    ]
    return dashboard(
        "sales-agent-sessions",
        "Sales agent / Sessions & business",
        "Active, expired and idle sessions; leads, qualifications, meetings, conversion, call duration.",
        panels,
    )


def system() -> Json:
    panels = [
        row("CPU and memory"),
        ts(
            "CPU",
            [
                target(f"process_cpu_utilization{{{S}}}", "agent process {{instance}}"),
                target(
                    f'1 - avg by (instance) (system_cpu_utilization{{{S}, cpu_mode="idle"}})',
                    "host {{instance}}",
                ),
            ],
            unit="percentunit",
            maximum=1,
            description="Process CPU is normalised by the core count. HighCpuUsage warns at 80 % host CPU.",
        ),
        ts(
            "Memory",
            [
                target(f"process_memory_usage_bytes{{{S}}}", "agent RSS {{instance}}"),
                target(f"process_memory_virtual_bytes{{{S}}}", "agent virtual {{instance}}"),
                target(f"sum by (instance) (system_memory_usage_bytes{{{S}}})", "host total {{instance}}"),
            ],
            unit="bytes",
        ),
        ts(
            "Host memory used",
            [
                target(
                    f'system_memory_utilization{{{S}, system_memory_state="used"}}',
                    "{{instance}}",
                )
            ],
            unit="percentunit",
            maximum=1,
            thresholds=[(None, "green"), (0.9, "red")],
            custom={"thresholdsStyle": {"mode": "dashed"}},
        ),
        ts(
            "Load average",
            [
                target(f"system_cpu_load_average_1m{{{S}}}", "1m {{instance}}"),
                target(f"system_cpu_load_average_5m{{{S}}}", "5m {{instance}}"),
            ],
        ),
        row("Disk, network, file descriptors"),
        ts(
            "Disk used",
            [
                target(
                    f"system_filesystem_utilization{{{S}}}",
                    "{{system_filesystem_mountpoint}} {{instance}}",
                )
            ],
            unit="percentunit",
            maximum=1,
        ),
        ts(
            "Network I/O",
            [
                target(
                    f"sum by (instance, network_io_direction) (rate(system_network_io_bytes_total{{{S}}}[{RATE}]))",
                    "{{network_io_direction}} {{instance}}",
                )
            ],
            unit="Bps",
        ),
        ts(
            "Open file descriptors and threads",
            [
                target(f"process_unix_file_descriptor_count{{{S}}}", "fds {{instance}}"),
                target(f"process_thread_count{{{S}}}", "threads {{instance}}"),
            ],
        ),
        ts(
            "Event loop lag",
            [target(f"sales_agent_event_loop_lag_seconds{{{S}}}", "{{instance}}")],
            unit="s",
            thresholds=[(None, "green"), (0.25, "red")],
            custom={"thresholdsStyle": {"mode": "dashed"}},
            description="How late the asyncio loop runs a timer. EventLoopLagHigh warns above 250 ms.",
        ),
        ts(
            "Telemetry export failures",
            [
                # The counter appears with the first failure: "or vector(0)" draws a healthy zero.
                target(
                    f"sum by (telemetry_signal) (rate(sales_agent_telemetry_export_failures_total{{{S}}}[{RATE}])) "
                    "or vector(0)",
                    "{{telemetry_signal}}",
                )
            ],
            unit="ops",
            w=24,
        ),
    ]
    return dashboard(
        "sales-agent-system",
        "Sales agent / System",
        "Process and host CPU, memory, disk, network, file descriptors and event-loop lag (psutil).",
        panels,
    )


def calls() -> Json:
    textbox = {"type": "textbox", "query": ".*", "current": {"text": ".*", "value": ".*"}, "hide": 0}
    extra = [
        {"name": "call_id", "label": "Call id (regex)", **textbox},
        {"name": "trace_id", "label": "Trace id (regex)", **textbox},
    ]
    traceql = (
        '{ resource.service.name = "sales-agent" && span.tenant.id =~ "${tenant:regex}" '
        '&& span.call.id =~ "$call_id" }'
    )
    logql = '{service_name="sales-agent"} | trace_id =~ "$trace_id" | tenant_id =~ "${tenant:regex}"'
    show_logs = {
        "title": "Show this call's logs",
        "url": "/d/sales-agent-calls?var-trace_id=${__value.raw}&${__url_time_range}&var-tenant=${tenant}",
    }
    panels = [
        row("Recent calls"),
        panel(
            "table",
            "Recent calls (Tempo search by tenant / call id)",
            [
                {
                    "datasource": TEMPO,
                    "queryType": "traceql",
                    "query": traceql,
                    "limit": 50,
                    "tableType": "traces",
                }
            ],
            datasource=TEMPO,
            w=24,
            h=10,
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "traceID"},
                    "properties": [{"id": "links", "value": [show_logs]}],
                }
            ],
            description="Spans with call.id and tenant.id (the call's root span). Click a trace id to open it, "
            "or 'Show this call's logs' to filter the logs below.",
        ),
        panel(
            "logs",
            "Logs of the selected trace (Loki)",
            [{"datasource": LOKI, "expr": logql, "queryType": "range"}],
            datasource=LOKI,
            w=24,
            h=10,
            options={
                "showTime": True,
                "wrapLogMessage": True,
                "sortOrder": "Descending",
                "enableLogDetails": True,
            },
            description="Set trace_id (or click a trace in the table). The trace_id field links back to Tempo.",
        ),
        row("Latency with exemplars (click a dot to open the trace)"),
        ts(
            "Caller's wait (turn response)",
            quantiles("sales_agent_turn_response_latency_seconds", ST),
            unit="s",
            description="End of the caller's turn -> the agent's first output of the reply.",
        ),
        ts(
            "Tool duration by operation (p95)",
            [
                target(
                    f"histogram_quantile(0.95, sum by (le, operation) (rate(sales_agent_tool_duration_seconds_bucket{{{S}}}[{RATE}])))",
                    "{{operation}}",
                    exemplar=True,
                )
            ],
            unit="s",
        ),
        ts(
            "LLM time to first token (p95)",
            [
                target(
                    f"histogram_quantile(0.95, sum by (le, gen_ai_provider_name) "
                    f"(rate(sales_agent_llm_time_to_first_token_seconds_bucket{{{S}}}[{RATE}])))",
                    "{{gen_ai_provider_name}}",
                    exemplar=True,
                )
            ],
            unit="s",
        ),
        panel(
            "table",
            "Calls by tenant and outcome (time range)",
            [
                target(
                    f"sum by (tenant_id, call_outcome) (increase(sales_agent_calls_total{{{ST}}}[$__range]))",
                    instant=True,
                    fmt="table",
                )
            ],
            options={"showHeader": True},
        ),
    ]
    return dashboard(
        "sales-agent-calls",
        "Sales agent / Calls",
        "Follow one call: Tempo search by tenant or call id, its logs from Loki, latency exemplars.",
        panels,
        extra,
    )


def _speech_rows(kind: str, what: str, unit_name: str, latency_metric: str, latency_title: str) -> list[Json]:
    """Attempts, errors, fallbacks, outcomes, availability and latency of one speech chain."""
    by_provider = "gen_ai_provider_name"
    return [
        row(f"{kind.upper()} ({what}): attempts, errors, fallbacks"),
        ts(
            f"{kind.upper()} attempts by provider and outcome",
            [
                target(
                    f"sum by ({by_provider}, outcome) (rate(sales_agent_{kind}_requests_total{{{S}}}[{RATE}]))",
                    "{{gen_ai_provider_name}} {{outcome}}",
                )
            ],
            unit="reqps",
            w=8,
        ),
        ts(
            f"{kind.upper()} errors by provider and type",
            [
                target(
                    f'sum by ({by_provider}, error_type) (rate(sales_agent_{kind}_requests_total{{{S}, outcome="error"}}[{RATE}])) '
                    "or vector(0)",
                    "{{gen_ai_provider_name}} {{error_type}}",
                )
            ],
            unit="reqps",
            w=8,
            description="timeout / first_byte_timeout, http_5xx, http_429, stream_dropped, malformed_response "
            "(an answer that is not the protocol: garbage, or a 200 that is not audio).",
        ),
        ts(
            f"{kind.upper()} fallbacks (from -> to, reason)",
            [
                target(
                    f"sum by (fallback_from, fallback_to, fallback_reason) "
                    f"(rate(sales_agent_{kind}_fallbacks_total{{{S}}}[{RATE}])) or vector(0)",
                    "{{fallback_from}} -> {{fallback_to}} ({{fallback_reason}})",
                )
            ],
            unit="ops",
            w=8,
            description=f"{kind.upper()}ProviderFallbackActive warns above 10 % of {unit_name}.",
        ),
        ts(
            f"{unit_name.capitalize()} by outcome",
            [
                target(
                    f"sum by (outcome) (rate(sales_agent_{'stt_recognitions' if kind == 'stt' else 'tts_syntheses'}_total{{{ST}}}[{RATE}]))",
                    "{{outcome}}",
                )
            ],
            unit="ops",
            w=8,
            description=f"failed = every {kind.upper()} provider failed ({kind.upper()}FailureRateHigh pages above 5 %)."
            + (
                " empty = speech that came back without words (the caller is asked again)."
                if kind == "stt"
                else ""
            ),
        ),
        panel(
            "state-timeline",
            f"{kind.upper()} provider availability (cooldown)",
            [
                target(
                    f"min by ({by_provider}) (sales_agent_{kind}_provider_available{{{S}}})",
                    "{{gen_ai_provider_name}}",
                )
            ],
            w=8,
            h=8,
            mappings=UP_MAPPINGS,
            thresholds=[(None, "red"), (1, "green")],
            description="0 = skipped after failures until its cooldown ends.",
        ),
        ts(
            latency_title,
            [
                target(
                    f"histogram_quantile(0.95, sum by (le, {by_provider}) (rate({latency_metric}_bucket{{{S}}}[{RATE}])))",
                    "{{gen_ai_provider_name}} p95",
                    exemplar=True,
                )
            ],
            unit="s",
            w=8,
        ),
    ]


def voice() -> Json:
    mode = 'sales_agent_turn_mode="voice"'
    wait = f"sales_agent_turn_response_latency_seconds_bucket{{{ST}, {mode}}}"
    panels = [
        row("The caller's wait: end of their speech -> the agent's first audio (target 2 s)"),
        stat(
            "Caller's wait p95",
            f"histogram_quantile(0.95, sum by (le) (rate({wait}[$__range])))",
            unit="s",
            thresholds=[(None, "green"), (RESPONSE_TARGET_S, "red")],
            description="Voice turns over the time range. VoiceCallerWaitHigh warns above 2 s (5 m p95).",
        ),
        stat(
            "Caller's wait p50",
            f"histogram_quantile(0.5, sum by (le) (rate({wait}[$__range])))",
            unit="s",
            thresholds=[(None, "green"), (RESPONSE_TARGET_S, "red")],
        ),
        stat(
            "Utterances lost (every STT failed)",
            f'(sum(increase(sales_agent_stt_recognitions_total{{{ST}, outcome="failed"}}[$__range])) or vector(0)) '
            f"/ sum(increase(sales_agent_stt_recognitions_total{{{ST}}}[$__range]))",
            unit="percentunit",
            thresholds=[(None, "green"), (0.05, "red")],
        ),
        stat(
            "Sentences lost (every TTS failed)",
            f'(sum(increase(sales_agent_tts_syntheses_total{{{ST}, outcome="failed"}}[$__range])) or vector(0)) '
            f"/ sum(increase(sales_agent_tts_syntheses_total{{{ST}}}[$__range]))",
            unit="percentunit",
            thresholds=[(None, "green"), (0.05, "red")],
        ),
        ts(
            "Caller's wait p50 / p95 / p99 vs 2 s target",
            [
                *[
                    target(
                        f"histogram_quantile({q}, sum by (le) (rate({wait}[{RATE}])))",
                        f"p{int(q * 100)}",
                        exemplar=True,
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                target(f"vector({RESPONSE_TARGET_S})", "target 2 s"),
            ],
            unit="s",
            description="Recorded as each reply starts (mid-call). Exemplars open the turn's trace.",
            links=[link("Calls (traces and logs)", "sales-agent-calls")],
        ),
        ts(
            "Where the wait goes (p50 by stage, stacked)",
            [
                target(
                    f"histogram_quantile(0.5, sum by (le, sales_agent_turn_stage) "
                    f"(rate(sales_agent_turn_stage_duration_seconds_bucket{{{ST}, {mode}}}[{RATE}])))",
                    "{{sales_agent_turn_stage}}",
                )
            ],
            unit="s",
            custom={"stacking": {"mode": "normal"}, "fillOpacity": 40},
            description="endpointing: end of speech -> turn committed (the VAD's silence wait, ~0.55 s; STT runs "
            "inside it); stt: end of speech -> transcript; llm: LLM streams until their first chunk (fallbacks "
            "included); tools: tool calls between LLM streams; tts: first reply text -> first audio.",
        ),
        *_speech_rows(
            "stt",
            "speech to text",
            "utterances",
            "sales_agent_stt_attempt_duration_seconds",
            "STT attempt duration by provider (p95)",
        ),
        *_speech_rows(
            "tts",
            "text to speech",
            "sentences",
            "sales_agent_tts_time_to_first_byte_seconds",
            "TTS time to first byte by provider (p95)",
        ),
        row("The conversation"),
        ts(
            "Interruptions (caller barged in)",
            [
                target(
                    f"sum by (tenant_id) (rate(sales_agent_turn_interruptions_total{{{ST}}}[{RATE}])) or vector(0)",
                    "{{tenant_id}}",
                )
            ],
            unit="ops",
            w=8,
            description="Replies the caller talked over; the agent stops and listens.",
        ),
        ts(
            "Silences inside replies",
            [
                target(
                    f"sum(rate(sales_agent_turn_silence_gap_seconds_count{{{ST}}}[{RATE}])) or vector(0)",
                    "gaps / s",
                ),
                target(
                    f"sum(rate(sales_agent_turn_silence_gap_seconds_sum{{{ST}}}[{RATE}])) or vector(0)",
                    "silent seconds / s",
                ),
            ],
            w=8,
            description="The reply's audio ran dry (a slow or failing TTS sentence): the caller hears the agent stop.",
        ),
        ts(
            "Caller turns without a reply",
            [
                target(
                    f"sum by (sales_agent_turn_unanswered_reason) (rate(sales_agent_turn_unanswered_total{{{ST}}}[{RATE}])) "
                    "or vector(0)",
                    "{{sales_agent_turn_unanswered_reason}}",
                )
            ],
            unit="ops",
            w=8,
            description="empty_transcript: asked to repeat; stt_failed: every STT provider failed (call ended); "
            "call_ended: the call ended before the reply.",
        ),
    ]
    return dashboard(
        "sales-agent-voice",
        "Sales agent / Voice",
        "The caller's wait against the 2 s target and where it goes; STT and TTS chains: errors, fallbacks, "
        "availability; interruptions, silences, unanswered turns.",
        panels,
    )


DASHBOARDS = {
    "sales-agent-overview": overview,
    "sales-agent-llm": llm,
    "sales-agent-dependencies": dependencies,
    "sales-agent-sessions": sessions,
    "sales-agent-system": system,
    "sales-agent-calls": calls,
    "sales-agent-voice": voice,
}


def render(uid: str) -> str:
    return json.dumps(DASHBOARDS[uid](), indent=2, sort_keys=False) + "\n"


def main() -> None:
    for uid in DASHBOARDS:
        (OUT_DIR / f"{uid}.json").write_text(render(uid))


if __name__ == "__main__":
    main()
