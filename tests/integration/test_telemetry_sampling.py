"""Trace sampling is the SDK's standard OTEL_TRACES_SAMPLER setting (setup_telemetry sets no sampler)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = """
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telemetry.settings import TelemetrySettings
from telemetry.setup import setup_telemetry

exporter = InMemorySpanExporter()
settings = TelemetrySettings(OTEL_EXPORTER_OTLP_ENDPOINT=None, SALES_AGENT_METRICS_ENABLED=False)
telemetry = setup_telemetry(settings, span_exporters=[exporter], wire_livekit=False)
tracer = trace.get_tracer("sampling-test")
for _ in range(200):
    with tracer.start_as_current_span("call"):
        with tracer.start_as_current_span("child"):
            pass
telemetry.shutdown()
spans = exporter.get_finished_spans()
roots = sum(1 for s in spans if s.parent is None)
print(trace.get_tracer_provider().sampler.get_description(), roots, len(spans) - roots)
"""


def _run(**env: str) -> list[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    child_env.update(OTEL_SDK_DISABLED="false", LITELLM_LOCAL_MODEL_COST_MAP="True", **env)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO, env=child_env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_default_keeps_every_call_whole():
    description, roots, children = _run()
    assert description.startswith("ParentBased{root:AlwaysOnSampler")
    assert (int(roots), int(children)) == (200, 200)


def test_parent_based_ratio_keeps_whole_calls_only():
    description, roots, children = _run(
        OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.25"
    )
    assert description.startswith("ParentBased{root:TraceIdRatioBased{0.25}")
    assert 0 < int(roots) < 200, "roughly a quarter of the calls are kept"
    assert int(children) == int(roots), "a kept call keeps its children; a dropped one drops them"


BUDGET_CHILD = """
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telemetry.settings import TelemetrySettings
from telemetry.setup import setup_telemetry

exporter = InMemorySpanExporter()
settings = TelemetrySettings(OTEL_EXPORTER_OTLP_ENDPOINT=None, SALES_AGENT_METRICS_ENABLED=False)
telemetry = setup_telemetry(settings, span_exporters=[exporter], wire_livekit=False)
tracer = trace.get_tracer("budget-test")
with tracer.start_as_current_span("sales_call"), tracer.start_as_current_span("agent_turn"):
    with tracer.start_as_current_span("llm_node"), tracer.start_as_current_span("llm_request"):
        with tracer.start_as_current_span("llm_request_run"), tracer.start_as_current_span("chat m"):
            pass
    with tracer.start_as_current_span("function_tool"), tracer.start_as_current_span("log_note"):
        pass
    with tracer.start_as_current_span("agent_speaking"):
        pass
telemetry.shutdown()
spans = exporter.get_finished_spans()
ids = {s.context.span_id: s.name for s in spans}
for s in sorted(spans, key=lambda s: s.start_time):
    parent = "-" if s.parent is None else ids.get(s.parent.span_id, "ORPHAN")
    print(f"{s.name}<{parent}")
"""


def _tree(**env: str) -> list[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_TRACE"))}
    child_env.update(OTEL_SDK_DISABLED="false", LITELLM_LOCAL_MODEL_COST_MAP="True", **env)
    proc = subprocess.run(
        [sys.executable, "-c", BUDGET_CHILD],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


def test_turn_detail_by_default_drops_livekit_internals_and_orphans_nothing():
    """The budget (telemetry/span_budget.py) is on by default: each kept span hangs from a kept one."""
    assert _tree() == [
        "sales_call<-",
        "agent_turn<sales_call",
        "chat m<agent_turn",  # llm_node, llm_request and llm_request_run are left out
        "log_note<agent_turn",
    ]


def test_debug_detail_keeps_every_span():
    tree = _tree(SALES_AGENT_TRACE_DETAIL="debug")
    assert "llm_request_run<llm_request" in tree and "chat m<llm_request_run" in tree
    assert "log_note<function_tool" in tree and "agent_speaking<agent_turn" in tree
    assert not any(line.endswith("<ORPHAN") for line in tree)
