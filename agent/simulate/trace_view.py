"""Capture the run's spans in-process and print one call's span tree in the terminal.

``SpanCapture`` is an extra span exporter handed to ``setup_telemetry``: it keeps finished spans
grouped by trace id (bounded, oldest traces dropped first) so ``--show-trace`` works without any
tracing backend. ``render_trace`` turns one trace into a ``rich`` tree.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.semconv.attributes import http_attributes, url_attributes
from opentelemetry.trace import StatusCode, format_trace_id
from rich.text import Text
from rich.tree import Tree

from telemetry import names

# Attributes worth showing next to a span's name (bounded; ids and payloads are left out).
SHOWN_ATTRIBUTES = (
    names.OPERATION,
    names.GEN_AI_PROVIDER_NAME,
    names.GEN_AI_REQUEST_MODEL,
    names.LLM_ATTEMPT,
    names.ERROR_CATEGORY,
    names.ERROR_TYPE,
    names.CALL_OUTCOME,
    names.DEPENDENCY,
    http_attributes.HTTP_REQUEST_METHOD,
    http_attributes.HTTP_RESPONSE_STATUS_CODE,
    url_attributes.URL_PATH,
)


class SpanCapture(SpanExporter):
    """Keeps the spans of the most recent ``max_traces`` traces."""

    def __init__(self, max_traces: int = 500) -> None:
        self._max_traces = max_traces
        self._traces: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                trace_id = span.context.trace_id
                bucket = self._traces.get(trace_id)
                if bucket is None:
                    bucket = self._traces[trace_id] = []
                    while len(self._traces) > self._max_traces:
                        self._traces.popitem(last=False)
                bucket.append(span)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()

    def spans(self, trace_id_hex: str) -> list[ReadableSpan]:
        with self._lock:
            return list(self._traces.get(int(trace_id_hex, 16), ())) if trace_id_hex else []


def _label(span: ReadableSpan) -> Text:
    duration_ms = ((span.end_time or span.start_time or 0) - (span.start_time or 0)) / 1e6
    text = Text(span.name, style="bold red" if span.status.status_code is StatusCode.ERROR else "bold")
    text.append(f"  {duration_ms:.1f} ms", style="cyan")
    attrs = span.attributes or {}
    shown = [f"{key}={attrs[key]}" for key in SHOWN_ATTRIBUTES if key in attrs]
    if shown:
        text.append("  " + " ".join(shown), style="dim")
    for event in span.events:
        if event.name in (names.FALLBACK_EVENT, names.RETRY_EVENT):
            text.append(f"  [{event.name}]", style="yellow")
    return text


def render_trace(spans: Sequence[ReadableSpan]) -> Tree:
    """A tree of ``spans`` (one trace) by parent; spans whose parent was not captured become roots."""
    if not spans:
        return Tree("(no spans captured)")
    by_id = {span.context.span_id: span for span in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in by_id else None
        children.setdefault(parent, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: s.start_time or 0)

    trace_id = format_trace_id(spans[0].context.trace_id)
    tree = Tree(Text(f"trace {trace_id}  ({len(spans)} spans)", style="bold magenta"))

    def add(node: Tree, parent_id: int | None) -> None:
        for span in children.get(parent_id, []):
            add(node.add(_label(span)), span.context.span_id)

    add(tree, None)
    return tree
