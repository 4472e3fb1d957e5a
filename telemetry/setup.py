"""One call sets up traces, metrics and logs for the whole process.

Library code (``agent/``, ``local_services/``) only uses the OpenTelemetry *API*
(``trace.get_tracer``, ``metrics.get_meter``, ``logging``); this module installs the SDK behind it.
The global providers are set-once per process, so ``setup_telemetry`` is idempotent: a second
call returns the first handle.

Export never happens on the caller's path: spans and logs go through bounded batch queues (oldest
dropped when full), metrics are collected by a periodic reader, every OTLP request has a timeout,
and ``Telemetry.shutdown`` returns within ``SALES_AGENT_SHUTDOWN_TIMEOUT_S`` even if the collector
hangs (whatever is still unexported then is dropped).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import stamina.instrumentation
from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider, TraceBasedExemplarFilter
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from telemetry.config_errors import env_name
from telemetry.exporters import (
    ExportMonitor,
    MonitoredLogExporter,
    MonitoredMetricExporter,
    MonitoredSpanExporter,
    build_otlp_exporters,
    endpoint_accepts_connections,
    install_export_log_rate_limit,
    otlp_endpoints,
)
from telemetry.http_semconv import opt_in_stable_http_semconv
from telemetry.livekit_duplicates import skip_livekit_duplicate_recording
from telemetry.logs import OTelBridgeHandler, remove_logging, setup_logging
from telemetry.prometheus import MetricsServer, create_metrics_server
from telemetry.redaction import RedactingLogProcessor, RedactingSpanProcessor, Redactor
from telemetry.resource import build_resource
from telemetry.settings import TelemetrySettings
from telemetry.span_budget import (
    DROPPED_BY_DEFAULT,
    KeptParentSpanExporter,
    KeptSpanLogProcessor,
    SpanBudgetSampler,
    budget_livekit_tracer,
)
from telemetry.system_metrics import METER_NAME as RUNTIME_METER
from telemetry.system_metrics import LoopLagMonitor, SystemMetrics
from telemetry.views import build_views

log = logging.getLogger(__name__)


@dataclass
class Telemetry:
    """Handle on the installed providers; ``shutdown`` flushes all three within a bounded time."""

    settings: TelemetrySettings
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    logger_provider: LoggerProvider | None
    metrics_server: MetricsServer | None = None
    monitor: ExportMonitor = field(default_factory=ExportMonitor)
    otlp_enabled: bool = False
    _otlp_exporters: list[MonitoredSpanExporter | MonitoredMetricExporter | MonitoredLogExporter] = field(
        default_factory=list
    )
    _log_handlers: list[logging.Handler] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shut_down: bool = False

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None

    @property
    def metrics_port(self) -> int | None:
        """The port Prometheus ``/metrics`` is bound to, or None when it is off."""
        return self.metrics_server.port if self.metrics_server is not None else None

    def export_status(self) -> dict[str, Any]:
        """For the health check: is OTLP on, and per signal the last success/failure and failure count.

        ``{"otlp_enabled": bool, "endpoint": str | None, "protocol": str,
           "signals": {"traces"|"metrics"|"logs": {"healthy": bool, "export_in_flight_s": float | None,
           "last_success_unix": float | None, "last_failure_unix": float | None, "failures": int,
           "last_error": str | None}}}``

        ``healthy`` is False after a failed export until the next success, and while an export has been
        running for longer than its timeout (a collector that accepts and never answers).
        """
        return {
            "otlp_enabled": self.otlp_enabled,
            "endpoint": self.settings.otlp_endpoint if self.otlp_enabled else None,
            "protocol": self.settings.otlp_protocol,
            "signals": self.monitor.snapshot(),
        }

    def start_loop_lag_monitor(self, interval_s: float | None = None) -> asyncio.Task[None]:
        """Start measuring ``sales_agent.event_loop.lag`` on the running loop; cancel the task to stop."""
        meter = metrics.get_meter(RUNTIME_METER)
        return LoopLagMonitor(meter, interval_s or self.settings.loop_lag_interval_s).start()

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Export what is buffered; returns False if that did not finish within ``timeout_s``."""
        millis = int(timeout_s * 1000)
        calls = [
            (lambda p=provider: p.force_flush(millis))
            for provider in (self.tracer_provider, self.meter_provider, self.logger_provider)
            if provider is not None
        ]
        return run_bounded(calls, timeout_s, "telemetry-flush")

    def shutdown(self, timeout_s: float | None = None) -> bool:
        """Flush and stop all three providers and /metrics. Idempotent.

        Returns False (and logs a warning) when the deadline passed first; the rest is dropped.
        """
        with self._lock:
            if self._shut_down:
                return True
            self._shut_down = True
        timeout = timeout_s if timeout_s is not None else self.settings.shutdown_timeout_s
        unreachable = self._unreachable_collector(min(timeout, _PROBE_TIMEOUT_S))
        if unreachable:
            # Nothing buffered can reach it: stop the OTLP exporters first, so the final exports
            # return at once instead of sitting through their retry backoff (1 s, 2 s...).
            log.warning(
                "telemetry: the OTLP collector at %s does not accept connections; "
                "telemetry still buffered is dropped at shutdown",
                unreachable,
            )
            for exporter in self._otlp_exporters:
                exporter.abandon()
        # Stop bridging logs first: records logged into a shut-down provider are dropped noisily.
        remove_logging([h for h in self._log_handlers if isinstance(h, OTelBridgeHandler)])
        calls: list[Callable[[], object]] = []
        if self.metrics_server is not None:
            calls.append(self.metrics_server.stop)
        if self.tracer_provider is not None:
            calls.append(self.tracer_provider.shutdown)
        if self.meter_provider is not None:
            calls.append(lambda: self.meter_provider.shutdown(timeout_millis=timeout * 1000))  # type: ignore[union-attr]
        if self.logger_provider is not None:
            calls.append(self.logger_provider.shutdown)
        started = time.monotonic()
        done = run_bounded(calls, timeout, "telemetry-shutdown")
        if not done:
            log.warning(
                "telemetry shutdown did not finish within %.1fs (collector unreachable or slow?); "
                "unexported telemetry was dropped",
                timeout,
            )
        else:
            log.debug("telemetry shut down in %.3fs", time.monotonic() - started)
        return done

    def _unreachable_collector(self, probe_timeout_s: float) -> str | None:
        """The first OTLP endpoint that refuses connections now, or None (all reachable, or no OTLP)."""
        if not self.otlp_enabled:
            return None
        for url in otlp_endpoints(self.settings):
            if not endpoint_accepts_connections(url, probe_timeout_s):
                return url
        return None


