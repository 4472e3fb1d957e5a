"""Every stand-in of ``local_services.STAND_INS`` runs as its own process in the one shape: ``--port 0``
and a ``READY <port>`` line, the admin API, a clean exit on SIGTERM, and a port in use refused with one
line on stderr and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from local_services import STAND_INS
from local_services.harness import spawn

# Options a stand-in needs beyond the common ones.
EXTRA_ARGS = {"crm-service": lambda tmp: ["--db", str(tmp / "crm.sqlite3")]}
ENV = {**os.environ, "OTEL_SDK_DISABLED": "true"}


def _args(name: str, tmp_path: Path) -> list[str]:
    return EXTRA_ARGS[name](tmp_path) if name in EXTRA_ARGS else []


@pytest.mark.parametrize("name", sorted(STAND_INS))
def test_stand_in_runs_as_a_process_in_the_common_shape(name: str, tmp_path: Path) -> None:
    args = _args(name, tmp_path)
    with spawn(name, *args, env=ENV) as running:
        stats = httpx.get(f"{running.url}/admin/stats", timeout=5)
        assert stats.status_code == 200 and stats.json()["fault"] == "ok"
        unknown = httpx.post(f"{running.url}/admin/fault", json={"mode": "no-such-mode"}, timeout=5)
        assert 400 <= unknown.status_code < 500, unknown.text
        assert httpx.post(f"{running.url}/admin/reset", timeout=5).status_code == 200

        argv = [sys.executable, "-m", STAND_INS[name].module, *args, "--port", str(running.port)]
        taken = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=60, check=False)
        assert taken.returncode == 2, taken.stderr
        expected = (
            f"{name}: error: --port: cannot listen on 127.0.0.1:{running.port}: the port is already in use; "
            "expected a free port"
        )
        assert taken.stderr.strip().splitlines() == [expected]
        assert taken.stdout == ""
    assert running.process.returncode == 0, running.output()
    assert f"{name} listening on http://127.0.0.1:{running.port}" in running.output()


def test_a_fault_given_at_start_applies_to_the_first_request() -> None:
    with spawn("llm-provider", "--name", "primary", "--fault", "500", env=ENV) as provider:
        assert httpx.get(f"{provider.url}/admin/stats", timeout=5).json()["fault"] == "500"
        chat = httpx.post(f"{provider.url}/v1/chat/completions", json={"messages": []}, timeout=5)
        assert chat.status_code == 500


def test_the_otlp_sink_announces_its_grpc_port_on_the_ready_line() -> None:
    with spawn("otlp-sink", "--grpc-port", "0", env=ENV) as sink:
        assert set(sink.extra_ports) == {"grpc"} and sink.extra_ports["grpc"] != sink.port
