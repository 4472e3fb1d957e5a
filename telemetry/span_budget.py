"""The span budget of a turn: LiveKit's per-attempt and per-chunk internals stay out of the trace.

A simulated call made ~108 spans, most of them LiveKit's wrappers around work our own spans already
describe (``llm_request`` -> ``llm_request_run`` around every LLM attempt span, ``function_tool``
around every tool span, ``agent_speaking`` per reply played out). Each costs the SDK's per-span work on
the event loop's thread and is noise for the person reading the trace. With
``SALES_AGENT_TRACE_DETAIL=turn`` (the default) they are not recorded at all; ``debug`` records them.

Two layers. LiveKit starts all of these through its own tracer, which ``budget_livekit_tracer``
wraps (``SpanBudgetTracer``): a dropped name gets a non-recording stand-in that carries its parent's
context, so the SDK never sees it and everything inside it names the kept parent directly. Any
dropped name that reaches the SDK another way (a LiveKit upgrade that starts one elsewhere, a tracer
made before the wrap) is dropped by ``SpanBudgetSampler``, which stays as the safety net.

How the sampler works, and why a sampler and not an export filter: it decides before the span
exists, so a dropped span costs no attributes, no processors and no export (a filter at export would
still pay all of that). The SDK then gives the dropped span a non-recording context with a fresh span id, and
its children would name that id as their parent: spans orphaned in Tempo. So the dropped span's
context carries, in its ``tracestate`` under ``TRACE_STATE_KEY``, the id of its nearest kept ancestor
(nested drops pass it on). Two places read it:

- ``SpanBudgetSampler`` itself, deciding a child of a dropped span as if its parent were that kept
  ancestor (the dropped context is marked "not sampled", which would otherwise drop the child too);
  kept spans never carry the key onward (nor in ``tracestate`` headers to other services).
- ``KeptParentSpanExporter``, at export, hands the exporter a copy of such a child whose parent is the
  kept ancestor. The span itself cannot be re-parented earlier: the SDK fixes a span's parent when
  it starts, before any processor sees it, and offers no public way to change it.
- ``KeptSpanLogProcessor``: a log record written inside a dropped span names the kept ancestor as its
  span, so the log-to-trace link lands on a span that exists.

Hand-written because neither the SDK nor LiveKit has a per-name drop that keeps the tree whole
(LiveKit's own filter removes attributes, not spans). Stateless: nothing is remembered per span.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

TraceDetail = Literal["turn", "debug"]

# LiveKit's spans left out of a turn by default, each with the reason (telemetry/README.md lists what a
# turn keeps). Names from livekit-agents' source; the text-mode ones counted in a simulated call
# (bench/RESULTS.md, "The span tree of one call").
DROPPED_BY_DEFAULT: dict[str, str] = {
    "llm_request": "LiveKit's LLM stream wrapper: one per LLM step, the same time as our `chat <model>` "
    "attempt span(s) inside it, which carry provider, model, attempt, tokens and fallbacks",
    "llm_request_run": "LiveKit's per-attempt run inside `llm_request`: our RouterLLM does the attempts "
    "(one `chat <model>` span each), LiveKit sees one",
    "llm_node": "LiveKit's LLM step: recording it serializes the whole chat context onto it as JSON at "
    "every step (which LiveKit's PII filter then strips again); our `chat <model>` attempt span(s) "
    "carry the step: provider, model, attempt, tokens, time to first token",
    "function_tool": "LiveKit's tool wrapper: our tool span (operation, error.type) is the same call",
    "agent_speaking": "per reply played out; in text mode a copy of the reply's streaming time",
    # LiveKit's agent-activity lifecycle, once per call under `session_start` / `session_close` (which
    # are kept and time the same work): this agent never hands over to another, so the steps
    # inside say nothing the two kept spans do not.
    "start_agent_activity": "the one agent's activity starting, inside `session_start`",
    "setup_toolsets": "tool registration inside `start_agent_activity` (fixed per deployment)",
    "on_enter": "the agent's on_enter hook, inside `session_start` (the greeting it asks for is a turn "
    "of its own, kept)",
    "drain_agent_activity": "the activity draining, inside `session_close`",
    "on_exit": "the agent's on_exit hook, inside `session_close`",
}

# tracestate key carried by a dropped span's context: the span id (16 hex) of its nearest kept
# ancestor, or ROOT_MARK when it has none (its children become roots).
TRACE_STATE_KEY = "sa_kept"
ROOT_MARK = "root"


def kept_ancestor(parent: SpanContext | None) -> SpanContext | Literal[False] | None:
    """For a span whose parent is ``parent``: its nearest kept ancestor's context.

    ``False`` when ``parent`` is not a span the budget dropped (the parent stands as it is); ``None``
    when the dropped chain reached the trace's root (the span becomes a root).
    """
    if parent is None or parent.trace_flags.sampled:
        return False
    mark = parent.trace_state.get(TRACE_STATE_KEY)
    if mark is None:
        return False
    if mark == ROOT_MARK:
        return None
    return SpanContext(
        parent.trace_id,
        int(mark, 16),
        is_remote=False,
        trace_flags=TraceFlags(parent.trace_flags | TraceFlags.SAMPLED),
        trace_state=parent.trace_state.delete(TRACE_STATE_KEY),
    )


class SpanBudgetTracer(trace.Tracer):
    """LiveKit's tracer with the budget's names left out before the SDK sees them.

    A dropped span here is a non-recording stand-in carrying its parent's context: no span id, no
    sampler, no tracestate mark, and everything inside it (child spans, log records, ``traceparent``
    headers, exemplars) names the kept parent directly. The SDK path (``SpanBudgetSampler``) stays
    for any dropped name that reaches the provider another way; through LiveKit's tracer none does.
    Hand-written: the SDK gives every started span an id of its own (bench/RESULTS.md, "One redaction
    pass per span": ~10 µs saved per dropped span, ~50 of them per simulated call).
    """

    def __init__(self, inner: trace.Tracer, dropped: Collection[str]) -> None:
        self.inner = inner
        self._dropped = frozenset(dropped)

    def start_span(self, name: str, context: Context | None = None, *args: Any, **kwargs: Any) -> trace.Span:
        if name in self._dropped:
            return trace.NonRecordingSpan(trace.get_current_span(context).get_span_context())
        return self.inner.start_span(name, context, *args, **kwargs)

    @contextlib.contextmanager
    def start_as_current_span(
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        if name not in self._dropped:
            with self.inner.start_as_current_span(name, context, *args, **kwargs) as span:
                yield span
            return
        # Made current: LiveKit's code inside reads the current span, and must not write onto the parent.
        stand_in = trace.NonRecordingSpan(trace.get_current_span(context).get_span_context())
        with trace.use_span(
            stand_in, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield stand_in


def budget_livekit_tracer(dropped: Collection[str] = DROPPED_BY_DEFAULT) -> None:
    """Wrap the tracer LiveKit starts its spans with (after LiveKit's ``set_tracer_provider``).

    LiveKit keeps its SDK tracer in ``tracer._tracer`` and its provider in ``tracer._tracer_provider``;
    only the tracer is wrapped, so LiveKit Cloud's export pipeline still finds the SDK provider."""
    from livekit.agents.telemetry import tracer as livekit_tracer

    current = getattr(livekit_tracer, "_tracer", None)
    if current is None:  # a LiveKit that keeps it elsewhere: the sampler still drops these spans
        return
    if isinstance(current, SpanBudgetTracer):
        current = current.inner
    livekit_tracer._tracer = SpanBudgetTracer(current, dropped)


class SpanBudgetSampler(Sampler):
    """Drops spans named in ``dropped``; every other decision is ``inner``'s (the SDK default:
    ``ParentBased(AlwaysOn)``, or what ``OTEL_TRACES_SAMPLER`` names)."""

    def __init__(self, inner: Sampler, dropped: Collection[str]) -> None:
        self._inner = inner
        self._dropped = frozenset(dropped)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        parent = parent if parent.is_valid else None
        ancestor = kept_ancestor(parent)
        if ancestor is not False:
            # The parent was dropped by the budget: decide as if the kept ancestor were the parent.
            parent = ancestor
            parent_context = Context()
            if ancestor is not None:
                parent_context = trace.set_span_in_context(trace.NonRecordingSpan(ancestor))
        if name in self._dropped:
            decided = self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links)
            if not decided.decision.is_sampled():
                return decided  # the trace is not sampled anyway: the children follow that decision
            mark = format(parent.span_id, "016x") if parent is not None else ROOT_MARK
            state = decided.trace_state or (parent.trace_state if parent is not None else TraceState())
            return SamplingResult(Decision.DROP, None, _with_mark(state, mark))
        decided = self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links)
        if decided.trace_state is not None and TRACE_STATE_KEY in decided.trace_state:
            # Never carried past a kept span (nor in `tracestate` headers to other services).
            return SamplingResult(
                decided.decision, decided.attributes, decided.trace_state.delete(TRACE_STATE_KEY)
            )
        return decided

    def get_description(self) -> str:
        return f"{self._inner.get_description()}+SpanBudget{{drop:{','.join(sorted(self._dropped))}}}"


def _with_mark(state: TraceState, mark: str) -> TraceState:
    if TRACE_STATE_KEY in state:
        return state.update(TRACE_STATE_KEY, mark)
    return state.add(TRACE_STATE_KEY, mark)


class KeptParentSpanExporter(SpanExporter):
    """Hands ``inner`` each span whose parent the budget dropped as a copy parented on the kept
    ancestor (or as a root); every other span unchanged."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([_reparented(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _reparented(span: ReadableSpan) -> ReadableSpan:
    ancestor = kept_ancestor(span.parent)
    if ancestor is False:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=ancestor,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class KeptSpanLogProcessor(LogRecordProcessor):
    """A log record emitted inside a span the budget dropped names the nearest kept ancestor instead.

    Runs on the emitting thread (the SDK calls log processors synchronously), where the current span is
    the one the record was stamped with."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        current = trace.get_current_span().get_span_context()
        if not current.is_valid or record.span_id != current.span_id:
            return
        ancestor = kept_ancestor(current)
        if ancestor is False:
            return
        if ancestor is None:  # the dropped chain reached the root: the record names the trace only
            record.span_id = trace.INVALID_SPAN_ID
            return
        record.span_id = ancestor.span_id
        record.trace_flags = ancestor.trace_flags

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
