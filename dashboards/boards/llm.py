"""LLM providers: attempts, errors and fallbacks per provider, turn failures, latency, tokens, cost."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import kit
from dashboards.alert_thresholds import alert_threshold
from dashboards.kit import prom
from dashboards.metrics import counter, gauge, histogram, label
from dashboards.promql import APP, APP_TENANT, or_zero, selector, sum_increase, sum_rate
from telemetry import names

UID = "sales-agent-llm"


def build() -> Dashboard:
    requests = counter(names.LLM_REQUESTS)
    completions = counter(names.LLM_COMPLETIONS)
    tokens = counter(names.LLM_TOKENS)
    cost = counter(names.LLM_COST)
    provider, model = label(names.GEN_AI_PROVIDER_NAME), label(names.GEN_AI_REQUEST_MODEL)
    token_type, tenant = label(names.GEN_AI_TOKEN_TYPE), label(names.TENANT_ID)
    error_type, outcome = label(names.ERROR_TYPE), label(names.OUTCOME)
    fallback = [label(names.FALLBACK_FROM), label(names.FALLBACK_TO), label(names.FALLBACK_REASON)]
    failure_threshold = alert_threshold("LLMFailureRateHigh")
    board = (
        kit.board(
            UID,
            "Sales agent / LLM providers",
            "Attempts, errors and fallbacks per provider, time to first token, tokens and cost, cooldowns.",
        )
        .with_row(dashboard.Row("Requests, errors and fallbacks"))
        .with_panel(
            kit.timeseries_panel(
                "Provider attempts by outcome",
                [prom(sum_rate(requests, APP, [provider, outcome]), kit.legend(provider, outcome))],
                unit="reqps",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Provider errors by type",
                [
                    prom(
                        or_zero(
                            sum_rate(requests, selector(APP, f'{outcome}="error"'), [provider, error_type]),
                            {provider: "none"},
                        ),
                        kit.legend(provider, error_type),
                    )
                ],
                unit="reqps",
                description="0 (none) while every provider answers.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Fallbacks (from -> to, reason)",
                [
                    prom(
                        or_zero(
                            sum_rate(counter(names.LLM_FALLBACKS), APP, fallback),
                            dict.fromkeys(fallback, "none"),
                        ),
                        f"{kit.legend(*fallback[:2], sep=' -> ')} ({kit.legend(fallback[2])})",
                    )
                ],
                unit="ops",
                description="0 (none -> none) while the first provider serves every turn.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Turns: ok vs failed on every provider",
                [prom(sum_rate(completions, APP_TENANT, [outcome]), kit.legend(outcome))],
                unit="ops",
                description="failed = the whole chain failed; the caller heard the fallback line.",
            )
        )
        .with_panel(
            kit.ratio_panel(
                "Turn failure rate (every provider failed)",
                sum_rate(completions, selector(APP_TENANT, f'{outcome}="failed"')),
                sum_rate(completions, APP_TENANT),
                "failed turns / turns",
                width=24,
                height=7,
                thresholds=kit.above(failure_threshold),
                description=f"LLMFailureRateHigh pages above {kit.percent(failure_threshold)}. "
                "0 when no turn failed.",
            )
        )
        .with_panel(
            kit.state_timeline_panel(
                "Provider availability (cooldown)",
                prom(
                    f"min by ({provider}) ({gauge(names.LLM_PROVIDER_AVAILABLE)}{{{APP}}})",
                    kit.legend(provider),
                ),
                states={"0": ("cooling down", "red"), "1": ("available", "green")},
                thresholds=kit.steps("red", kit.Step(1, "green")),
                description="0 = the provider cools down after failures (skipped unless every provider "
                "cools down); shared by every call of a worker process, and by every worker when "
                "SALES_AGENT_LLM_REDIS_URL is set.",
            )
        )
        .with_panel(
            kit.state_timeline_panel(
                "Shared cooldowns (Redis) per instance",
                prom(
                    f"min by (instance) ({gauge(names.LLM_SHARED_COOLDOWNS_AVAILABLE)}{{{APP}}})",
                    kit.legend("instance"),
                ),
                states={"0": ("own cooldowns (Redis away)", "orange"), "1": ("shared", "green")},
                thresholds=kit.steps("orange", kit.Step(1, "green")),
                description="With SALES_AGENT_LLM_REDIS_URL: 1 while the instance shares cooldowns through "
                "Redis, 0 while Redis is unreachable and it cools providers down alone (calls go on; "
                "LLMSharedCooldownsUnavailable). No series without Redis.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Tool calls cut by a broken stream",
                [
                    prom(
                        or_zero(
                            sum_rate(counter(names.LLM_TOOL_CALLS_DROPPED), APP, [provider]),
                            {provider: "none"},
                        ),
                        kit.legend(provider),
                    )
                ],
                unit="ops",
                description="A stream broke in the middle of a tool call: it could not run, the caller was "
                "asked to repeat. Whole tool calls before the break still ran. 0 (none) normally.",
            )
        )
        .with_row(dashboard.Row("Latency"))
        .with_panel(
            kit.timeseries_panel(
                "Time to first token by provider",
                kit.quantile_queries(histogram(names.LLM_TIME_TO_FIRST_TOKEN), APP, [provider]),
                unit="s",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Attempt duration by provider",
                kit.quantile_queries(histogram(names.LLM_ATTEMPT_DURATION), APP, [provider]),
                unit="s",
            )
        )
        .with_row(dashboard.Row("Tokens and cost"))
        .with_panel(
            kit.timeseries_panel(
                "Tokens by provider, model and type",
                [
                    prom(
                        sum_rate(tokens, APP_TENANT, [provider, model, token_type]),
                        kit.legend(provider, model, token_type),
                    )
                ],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Tokens by tenant",
                [prom(sum_rate(tokens, APP_TENANT, [tenant]), kit.legend(tenant))],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Cost by provider and model (USD, over the time range)",
                [
                    prom(
                        sum_increase(cost, APP_TENANT, [provider, model]),
                        kit.legend(provider, model),
                    )
                ],
                unit="currencyUSD",
                description="From LiteLLM's bundled cost map; local and unmapped models cost 0.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Cost by tenant (USD, over the time range)",
                [prom(sum_increase(cost, APP_TENANT, [tenant]), kit.legend(tenant))],
                unit="currencyUSD",
            )
        )
    )
    return kit.finish(board)
