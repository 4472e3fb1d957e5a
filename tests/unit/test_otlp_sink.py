"""The local OTLP receiver decodes what the SDK's real exporters send, over HTTP and gRPC, and fails
on purpose when told to (hang), answering its admin API like every stand-in."""

from __future__ import annotations

import asyncio
import gzip

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from local_services.otlp_sink import run_otlp_sink


def _emit_spans(exporter, n: int) -> None:
    # A private provider (not the global one): the exporter under test talks to the sink for real.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("sink-test")
    for i in range(n):
        with tracer.start_as_current_span(f"span-{i}"):
            pass
    provider.shutdown()


def _emit_metrics_and_logs(url: str) -> None:
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{url}/v1/metrics"))
    meters = MeterProvider(metric_readers=[reader])
    counter = meters.get_meter("sink-test").create_counter("sink.test.count")
    counter.add(1, {"k": "a"})
    counter.add(1, {"k": "b"})
    meters.shutdown()  # exports once: one counter, two data points
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs")))
    logger = logs.get_logger("sink-test")
    for body in ("one", "two", "three"):
        logger.emit(body=body)
    logs.shutdown()


async def test_http_export_of_every_signal_is_decoded_and_counted() -> None:
    async with run_otlp_sink() as sink:
        await asyncio.to_thread(_emit_spans, OTLPSpanExporter(endpoint=f"{sink.url}/v1/traces"), 5)
        await asyncio.to_thread(_emit_metrics_and_logs, sink.url)
        assert (sink.stats.spans, sink.stats.metric_points, sink.stats.log_records) == (5, 2, 3)
        assert sink.stats.requests == {"http/traces": 5, "http/metrics": 1, "http/logs": 3}
        assert sink.stats.bad_requests == 0
        spans = [s.name for r in sink.received.traces for rs in r.resource_spans for ss in rs.scope_spans
                 for s in ss.spans]  # fmt: skip
        assert spans == [f"span-{i}" for i in range(5)]
        async with httpx.AsyncClient(base_url=sink.url) as client:
            stats = (await client.get("/admin/stats")).json()
        assert stats["spans"] == 5 and stats["fault"] == "ok"


async def test_grpc_export_is_decoded_and_counted() -> None:
    async with run_otlp_sink(grpc_port=0) as sink:
        assert sink.grpc_url is not None
        exporter = GrpcSpanExporter(endpoint=sink.grpc_url, insecure=True)
        await asyncio.to_thread(_emit_spans, exporter, 3)
        assert sink.stats.spans == 3
        assert sink.stats.requests == {"grpc/traces": 3}


async def test_gzip_bodies_are_decoded_and_bad_bodies_are_rejected_and_counted() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="zipped")
    async with run_otlp_sink() as sink, httpx.AsyncClient(base_url=sink.url) as client:
        zipped = await client.post(
            "/v1/traces",
            content=gzip.compress(request.SerializeToString()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/x-protobuf"},
        )
        assert zipped.status_code == 200
        bad = await client.post("/v1/traces", content=b"\xff\xfenot protobuf")
        assert bad.status_code == 400 and "ExportTraceServiceRequest" in bad.text
        assert (sink.stats.spans, sink.stats.bad_requests) == (1, 1)


async def test_hang_holds_requests_until_the_fault_is_cleared_and_reset_forgets_everything() -> None:
    async with run_otlp_sink(fault="hang") as sink, httpx.AsyncClient(base_url=sink.url) as client:
        body = ExportTraceServiceRequest().SerializeToString()
        pending = asyncio.create_task(client.post("/v1/traces", content=body, timeout=30))
        for _ in range(200):  # bounded: until the sink holds the request
            if sink.stats.hung_requests:
                break
            await asyncio.sleep(0.01)
        assert sink.stats.hung_requests == 1 and not pending.done()
        assert (await client.post("/admin/fault", json={"mode": "ok"})).json() == {"fault": "ok"}
        assert (await asyncio.wait_for(pending, 10)).status_code == 200
        bad = await client.post("/admin/fault", json={"mode": "down"})
        assert bad.status_code == 400 and "ok, hang" in bad.json()["error"]
        assert (await client.post("/admin/reset")).json() == {"reset": True}
        stats = (await client.get("/admin/stats")).json()
        assert stats["requests"] == {} and stats["hung_requests"] == 0
        assert not sink.received.traces
