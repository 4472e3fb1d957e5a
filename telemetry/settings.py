"""Telemetry configuration: the standard ``OTEL_*`` variables plus the project's own switches."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TelemetrySettings(BaseSettings):
    """Read from the environment. The ``OTEL_*`` names are the OpenTelemetry standard ones."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    sdk_disabled: bool = Field(default=False, alias="OTEL_SDK_DISABLED")
    service_name: str = Field(default="sales-agent", alias="OTEL_SERVICE_NAME")
    resource_attributes: str = Field(default="", alias="OTEL_RESOURCE_ATTRIBUTES")
    # None: no OTLP export at all (nothing configured). The SDK exporters read the per-signal
    # variables (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, ..._HEADERS, ..._TIMEOUT) themselves.
    otlp_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otlp_protocol: str = Field(default="http/protobuf", alias="OTEL_EXPORTER_OTLP_PROTOCOL")
    deployment_environment: str = Field(default="development", alias="DEPLOYMENT_ENVIRONMENT")
    # Prometheus scrape endpoint on the same MeterProvider; 0 disables it.
    prometheus_port: int = Field(default=0, alias="SALES_AGENT_METRICS_PORT")
    prometheus_host: str = Field(default="127.0.0.1", alias="SALES_AGENT_METRICS_HOST")
    redact_pii: bool = Field(default=True, alias="SALES_AGENT_REDACT_PII")
    log_level: str = Field(default="INFO", alias="SALES_AGENT_LOG_LEVEL")
    metric_export_interval_ms: int = Field(default=15000, alias="OTEL_METRIC_EXPORT_INTERVAL")
    export_timeout_s: float = Field(default=5.0, alias="SALES_AGENT_EXPORT_TIMEOUT_S")
    shutdown_timeout_s: float = Field(default=5.0, alias="SALES_AGENT_SHUTDOWN_TIMEOUT_S")
