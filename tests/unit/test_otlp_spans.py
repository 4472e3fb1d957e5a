"""The hand-written span encoder says exactly what the SDK's encoder says, for every kind of span."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from telemetry.otlp_spans import DirectEncodingSpanExporter, encode_spans_request
from telemetry.resource import HashedOnceResource

VALUES: dict[str, Any] = {
    "str": "héllo wörld ✓",
    "empty": "",
    "long": "x" * 300,
    "true": True,
    "false": False,
    "zero": 0,
    "int": 42,
    "big": 2**62,
    "negative": -7,
    "int64_min": -(2**63),
    "float": 3.25,
    "negative_float": -0.5,
    "nan": float("nan"),
    "inf": float("inf"),
    "bytes": b"\x00\xffraw",
    "strs": ["a", "", "c"],
    "ints": [1, -2, 2**40],
    "floats": (0.5, 1.5),
    "bools": [True, False],
    "empty_list": [],
    "mapping": {"k": "v", "n": 1, "nested": {"deep": [1, "two"]}},
}


def _check(spans: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_spans_request(spans))
    theirs = encode_spans(spans)
    # NaN != NaN in a message compare: compare the SDK's serialization of both (same field order).
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


def _recorded(**limits: int) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=HashedOnceResource({"service.name": "encoder-test", "n": 3}, "https://schema/1"),
        span_limits=SpanLimits(**limits) if limits else None,
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_spans_as_the_sdk_records_them() -> None:
    provider, exporter = _recorded()
    tracer = provider.get_tracer("scope.a", "1.2.3", schema_url="https://schema/a")
    other = provider.get_tracer("scope.b")  # no version, no schema: a second ScopeSpans
    remote = SpanContext(
        0x1234,
        0x5678,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "abc"), ("sa", "x1")]),
    )
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes=VALUES) as root:
        root.add_event("retry", {"attempt": 2, "why": "timeout"})
        root.add_event("")  # no name, no attributes
        for kind in SpanKind:
            with other.start_as_current_span(f"child {kind.name}", kind=kind):
                pass
        with tracer.start_as_current_span("failed") as failed:
            failed.set_status(Status(StatusCode.ERROR, "crm is unavailable"))
        with tracer.start_as_current_span("ok") as ok:
            ok.set_status(Status(StatusCode.OK))
        linked = root.get_span_context()
        with tracer.start_as_current_span(
            "linked", links=[Link(linked, {"why": "follows"}), Link(linked), Link(remote, {"n": 1})]
        ):
            pass
    from opentelemetry import trace

    with tracer.start_as_current_span(
        "remote parent", context=trace.set_span_in_context(trace.NonRecordingSpan(remote))
    ):
        pass
    spans = list(exporter.get_finished_spans())
    assert len(spans) == 10
    _check(spans)
    _check(spans[:1])
    _check([])
    provider.shutdown()


def test_dropped_counts_and_spans_of_two_resources() -> None:
    provider, exporter = _recorded(max_span_attributes=2, max_events=1, max_links=1, max_event_attributes=1)
    tracer = provider.get_tracer("limited")
    ctx = SpanContext(1, 2, is_remote=False)
    with tracer.start_as_current_span(
        "full", attributes={"a": 1, "b": 2, "c": 3}, links=[Link(ctx), Link(ctx)]
    ) as s:
        s.add_event("one", {"x": 1, "y": 2})
        s.add_event("two")
    spans = list(exporter.get_finished_spans())
    assert spans[0].dropped_attributes and spans[0].dropped_events and spans[0].dropped_links
    other = ReadableSpan(
        name="elsewhere",
        context=SpanContext(3, 4, is_remote=False),
        resource=Resource({"service.name": "other"}),
        attributes={"k": "v"},
        events=[Event("e", {"n": 1}, timestamp=5)],
        start_time=10,
        end_time=20,
    )
    no_scope = ReadableSpan(
        name="no scope", context=SpanContext(5, 6, is_remote=False), start_time=1, end_time=2
    )
    _check([spans[0], other, spans[0], no_scope])
    provider.shutdown()


def test_a_value_the_sdk_refuses_is_left_out_the_same_way(caplog: pytest.LogCaptureFixture) -> None:
    """Spans handed over without the SDK's attribute cleaning (a processor's rebinding can do that)."""
    span = ReadableSpan(
        name="raw",
        context=SpanContext(7, 8, is_remote=False),
        resource=Resource({}),
        instrumentation_scope=InstrumentationScope("raw"),
        attributes={"ok": "kept", "huge": 2**70, "object": object(), "none": None, "seq_none": [None, "x"]},
        start_time=1,
        end_time=2,
    )
    with caplog.at_level(logging.ERROR):
        _check([span])
    assert sum("Failed to encode key huge" in r.getMessage() for r in caplog.records) == 2  # ours, the SDK's
    decoded = ExportTraceServiceRequest.FromString(encode_spans_request([span]))
    keys = [kv.key for kv in decoded.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert keys == ["ok", "none", "seq_none"]


def test_the_exporter_sends_the_encoded_request_through_the_sdks_client() -> None:
    provider, exporter = _recorded()
    with provider.get_tracer("t").start_as_current_span("sent", attributes={"a": 1}):
        pass
    spans = list(exporter.get_finished_spans())
    sent: list[bytes] = []

    class Result:
        success, error, status_code = True, None, None

    direct = DirectEncodingSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    direct._client.export = lambda data, *a, **k: sent.append(data) or Result()  # type: ignore[method-assign]
    assert direct.export(spans) is SpanExportResult.SUCCESS
    assert sent == [encode_spans_request(spans)]
    Result.success, Result.status_code = False, 503
    assert direct.export(spans) is SpanExportResult.FAILURE
    direct._max_request_size = 10  # over the size limit: dropped before it is sent
    assert direct.export(spans) is SpanExportResult.FAILURE and len(sent) == 2
    direct.shutdown()
    assert direct.export(spans) is SpanExportResult.FAILURE and len(sent) == 2
    provider.shutdown()
