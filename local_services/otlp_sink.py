"""A local OTLP receiver (``sales-agent otlp-sink``): the Collector's stand-in for tests and benchmarks.

It decodes every export with opentelemetry-proto — protobuf over HTTP (``POST /v1/traces``,
``/v1/metrics``, ``/v1/logs``, gzip or not) and, with ``--grpc-port``, the three OTLP gRPC services —
and counts spans, metric data points and log records, so "0 dropped" is checked against what really
arrived, not what was sent. The last ``keep`` decoded requests per signal stay in memory for
in-process callers (``running.received.traces`` ...).

``--keep-bodies DIR`` also writes every decoded request (protobuf, one file per request) to DIR, for
scans of what really left a process (the PII test, ``sales-agent gameday``). ``GET /metrics`` answers
in Prometheus' text format, so a Prometheus can scrape the stand-in's health as it scrapes a Collector.

Faults (``POST /admin/fault`` ``{"mode": "ok|hang"}`` or ``--fault``): ``ok`` answers at once;
``hang`` reads the request and never answers (a wedged collector), on HTTP and gRPC alike. "Down" is
no sink at all: a closed port. ``GET /admin/stats`` returns the counters, ``POST /admin/reset`` zeroes
them, forgets the kept requests and clears the fault; ``GET /health`` is liveness.

    sales-agent otlp-sink [--host 127.0.0.1] [--port 4318] [--grpc-port 4317] [--fault ok|hang] [--keep N]
                          [--keep-bodies DIR]

Hand-written on aiohttp and grpc.aio (both already dependencies): the Collector is not installable
here, and its debug exporter neither counts nor answers an admin API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agent.vocabulary.fault_modes import OTLP_SINK_FAULT_MODES
from local_services._serve import bound_port, requested_fault, serve_main

log = logging.getLogger(__name__)

DEFAULT_KEEP = 100


def _spans(message: Any) -> int:
    return sum(len(scope.spans) for resource in message.resource_spans for scope in resource.scope_spans)


def _metric_points(message: Any) -> int:
    return sum(
        len(getattr(metric, metric.WhichOneof("data")).data_points)
        for resource in message.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.WhichOneof("data")
    )


def _log_records(message: Any) -> int:
    return sum(len(scope.log_records) for resource in message.resource_logs for scope in resource.scope_logs)


@dataclass(frozen=True)
class Signal:
    name: str  # also the HTTP path: /v1/<name>
    request_type: type[Message]
    response_type: type[Message]
    counter: str  # the SinkStats field its items add to
    count: Callable[[Any], int]


SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal("traces", ExportTraceServiceRequest, ExportTraceServiceResponse, "spans", _spans),
        Signal(
            "metrics",
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
            "metric_points",
            _metric_points,
        ),
        Signal("logs", ExportLogsServiceRequest, ExportLogsServiceResponse, "log_records", _log_records),
    )
}


@dataclass
class SinkStats:
    spans: int = 0
    metric_points: int = 0
    log_records: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # "http/traces", "grpc/logs", ...
    bad_requests: int = 0
    hung_requests: int = 0


class Received:
    """The last ``keep`` decoded export requests of each signal, oldest first."""

    def __init__(self, keep: int) -> None:
        self.traces: deque[ExportTraceServiceRequest] = deque(maxlen=keep)
        self.metrics: deque[ExportMetricsServiceRequest] = deque(maxlen=keep)
        self.logs: deque[ExportLogsServiceRequest] = deque(maxlen=keep)

    def of(self, signal: str) -> deque[Any]:
        return {"traces": self.traces, "metrics": self.metrics, "logs": self.logs}[signal]


class OtlpSink:
    """The receiver's state (fault, counters, kept requests) and its HTTP application."""

    def __init__(self, fault: str = "ok", keep: int = DEFAULT_KEEP, keep_bodies: Path | None = None) -> None:
        if fault not in OTLP_SINK_FAULT_MODES:
            raise ValueError(
                f"unknown fault mode {fault!r}; expected one of {', '.join(OTLP_SINK_FAULT_MODES)}"
            )
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.fault = fault
        self.keep = keep
        self.keep_bodies = keep_bodies
        self._body_numbers = itertools.count(1)
        if keep_bodies is not None:
            keep_bodies.mkdir(parents=True, exist_ok=True)
        self.stats = SinkStats()
        self.received = Received(keep)
        self._release = asyncio.Event()  # set at shutdown: hung requests end then
        self.app = web.Application(client_max_size=64 * 2**20)
        self.app.add_routes(
            [
                web.post("/v1/{signal:traces|metrics|logs}", self._http_export),
                web.get("/health", self._health),
                web.get("/metrics", self._metrics),
                web.post("/admin/fault", self._set_fault),
                web.get("/admin/stats", self._stats),
                web.post("/admin/reset", self._reset),
            ]
        )

    async def export(self, signal: Signal, message: Message, protocol: str) -> None:
        """Count one decoded request (after the fault has had its say)."""
        if self.fault == "hang":
            self.stats.hung_requests += 1
            await self._release.wait()
        key = f"{protocol}/{signal.name}"
        self.stats.requests[key] = self.stats.requests.get(key, 0) + 1
        setattr(self.stats, signal.counter, getattr(self.stats, signal.counter) + signal.count(message))
        self.received.of(signal.name).append(message)  # type: ignore[arg-type]
        if self.keep_bodies is not None:
            path = self.keep_bodies / f"{next(self._body_numbers):07d}-{signal.name}.pb"
            path.write_bytes(message.SerializeToString())

    def release(self) -> None:
        self._release.set()

    async def _http_export(self, request: web.Request) -> web.Response:
        signal = SIGNALS[request.match_info["signal"]]
        body = await request.read()  # aiohttp has already undone Content-Encoding: gzip
        try:
            message = signal.request_type.FromString(body)
        except DecodeError as exc:  # a sink must not die on a bad body
            self.stats.bad_requests += 1
            return web.Response(status=400, text=f"not an OTLP {signal.request_type.__name__}: {exc}")
        await self.export(signal, message, "http")
        return web.Response(
            body=signal.response_type().SerializeToString(), content_type="application/x-protobuf"
        )

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics(self, _request: web.Request) -> web.Response:
        s = self.stats
        lines = ["# TYPE otlp_sink_requests_total counter"]
        lines += [f'otlp_sink_requests_total{{request="{key}"}} {n}' for key, n in sorted(s.requests.items())]
        for name in ("spans", "metric_points", "log_records"):
            lines += [f"# TYPE otlp_sink_{name}_total counter", f"otlp_sink_{name}_total {getattr(s, name)}"]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def _set_fault(self, request: web.Request) -> web.Response:
        mode = await requested_fault(request, OTLP_SINK_FAULT_MODES)
        self.fault = mode
        if mode == "ok":
            self._release.set()  # requests hanging so far get their answer
            self._release = asyncio.Event()
        log.info("otlp sink fault set to %s", mode)
        return web.json_response({"fault": mode})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response({"fault": self.fault, **self.stats.__dict__})

    async def _reset(self, _request: web.Request) -> web.Response:
        self._release.set()
        self._release = asyncio.Event()
        self.fault = "ok"
        self.stats = SinkStats()
        self.received = Received(self.keep)
        return web.json_response({"reset": True})


