"""End to end on real processes: agent /metrics -> Prometheus 2.42 (the repo's rules) -> Alertmanager 0.25.

One scenario, in phases, all on loopback with free ports:
1. local LLM providers (primary, backup), STT and TTS providers (primary, backup) and the local CRM
   service run as processes, and a redis-server; `simulate --forever` drives scripted text calls (its LLM
   cooldowns shared through Redis) and `simulate --mode voice --forever` scripted voice calls (real
   audio through VAD, STT and TTS) through the real agent, each serving /metrics; Prometheus scrapes
   both every 2 s and evaluates alert-rules/*.rules.yml; Alertmanager (the rendered deploy/alertmanager
   config) delivers to the local webhook sink standing in for pager / chat / low-priority.
2. healthy traffic first (meetings get booked, voice turns recorded), then faults through the services'
   admin endpoints: primary LLM, STT and TTS answer 500, CRM down. DependencyCircuitOpen (critical)
   must reach `firing` and arrive at the pager; LLMProviderFallbackActive (warning) must fire and
   arrive in chat.
   Before the faults, every PromQL query of every dashboard (variables substituted) must already
   return a series: a healthy agent shows 0 errors / retries / fallbacks, not "No data".
3. the CRM recovers, so the outbox delivers its backlog; then every dashboard query must again return
   at least one series, and every metric name used by the rules and dashboards must be one the agent
   actually exported.

Waits are polls with deadlines; the alert `for:` durations are the real ones (1-2 min), so this test
takes a few minutes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_helpers import (
    RULE_FILES,
    WebhookReceiver,
    dashboard_queries,
    http_json,
    label_values_to_promql,
    load_rule_groups,
    prom_query,
    promql_metric_names,
    render_alertmanager_config,
    require_binary,
    run_alertmanager,
    run_process,
    run_prometheus,
    substitute_variables,
    wait_until,
)

from local_services.databases import RedisServer
from local_services.harness import free_port, spawn

# Metrics the rules or dashboards may use that the agent itself does not export: Prometheus' own, or in
# the compose stack the Collector's or Tempo's metrics-generator's. List each with its source, so the
# check below stays exact.
COMPOSE_ONLY_METRICS: dict[str, str] = {"up": "Prometheus itself: the health of each scrape"}
# Metrics that only exist once a rare event happened, which a healthy run with these faults does not
# produce (a counter or histogram appears with its first measurement). Their panels draw 0 until then
# (or_zero); tests/integration/test_voice_call.py and tests/unit/test_speech_playout.py produce them.
EVENT_ONLY_METRICS: dict[str, str] = {
    "sales_agent_turn_silence_gap_seconds_count": "a reply's audio ran dry (TTS slower than playback)",
    "sales_agent_turn_silence_gap_seconds_sum": "a reply's audio ran dry (TTS slower than playback)",
    "sales_agent_turn_unanswered_total": "a caller turn got no reply (empty transcript, STT down, hang-up)",
}

_PORT_VARIABLES = {"SALES_AGENT_METRICS_PORT", "SALES_AGENT_HEALTH_PORT"}

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _firing(prom: str, alertname: str) -> list[dict]:
    alerts = http_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def _delivered(hook: WebhookReceiver, path: str, alertname: str) -> list[dict]:
    return [a for a in hook.alerts(path) if a["labels"]["alertname"] == alertname]


def _post_fault(base_url: str, mode: str) -> None:
    http_json(f"{base_url}/admin/fault", {"mode": mode})


def _exported_metric_names(metrics_url: str) -> set[str]:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def _dashboard_promql() -> dict[str, str]:
    """Every executable dashboard query (variables substituted), keyed by where it is shown."""
    promql: dict[str, str] = {}
    listed = []
    for uid, title, kind, query in dashboard_queries():
        if kind != "prometheus":
            listed.append(f"{kind}: {uid} / {title}")  # checked in test_dashboards_json.py
            continue
        expr = substitute_variables(query)
        if expr.startswith("label_values("):
            expr = label_values_to_promql(expr)
        promql[f"{uid} / {title}: {expr}"] = expr
    print("not executable here (Tempo/Loki):", *listed, sep="\n  ")
    return promql


def _queries_without_data(prom: str, promql: dict[str, str]) -> list[str]:
    """The queries that return no series, re-asked for a bounded while: a counter created moments ago
    needs a second scrape before rate() has a value."""
    empty = sorted(promql)

    def still_empty() -> bool:
        empty[:] = [name for name in empty if not prom_query(prom, promql[name])]
        return not empty

    with contextlib.suppress(AssertionError):  # the caller's assert names what stayed empty
        wait_until(still_empty, timeout_s=30, interval_s=2, what="data for every dashboard query")
    return empty


def test_faults_fire_alerts_that_reach_the_webhook_and_every_dashboard_query_has_data(
    tmp_path: Path, redis: RedisServer
) -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    # No OTLP export and no inherited ports: only simulate serves /metrics, on the port chosen here.
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER_") and k not in _PORT_VARIABLES
    }
    env = {**inherited, "SALES_AGENT_DEPLOYMENT_ENVIRONMENT": "e2e", "SALES_AGENT_LOG_LEVEL": "WARNING"}
    metrics_port = free_port()  # Prometheus's config names it before simulate starts
    voice_metrics_port = free_port()

    with (
        WebhookReceiver() as hook,
        spawn("llm-provider", "--name", "primary", env=env) as primary_process,
        spawn("llm-provider", "--name", "backup", env=env) as backup_process,
        spawn("crm-service", "--db", str(tmp_path / "crm.db"), env=env) as crm_process,
        spawn("stt-provider", "--name", "primary", env=env) as stt_primary,
        spawn("stt-provider", "--name", "backup", env=env) as stt_backup,
        spawn("tts-provider", "--name", "primary", env=env) as tts_primary,
        spawn("tts-provider", "--name", "backup", env=env) as tts_backup,
    ):
        primary, backup, crm = primary_process.url, backup_process.url, crm_process.url
        am_config = render_alertmanager_config(
            tmp_path / "alertmanager.yml",
            {
                "ALERTMANAGER_PAGER_WEBHOOK_URL": f"{hook.url}/pager",
                "ALERTMANAGER_CHAT_WEBHOOK_URL": f"{hook.url}/chat",
                "ALERTMANAGER_LOW_WEBHOOK_URL": f"{hook.url}/low",
                "ALERTMANAGER_GROUP_WAIT": "1s",
                "ALERTMANAGER_GROUP_INTERVAL": "5s",
            },
        )
        with run_alertmanager(am_config, tmp_path) as am:
            prom_config = tmp_path / "prometheus.yml"
            prom_config.write_text(
                yaml.safe_dump(
                    {
                        "global": {
                            "scrape_interval": "2s",
                            "evaluation_interval": "2s",
                            "external_labels": {"runbook_base": "https://runbooks.example.com/"},
                        },
                        "rule_files": [str(path) for path in RULE_FILES],
                        "alerting": {
                            "alert_relabel_configs": [{"action": "labeldrop", "regex": "runbook_base"}],
                            "alertmanagers": [
                                {"static_configs": [{"targets": [am.removeprefix("http://")]}]}
                            ],
                        },
                        "scrape_configs": [
                            {
                                "job_name": "sales-agent",
                                "static_configs": [
                                    {
                                        "targets": [
                                            f"127.0.0.1:{metrics_port}",
                                            f"127.0.0.1:{voice_metrics_port}",
                                        ]
                                    }
                                ],
                            }
                        ],
                    }
                )
            )
            simulate_env = {
                **env,
                "SALES_AGENT_METRICS_PORT": str(metrics_port),
                "SALES_AGENT_HEALTH_PORT": "0",
                "CRM_OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
                # Cooldowns shared through a real redis-server, so the LLM board's Redis panel has data.
                "SALES_AGENT_LLM_REDIS_URL": redis.url,
            }
            simulate_argv = _python_module(
                "agent", "simulate", "--calls", "4", "--concurrency", "2", "--forever", "--interval", "1",
                "--llm-url", f"{primary}/v1", "--llm-url", f"{backup}/v1", "--crm-url", crm,
            )  # fmt: skip
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            voice_env = {
                **simulate_env,
                "SALES_AGENT_METRICS_PORT": str(voice_metrics_port),
                "CRM_OUTBOX_PATH": str(tmp_path / "voice-outbox.sqlite3"),
            }
            voice_argv = _python_module(
                "agent", "simulate", "--mode", "voice", "--calls", "2", "--concurrency", "2", "--forever",
                "--interval", "1", "--llm-url", f"{primary}/v1", "--llm-url", f"{backup}/v1",
                "--crm-url", crm, "--stt-url", stt_primary.url, "--stt-url", stt_backup.url,
                "--tts-url", tts_primary.url, "--tts-url", tts_backup.url,
                "--voice-cache", str(tmp_path / "voice-clips"),
            )  # fmt: skip
            voice_metrics_url = f"http://127.0.0.1:{voice_metrics_port}/metrics"
            with (
                run_process(
                    simulate_argv,
                    tmp_path / "simulate.log",
                    metrics_url,
                    "simulate",
                    env=simulate_env,
                    ready_timeout_s=90,
                ),  # fmt: skip
                run_process(
                    voice_argv,
                    tmp_path / "simulate-voice.log",
                    voice_metrics_url,
                    "simulate --mode voice",
                    env=voice_env,
                    ready_timeout_s=90,
                ),  # fmt: skip
                run_prometheus(prom_config, tmp_path) as prom,
            ):
                # Phase 1: healthy calls, scraped.
                wait_until(
                    lambda: prom_query(prom, "sales_agent_meetings_booked_total"),
                    timeout_s=120,
                    what="healthy calls (meetings booked) scraped by Prometheus",
                )
                # A healthy agent under load: no page or chat alert even pending (info alerts may fire).
                # Host-resource alerts (component="system") describe the shared test machine, not the agent.
                wait_until(
                    lambda: prom_query(prom, "sum(sales_agent_calls_total) >= 10"),
                    timeout_s=120,
                    what="10 healthy calls scraped",
                )
                wait_until(
                    lambda: prom_query(
                        prom, 'sales_agent_turn_response_latency_seconds_count{sales_agent_turn_mode="voice"}'
                    ),
                    timeout_s=180,
                    what="voice turns (the caller's wait) scraped",
                )
                time.sleep(6)  # a few rule evaluations (every 2 s) on the healthy data
                noisy = prom_query(prom, 'ALERTS{severity!="info", component!="system"}')
                assert noisy == [], [a["metric"] for a in noisy]
                # No panel says "No data" on a healthy agent: failure counters show 0 before any failure.
                promql = _dashboard_promql()
                assert len(promql) > 50
                empty = _queries_without_data(prom, promql)
                assert empty == [], "dashboard queries without data under healthy load:\n" + "\n".join(empty)

                # Phase 2: primary LLM and CRM fail -> alerts fire and reach their receivers.
                _post_fault(primary, "500")
                _post_fault(crm, "down")
                _post_fault(stt_primary.url, "500")
                _post_fault(tts_primary.url, "500")
                breaker = wait_until(
                    lambda: _firing(prom, "DependencyCircuitOpen"),
                    timeout_s=360,
                    interval_s=2,
                    what="DependencyCircuitOpen firing in Prometheus",
                )
                assert {a["labels"]["dependency"] for a in breaker} <= {"crm", "calendar"}
                wait_until(
                    lambda: _firing(prom, "LLMProviderFallbackActive"),
                    timeout_s=240,
                    interval_s=2,
                    what="LLMProviderFallbackActive firing in Prometheus",
                )
                paged = wait_until(
                    lambda: [
                        a
                        for a in hook.alerts("/pager")
                        if a["labels"]["alertname"] == "DependencyCircuitOpen"
                    ],
                    timeout_s=60,
                    what="DependencyCircuitOpen delivered to the pager webhook",
                )
                assert paged[0]["status"] == "firing" and paged[0]["labels"]["severity"] == "critical"
                assert (
                    paged[0]["annotations"]["runbook_url"]
                    == "https://runbooks.example.com/DependencyCircuitOpen.md"
                )
                assert "runbook_base" not in paged[0]["labels"]  # a template input, not a label
                chat = wait_until(
                    lambda: [
                        a
                        for a in hook.alerts("/chat")
                        if a["labels"]["alertname"] == "LLMProviderFallbackActive"
                    ],
                    timeout_s=60,
                    what="LLMProviderFallbackActive delivered to the chat webhook",
                )
                assert chat[0]["labels"]["fallback_from"] == "primary"

                # Phase 3: the CRM recovers; the outbox delivers what queued while it was down.
                _post_fault(crm, "ok")
                _post_fault(primary, "ok")
                for stand_in in (stt_primary, tts_primary):
                    _post_fault(stand_in.url, "ok")
                wait_until(
                    lambda: prom_query(prom, "sales_agent_outbox_delivered_total"),
                    timeout_s=240,
                    interval_s=2,
                    what="outbox deliveries after the CRM recovered",
                )

                empty = _queries_without_data(prom, promql)
                assert empty == [], "dashboard queries without data after the faults:\n" + "\n".join(empty)

                exported = _exported_metric_names(metrics_url) | _exported_metric_names(voice_metrics_url)

        recorded = {r["record"] for g in load_rule_groups() for r in g["rules"] if "record" in r}
        used: dict[str, str] = {}
        for group in load_rule_groups():
            for rule in group["rules"]:
                for metric in promql_metric_names(rule["expr"]):
                    used.setdefault(metric, f"rule {rule.get('alert') or rule.get('record')}")
        for uid, title, kind, query in dashboard_queries():
            if kind == "prometheus":
                expr = label_values_to_promql(query) if query.startswith("label_values(") else query
                for metric in promql_metric_names(expr):
                    used.setdefault(metric, f"dashboard {uid} / {title}")
        missing = {
            metric: where
            for metric, where in used.items()
            if metric not in exported
            and metric not in recorded
            and metric not in COMPOSE_ONLY_METRICS
            and metric not in EVENT_ONLY_METRICS
        }
        assert missing == {}, "metric names the agent does not export"
