"""Alertmanager: the rendered config is valid, each severity reaches its receiver, inhibition works.

`amtool check-config` and `amtool config routes test` check the config statically; a real
Alertmanager 0.25 on loopback then receives a critical + warning pair through its API and must
suppress the warning (same component and dependency) while delivering the rest to the webhook.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_helpers import (
    AM_DIR,
    WebhookReceiver,
    http_json,
    render_alertmanager_config,
    require_binary,
    run_alertmanager,
    wait_until,
)

FULL_ENV = {
    "ALERTMANAGER_PAGER_WEBHOOK_URL": 'https://pager.example.com/hook?token=a&b="c"',
    "ALERTMANAGER_CHAT_WEBHOOK_URL": "https://chat.example.com/hook",
    "ALERTMANAGER_LOW_WEBHOOK_URL": "https://low.example.com/hook",
    "ALERTMANAGER_SLACK_API_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
    "ALERTMANAGER_SLACK_CHANNEL": "#oncall",
    "ALERTMANAGER_EMAIL_TO": "oncall@example.com",
    "ALERTMANAGER_EMAIL_FROM": "alerts@example.com",
    "ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.com:587",
    "ALERTMANAGER_SMTP_USERNAME": "alerts",
    "ALERTMANAGER_SMTP_PASSWORD": 's3cret\\with"quotes',
}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("amtool"), *args], capture_output=True, text=True, timeout=60)


def test_committed_config_is_the_template_rendered_without_variables(tmp_path: Path) -> None:
    rendered = render_alertmanager_config(tmp_path / "am.yml", {})
    assert rendered.read_text() == (AM_DIR / "alertmanager.yml").read_text(), (
        "deploy/alertmanager/alertmanager.yml is stale: run "
        "`env -i PATH=$PATH sh deploy/alertmanager/render.sh deploy/alertmanager/alertmanager.yml.tmpl "
        "deploy/alertmanager/alertmanager.yml`"
    )


@pytest.mark.parametrize("env", [{}, FULL_ENV], ids=["sink-only", "all-receivers"])
def test_rendered_config_passes_amtool(tmp_path: Path, env: dict[str, str]) -> None:
    config = render_alertmanager_config(tmp_path / "am.yml", env)
    result = amtool("check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    assert ("slack_configs" in text) == bool(env) and ("email_configs" in text) == bool(env)
    if env:
        import yaml

        parsed = yaml.safe_load(text)
        receivers = {r["name"]: r for r in parsed["receivers"]}
        assert receivers["pager"]["webhook_configs"][0]["url"] == FULL_ENV["ALERTMANAGER_PAGER_WEBHOOK_URL"]
        email = receivers["low-priority"]["email_configs"][0]
        assert email["auth_password"] == FULL_ENV["ALERTMANAGER_SMTP_PASSWORD"]


@pytest.mark.parametrize(
    ("severity", "receiver"), [("critical", "pager"), ("warning", "chat"), ("info", "low-priority")]
)
def test_each_severity_routes_to_its_receiver(severity: str, receiver: str) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={AM_DIR / 'alertmanager.yml'}",
        f"--verify.receivers={receiver}", "alertname=AnyAlert", f"severity={severity}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_unlabelled_alert_falls_back_to_low_priority() -> None:
    result = amtool("config", "routes", "test", f"--config.file={AM_DIR / 'alertmanager.yml'}", "alertname=X")
    assert result.stdout.strip() == "low-priority", result.stdout + result.stderr


def _alert(name: str, severity: str, component: str, **labels: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "component": component, **labels},
        "annotations": {"summary": f"{name} test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


@pytest.mark.integration
def test_real_alertmanager_inhibits_the_matching_warning_and_delivers_the_rest(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        config = render_alertmanager_config(
            tmp_path / "am.yml",
            {
                "ALERTMANAGER_PAGER_WEBHOOK_URL": f"{hook.url}/pager",
                "ALERTMANAGER_CHAT_WEBHOOK_URL": f"{hook.url}/chat",
                "ALERTMANAGER_LOW_WEBHOOK_URL": f"{hook.url}/low",
                "ALERTMANAGER_GROUP_WAIT": "1s",
                "ALERTMANAGER_GROUP_INTERVAL": "1s",
            },
        )
        with run_alertmanager(config, tmp_path) as am:
            http_json(
                f"{am}/api/v2/alerts",
                [
                    _alert("DependencyCircuitOpen", "critical", "dependency", dependency="crm"),
                    _alert("OutboxBacklogStale", "warning", "dependency", dependency="crm"),
                    _alert("SlowDependencyResponse", "warning", "dependency", dependency="calendar"),
                    _alert("NewTenantSeen", "info", "business", tenant_id="beta"),
                ],
            )

            def states() -> dict[str, dict] | None:
                alerts = http_json(f"{am}/api/v2/alerts")
                found = {a["labels"]["alertname"]: a["status"] for a in alerts}
                return found if len(found) == 4 else None

            status = wait_until(states, timeout_s=20, what="alerts visible in Alertmanager")
            assert status["OutboxBacklogStale"]["state"] == "suppressed"
            assert status["OutboxBacklogStale"]["inhibitedBy"], status
            for name in ("DependencyCircuitOpen", "SlowDependencyResponse", "NewTenantSeen"):
                assert status[name]["state"] == "active", (name, status[name])

            wait_until(lambda: hook.alerts("/pager"), timeout_s=30, what="critical alert at the pager")
            wait_until(lambda: hook.alerts("/chat"), timeout_s=30, what="warning alert in chat")
            wait_until(lambda: hook.alerts("/low"), timeout_s=30, what="info alert at low-priority")
        assert {a["labels"]["alertname"] for a in hook.alerts("/pager")} == {"DependencyCircuitOpen"}
        # The inhibited warning never reached chat; the unrelated one (other dependency) did.
        assert {a["labels"]["alertname"] for a in hook.alerts("/chat")} == {"SlowDependencyResponse"}
        assert {a["labels"]["alertname"] for a in hook.alerts("/low")} == {"NewTenantSeen"}
