"""Small pieces of the telemetry core: settings, rate limiting, export status, exporter choice."""

from __future__ import annotations

import logging
import time

import pytest
from pydantic import ValidationError

from telemetry import TelemetrySettings, setup_telemetry
from telemetry.exporters import ExportMonitor, RateLimitFilter, build_otlp_exporters
from telemetry.resource import HashedOnceResource, build_resource, parse_resource_attributes
from telemetry.views import AllExcept


def _record(msg: str, *args: object, name: str = "opentelemetry.exporter.x") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_rate_limit_filter_lets_one_record_per_interval_and_counts_the_rest():
    now = [100.0]
    flt = RateLimitFilter(60.0, clock=lambda: now[0])
    assert flt.filter(_record("Failed to export %s batch", "spans"))
    assert not flt.filter(_record("Failed to export %s batch", "spans"))
    assert not flt.filter(_record("Failed to export %s batch", "spans"))
    assert flt.filter(_record("another message"))  # other messages are independent
    now[0] += 61
    record = _record("Failed to export %s batch", "spans")
    assert flt.filter(record)
    assert (
        record.getMessage() == "Failed to export spans batch (2 similar messages suppressed in the last 60s)"
    )


def test_export_monitor_reports_failures_recoveries_and_stalls():
    monitor = ExportMonitor(stall_after_s=3600)
    monitor.begin("traces")
    monitor.failure("traces", "connection refused")
    status = monitor.snapshot()["traces"]
    assert (
        status["healthy"] is False
        and status["failures"] == 1
        and status["last_error"] == "connection refused"
    )
    monitor.begin("traces")
    monitor.success("traces")
    assert monitor.snapshot()["traces"]["healthy"] is True
    # A request that neither succeeds nor fails (hanging collector) turns unhealthy after the stall time.
    monitor.stall_after_s = 0.0
    monitor.begin("logs")
    time.sleep(0.001)  # two wall-clock reads in a row can be equal: the stall needs time to pass
    status = monitor.snapshot()["logs"]
    assert status["export_in_flight_s"] is not None and status["healthy"] is False


def test_settings_reject_unsupported_protocol_clearly():
    with pytest.raises(ValidationError, match="grpc"):
        TelemetrySettings(OTEL_EXPORTER_OTLP_PROTOCOL="http/json")
    with pytest.raises(ValidationError):
        TelemetrySettings(SALES_AGENT_METRICS_PORT=70000)


def test_http_exporters_get_signal_paths_and_grpc_is_selectable(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    http = build_otlp_exporters(TelemetrySettings(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/"))
    assert http is not None
    assert http.spans._endpoint == "http://collector:4318/v1/traces"
    assert http.metrics._endpoint == "http://collector:4318/v1/metrics"
    assert http.logs._endpoint == "http://collector:4318/v1/logs"
    grpc = build_otlp_exporters(
        TelemetrySettings(
            OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4317", OTEL_EXPORTER_OTLP_PROTOCOL="grpc"
        )
    )
    assert grpc is not None and type(grpc.spans).__module__.startswith(
        "opentelemetry.exporter.otlp.proto.grpc"
    )
    for exporter in (http.spans, http.metrics, http.logs, grpc.spans, grpc.metrics, grpc.logs):
        exporter.shutdown()
    assert build_otlp_exporters(TelemetrySettings()) is None


def test_resource_attribute_parsing():
    assert parse_resource_attributes("a=1, b=x%20y,,bad,=v") == {"a": "1", "b": "x y"}


def test_resource_is_hashed_once_and_stays_equal_to_the_sdks(monkeypatch):
    """The encoders group every span by resource: the hash is kept, its value and equality the SDK's."""
    from opentelemetry.sdk.resources import Resource

    resource = build_resource(TelemetrySettings())
    assert isinstance(resource, HashedOnceResource)
    plain = Resource(resource.attributes, resource.schema_url)
    assert resource == plain and plain == resource and hash(resource) == hash(plain)
    assert {plain: "grouped"}[resource] == "grouped"
    monkeypatch.setattr(Resource, "__hash__", lambda self: pytest.fail("hashed again"))
    hash(resource)
    monkeypatch.undo()
    # After a fork the SDK merges the re-detected process attributes in: still hashed once.
    merged = resource.merge(Resource({"process.pid": 4242}))
    assert isinstance(merged, HashedOnceResource) and merged.attributes["process.pid"] == 4242
    assert hash(merged) == hash(Resource(merged.attributes, merged.schema_url))


def test_deny_list_label_set():
    keys = AllExcept({"session.id"})
    assert "tenant.id" in keys and "session.id" not in keys


def test_setup_is_idempotent(otel):
    assert setup_telemetry(TelemetrySettings(OTEL_SERVICE_NAME="other")) is otel.telemetry


@pytest.mark.parametrize(
    ("kind", "name", "unit", "rule"),
    [
        ("histogram", "lk.agents.turn.e2e_latency", "s", "livekit seconds histograms"),
        ("counter", "lk.agents.usage.llm_input_tokens", "", "livekit other instruments"),
        ("histogram", "gen_ai.client.operation.duration", "s", "gen_ai seconds histograms"),
        ("histogram", "gen_ai.client.token.usage", "{token}", "gen_ai token histograms"),
        ("histogram", "sales_agent.session.duration", "s", "session/call durations"),
        ("histogram", "sales_agent.call.duration", "s", "session/call durations"),
        ("histogram", "sales_agent.tool.duration", "s", "seconds histograms"),
        ("histogram", "http.client.request.duration", "s", "seconds histograms"),
        ("histogram", "http.client.duration", "ms", "everything else"),  # old semconv: ms buckets fit
        ("counter", "sales_agent.tool.calls", "", "everything else"),
        ("histogram", "sales_agent.session.duration_in_ms", "ms", "everything else"),
    ],
)
def test_exactly_one_view_matches_each_instrument(kind, name, unit, rule):
    from opentelemetry.sdk.metrics import MeterProvider  # a private provider, never installed globally

    from telemetry.views import build_views

    meter = MeterProvider().get_meter("views-test")
    instrument = (meter.create_histogram if kind == "histogram" else meter.create_counter)(name, unit=unit)
    matching = [view for view in build_views(detail="all") if view._match(instrument)]
    assert [view._rule.name for view in matching] == [rule]


@pytest.mark.parametrize("name", ["gen_ai.client.token.usage", "lk.agents.usage.llm_input_tokens"])
def test_livekit_duplicates_of_ours_are_not_aggregated_by_default(name):
    """livekit's per-attempt token and duration instruments repeat ours: dropped unless detail=all."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from telemetry.views import LIVEKIT_DUPLICATES, build_views

    for detail, exported in (("default", False), ("all", True)):
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], views=build_views(detail=detail))
        meter = provider.get_meter("views-test")
        meter.create_counter(name).add(3, {"model_name": "m"})
        meter.create_counter(LIVEKIT_DUPLICATES[name]).add(3, {"gen_ai.token.type": "input"})
        data = reader.get_metrics_data()
        seen = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        assert (name in seen) is exported, detail
        assert LIVEKIT_DUPLICATES[name] in seen  # ours is always kept
        provider.shutdown()
