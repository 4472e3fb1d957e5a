"""Telemetry configuration: the standard ``OTEL_*`` variables plus the project's own switches.

The project's own switches are ``SALES_AGENT_*`` (the process-wide prefix; the agent's areas add their
own infix: ``SALES_AGENT_LLM_*``, ``SALES_AGENT_SESSION_*``...). Every variable is listed (with its
default) in ``telemetry/README.md``. Built once by each entry point and never changed afterwards
(frozen): a process that needs another value derives a copy with ``model_copy(update=...)``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TelemetrySettings(BaseSettings):
    """Read from the environment. The ``OTEL_*`` names are the OpenTelemetry standard ones."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True, frozen=True)

    sdk_disabled: bool = Field(default=False, alias="OTEL_SDK_DISABLED")
    service_name: str = Field(default="sales-agent", alias="OTEL_SERVICE_NAME")
    resource_attributes: str = Field(default="", alias="OTEL_RESOURCE_ATTRIBUTES")
    # None: no OTLP export at all (nothing configured). The SDK exporters read the per-signal
    # variables (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, ..._HEADERS, ...) themselves.
    otlp_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    # Per-signal endpoints (full URLs, the standard variables); each replaces ``{endpoint}/v1/<signal>``.
    otlp_traces_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otlp_metrics_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    otlp_logs_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
    # The Python SDK has no http/json exporter, so only these two are accepted.
    otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        default="http/protobuf", alias="OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    # Per-signal switch (standard variables): "none" turns OTLP export of that signal off.
    traces_exporter: Literal["otlp", "none"] = Field(default="otlp", alias="OTEL_TRACES_EXPORTER")
    metrics_exporter: Literal["otlp", "none"] = Field(default="otlp", alias="OTEL_METRICS_EXPORTER")
    logs_exporter: Literal["otlp", "none"] = Field(default="otlp", alias="OTEL_LOGS_EXPORTER")
    # DEPLOYMENT_ENVIRONMENT is the deprecated name (still read, with a warning).
    deployment_environment: str = Field(
        default="development",
        validation_alias=AliasChoices("SALES_AGENT_DEPLOYMENT_ENVIRONMENT", "DEPLOYMENT_ENVIRONMENT"),
    )
    # Prometheus scrape endpoint on the same MeterProvider; 0 disables it (port 0 is not "random":
    # tests that want a free port pass prometheus_enabled=True with port 0).
    prometheus_port: int = Field(default=0, ge=0, le=65535, alias="SALES_AGENT_METRICS_PORT")
    prometheus_host: str = Field(default="127.0.0.1", alias="SALES_AGENT_METRICS_HOST")
    prometheus_enabled: bool | None = Field(default=None, alias="SALES_AGENT_METRICS_ENABLED")
    redact_pii: bool = Field(default=True, alias="SALES_AGENT_REDACT_PII")
    # Which spans a call records: "turn" leaves LiveKit's per-attempt/per-chunk internals out
    # (telemetry/span_budget.py lists them, telemetry/README.md says what a turn keeps); "debug" keeps all.
    trace_detail: Literal["turn", "debug"] = Field(default="turn", alias="SALES_AGENT_TRACE_DETAIL")
    # Which metrics are aggregated: "default" leaves out livekit's instruments that repeat ours
    # (telemetry/views.py LIVEKIT_DUPLICATES names each and its replacement); "all" keeps them.
    metrics_detail: Literal["default", "all"] = Field(default="default", alias="SALES_AGENT_METRICS_DETAIL")
    log_level: str = Field(default="INFO", alias="SALES_AGENT_LOG_LEVEL")
    # The human one-line-per-record stderr handler. The LiveKit worker modes turn it off: livekit's CLI
    # installs its own console handler, and two would print every record twice.
    log_stderr: bool = Field(default=True, alias="SALES_AGENT_LOG_STDERR")
    # Loggers held at WARNING: httpx logs one INFO line per request, which the client spans already carry.
    quiet_loggers: str = Field(default="httpx,httpcore", alias="SALES_AGENT_QUIET_LOGGERS")
    metric_export_interval_ms: int = Field(default=15000, gt=0, alias="OTEL_METRIC_EXPORT_INTERVAL")
    # Per-request OTLP timeout (the exporter retries transient errors within it).
    export_timeout_s: float = Field(default=5.0, gt=0, alias="SALES_AGENT_EXPORT_TIMEOUT_S")
    shutdown_timeout_s: float = Field(default=5.0, gt=0, alias="SALES_AGENT_SHUTDOWN_TIMEOUT_S")
    # Export errors are logged at most once per interval per message (the OTel exporters log each one).
    export_error_log_interval_s: float = Field(
        default=60.0, ge=0, alias="SALES_AGENT_EXPORT_ERROR_LOG_INTERVAL_S"
    )
    # Batch processors: bounded queues (oldest dropped when full), standard OTEL_BSP_* / OTEL_BLRP_* names.
    span_queue_size: int = Field(default=2048, gt=0, alias="OTEL_BSP_MAX_QUEUE_SIZE")
    span_batch_size: int = Field(default=512, gt=0, alias="OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
    span_schedule_delay_ms: int = Field(default=5000, gt=0, alias="OTEL_BSP_SCHEDULE_DELAY")
    log_queue_size: int = Field(default=2048, gt=0, alias="OTEL_BLRP_MAX_QUEUE_SIZE")
    log_batch_size: int = Field(default=512, gt=0, alias="OTEL_BLRP_MAX_EXPORT_BATCH_SIZE")
    log_schedule_delay_ms: int = Field(default=1000, gt=0, alias="OTEL_BLRP_SCHEDULE_DELAY")
    # psutil process.* / system.* observable instruments.
    system_metrics: bool = Field(default=True, alias="SALES_AGENT_SYSTEM_METRICS")
    filesystem_mountpoints: str = Field(default="/", alias="SALES_AGENT_FILESYSTEM_MOUNTPOINTS")
    loop_lag_interval_s: float = Field(default=0.5, gt=0, alias="SALES_AGENT_LOOP_LAG_INTERVAL_S")
    instrument_httpx: bool = Field(default=True, alias="SALES_AGENT_INSTRUMENT_HTTPX")
    # livekit's own switch for conversation content on its spans; when set, livekit decides (see setup).
    livekit_allow_pii: str | None = Field(default=None, alias="LIVEKIT_TELEMETRY_ALLOW_PII")

    def otlp_signal_endpoint(self, signal: Literal["traces", "metrics", "logs"]) -> str | None:
        """The OTLP/HTTP URL for one signal: its own variable, else ``{endpoint}/v1/<signal>``."""
        own = getattr(self, f"otlp_{signal}_endpoint")
        if own:
            return own
        return f"{self.otlp_endpoint.rstrip('/')}/v1/{signal}" if self.otlp_endpoint else None

    @property
    def metrics_server_enabled(self) -> bool:
        """Prometheus /metrics on when asked explicitly, or when a port is configured."""
        if self.prometheus_enabled is not None:
            return self.prometheus_enabled
        return self.prometheus_port != 0
