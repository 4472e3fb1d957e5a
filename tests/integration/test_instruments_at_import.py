"""Importing the agent creates no metric instrument; ``install_all`` creates every one of the catalog."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from telemetry import names

REPO = Path(__file__).resolve().parents[2]

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

# The objects observable gauges report on create those gauges, before any other use.
import pathlib, tempfile
from agent.crm.outbox import Outbox
from agent.llm.instruments import add_availability_source
from agent.resilience.breaker import CircuitBreaker

class Chain:
    def status(self):
        return {"primary": True}

chain = Chain()
outbox = Outbox(pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite3")
breaker = CircuitBreaker("crm")
add_availability_source(chain.status)
on_first_object = sorted(set(created) - set(at_import))
outbox.close()

from agent.instruments import install_all
install_all()
installed = sorted(set(created))
print(json.dumps({"at_import": at_import, "on_first_object": on_first_object, "installed": installed}))
"""

# sales_agent.* names in telemetry/names.py that are not instruments of agent/: span attributes, and
# the two instruments telemetry/ creates from the meter setup_telemetry hands it.
NOT_AGENT_INSTRUMENTS = {
    names.LLM_ATTEMPT,
    names.LLM_CHAIN_POSITION,
    names.IDEMPOTENCY_KEY,
    names.SPEECH_ATTEMPT,
    names.SPEECH_REPLAYED,
    names.TURN_MODE,
    names.TURN_STAGE,
    names.UNANSWERED_REASON,
    names.CALL_END_REASON,
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
    # An outbox nothing was queued in, a breaker never called and a chain before its first turn are
    # reported at once (dashboards and alerts read their gauges as 0 / closed / available).
    assert set(result["on_first_object"]) >= {
        names.OUTBOX_DEPTH,
        names.OUTBOX_OLDEST_AGE,
        names.OUTBOX_DEAD_LETTERS,
        names.BREAKER_STATE_GAUGE,
        names.LLM_PROVIDER_AVAILABLE,
    }
    catalog = {
        value
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str) and value.startswith("sales_agent.")
    }
    # install_all creates every metric of the catalog (so the recorder above would have seen them).
    assert set(result["installed"]) >= catalog - NOT_AGENT_INSTRUMENTS
    assert {n for n in result["installed"] if n.startswith("sales_agent.")} == catalog - NOT_AGENT_INSTRUMENTS
