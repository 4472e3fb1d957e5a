"""The OTel Resource: who is emitting (service, version, instance, environment, host, process)."""

from __future__ import annotations

import logging
import platform
import socket
from importlib import metadata
from urllib.parse import unquote

from opentelemetry.sdk.resources import (
    OsResourceDetector,
    ProcessResourceDetector,
    Resource,
    ServiceInstanceIdResourceDetector,
    get_aggregated_resources,
)
from opentelemetry.semconv.attributes import deployment_attributes, service_attributes, telemetry_attributes
from opentelemetry.util.types import Attributes

from telemetry.settings import TelemetrySettings

log = logging.getLogger(__name__)

DISTRIBUTION = "sales-agent-observability"
# The process detector copies argv; a command line can carry secrets (--api-key ...), so it stays out.
_DROPPED_PROCESS_ATTRIBUTES = ("process.command_line", "process.command_args", "process.command")


class HashedOnceResource(Resource):
    """A Resource whose hash is computed once.

    The OTLP encoders group every span, log record and metric of a batch by resource, hashing it for
    each: the SDK's ``Resource.__hash__`` serializes all its attributes to JSON every time (~7 µs
    per span on the bench machine, bench/RESULTS.md "One redaction pass per span"). A Resource never
    changes after it is built, so the hash is kept; equality and the hash's value are the SDK's own.
    """

    def __init__(self, attributes: Attributes, schema_url: str | None = None) -> None:
        super().__init__(attributes, schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def merge(self, other: Resource) -> Resource:
        # The SDK merges its re-detected process attributes in after a fork: keep the cached hash.
        merged = super().merge(other)
        return merged if merged is self else HashedOnceResource(merged.attributes, merged.schema_url)


def instance_id() -> str:
    """A uuid per process (replicas and livekit job processes are told apart by it).

    The SDK's detector is used so the id is the one the SDK providers switch to after a fork.
    """
    return str(
        ServiceInstanceIdResourceDetector().detect().attributes[service_attributes.SERVICE_INSTANCE_ID]
    )


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def parse_resource_attributes(raw: str) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES`` syntax: ``k1=v1,k2=v2`` with percent-encoded values."""
    attributes: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            log.warning("ignoring malformed OTEL_RESOURCE_ATTRIBUTES entry %r (expected key=value)", item)
            continue
        attributes[key.strip()] = unquote(value.strip())
    return attributes


def _host_attributes() -> dict[str, str]:
    # The SDK's host detector is private (_HostResourceDetector); these two attributes are all it adds
    # that we need, so they are read directly.
    return {"host.name": socket.gethostname(), "host.arch": platform.machine()}


def build_resource(settings: TelemetrySettings) -> Resource:
    """Defaults < host/process/os detectors < OTEL_RESOURCE_ATTRIBUTES < OTEL_SERVICE_NAME (spec order)."""
    detected = get_aggregated_resources([ProcessResourceDetector(), OsResourceDetector()])
    # get_aggregated_resources also adds the SDK defaults (service.name=unknown_service...): keep only
    # what the detectors are for.
    process_attrs = {
        k: v
        for k, v in detected.attributes.items()
        if k.startswith(("process.", "os.", "telemetry.sdk.")) and k not in _DROPPED_PROCESS_ATTRIBUTES
    }
    base = Resource(
        {
            service_attributes.SERVICE_NAME: settings.service_name,
            service_attributes.SERVICE_VERSION: package_version(),
            service_attributes.SERVICE_INSTANCE_ID: instance_id(),
            deployment_attributes.DEPLOYMENT_ENVIRONMENT_NAME: settings.deployment_environment,
            telemetry_attributes.TELEMETRY_SDK_LANGUAGE: "python",
            **_host_attributes(),
            **process_attrs,
        }
    )
    resource = base.merge(Resource(parse_resource_attributes(settings.resource_attributes)))
    # OTEL_SERVICE_NAME beats service.name in OTEL_RESOURCE_ATTRIBUTES, but only when it was set.
    if "service_name" in settings.model_fields_set:
        resource = resource.merge(Resource({service_attributes.SERVICE_NAME: settings.service_name}))
    return HashedOnceResource(resource.attributes, resource.schema_url)
