"""Voice: the caller's wait against the 2 s target and where it goes; the STT and TTS chains; the
conversation (barge-ins, silences inside replies, turns left without an answer).

The wait is ``sales_agent.turn.response_latency`` of voice turns (end of the caller's speech -> the
agent's first audio), recorded as each reply starts; its stages are
``sales_agent.turn.stage.duration``. Alert lines come from alert-rules/sales-agent-voice.rules.yml.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import kit
from dashboards.alert_thresholds import alert_threshold
from dashboards.kit import RESPONSE_TARGET_S, prom
from dashboards.metrics import counter, gauge, histogram, label
from dashboards.promql import APP, APP_TENANT, or_zero, quantile, ratio, selector, sum_increase, sum_rate
from telemetry import names

UID = "sales-agent-voice"
STAGES = "endpointing, stt, llm, tools, tts"


def _speech_chain(
    board: dashboard.Dashboard,
    kind: str,
    *,
    requests: str,
    fallbacks: str,
    outcomes: str,
    available: str,
    latency: str,
    latency_title: str,
    unit_name: str,
) -> dashboard.Dashboard:
    """One chain's row: attempts, errors by type, fallbacks, outcomes, availability, latency."""
    provider, outcome = label(names.GEN_AI_PROVIDER_NAME), label(names.OUTCOME)
    error_type = label(names.ERROR_TYPE)
    fallback = [label(names.FALLBACK_FROM), label(names.FALLBACK_TO), label(names.FALLBACK_REASON)]
    upper = kind.upper()
    failure_threshold = alert_threshold(f"{upper}FailureRateHigh")
    fallback_threshold = alert_threshold(f"{upper}ProviderFallbackActive")
    return (
        board.with_row(dashboard.Row(f"{upper}: attempts, errors, fallbacks"))
        .with_panel(
            kit.timeseries_panel(
                f"{upper} attempts by provider and outcome",
                [prom(sum_rate(counter(requests), APP, [provider, outcome]), kit.legend(provider, outcome))],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            kit.timeseries_panel(
                f"{upper} errors by provider and type",
                [
                    prom(
                        or_zero(
                            sum_rate(
                                counter(requests), selector(APP, f'{outcome}="error"'), [provider, error_type]
                            ),
                            {provider: "none"},
                        ),
                        kit.legend(provider, error_type),
                    )
                ],
                unit="reqps",
                width=8,
                description="timeout / first_byte_timeout, http_<status>, stream_dropped, malformed_response "
                "(garbage, or a 200 answer that is not audio). 0 (none) while every provider answers.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                f"{upper} fallbacks (from -> to, reason)",
                [
                    prom(
                        or_zero(sum_rate(counter(fallbacks), APP, fallback), dict.fromkeys(fallback, "none")),
                        f"{kit.legend(*fallback[:2], sep=' -> ')} ({kit.legend(fallback[2])})",
                    )
                ],
                unit="ops",
                width=8,
                description=f"{upper}ProviderFallbackActive warns above {kit.percent(fallback_threshold)} of "
                f"{unit_name}. 0 (none -> none) while the first provider serves them all.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                f"{unit_name.capitalize()} by outcome",
                [prom(sum_rate(counter(outcomes), APP_TENANT, [outcome]), kit.legend(outcome))],
                unit="ops",
                width=8,
                description=f"failed = every {upper} provider failed ({upper}FailureRateHigh pages above "
                f"{kit.percent(failure_threshold)})."
                + (
                    " empty = speech that came back without words (the caller is asked again)."
                    if kind == "stt"
                    else ""
                ),
            )
        )
        .with_panel(
            kit.timeseries_panel(
                f"{upper} provider availability (cooldown)",
                [prom(f"min by ({provider}) ({gauge(available)}{{{APP}}})", kit.legend(provider))],
                width=8,
                minimum=0,
                maximum=1,
                description="1 = usable; 0 = skipped after failures until its cooldown ends.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                latency_title,
                [
                    prom(
                        quantile(0.95, histogram(latency), APP, [provider]),
                        f"{kit.legend(provider)} p95",
                        exemplar=True,
                    )
                ],
                unit="s",
                width=8,
            )
        )
    )


def build() -> Dashboard:
    wait = histogram(names.TURN_RESPONSE_LATENCY)
    mode = f'{label(names.TURN_MODE)}="voice"'
    voice_turns = selector(APP_TENANT, mode)
    stage = label(names.TURN_STAGE)
    tenant, outcome = label(names.TENANT_ID), label(names.OUTCOME)
    recognitions, syntheses = counter(names.STT_RECOGNITIONS), counter(names.TTS_SYNTHESES)
    wait_steps = kit.above(alert_threshold("VoiceCallerWaitHigh"))
    board = (
        kit.board(
            UID,
            "Sales agent / Voice",
            "The caller's wait against the 2 s target and where it goes; STT and TTS chains: errors, "
            "fallbacks, availability; interruptions, silences, unanswered turns.",
        )
        .with_row(
            dashboard.Row("The caller's wait: end of their speech -> the agent's first audio (target 2 s)")
        )
        .with_panel(
            kit.stat_panel(
                "Caller's wait p95",
                f"histogram_quantile(0.95, sum by (le) (rate({wait.bucket}{{{voice_turns}}}[$__range])))",
                unit="s",
                thresholds=wait_steps,
                description="Voice turns over the time range. VoiceCallerWaitHigh warns when the 5 m p95 "
                f"stays above {RESPONSE_TARGET_S:g} s.",
            )
        )
        .with_panel(
            kit.stat_panel(
                "Caller's wait p50",
                f"histogram_quantile(0.5, sum by (le) (rate({wait.bucket}{{{voice_turns}}}[$__range])))",
                unit="s",
                thresholds=wait_steps,
            )
        )
        .with_panel(
            kit.stat_panel(
                "Utterances lost (every STT provider failed)",
                ratio(
                    sum_increase(recognitions, selector(APP_TENANT, f'{outcome}="failed"')),
                    sum_increase(recognitions, APP_TENANT),
                ),
                unit="percentunit",
                thresholds=kit.above(alert_threshold("STTFailureRateHigh")),
            )
        )
        .with_panel(
            kit.stat_panel(
                "Sentences lost (every TTS provider failed)",
                ratio(
                    sum_increase(syntheses, selector(APP_TENANT, f'{outcome}="failed"')),
                    sum_increase(syntheses, APP_TENANT),
                ),
                unit="percentunit",
                thresholds=kit.above(alert_threshold("TTSFailureRateHigh")),
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Caller's wait p50 / p95 / p99",
                kit.quantile_queries(wait, voice_turns),
                unit="s",
                thresholds=wait_steps,
                description="Recorded as each reply starts (mid-call). The dashed line is the 2 s target "
                "(VoiceCallerWaitHigh). Exemplars open the turn's trace.",
                links=[kit.link("Calls (traces and logs)", "sales-agent-calls")],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Where the wait goes (p50 by stage, stacked)",
                [
                    prom(
                        quantile(
                            0.5, histogram(names.TURN_STAGE_DURATION), selector(APP_TENANT, mode), [stage]
                        ),
                        kit.legend(stage),
                    )
                ],
                unit="s",
                description=f"Stages: {STAGES}. endpointing = end of speech -> turn committed (the VAD's "
                "0.55 s silence; the STT request runs inside it); stt = end of speech -> transcript; llm = "
                "each LLM stream until its first chunk, fallbacks included; tools = tool calls between "
                "LLM streams; tts = first reply text -> first audio.",
            )
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
            .fill_opacity(40)
        )
    )
    board = _speech_chain(
        board,
        "stt",
        requests=names.STT_REQUESTS,
        fallbacks=names.STT_FALLBACKS,
        outcomes=names.STT_RECOGNITIONS,
        available=names.STT_PROVIDER_AVAILABLE,
        latency=names.STT_ATTEMPT_DURATION,
        latency_title="STT attempt duration by provider (p95)",
        unit_name="utterances",
    )
    board = _speech_chain(
        board,
        "tts",
        requests=names.TTS_REQUESTS,
        fallbacks=names.TTS_FALLBACKS,
        outcomes=names.TTS_SYNTHESES,
        available=names.TTS_PROVIDER_AVAILABLE,
        latency=names.TTS_TIME_TO_FIRST_BYTE,
        latency_title="TTS time to first byte by provider (p95)",
        unit_name="sentences",
    )
    gaps = histogram(names.TURN_SILENCE_GAP)
    reason = label(names.UNANSWERED_REASON)
    board = (
        board.with_row(dashboard.Row("The conversation"))
        .with_panel(
            kit.timeseries_panel(
                "Interruptions (the caller barged in)",
                [
                    prom(
                        or_zero(
                            sum_rate(counter(names.TURN_INTERRUPTIONS), APP_TENANT, [tenant]),
                            {tenant: "none"},
                        ),
                        kit.legend(tenant),
                    )
                ],
                unit="ops",
                width=8,
                description="Replies the caller talked over; the agent stops and listens.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Silences inside replies",
                [
                    prom(or_zero(f"sum(rate({gaps.count}{{{APP_TENANT}}}[$__rate_interval]))"), "gaps / s"),
                    prom(or_zero(f"sum(rate({gaps.sum}{{{APP_TENANT}}}[$__rate_interval]))"), "silent s / s"),
                ],
                width=8,
                description="The reply's audio ran dry (a slow or failing TTS sentence): the caller "
                "hears the agent stop. 0 while replies play without a gap.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Caller turns without a reply",
                [
                    prom(
                        or_zero(
                            sum_rate(counter(names.TURN_UNANSWERED), APP_TENANT, [reason]), {reason: "none"}
                        ),
                        kit.legend(reason),
                    )
                ],
                unit="ops",
                width=8,
                description="empty_transcript: the caller was asked to repeat; stt_failed: every STT "
                "provider failed (the call ended); call_ended: the call ended before the reply.",
            )
        )
    )
    return kit.finish(board)
