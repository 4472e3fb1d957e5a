"""PII and secret redaction for spans and log records, before any exporter sees them.

No OTel package redacts attribute *values* in-process (the Collector's redaction processor does, but
we must not rely on every deployment running one), so this is hand-written:

- secrets: attributes whose key names a credential (``api_key``, ``authorization``, ``secret``,
  ``password``, ``token`` - but not token counts such as ``gen_ai.usage.input_tokens``) are replaced
  whole; values that look like keys (``sk-...``, ``Bearer ...``, ``?api_key=...``) anywhere are masked.
  Always on: API keys never leave the process.
- PII: e-mail addresses and phone numbers inside string values and log bodies, also when they are
  percent-encoded (``ann%40acme.com``, ``%2B1415...``: a URL, or an exception quoting one). On by
  default (``SALES_AGENT_REDACT_PII``).

Redaction is decided by the attribute key first, before any value is scanned: credential keys are
replaced; keys with a ``pii`` segment (LiveKit's ``lk.pii.*`` convention) carry user data and are
replaced whole; the project's own bounded keys (``names.SAFE_ATTRIBUTES``: tenant, operation, outcome,
error type, model...) never carry user input and are not scanned at all. Only the rest is scanned.

Spans are redacted once, when they end (``RedactingSpanProcessor``): attributes, events, links and
status, before any exporting processor sees them.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, unquote_plus

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Link, Status, StatusCode

from telemetry import names

REDACTED = "[REDACTED]"
EMAIL_MASK = "[EMAIL]"
PHONE_MASK = "[PHONE]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Candidates: "+<digits/separators>", NANP "(555) 123-4567" / "555-123-4567" / "555.123.4567",
# and national "0xx xxxx xxxx" / "06 12 34 56 78". The digit count is checked afterwards (7..15,
# E.164's maximum), so dates, versions, IPs and plain integers (timestamps, ids) are left alone.
# A heuristic: unusual national formats without a "+" can slip through.
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d[\d\s().-]{5,}\d"
    r"|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}"
    r"|0\d{1,4}[\s-]\d{3,4}[\s-]?\d{3,4}"
    r"|0\d(?:[\s.-]\d{2}){4}"
    r")(?!\w)"
)
_SECRET_VALUES = (
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),  # OpenAI-style and most LLM providers
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),  # GitHub tokens
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
)
# Query-string / key=value credentials: keep the name, mask the value.
_SECRET_PARAM = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|key)=)[^&\s\"']+"
)
# Cheap pre-check (``_maybe_sensitive``): a string none of the patterns above could match is returned
# untouched, and most strings (ids, enum values, numbers) are. Each piece is a substring test or a regex
# that starts with a character class, which CPython's re scans for quickly; one regex alternating over
# every pattern cost ~4 µs per 32-character id (bench item 1). The pieces, and why they are complete:
# "@" for e-mails; "+<digit>" and digit-separator-digit for phones (every phone alternative without "+"
# has a separator between two digit groups: "555-0100", "20 7946", "06 12"); the lowercase markers of
# the secret patterns ("sk-", "akia", "gh?_", "xox", "...key=", "...token=", "secret=", "password=");
# "bearer"/"basic" followed by whitespace.
_PLUS_DIGIT = re.compile(r"\+\d")
_DIGIT_SEPARATOR_DIGIT = re.compile(r"[\s.-](?<=\d[\s.-])\d")
_AUTH_SCHEME = re.compile(r"(?i:bearer|basic)\s")
_SECRET_MARKERS = (
    *("sk-", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox"),
    *("key=", "token=", "secret=", "password="),
)


def _maybe_sensitive(value: str) -> bool:
    if "@" in value or _DIGIT_SEPARATOR_DIGIT.search(value):
        return True
    if "+" in value and _PLUS_DIGIT.search(value):
        return True
    lowered = value.lower()
    if any(marker in lowered for marker in _SECRET_MARKERS):
        return True
    return ("bearer" in lowered or "basic" in lowered) and _AUTH_SCHEME.search(value) is not None


_SECRET_KEY_PARTS = ("api_key", "apikey", "api-key", "authorization", "secret", "password", "token")


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if not any(part in lowered for part in _SECRET_KEY_PARTS):
        return False
    # Token *counts* and token types are usage metrics, not credentials.
    return not ("tokens" in lowered or "token.type" in lowered or "token_type" in lowered)


class KeyPolicy(enum.Enum):
    SECRET = "secret"  # a credential: replaced whole, always
    PII = "pii"  # user data by name (a `pii` segment): replaced whole when PII redaction is on
    SAFE = "safe"  # the project's bounded values: never scanned
    SCAN = "scan"  # anything else: values scanned for secrets and PII


@functools.lru_cache(maxsize=4096)  # attribute keys are a small, fixed set; this runs for every attribute
def key_policy(key: str) -> KeyPolicy:
    if _is_secret_key(key):
        return KeyPolicy.SECRET
    if names.PII_SEGMENT in key.lower().split("."):
        return KeyPolicy.PII
    if key in names.SAFE_ATTRIBUTES:
        return KeyPolicy.SAFE
    return KeyPolicy.SCAN


def _percent_decoded(value: str) -> list[str]:
    """The forms a percent-encoded value takes decoded (once, twice, with '+' as a space)."""
    once = unquote(value)
    forms = [once, unquote(once), unquote_plus(value)]
    return [form for form in dict.fromkeys(forms) if form != value]


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


class Redactor:
    """Pure string/attribute redaction; shared by the span, log and stderr paths."""

    def __init__(self, *, pii: bool = True, policy: Callable[[str], KeyPolicy] = key_policy) -> None:
        self.pii = pii
        self._policy = policy  # injectable so the benchmark can compare with scanning every key

    def text(self, value: str) -> str:
        if "%" in value:
            # A percent-encoded e-mail or phone number ("%40", "%2B") is matched in its decoded form;
            # the decoded, redacted text replaces the original then.
            for decoded in _percent_decoded(value):
                if _maybe_sensitive(decoded):
                    redacted = self._scan(decoded)
                    if redacted != decoded:
                        return redacted
        if not _maybe_sensitive(value):
            return value
        return self._scan(value)

    def _scan(self, value: str) -> str:
        for pattern in _SECRET_VALUES:
            value = pattern.sub(REDACTED, value)
        value = _SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, value)
        if self.pii:
            value = _EMAIL.sub(EMAIL_MASK, value)
            value = _PHONE.sub(lambda m: PHONE_MASK if 7 <= _digits(m.group(0)) <= 15 else m.group(0), value)
        return value

    def value(self, key: str, value: Any) -> Any:
        policy = self._policy(key)
        if policy is KeyPolicy.SAFE or isinstance(value, bool | int | float):
            return value
        if policy is KeyPolicy.SECRET or (policy is KeyPolicy.PII and self.pii):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return value
        if isinstance(value, Mapping):
            return {k: self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, Sequence):
            return (
                type(value)(self.value(key, v) for v in value)
                if isinstance(value, tuple)
                else [self.value(key, v) for v in value]
            )
        return value

    def attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if attributes is None:
            return None
        return {key: self.value(key, val) for key, val in attributes.items()}

    def changed(self, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
        """Only the attributes whose redacted value differs (for in-place updates)."""
        out: dict[str, Any] = {}
        for key, val in (attributes or {}).items():
            new = self.value(key, val)
            if new != val:
                out[key] = new
        return out


class RedactingSpanProcessor(SpanProcessor):
    """Redacts each finished span (attributes, events, links, status) before any exporter sees it.

    Runs once per span, in ``on_end``, on the snapshot the SDK hands every processor in turn: the
    redacted containers are bound onto that snapshot, so the processors registered after this one
    (the batch and simple processors that export) see only redacted values. The SDK has no public
    way to replace a finished span's data; LiveKit's own PII filter rebinds the same fields
    (docs/private-apis.md). One pass here replaces two (the start attributes, then a redacted copy
    of every span on the export thread): bench/RESULTS.md, "One redaction pass per span".
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass  # nothing reads a span before it ends; on_end redacts everything it carries then

    def on_end(self, span: ReadableSpan) -> None:
        r = self._redactor
        attributes = span.attributes
        changed = r.changed(attributes)
        if changed:
            # A plain dict, as LiveKit's filter binds: the attributes were already cleaned and bounded.
            span._attributes = {**(attributes or {}), **changed}
        events = span.events
        if events:
            redacted_events = [(event, r.changed(event.attributes)) for event in events]
            if any(event_changed for _, event_changed in redacted_events):
                span._events = tuple(
                    Event(e.name, {**(e.attributes or {}), **c}, e.timestamp) if c else e
                    for e, c in redacted_events
                )
        links = span.links
        if links:
            redacted_links = [(link, r.changed(link.attributes)) for link in links]
            if any(link_changed for _, link_changed in redacted_links):
                span._links = tuple(
                    Link(link.context, {**(link.attributes or {}), **c}) if c else link
                    for link, c in redacted_links
                )
        status = span.status
        own_message = (attributes or {}).get(names.ERROR_MESSAGE)  # as set; redacted below
        if status.status_code is StatusCode.ERROR and isinstance(own_message, str):
            # Ours (telemetry/span_status.py): restored where LiveKit's PII filter replaced it.
            span._status = Status(StatusCode.ERROR, r.text(own_message))
        elif status.description:
            description = r.text(status.description)
            if description != status.description:
                span._status = Status(status.status_code, description)


class RedactingLogProcessor(LogRecordProcessor):
    """Redacts body and attributes in place; must be the first log processor on the provider."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        if isinstance(record.body, str):
            record.body = self._redactor.text(record.body)
        elif record.body is not None:
            record.body = self._redactor.value("body", record.body)
        changed = self._redactor.changed(record.attributes)
        if changed and record.attributes is not None:
            for key, value in changed.items():
                record.attributes[key] = value  # type: ignore[index]

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
