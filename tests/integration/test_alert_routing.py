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


def _render_with_stderr(out: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["sh", str(AM_DIR / "render.sh"), str(AM_DIR / "alertmanager.yml.tmpl"), str(out)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stderr


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


def test_smtp_without_a_recipient_leaves_email_out_instead_of_rendering_an_empty_to(tmp_path: Path) -> None:
    # Alertmanager 0.28 (compose) refuses `to: ""`, and Grafana waited forever on its health.
    config = tmp_path / "am.yml"
    stderr = _render_with_stderr(config, {"ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.com:587"})
    text = config.read_text()
    assert "email_configs" not in text and 'to: ""' not in text
    assert "ALERTMANAGER_EMAIL_TO" in stderr  # the operator is told which variable is missing
    result = amtool("check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_page_is_regrouped_within_a_minute() -> None:
    import yaml

    route = yaml.safe_load((AM_DIR / "alertmanager.yml").read_text())["route"]
    pager = next(r for r in route["routes"] if r["receiver"] == "pager")
    assert pager["group_interval"] == "1m"  # a resolved page is sent within a minute


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

            # The inhibitor learns of the critical alert on its own subscription, shortly after the API
            # shows it: until then the warning reads active. Wait for that, then judge a fresh answer.
            wait_until(
                lambda: (found := states()) and found["OutboxBacklogStale"]["state"] == "suppressed",
                timeout_s=20,
                what="the crm warning inhibited in Alertmanager",
            )
            status = states()
            assert status is not None and status["OutboxBacklogStale"]["state"] == "suppressed", status
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


@pytest.mark.integration
def test_real_alertmanager_inhibits_system_warnings_only_on_the_same_instance(tmp_path: Path) -> None:
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
                    _alert("HighSystemMemoryUsage", "critical", "system", instance="host-a:9464"),
                    _alert("HighCpuUsage", "warning", "system", instance="host-a:9464"),
                    _alert("HighCpuUsage", "warning", "system", instance="host-b:9464"),
                ],
            )

            def states() -> dict[str, dict] | None:
                alerts = http_json(f"{am}/api/v2/alerts")
                found = {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"] for a in alerts}
                return found if len(found) == 3 else None

            # As above: wait until the inhibitor knows the critical alert, then judge a fresh answer.
            wait_until(
                lambda: (
                    (found := states()) and found[("HighCpuUsage", "host-a:9464")]["state"] == "suppressed"
                ),
                timeout_s=20,
                what="host-a's warning inhibited in Alertmanager",
            )
            status = states()
            assert status is not None, "an alert left Alertmanager"
            assert status[("HighCpuUsage", "host-b:9464")]["state"] == "active", status
            chat = wait_until(lambda: hook.alerts("/chat"), timeout_s=30, what="host-b's warning in chat")
        assert {a["labels"]["instance"] for a in chat} == {"host-b:9464"}
