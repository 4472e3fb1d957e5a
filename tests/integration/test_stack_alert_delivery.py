"""Out of the box, an alert reaches the local notification sink: the Alertmanager config compose
renders (deploy/alertmanager/render.sh with the container's environment) run by a real Alertmanager,
delivering to a real webhook-sink process. Only the sink's address (and the group wait, to keep the
test short) differ from compose."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_helpers import render_alertmanager_config, run_alertmanager

from local_services.harness import spawn

DEADLINE_S = 60.0


@pytest.fixture
def sink_and_alertmanager(tmp_path):
    with spawn("webhook-sink") as sink:
        config = render_alertmanager_config(
            tmp_path / "alertmanager.yml",
            {
                # compose's defaults are http://notification-sink:8300/<receiver>; same paths, local address.
                "ALERTMANAGER_PAGER_WEBHOOK_URL": f"{sink.url}/pager",
                "ALERTMANAGER_CHAT_WEBHOOK_URL": f"{sink.url}/chat",
                "ALERTMANAGER_LOW_WEBHOOK_URL": f"{sink.url}/low",
                "ALERTMANAGER_GROUP_WAIT": "1s",
                "ALERTMANAGER_GROUP_INTERVAL": "1s",
            },
        )
        with run_alertmanager(config, tmp_path) as am_url:
            yield sink, am_url


def test_alerts_of_each_severity_reach_the_sink_through_their_receiver(sink_and_alertmanager):
    sink, am_url = sink_and_alertmanager
    now = datetime.now(UTC).isoformat()
    alerts = [
        {
            "labels": {
                "alertname": f"StackTest{severity.title()}",
                "severity": severity,
                "component": severity,
            },
            "annotations": {"summary": f"a {severity} test alert"},
            "startsAt": now,
        }
        for severity in ("critical", "warning", "info")
    ]
    assert httpx.post(f"{am_url}/api/v2/alerts", json=alerts, timeout=10).status_code == 200

    expected = {"/pager": "StackTestCritical", "/chat": "StackTestWarning", "/low": "StackTestInfo"}
    deadline = time.monotonic() + DEADLINE_S
    while True:
        notifications = httpx.get(sink.url, timeout=5).json()["notifications"]
        delivered = {n["path"]: {a["alertname"] for a in n["alerts"]} for n in notifications}
        if all(name in delivered.get(path, set()) for path, name in expected.items()):
            break
        assert time.monotonic() < deadline, f"delivered so far: {delivered}"
        time.sleep(0.5)
    receivers = {n["path"]: n["receiver"] for n in notifications}
    assert receivers == {"/pager": "pager", "/chat": "chat", "/low": "low-priority"}
    assert "alerts=[StackTestCritical(critical,firing)]" in sink.output()
