"""Instruments come from an injected MeterProvider, one instruments module per package, none at import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import stamina
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agent import business_metrics
from agent.instruments import all_installed
from agent.resilience import CircuitBreaker, RetryPolicy, retry_async
from telemetry import names

REPO = Path(__file__).resolve().parent.parent

# Imports every module of agent/, telemetry/ and local_services/ under a global MeterProvider that
# records each instrument created, then installs the agent's instruments explicitly.
RECORD_IMPORTS = """
import importlib, json, pkgutil, sys
from opentelemetry import metrics
from opentelemetry.metrics import NoOpMeter, NoOpMeterProvider

created = []

class RecordingMeter(NoOpMeter):
    pass

def _recording(kind):
    def create(self, name, *args, **kwargs):
        created.append(name)
        return getattr(NoOpMeter, kind)(self, name, *args, **kwargs)
    return create

for kind in ("create_counter", "create_up_down_counter", "create_histogram", "create_gauge",
             "create_observable_counter", "create_observable_up_down_counter", "create_observable_gauge"):
    setattr(RecordingMeter, kind, _recording(kind))

class RecordingProvider(NoOpMeterProvider):
    def get_meter(self, name, *args, **kwargs):
        return RecordingMeter(name)

metrics.set_meter_provider(RecordingProvider())
for package in ("agent", "telemetry", "local_services"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
at_import = sorted(set(created))
from agent.instruments import install_all
install_all()
print(json.dumps({"at_import": at_import, "installed": sorted(set(created))}))
"""

# sales_agent.* names in telemetry/names.py that are not instruments of agent/: span attributes, and
# the two instruments telemetry/ creates from the meter setup_telemetry hands it.
NOT_AGENT_INSTRUMENTS = {
    names.LLM_ATTEMPT,
    names.LLM_CHAIN_POSITION,
    names.IDEMPOTENCY_KEY,
    names.EVENT_LOOP_LAG,
    names.TELEMETRY_EXPORT_FAILURES,
}


def test_importing_every_module_creates_no_instrument() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RECORD_IMPORTS], cwd=REPO, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    ours = [name for name in result["at_import"] if name.startswith("sales_agent.")]
    assert ours == [], f"created at import: {ours}"
    catalog = {
        value
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str) and value.startswith("sales_agent.")
    }
    # install_all creates every metric of the catalog (so the recorder above would have seen them).
    assert set(result["installed"]) >= catalog - NOT_AGENT_INSTRUMENTS
    assert {n for n in result["installed"] if n.startswith("sales_agent.")} == catalog - NOT_AGENT_INSTRUMENTS


def _points(reader: InMemoryMetricReader) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found.setdefault(metric.name, []).extend(dict(p.attributes) for p in metric.data.data_points)
    return found


async def test_an_injected_provider_gets_the_measurements_and_the_old_ones_come_back(otel) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    global_before = otel.metric_value(names.LEADS_CAPTURED, **{names.TENANT_ID: "injected"})
    breaker = CircuitBreaker("injected-dep", failure_threshold=1)
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise TimeoutError("first attempt times out")
        return "ok"

    with all_installed(provider), stamina.set_testing(True, attempts=3, cap=True):
        business_metrics.lead_captured("injected")
        assert (
            await retry_async(flaky, policy=RetryPolicy(), dependency="injected-dep", operation="op") == "ok"
        )
        breaker.record_failure()  # closed -> open
    points = _points(reader)
    assert points[names.LEADS_CAPTURED] == [{names.TENANT_ID: "injected"}]
    assert {names.DEPENDENCY: "injected-dep", names.OPERATION: "op", names.OUTCOME: "ok"} in points[
        names.DEPENDENCY_RETRIES
    ]
    assert points[names.BREAKER_STATE_GAUGE] == [{names.DEPENDENCY: "injected-dep"}]
    assert names.BREAKER_TRANSITIONS in points
    # The process-wide provider saw none of it, and records again once the block is left.
    assert otel.metric_value(names.LEADS_CAPTURED, **{names.TENANT_ID: "injected"}) == global_before
    business_metrics.lead_captured("injected")
    assert otel.metric_value(names.LEADS_CAPTURED, **{names.TENANT_ID: "injected"}) == global_before + 1
    breaker.unregister()
    provider.shutdown()


@pytest.mark.usefixtures("otel")
def test_setup_telemetry_turns_stamina_default_hooks_off() -> None:
    """Our retry span events and sales_agent.dependency.retries cover retries; stamina's defaults (a
    WARNING log line per retry, a prometheus_client counter nobody exports) are not wanted."""
    assert stamina.instrumentation.get_on_retry_hooks() == ()
