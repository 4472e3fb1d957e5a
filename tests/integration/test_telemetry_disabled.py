"""OTEL_SDK_DISABLED in a fresh interpreter (the global providers are set once per process, and the
test session's belong to the ``otel`` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_sdk_disabled_installs_nothing_but_keeps_logging():
    code = (
        "import logging\n"
        "from opentelemetry import trace\n"
        "from telemetry import TelemetrySettings, setup_telemetry\n"
        "t = setup_telemetry(TelemetrySettings())\n"
        "assert not t.enabled and t.metrics_port is None\n"
        "with trace.get_tracer('x').start_as_current_span('s') as span:\n"
        "    assert not span.get_span_context().is_valid\n"
        "logging.getLogger('agent.x').warning('still logging')\n"
        "assert t.shutdown() is True\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_"))}
    env |= {"OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING agent.x trace=- span=- still logging" in proc.stderr
