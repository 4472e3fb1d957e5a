"""Mark a span failed with a message of ours that survives LiveKit's PII filter.

With PII redaction on, livekit-agents' span processor replaces the status description of every span
that recorded an exception with "exception details redacted" (it cannot tell our messages from an
exception text that quotes the caller). Our own messages are written to be safe ("crm is unavailable
(circuit open, next trial in 42 s)", "all LLM providers failed"), and they are what an operator reads
first in Tempo. ``set_error`` also stores the message as ``error.message`` (a key the filter leaves
alone); ``RedactingSpanProcessor`` puts it back as the status description, after our own PII redaction.
"""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode

from telemetry import names


def set_error(span: Span, message: str) -> None:
    """``span.set_status(ERROR, message)``, and the message kept for the exporter."""
    span.set_attribute(names.ERROR_MESSAGE, message)
    span.set_status(Status(StatusCode.ERROR, message))
