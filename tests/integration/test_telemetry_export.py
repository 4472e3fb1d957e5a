"""The real exporters, in a child process (the global providers are set once per process and the
test session's belong to the ``otel`` fixture):

- the local OTLP sink (``local_services.otlp_sink``, HTTP and gRPC) decodes traces, metrics and logs;
- the Prometheus ``/metrics`` endpoint is parsed with prometheus_client's parser;
- a closed port and the sink's ``hang`` fault stand in for a dead / hanging collector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from prometheus_client.parser import text_string_to_metric_families

from local_services.harness import free_port, in_thread
from local_services.otlp_sink import Received, run_otlp_sink

REPO = Path(__file__).resolve().parents[2]

# The child: one operation emitting a span, a log, our histogram and a livekit histogram (through
# livekit's own recording code, inside a faked job so it stamps room_id/job_id), an httpx request
# from a client built BEFORE setup, a burst of spans, then a bounded shutdown. Prints one JSON line.
CHILD = r"""
import json, logging, os, sys, time, urllib.request
import httpx
early_client = httpx.Client()  # built before setup_telemetry: the global instrumentation must cover it

from opentelemetry import metrics, trace
from telemetry import TelemetrySettings, setup_telemetry, names

tel = setup_telemetry(TelemetrySettings())
tracer = trace.get_tracer("child")
hist = metrics.get_meter("sales_agent").create_histogram(names.TOOL_DURATION, unit="s")
from livekit.agents.telemetry import otel_metrics
otel_metrics._job_attrs = lambda: {"room_id": "RM_child", "job_id": "AJ_child"}

result = {}
with tracer.start_as_current_span("child-operation") as span:
    hist.record(0.3, {names.OPERATION: "child"})
    otel_metrics._record_turn_metrics({"e2e_latency": 0.3, "llm_metadata": {"model_name": "child-model"}})
    logging.getLogger("agent.child").info("child log for jane.doe@acme.com")
    if os.environ.get("ECHO_URL"):
        result["echo_status"] = early_client.get(os.environ["ECHO_URL"]).status_code
    result["trace_id"] = format(span.get_span_context().trace_id, "032x")

rounds = int(os.environ.get("FLUSH_ROUNDS", "0"))
for _ in range(rounds):  # several export attempts against a dead collector
    for _ in range(10):
        with tracer.start_as_current_span("bulk"):
            logging.getLogger("agent.child").info("bulk")
    tel.force_flush(timeout_s=5)
for _ in range(int(os.environ.get("BURST_SPANS", "0"))):
    with tracer.start_as_current_span("burst"):
        pass
result["ops_done"] = True
if tel.metrics_port:
    url = f"http://127.0.0.1:{tel.metrics_port}/metrics"
    result["metrics_text"] = urllib.request.urlopen(url, timeout=10).read().decode()