def _grpc_server(sink: OtlpSink, host: str, port: int) -> tuple[Any, int]:
    """A grpc.aio server with the three OTLP Export services feeding ``sink``; (server, bound port).

    Imported here: grpc costs start-up time that an HTTP-only sink does not need.
    """
    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(self, request: ExportTraceServiceRequest, _context: Any) -> Message:
            await sink.export(SIGNALS["traces"], request, "grpc")
            return ExportTraceServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        async def Export(self, request: ExportMetricsServiceRequest, _context: Any) -> Message:
            await sink.export(SIGNALS["metrics"], request, "grpc")
            return ExportMetricsServiceResponse()

    class Logs(logs_service_pb2_grpc.LogsServiceServicer):
        async def Export(self, request: ExportLogsServiceRequest, _context: Any) -> Message:
            await sink.export(SIGNALS["logs"], request, "grpc")
            return ExportLogsServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpc's way of saying the bind failed (in use, not permitted)
        raise OSError(f"the gRPC port {port} cannot be bound ({exc})") from exc
    return server, bound


@dataclass
class RunningOtlpSink:
    sink: OtlpSink
    url: str  # OTLP/HTTP base: OTEL_EXPORTER_OTLP_ENDPOINT
    port: int
    grpc_port: int | None = None

    @property
    def grpc_url(self) -> str | None:
        """The OTLP/gRPC endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` with protocol ``grpc``)."""
        return None if self.grpc_port is None else self.url.rsplit(":", 1)[0] + f":{self.grpc_port}"

    @property
    def stats(self) -> SinkStats:
        return self.sink.stats

    @property
    def received(self) -> Received:
        return self.sink.received


@contextlib.asynccontextmanager
async def run_otlp_sink(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    grpc_port: int | None = None,
    fault: str = "ok",
    keep: int = DEFAULT_KEEP,
    keep_bodies: Path | None = None,
) -> AsyncIterator[RunningOtlpSink]:
    """Serve a sink in this event loop for the block (``port=0`` / ``grpc_port=0`` pick free ports;
    ``grpc_port=None`` serves HTTP only)."""
    sink = OtlpSink(fault, keep, keep_bodies)
    runner = web.AppRunner(sink.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    grpc_server = None
    try:
        await web.TCPSite(runner, host, port).start()
        bound_grpc = None
        if grpc_port is not None:
            grpc_server, bound_grpc = _grpc_server(sink, host, grpc_port)
            await grpc_server.start()
        http_port = bound_port(runner)
        yield RunningOtlpSink(sink, f"http://{host}:{http_port}", http_port, bound_grpc)
    finally:
        sink.release()
        if grpc_server is not None:
            await grpc_server.stop(grace=None)
        await runner.cleanup()


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otlp-sink", description="Local OTLP receiver (HTTP and gRPC) that decodes and counts"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318, help="OTLP/HTTP; 0 picks a free port (READY line)")
    parser.add_argument(
        "--grpc-port", type=int, default=None, help="also serve OTLP/gRPC here (0: a free port)"
    )
    parser.add_argument("--fault", default="ok", choices=OTLP_SINK_FAULT_MODES, help="fault mode at start")
    parser.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="decoded requests kept per signal")
    parser.add_argument("--keep-bodies", type=Path, default=None, help="write every request's protobuf here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    return serve_main(
        "otlp-sink",
        lambda: run_otlp_sink(
            args.host,
            args.port,
            grpc_port=args.grpc_port,
            fault=args.fault,
            keep=args.keep,
            keep_bodies=args.keep_bodies,
        ),
        host=args.host,
        port=args.port,
        extra_ports=lambda running: {} if running.grpc_port is None else {"grpc": running.grpc_port},
    )


if __name__ == "__main__":
    raise SystemExit(main())
