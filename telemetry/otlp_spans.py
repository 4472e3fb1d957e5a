"""OTLP/HTTP span export with the request written straight to protobuf's wire format.

Why by hand: the SDK's encoder (``opentelemetry-exporter-otlp-proto-common``) builds one protobuf
object per span, attribute, value, event and link, then serializes them: ~60 µs per span on the bench
machine, the largest single cost on the span export thread, which shares the GIL with the calls
(bench/RESULTS.md, "One redaction pass per span"). The OTLP protobuf schema is stable (v1); this
module writes the same ``ExportTraceServiceRequest`` bytes directly. ``tests/unit/test_otlp_spans.py``
decodes its output with the official protobuf classes and compares it with the SDK encoder's message
for every kind of value, event, link, status, parent and scope; a value the SDK refuses is refused
the same way (that attribute is logged and left out). Only the encoding is ours: the HTTP client,
retries, compression, headers and size limit are the SDK exporter's.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError, _is_request_too_large
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import SpanContext

# The SDK exporter's logger: its messages keep their name and the export-error rate limit.
_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_SMALL = [bytes((n,)) for n in range(128)]
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
# SpanFlags: the parent's (or linked context's) is_remote is known, and whether it is remote.
_FLAGS_LOCAL = _pack_fixed32(0x100)
_FLAGS_REMOTE = _pack_fixed32(0x300)


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 127:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or message)."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """``AnyValue``; the SDK encoder's type order (bool before int, str before Sequence)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"Value out of range: {value}")
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join([_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()]))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


# Attribute keys come from a small, fixed set (semantic conventions, ours, LiveKit's): each one's
# encoded field is kept, up to a bound, so only values are encoded per span.
_KEY_FIELDS: dict[str, bytes] = {}
_KEY_FIELDS_MAX = 4096


def _key_field(key: str) -> bytes:
    field = _KEY_FIELDS.get(key)
    if field is None:
        field = _field(b"\x0a", key.encode())
        if len(_KEY_FIELDS) < _KEY_FIELDS_MAX:
            _KEY_FIELDS[key] = field
    return field


def _key_value(key: str, value: Any) -> bytes:
    return _key_field(key) + _field(b"\x12", _any_value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a repeated ``KeyValue`` field; one the SDK would refuse is logged and left out."""
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        if type(value) is str:  # most values: written in line
            encoded = value.encode()
            size = len(encoded)
            any_value = b"\x0a" + (_SMALL[size] if size < 128 else _varint(size)) + encoded
        else:
            try:
                any_value = _any_value(value)
            except Exception as error:  # the SDK encoder's rule: the attribute is dropped, the span kept
                _logger.exception("Failed to encode key %s: %s", key, error)
                continue
        size = len(any_value)
        key_value = _key_field(key) + b"\x12" + (_SMALL[size] if size < 128 else _varint(size)) + any_value
        size = len(key_value)
        parts.append(tag + (_SMALL[size] if size < 128 else _varint(size)) + key_value)
    return b"".join(parts)


def _flags(context: SpanContext | None) -> bytes:
    return _FLAGS_REMOTE if context is not None and context.is_remote else _FLAGS_LOCAL


def encode_span(span: ReadableSpan) -> bytes:
    """One ``Span`` message."""
    context = span.context
    parent = span.parent
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        parts.append(_field(b"\x1a", ",".join(f"{k}={v}" for k, v in context.trace_state.items()).encode()))
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_field(b"\x2a", span.name.encode()))
    parts.append(b"\x30" + _SMALL[span.kind.value + 1])  # OTLP's SpanKind counts from UNSPECIFIED = 0
    if span.start_time:
        parts.append(b"\x39" + _pack_fixed64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _pack_fixed64(span.end_time))
    parts.append(_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        event_parts = [b"\x09" + _pack_fixed64(event.timestamp)] if event.timestamp else []
        if event.name:
            event_parts.append(_field(b"\x12", event.name.encode()))
        event_parts.append(_attributes(b"\x1a", event.attributes))
        if event.dropped_attributes:
            event_parts.append(b"\x20" + _varint(event.dropped_attributes))
        parts.append(_field(b"\x5a", b"".join(event_parts)))
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        # As the SDK encoder: the linked context's trace_state is not sent.
        link_parts = [
            b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + link.context.span_id.to_bytes(8, "big"),
            _attributes(b"\x22", link.attributes),
        ]
        if link.dropped_attributes:
            link_parts.append(b"\x28" + _varint(link.dropped_attributes))
        link_parts.append(b"\x35" + _flags(link.context))
        parts.append(_field(b"\x6a", b"".join(link_parts)))
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    status_parts = _field(b"\x12", status.description.encode()) if status.description else b""
    if status.status_code.value:
        status_parts += b"\x18" + _SMALL[status.status_code.value]
    parts.append(_field(b"\x7a", status_parts))
    parts.append(b"\x85\x01" + _flags(parent))
    return b"".join(parts)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    parts = [_field(b"\x0a", scope.name.encode())] if scope.name else []
    if scope.version:
        parts.append(_field(b"\x12", scope.version.encode()))
    parts.append(_attributes(b"\x1a", scope.attributes))
    return b"".join(parts)


def encode_spans_request(spans: Sequence[ReadableSpan]) -> bytes:
    """A serialized ``ExportTraceServiceRequest``: spans grouped by resource, then by scope."""
    grouped: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
    for span in spans:
        by_scope = grouped.setdefault(span.resource, {})
        by_scope.setdefault(span.instrumentation_scope or None, []).append(_field(b"\x12", encode_span(span)))
    resource_spans = []
    for resource, by_scope in grouped.items():
        parts = [_field(b"\x0a", _attributes(b"\x0a", resource.attributes))]
        for scope, encoded in by_scope.items():
            scope_parts = [_field(b"\x0a", _scope(scope)), *encoded]
            if scope is not None and scope.schema_url:
                scope_parts.append(_field(b"\x1a", scope.schema_url.encode()))
            parts.append(_field(b"\x12", b"".join(scope_parts)))
        if resource.schema_url:
            parts.append(_field(b"\x1a", resource.schema_url.encode()))
        resource_spans.append(_field(b"\x0a", b"".join(parts)))
    return b"".join(resource_spans)


class DirectEncodingSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter, sending ``encode_spans_request``'s bytes.

    ``export`` follows the SDK's own step for step (its export metrics, the size limit, the HTTP
    client with its retries); only the encoder differs. Everything else (endpoint, headers,
    compression, timeout, TLS) is configured exactly as for ``OTLPSpanExporter``.
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized = encode_spans_request(spans)
            except Exception as error:  # the SDK exporter's rule: the batch fails, the worker goes on
                _logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if _is_request_too_large(serialized, self._max_request_size):
                _logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(serialized),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(serialized)} bytes exceeds max_request_size "
                    f"{self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            sent = self._client.export(serialized)
            if not sent.success:
                result.error = sent.error
                if sent.status_code is not None:
                    result.error_attrs = {HTTP_RESPONSE_STATUS_CODE: sent.status_code}
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