# Shutdown: how long the probe of the collector's port may take.
_PROBE_TIMEOUT_S = 0.5


def run_bounded(calls: Sequence[Callable[[], object]], timeout_s: float, name: str) -> bool:
    """Run ``calls`` in parallel daemon threads; True if all returned within ``timeout_s``.

    The SDK's shutdown/flush timeouts are not honoured end to end (BatchProcessor.force_flush ignores
    its timeout; an in-flight OTLP request runs to its own timeout), so the bound is enforced here.
    Daemon threads never keep the process alive at exit.
    """

    def guarded(call: Callable[[], object]) -> None:
        try:
            call()
        except Exception:
            log.exception("%s step failed", name)

    threads = [threading.Thread(target=guarded, args=(c,), name=name, daemon=True) for c in calls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


_lock = threading.Lock()
_installed: Telemetry | None = None


def setup_telemetry(
    settings: TelemetrySettings,
    *,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    log_exporters: Sequence[LogRecordExporter] = (),
    wire_livekit: bool = True,
) -> Telemetry:
    """Install the SDK providers globally, logging, httpx and livekit wiring; return a handle.

    ``settings`` come from the entry point (built once from the environment); nothing here reads it.

    ``span_exporters`` / ``log_exporters`` are attached synchronously (for tests' in-memory
    exporters, redacted like OTLP); ``metric_readers`` are added beside the OTLP and Prometheus readers.
    ``wire_livekit=False`` is for processes that never run a LiveKit session (the local services):
    the wiring imports livekit.agents, ~2 s and ~100 MB at start.
    """
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        _set_retry_hooks()
        _installed = _build(settings, span_exporters, metric_readers, log_exporters, wire_livekit)
        atexit.register(_installed.shutdown)
        return _installed


def _build(
    settings: TelemetrySettings,
    span_exporters: Sequence[SpanExporter],
    metric_readers: Sequence[MetricReader],
    log_exporters: Sequence[LogRecordExporter],
    wire_livekit: bool,
) -> Telemetry:
    redactor = Redactor(pii=settings.redact_pii)
    if settings.sdk_disabled:
        handlers = setup_logging(
            level=settings.log_level,
            logger_provider=None,
            redactor=redactor,
            quiet_loggers=_quiet(settings),
            stderr=settings.log_stderr,
        )
        return Telemetry(settings, None, None, None, _log_handlers=handlers)

    resource = build_resource(settings)
    monitor = ExportMonitor(stall_after_s=settings.export_timeout_s + 1.0)
    otlp = build_otlp_exporters(settings)
    if otlp is not None:
        spans_out = MonitoredSpanExporter(otlp.spans, monitor)
        metrics_out = MonitoredMetricExporter(otlp.metrics, monitor)
        logs_out = MonitoredLogExporter(otlp.logs, monitor)
    install_export_log_rate_limit(settings.export_error_log_interval_s)
    export_timeout_ms = settings.export_timeout_s * 1000

    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    budgeted = settings.trace_detail == "turn"
    if budgeted:
        # Wraps the sampler the SDK chose from OTEL_TRACES_SAMPLER; set before any tracer exists
        # (tracers read the provider's sampler when they are created).
        tracer_provider.sampler = SpanBudgetSampler(tracer_provider.sampler, DROPPED_BY_DEFAULT)

    def exported(exporter: SpanExporter) -> SpanExporter:
        return KeptParentSpanExporter(exporter) if budgeted else exporter

    # First: the exporting processors after it see each finished span redacted.
    tracer_provider.add_span_processor(RedactingSpanProcessor(redactor))
    for exporter in span_exporters:
        tracer_provider.add_span_processor(SimpleSpanProcessor(exported(exporter)))
    if otlp is not None and settings.traces_exporter == "otlp":
        tracer_provider.add_span_processor(
            BatchSpanProcessor(
                exported(spans_out),
                max_queue_size=settings.span_queue_size,
                schedule_delay_millis=settings.span_schedule_delay_ms,
                max_export_batch_size=min(settings.span_batch_size, settings.span_queue_size),
                export_timeout_millis=export_timeout_ms,
            )
        )

    readers = list(metric_readers)
    if otlp is not None and settings.metrics_exporter == "otlp":
        readers.append(
            PeriodicExportingMetricReader(
                metrics_out,
                export_interval_millis=settings.metric_export_interval_ms,
                export_timeout_millis=export_timeout_ms,
            )
        )
    metrics_server = None
    if settings.metrics_server_enabled:
        metrics_server = create_metrics_server(settings.prometheus_host, settings.prometheus_port)
        # Bound before anything is installed globally: a taken port is a ConfigError with nothing to undo.
        metrics_server.start(setting=env_name(TelemetrySettings, "prometheus_port"))
        readers.append(metrics_server.reader)
    meter_provider = MeterProvider(
        metric_readers=readers,
        resource=resource,
        views=build_views(detail=settings.metrics_detail),
        exemplar_filter=TraceBasedExemplarFilter(),
        shutdown_on_exit=False,
    )

    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    if budgeted:
        logger_provider.add_log_record_processor(KeptSpanLogProcessor())
    # First: later processors (and their exporters) see the redacted record.
    logger_provider.add_log_record_processor(RedactingLogProcessor(redactor))
    for log_exporter in log_exporters:
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    if otlp is not None and settings.logs_exporter == "otlp":
        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                logs_out,
                max_queue_size=settings.log_queue_size,
                schedule_delay_millis=settings.log_schedule_delay_ms,
                max_export_batch_size=min(settings.log_batch_size, settings.log_queue_size),
                export_timeout_millis=export_timeout_ms,
            )
        )

    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    set_logger_provider(logger_provider)
    monitor.bind_meter(meter_provider.get_meter("sales_agent.telemetry"))

    if settings.system_metrics:
        mounts = [m.strip() for m in settings.filesystem_mountpoints.split(",") if m.strip()]
        SystemMetrics(meter_provider.get_meter(RUNTIME_METER), mounts)
    if settings.instrument_httpx:
        _instrument_httpx(tracer_provider, meter_provider)
    if wire_livekit:
        _wire_livekit(tracer_provider, settings)
    handlers = setup_logging(
        level=settings.log_level,
        logger_provider=logger_provider,
        redactor=redactor,
        quiet_loggers=_quiet(settings),
        stderr=settings.log_stderr,
    )
    if metrics_server is not None:
        log.info("Prometheus metrics on http://%s:%d/metrics", metrics_server.host, metrics_server.port)
    return Telemetry(
        settings,
        tracer_provider,
        meter_provider,
        logger_provider,
        metrics_server=metrics_server,
        monitor=monitor,
        otlp_enabled=otlp is not None,
        _otlp_exporters=[spans_out, metrics_out, logs_out] if otlp is not None else [],
        _log_handlers=handlers,
    )