result["status"] = tel.export_status()
started = time.monotonic()
result["shutdown_ok"] = tel.shutdown()
result["shutdown_s"] = time.monotonic() - started
print("RESULT " + json.dumps(result), flush=True)
"""


def run_child(env: dict[str, str], timeout_s: float = 90) -> tuple[dict[str, Any], str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_"))}
    full_env.update(
        {
            "OTEL_SERVICE_NAME": "child-svc",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=ci,team=sales",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONPATH": str(REPO),
        }
    )
    full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=full_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT ")), proc.stderr


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """The local OTLP sink over HTTP: (OTEL_EXPORTER_OTLP_ENDPOINT, what it decoded)."""
    with in_thread(run_otlp_sink) as sink:
        yield sink.url, sink.received


def _attrs(kvs: list[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


def _histogram_points(requests: list[ExportMetricsServiceRequest], name: str) -> list[Any]:
    return [
        point
        for req in requests
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.histogram.data_points
    ]


def _log_records(requests: list[ExportLogsServiceRequest]) -> list[Any]:
    return [
        record
        for req in requests
        for rl in req.resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]


def _bucket_upper_bound(point: Any, value: float) -> float:
    for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
        if count and value <= bound:
            return bound
    return float("inf")


def test_real_otlp_http_export_of_all_three_signals(otlp_receiver, echo_server):
    url, received = otlp_receiver
    result, _ = run_child(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": url,
            "ECHO_URL": f"{echo_server.url}/echo",
            "SALES_AGENT_METRICS_ENABLED": "true",  # with port 0: a free port
        }
    )
    assert result["shutdown_ok"] is True
    trace_id = bytes.fromhex(result["trace_id"])

    # Traces: resource, our span, and the httpx client span of a client built before setup.
    assert received.traces, "no trace export arrived"
    resource_spans = [rs for req in received.traces for rs in req.resource_spans]
    resource = _attrs(resource_spans[0].resource.attributes)
    assert resource["service.name"] == "child-svc"
    assert resource["deployment.environment.name"] == "ci"  # OTEL_RESOURCE_ATTRIBUTES wins over defaults
    assert resource["team"] == "sales"
    assert resource["service.version"] and resource["service.instance.id"] and resource["host.name"]
    spans = [s for rs in resource_spans for ss in rs.scope_spans for s in ss.spans]
    [operation] = [s for s in spans if s.name == "child-operation"]
    assert operation.trace_id == trace_id
    client_spans = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT and s.trace_id == trace_id]
    assert len(client_spans) == 1 and client_spans[0].parent_span_id == operation.span_id
    assert result["echo_status"] == 200
    [echo] = echo_server.seen_headers
    assert echo["traceparent"].split("-")[1] == result["trace_id"]

    # Logs: redacted body, same trace.
    records = _log_records(received.logs)
    [record] = [r for r in records if r.body.string_value.startswith("child log")]
    assert record.body.string_value == "child log for [EMAIL]"
    assert record.trace_id == trace_id
    assert _attrs(received.logs[0].resource_logs[0].resource.attributes)["service.name"] == "child-svc"

    # Metrics: 0.3 s lands below 1 s for ours and livekit's; exemplar links to the trace; no job ids.
    assert _attrs(received.metrics[0].resource_metrics[0].resource.attributes)["service.name"] == "child-svc"
    [ours] = _histogram_points(received.metrics, "sales_agent.tool.duration")
    assert _bucket_upper_bound(ours, 0.3) < 1.0
    assert [e.trace_id for e in ours.exemplars] == [trace_id]
    [livekit] = _histogram_points(received.metrics, "lk.agents.turn.e2e_latency")
    assert _bucket_upper_bound(livekit, 0.3) < 1.0
    assert _attrs(livekit.attributes) == {"model_name": "child-model"}

    # Prometheus /metrics on the same MeterProvider, parsed by prometheus_client.
    families = {f.name: f for f in text_string_to_metric_families(result["metrics_text"])}
    tool = families["sales_agent_tool_duration_seconds"]
    buckets = {s.labels["le"]: s.value for s in tool.samples if s.name.endswith("_bucket")}
    assert buckets["0.25"] == 0 and buckets["0.5"] == 1 and buckets["1.0"] == 1
    e2e = families["lk_agents_turn_e2e_latency_seconds"]
    assert all("room_id" not in s.labels and "job_id" not in s.labels for s in e2e.samples)
    assert families["process_memory_usage_bytes"].samples[0].value > 0
    fds = next(f for name, f in families.items() if name.startswith("process_unix_file_descriptor_count"))
    assert fds.samples[0].value > 0
    assert "target_info" in families


def test_unreachable_collector_costs_nothing_but_a_rate_limited_log_line():
    result, stderr = run_child(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "SALES_AGENT_EXPORT_TIMEOUT_S": "0.5",
            "SALES_AGENT_SHUTDOWN_TIMEOUT_S": "3",
            "SALES_AGENT_METRICS_ENABLED": "true",
            "FLUSH_ROUNDS": "3",
        }
    )
    assert result["ops_done"] is True
    traces = result["status"]["signals"]["traces"]
    assert traces["failures"] >= 3 and traces["healthy"] is False and traces["last_success_unix"] is None
    assert result["status"]["signals"]["logs"]["failures"] >= 3
    families = {f.name: f for f in text_string_to_metric_families(result["metrics_text"])}
    failures = {
        s.labels["telemetry_signal"]: s.value
        for s in families["sales_agent_telemetry_export_failures"].samples
        if s.name.endswith("_total")
    }
    assert failures["traces"] >= 3 and failures["logs"] >= 3
    # The exporters log every failed batch; the rate limit lets one line per logger and message through.
    trace_lines = [ln for ln in stderr.splitlines() if "Failed to export spans" in ln]
    log_lines = [ln for ln in stderr.splitlines() if "Failed to export logs" in ln]
    assert len(trace_lines) == 1, stderr[-3000:]
    assert len(log_lines) == 1, stderr[-3000:]
    assert result["shutdown_ok"] is True


@pytest.fixture
def hanging_collector() -> Iterator[str]:
    """A collector that reads every export and never answers (the local OTLP sink's ``hang`` fault)."""
    with in_thread(lambda: run_otlp_sink(fault="hang")) as sink:
        yield sink.url


def test_hanging_collector_does_not_block_the_app_and_shutdown_is_bounded(hanging_collector):
    result, _ = run_child(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": hanging_collector,
            "SALES_AGENT_EXPORT_TIMEOUT_S": "60",  # an unbounded shutdown would wait this long
            "SALES_AGENT_SHUTDOWN_TIMEOUT_S": "1",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_BSP_MAX_QUEUE_SIZE": "256",
            "BURST_SPANS": "5000",  # far more than the queue holds: the oldest are dropped
        },
        timeout_s=60,
    )
    assert result["ops_done"] is True
    # The deadline passed with exports still hanging: shutdown gave up instead of waiting them out.
    assert result["shutdown_ok"] is False
    assert result["shutdown_s"] < 30  # i.e. not the 60 s export timeout (actual: about 1 s)


@pytest.fixture
def otlp_grpc_receiver() -> Iterator[tuple[str, Received]]:
    """The local OTLP sink over gRPC: (OTEL_EXPORTER_OTLP_ENDPOINT, what it decoded)."""
    with in_thread(lambda: run_otlp_sink(grpc_port=0)) as sink:
        assert sink.grpc_url is not None
        yield sink.grpc_url, sink.received


def test_real_otlp_grpc_export(otlp_grpc_receiver):
    url, received = otlp_grpc_receiver
    result, _ = run_child({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert result["shutdown_ok"] is True
    assert result["status"]["protocol"] == "grpc"
    trace_id = bytes.fromhex(result["trace_id"])
    spans = [
        s for req in received.traces for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans
    ]
    assert any(s.name == "child-operation" and s.trace_id == trace_id for s in spans)
    assert _attrs(received.traces[0].resource_spans[0].resource.attributes)["service.name"] == "child-svc"
    [ours] = _histogram_points(received.metrics, "sales_agent.tool.duration")
    assert _bucket_upper_bound(ours, 0.3) < 1.0
    records = _log_records(received.logs)
    assert any(r.body.string_value == "child log for [EMAIL]" and r.trace_id == trace_id for r in records)
