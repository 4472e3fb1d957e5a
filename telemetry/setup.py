"""One call sets up traces, metrics and logs for the whole process.

Library code (``agent/``, ``local_services/``) only uses the OpenTelemetry *API*
(``trace.get_tracer``, ``metrics.get_meter``, ``logging``); this module installs the SDK behind it.
The global providers are set-once per process, so ``setup_telemetry`` is idempotent: a second
call returns the first handle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from telemetry.settings import TelemetrySettings
from telemetry.views import build_views

log = logging.getLogger(__name__)


@dataclass
class Telemetry:
    """Handle on the installed providers; ``shutdown`` flushes all three."""

    settings: TelemetrySettings
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    logger_provider: LoggerProvider | None
    _closers: list[object] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None

    def force_flush(self, timeout_s: float = 5.0) -> None:
        millis = int(timeout_s * 1000)
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is not None:
                provider.force_flush(millis)

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is not None:
                provider.shutdown()


_lock = threading.Lock()
_installed: Telemetry | None = None


def setup_telemetry(
    settings: TelemetrySettings | None = None,
    *,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    log_exporters: Sequence[LogRecordExporter] = (),
) -> Telemetry:
    """Install the SDK providers globally and return a handle.

    ``span_exporters`` / ``log_exporters`` are attached synchronously (for tests' in-memory
    exporters); ``metric_readers`` are added beside the OTLP and Prometheus readers.
    """
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        settings = settings or TelemetrySettings()
        if settings.sdk_disabled:
            _installed = Telemetry(settings, None, None, None)
            return _installed

        tracer_provider = TracerProvider()
        for exporter in span_exporters:
            tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        meter_provider = MeterProvider(metric_readers=list(metric_readers), views=build_views())
        logger_provider = LoggerProvider()
        for log_exporter in log_exporters:
            logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))

        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        set_logger_provider(logger_provider)
        _wire_livekit(tracer_provider)
        _installed = Telemetry(settings, tracer_provider, meter_provider, logger_provider)
        return _installed


def _wire_livekit(tracer_provider: TracerProvider) -> None:
    """LiveKit keeps its own tracer handle; its metrics use the global MeterProvider."""
    from livekit.agents.telemetry import set_tracer_provider

    set_tracer_provider(tracer_provider)