def _set_retry_hooks() -> None:
    """No stamina instrumentation hooks: its defaults would log a WARNING line per retry and count
    ``stamina_retries_total`` in a prometheus_client registry nothing exports. Every retry is already
    a ``retry`` span event and ``sales_agent.dependency.retries`` (agent/resilience/retry.py)."""
    stamina.instrumentation.set_on_retry_hooks(())


def _quiet(settings: TelemetrySettings) -> tuple[str, ...]:
    return tuple(name.strip() for name in settings.quiet_loggers.split(",") if name.strip())


def _instrument_httpx(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    """Client spans, ``traceparent`` on every request and http.client.request.duration (seconds).

    The instrumentor patches httpx's transport classes (HTTPTransport / AsyncHTTPTransport), so it
    covers clients created before *and* after this call, as long as they use httpx's default
    transport; a client with a custom transport needs ``HTTPXClientInstrumentor.instrument_client``.
    """
    # Stable HTTP semconv: durations in seconds (the old ones are milliseconds).
    opt_in_stable_http_semconv()
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)


def _wire_livekit(tracer_provider: TracerProvider, settings: TelemetrySettings) -> None:
    """LiveKit keeps its own tracer handle; its metrics use the global MeterProvider.

    livekit-agents puts the conversation itself on its spans (the chat context on every LLM node, the
    input messages, instructions and tool payloads: ~200 KB per call). With PII redaction on, its own
    in-process filter strips that content before any exporter: our redaction masks e-mails and phone
    numbers, not names and companies in free text, and the content was most of the export cost
    (bench/RESULTS.md, item 3). ``LIVEKIT_TELEMETRY_ALLOW_PII``, when set, still decides.
    """
    from livekit.agents.telemetry import set_tracer_provider

    explicit = settings.livekit_allow_pii is not None
    set_tracer_provider(tracer_provider, allow_pii=None if explicit else not settings.redact_pii)
    if settings.trace_detail == "turn":
        budget_livekit_tracer()  # LiveKit's internals left out before the SDK sees them
    if settings.metrics_detail == "default":
        # The Views drop livekit's duplicates of our metrics; this skips recording them at all.
        skip_livekit_duplicate_recording()
