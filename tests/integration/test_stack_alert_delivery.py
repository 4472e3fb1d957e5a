"""Out of the box, an alert reaches the local notification sink: the Alertmanager config compose
renders (deploy/alertmanager/render.sh with the container's environment) run by a real Alertmanager,
delivering to a real `python -m local_services.webhook_sink` process. Only the sink's address (and
the group wait, to keep the test short) differ from compose."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
AM_DIR = REPO / "deploy/alertmanager"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
DEADLINE_S = 60.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ALERTMANAGER is None, reason="Alertmanager (Debian prometheus-alertmanager) missing"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} never ready:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


@pytest.fixture
def sink_and_alertmanager(tmp_path):
    sink_port, am_port = free_port(), free_port()
    sink_url = f"http://127.0.0.1:{sink_port}"
    env = {
        "PATH": os.environ["PATH"],
        # compose's defaults are http://notification-sink:8300/<receiver>; same paths, local address.
        "ALERTMANAGER_PAGER_WEBHOOK_URL": f"{sink_url}/pager",
        "ALERTMANAGER_CHAT_WEBHOOK_URL": f"{sink_url}/chat",
        "ALERTMANAGER_LOW_WEBHOOK_URL": f"{sink_url}/low",
        "ALERTMANAGER_GROUP_WAIT": "1s",
        "ALERTMANAGER_GROUP_INTERVAL": "1s",
    }
    config = tmp_path / "alertmanager.yml"
    subprocess.run(
        ["sh", str(AM_DIR / "render.sh"), str(AM_DIR / "alertmanager.yml.tmpl"), str(config)],
        env=env,
        check=True,
        timeout=30,
    )
    processes: list[subprocess.Popen] = []
    sink_log, am_log = tmp_path / "sink.log", tmp_path / "alertmanager.log"
    try:
        with sink_log.open("wb") as out:
            sink = subprocess.Popen(
                [sys.executable, "-m", "local_services.webhook_sink", "--port", str(sink_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        processes.append(sink)
        with am_log.open("wb") as out:
            alertmanager = subprocess.Popen(
                [
                    ALERTMANAGER,
                    f"--config.file={config}",
                    f"--storage.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        processes.append(alertmanager)
        wait_for(f"{sink_url}/health", sink, sink_log)
        wait_for(f"http://127.0.0.1:{am_port}/-/ready", alertmanager, am_log)
        yield sink_url, f"http://127.0.0.1:{am_port}", sink_log
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_alerts_of_each_severity_reach_the_sink_through_their_receiver(sink_and_alertmanager):
    sink_url, am_url, sink_log = sink_and_alertmanager
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
        notifications = httpx.get(sink_url, timeout=5).json()["notifications"]
        delivered = {n["path"]: {a["alertname"] for a in n["alerts"]} for n in notifications}
        if all(name in delivered.get(path, set()) for path, name in expected.items()):
            break
        assert time.monotonic() < deadline, f"delivered so far: {delivered}"
        time.sleep(0.5)
    receivers = {n["path"]: n["receiver"] for n in notifications}
    assert receivers == {"/pager": "pager", "/chat": "chat", "/low": "low-priority"}
    assert "alerts=[StackTestCritical(critical,firing)]" in sink_log.read_text()
