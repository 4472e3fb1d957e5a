"""OTLP exporters (http/protobuf or grpc) wrapped so export health is visible and quiet.

- ``ExportMonitor`` remembers the last success/failure per signal (``Telemetry.export_status()``
  for the health check) and counts failures in ``sales_agent.telemetry.export.failures``.
- The OTel exporters log every failed batch (and every retry); ``RateLimitFilter`` lets one record
  per logger and message through per interval, so a dead collector costs one line a minute, not one
  per batch.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.metrics import Counter, Meter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from telemetry import names
from telemetry.settings import TelemetrySettings

SIGNALS = ("traces", "metrics", "logs")
# Loggers of the SDK's export path: the OTLP exporters, their HTTP client, the batch processors and
# the periodic metric reader. Filters only apply to records of the logger they are attached to.
EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk._logs._internal.export",
)


class RateLimitFilter(logging.Filter):
    """At most one record per (logger, message template) per ``interval_s``; the next one that passes
    says how many were suppressed."""

    def __init__(self, interval_s: float, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            note = f" ({suppressed} similar messages suppressed in the last {self.interval_s:g}s)"
            record.msg = str(record.msg) + (note.replace("%", "%%") if record.args else note)
        return True


def install_export_log_rate_limit(interval_s: float) -> RateLimitFilter:
    flt = RateLimitFilter(interval_s)
    for name in EXPORT_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RateLimitFilter)]:
            logger.removeFilter(old)
        logger.addFilter(flt)
    return flt


@dataclass
class SignalStatus:
    last_success_unix: float | None = None
    last_failure_unix: float | None = None
    failures: int = 0
    last_error: str | None = None
    in_flight_since_unix: float | None = None

    def in_flight_s(self, now: float) -> float | None:
        return None if self.in_flight_since_unix is None else now - self.in_flight_since_unix

    def healthy(self, now: float, stall_after_s: float) -> bool:
        """No export stuck past its timeout, and no failure yet or a success since the last one."""
        if self.in_flight_since_unix is not None and now - self.in_flight_since_unix > stall_after_s:
            return False  # a hanging collector: the request neither succeeds nor fails yet
        if self.last_failure_unix is None:
            return True
        return self.last_success_unix is not None and self.last_success_unix >= self.last_failure_unix


class ExportMonitor:
    """Export outcomes per signal. Thread-safe: exports run on the SDK's worker threads."""

    def __init__(self, stall_after_s: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._status = {signal: SignalStatus() for signal in SIGNALS}
        self._failures: Counter | None = None
        # An export running longer than this (the request timeout plus slack) counts as unhealthy.
        self.stall_after_s = stall_after_s

    def bind_meter(self, meter: Meter) -> None:
        self._failures = meter.create_counter(
            names.TELEMETRY_EXPORT_FAILURES,
            unit="{batch}",
            description="OTLP export batches that failed (collector unreachable, hanging or rejecting)",
        )
        # Series exist from the start (at 0), so increase()/rate() alerts see the first failure.
        for signal in SIGNALS:
            self._failures.add(0, {names.TELEMETRY_SIGNAL: signal})

    def begin(self, signal: str) -> None:
        with self._lock:
            self._status[signal].in_flight_since_unix = time.time()

    def success(self, signal: str) -> None:
        with self._lock:
            self._status[signal].last_success_unix = time.time()
            self._status[signal].in_flight_since_unix = None

    def failure(self, signal: str, error: str) -> None:
        with self._lock:
            status = self._status[signal]
            status.last_failure_unix = time.time()
            status.in_flight_since_unix = None
            status.failures += 1
            status.last_error = error
        if self._failures is not None:
            self._failures.add(1, {names.TELEMETRY_SIGNAL: signal})

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        with self._lock:
            return {
                signal: {
                    "healthy": s.healthy(now, self.stall_after_s),
                    "export_in_flight_s": s.in_flight_s(now),
                    "last_success_unix": s.last_success_unix,
                    "last_failure_unix": s.last_failure_unix,
                    "failures": s.failures,
                    "last_error": s.last_error,
                }
                for signal, s in self._status.items()
            }


class _Abandonable:
    """``abandon()``: shut the inner OTLP exporter down now and drop whatever comes after.

    For a shutdown with the collector unreachable: the SDK exporter then ends the retry wait of an
    export in flight at once (its shutdown event), and the processors' final exports return at once
    instead of retrying into a refused port.
    """

    inner: Any
    _abandoned: bool = False

    def abandon(self) -> None:
        if not self._abandoned:
            self._abandoned = True
            self.inner.shutdown()


class MonitoredSpanExporter(_Abandonable, SpanExporter):
    def __init__(self, inner: SpanExporter, monitor: ExportMonitor) -> None:
        self.inner = inner
        self._monitor = monitor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._abandoned:
            return SpanExportResult.FAILURE
        self._monitor.begin("traces")
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the batch worker
            self._monitor.failure("traces", repr(exc))
            return SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._monitor.success("traces")
        else:
            self._monitor.failure("traces", f"{len(spans)} spans not exported")
        return result

    def shutdown(self) -> None:
        if not self._abandoned:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class MonitoredLogExporter(_Abandonable, LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, monitor: ExportMonitor) -> None:
        self.inner = inner
        self._monitor = monitor

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._abandoned:
            return LogRecordExportResult.FAILURE
        self._monitor.begin("logs")
        try:
            result = self.inner.export(batch)
        except Exception as exc:
            self._monitor.failure("logs", repr(exc))
            return LogRecordExportResult.FAILURE
        if result is LogRecordExportResult.SUCCESS:
            self._monitor.success("logs")
        else:
            self._monitor.failure("logs", f"{len(batch)} log records not exported")
        return result

    def shutdown(self) -> None:
        if not self._abandoned:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class MonitoredMetricExporter(_Abandonable, MetricExporter):
    def __init__(self, inner: MetricExporter, monitor: ExportMonitor) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self._monitor = monitor

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self._abandoned:
            return MetricExportResult.FAILURE
        self._monitor.begin("metrics")
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._monitor.failure("metrics", repr(exc))
            return MetricExportResult.FAILURE
        if result is MetricExportResult.SUCCESS:
            self._monitor.success("metrics")
        else:
            self._monitor.failure("metrics", "metrics batch not exported")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if not self._abandoned:
            self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


@dataclass
class OtlpExporters:
    spans: SpanExporter
    metrics: MetricExporter
    logs: LogRecordExporter


def build_otlp_exporters(settings: TelemetrySettings) -> OtlpExporters | None:
    """The three OTLP exporters, or None when no endpoint is configured."""
    endpoint = settings.otlp_endpoint
    if not endpoint:
        return None
    timeout = settings.export_timeout_s
    if settings.otlp_protocol == "grpc":
        # Imported only when used: grpc is heavy.
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        return OtlpExporters(
            spans=GrpcSpans(endpoint=endpoint, timeout=timeout),
            metrics=GrpcMetrics(endpoint=endpoint, timeout=timeout),
            logs=GrpcLogs(endpoint=endpoint, timeout=timeout),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    from telemetry.otlp_spans import DirectEncodingSpanExporter

    return OtlpExporters(
        # The SDK's OTLP/HTTP span exporter with a faster encoder (telemetry/otlp_spans.py).
        spans=DirectEncodingSpanExporter(endpoint=settings.otlp_signal_endpoint("traces"), timeout=timeout),
        metrics=OTLPMetricExporter(endpoint=settings.otlp_signal_endpoint("metrics"), timeout=timeout),
        logs=OTLPLogExporter(endpoint=settings.otlp_signal_endpoint("logs"), timeout=timeout),
    )


def otlp_endpoints(settings: TelemetrySettings) -> list[str]:
    """The URLs the enabled OTLP signals are sent to (for the reachability probe at shutdown)."""
    if not settings.otlp_endpoint:
        return []
    switches = {"traces": settings.traces_exporter, "metrics": settings.metrics_exporter}
    switches["logs"] = settings.logs_exporter
    enabled = [signal for signal in SIGNALS if switches[signal] == "otlp"]
    if settings.otlp_protocol == "grpc":
        return [settings.otlp_endpoint] if enabled else []
    urls = {settings.otlp_signal_endpoint(signal) for signal in enabled}  # type: ignore[arg-type]
    return sorted(url for url in urls if url)


def endpoint_accepts_connections(url: str, timeout_s: float) -> bool:
    """True when a TCP connection to ``url``'s host and port opens within ``timeout_s``.

    Hand-written because the SDK's OTLP exporters cannot be told "one attempt only": against a
    collector that refuses connections, each final export at shutdown spends its retry backoff
    (1 s, then 2 s) before giving up. A refused or unanswered connect says the same in milliseconds.
    """
    parts = urlsplit(url if "//" in url else f"//{url}")
    default_port = 443 if parts.scheme == "https" else 4317 if parts.scheme in ("", "grpc") else 4318
    try:
        host, port = parts.hostname or "localhost", parts.port or default_port
    except ValueError:  # a malformed port: the exporters cannot reach it either
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
