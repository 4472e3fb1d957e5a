"""The span budget (telemetry/span_budget.py): LiveKit's internals dropped, the tree still whole.

A tree shaped like one turn of a simulated call (LiveKit's ``agent_turn`` -> ``llm_node`` ->
``llm_request`` -> ``llm_request_run`` -> our ``chat`` attempt -> an HTTP client span; ``function_tool``
-> our tool span; ``agent_speaking``; the once-per-call ``session_start`` -> ``start_agent_activity``
-> ``on_enter``) goes through a provider with the budget, then through the real
OTLP protobuf encoding and back, as Tempo would receive it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.propagate import inject
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, DEFAULT_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from telemetry.span_budget import (
    DROPPED_BY_DEFAULT,
    TRACE_STATE_KEY,
    KeptParentSpanExporter,
    SpanBudgetSampler,
    SpanBudgetTracer,
)

KEPT = {"sales_call", "session_start", "agent_turn", "chat primary-model", "POST", "capture_basic_info"}
DROPPED = {
    "start_agent_activity",
    "on_enter",
    "llm_node",
    "llm_request",
    "llm_request_run",
    "function_tool",
    "agent_speaking",
}


def _provider(budget: bool, inner: Sampler = DEFAULT_ON) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    sampler = SpanBudgetSampler(inner, DROPPED_BY_DEFAULT) if budget else inner
    provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(KeptParentSpanExporter(exporter) if budget else exporter))
    return provider, exporter


def _one_turn(provider: TracerProvider, headers: dict[str, str] | None = None) -> None:
    _turn_through(provider.get_tracer("test"), headers)


def _turn_through(tracer: trace.Tracer, headers: dict[str, str] | None = None) -> None:
    """The nesting of a tool turn in a simulated call (names as LiveKit and our code use them)."""
    with tracer.start_as_current_span("sales_call"):
        with (
            tracer.start_as_current_span("session_start"),
            tracer.start_as_current_span("start_agent_activity"),
            tracer.start_as_current_span("on_enter"),
        ):
            pass
        _turn(tracer, headers)


def _turn(tracer: trace.Tracer, headers: dict[str, str] | None) -> None:
    with tracer.start_as_current_span("agent_turn") as turn:
        with (
            tracer.start_as_current_span("llm_node"),
            tracer.start_as_current_span("llm_request"),
            tracer.start_as_current_span("llm_request_run"),
            tracer.start_as_current_span("chat primary-model", kind=SpanKind.CLIENT),
            tracer.start_as_current_span("POST", kind=SpanKind.CLIENT),
        ):
            if headers is not None:
                inject(headers)  # what httpx would send to the provider
        with (
            tracer.start_as_current_span("function_tool"),
            tracer.start_as_current_span("capture_basic_info"),
        ):
            pass
        # LiveKit starts agent_speaking with an explicit parent context, not the current one.
        speaking = tracer.start_span("agent_speaking", context=trace.set_span_in_context(turn))
        speaking.end()


def _decoded(spans: Sequence[ReadableSpan]) -> list[tuple[str, bytes, bytes]]:
    """(name, span id, parent span id) of each span after an OTLP protobuf round trip."""
    wire = encode_spans(spans).SerializeToString()
    request = ExportTraceServiceRequest.FromString(wire)
    return [
        (span.name, span.span_id, span.parent_span_id)
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def _orphans(decoded: list[tuple[str, bytes, bytes]]) -> list[str]:
    ids = {span_id for _name, span_id, _parent in decoded}
    return [name for name, _id, parent in decoded if parent and parent not in ids]


def _parents(decoded: list[tuple[str, bytes, bytes]]) -> dict[str, str | None]:
    by_id = {span_id: name for name, span_id, _parent in decoded}
    return {name: by_id.get(parent) if parent else None for name, _id, parent in decoded}


def _assert_kept_tree(decoded: list[tuple[str, bytes, bytes]]) -> None:
    """No orphans; each child of a dropped chain hangs from its nearest kept ancestor."""
    assert _orphans(decoded) == []
    parents = _parents(decoded)
    assert parents["chat primary-model"] == "agent_turn"
    assert parents["capture_basic_info"] == "agent_turn"
    assert parents["POST"] == "chat primary-model"
    assert parents["sales_call"] is None


@pytest.fixture
def budgeted() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider, exporter = _provider(budget=True)
    yield provider, exporter
    provider.shutdown()


def test_livekit_internals_are_dropped_by_default(
    budgeted: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = budgeted
    _one_turn(provider)
    names = {span.name for span in exporter.get_finished_spans()}
    assert names == KEPT
    assert not names & DROPPED


def test_no_orphans_after_the_otlp_round_trip(budgeted: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = budgeted
    _one_turn(provider)
    decoded = _decoded(exporter.get_finished_spans())
    _assert_kept_tree(decoded)


def test_debug_detail_keeps_everything() -> None:
    provider, exporter = _provider(budget=False)
    _one_turn(provider)
    decoded = _decoded(exporter.get_finished_spans())
    assert {name for name, _id, _parent in decoded} == KEPT | DROPPED
    assert _orphans(decoded) == []
    assert _parents(decoded)["chat primary-model"] == "llm_request_run"
    provider.shutdown()


def test_the_mark_never_leaves_a_kept_span(budgeted: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """Kept spans carry no budget mark in their tracestate, nor in the headers sent to other services."""
    provider, exporter = budgeted
    headers: dict[str, str] = {}
    _one_turn(provider, headers)
    assert TRACE_STATE_KEY not in headers.get("tracestate", "")
    assert int(headers["traceparent"][-2:], 16) & 1, "the provider call is sampled"
    for span in exporter.get_finished_spans():
        assert TRACE_STATE_KEY not in span.context.trace_state


def test_a_dropped_root_makes_its_children_roots() -> None:
    provider, exporter = _provider(budget=True)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("llm_request"), tracer.start_as_current_span("chat primary-model"):
        pass
    [span] = exporter.get_finished_spans()
    assert span.name == "chat primary-model" and span.parent is None
    provider.shutdown()


def test_an_unsampled_trace_stays_unsampled_through_dropped_spans() -> None:
    """The budget does not resurrect a trace the configured sampler left out (OTEL_TRACES_SAMPLER)."""
    provider, exporter = _provider(budget=True, inner=ParentBased(TraceIdRatioBased(0.0)))
    _one_turn(provider)
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


def test_a_remote_parent_is_kept_as_the_ancestor() -> None:
    """A call continued from another service (traceparent): the dropped span's children hang from it."""
    provider, exporter = _provider(budget=True, inner=ParentBased(ALWAYS_ON))
    remote = trace.SpanContext(
        0x1234, 0xABCD, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(remote)))
    try:
        tracer = provider.get_tracer("test")
        with (
            tracer.start_as_current_span("function_tool"),
            tracer.start_as_current_span("capture_basic_info"),
        ):
            pass
    finally:
        context.detach(token)
    [span] = exporter.get_finished_spans()
    assert span.parent is not None and span.parent.span_id == 0xABCD and span.context.trace_id == 0x1234
    provider.shutdown()


def test_description_names_the_inner_sampler_first() -> None:
    description = SpanBudgetSampler(DEFAULT_ON, ["llm_request"]).get_description()
    assert description.startswith("ParentBased{root:AlwaysOnSampler")
    assert "llm_request" in description


def test_a_log_inside_a_dropped_span_names_the_kept_ancestor() -> None:
    import logging

    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor

    from telemetry.span_budget import KeptSpanLogProcessor

    provider, _exporter = _provider(budget=True)
    logs = InMemoryLogExporter()
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(KeptSpanLogProcessor())
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger = logging.getLogger("test_span_budget.logs")
    handler = LoggingHandler(logger_provider=logger_provider)
    logger.addHandler(handler)
    try:
        tracer = provider.get_tracer("test")
        with (
            tracer.start_as_current_span("agent_turn") as kept,
            tracer.start_as_current_span("llm_request_run"),
        ):
            logger.warning("all LLM providers failed")
    finally:
        logger.removeHandler(handler)
    [record] = logs.get_finished_logs()
    assert record.log_record.span_id == kept.get_span_context().span_id
    assert record.log_record.trace_flags.sampled
    provider.shutdown()
    logger_provider.shutdown()


# --- LiveKit's tracer, wrapped (SpanBudgetTracer): the dropped names never reach the SDK ----------


class _Seen(Sampler):
    """The provider's sampler, recording every name it is asked about."""

    def __init__(self, inner: Sampler) -> None:
        self.inner, self.names = inner, []  # type: ignore[var-annotated]

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any) -> Any:
        self.names.append(name)
        return self.inner.should_sample(parent_context, trace_id, name, *args, **kwargs)

    def get_description(self) -> str:
        return "seen"


def _wrapped(
    inner: Sampler = DEFAULT_ON,
) -> tuple[TracerProvider, InMemorySpanExporter, _Seen, SpanBudgetTracer]:
    """The production layout: the budget sampler on the provider, LiveKit's tracer wrapped."""
    exporter = InMemorySpanExporter()
    seen = _Seen(SpanBudgetSampler(inner, DROPPED_BY_DEFAULT))
    provider = TracerProvider(sampler=seen, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(KeptParentSpanExporter(exporter)))
    return provider, exporter, seen, SpanBudgetTracer(provider.get_tracer("livekit"), DROPPED_BY_DEFAULT)


def test_the_wrapped_livekit_tracer_keeps_the_tree_and_never_asks_the_sdk_about_dropped_names() -> None:
    provider, exporter, seen, tracer = _wrapped()
    _turn_through(tracer)
    decoded = _decoded(exporter.get_finished_spans())
    assert {name for name, _id, _parent in decoded} == KEPT
    assert not set(seen.names) & DROPPED, "a dropped name reached the SDK"
    _assert_kept_tree(decoded)
    # No mark is needed: the spans under a stand-in already name the kept parent.
    assert all(
        span.parent is None or span.parent.trace_flags.sampled for span in exporter.get_finished_spans()
    )
    provider.shutdown()


def test_inside_a_stand_in_everything_names_the_kept_parent_and_writes_land_nowhere() -> None:
    provider, exporter, _seen, tracer = _wrapped()
    headers: dict[str, str] = {}
    with tracer.start_as_current_span("agent_turn") as kept:
        with tracer.start_as_current_span("llm_node") as stand_in:
            current = trace.get_current_span()
            current.set_attribute("lk.chat_ctx", "the whole conversation")  # what LiveKit writes there
            inject(headers)
        explicit = tracer.start_span("agent_speaking", context=trace.set_span_in_context(kept))
        explicit.set_attribute("lk.speech_id", "s1")
        explicit.end()
    assert current is stand_in and not stand_in.is_recording()
    assert stand_in.get_span_context() == kept.get_span_context()
    assert explicit.get_span_context() == kept.get_span_context()
    assert headers["traceparent"].split("-")[2] == format(kept.get_span_context().span_id, "016x")
    assert int(headers["traceparent"][-2:], 16) & 1, "sampled, as the kept parent"
    assert TRACE_STATE_KEY not in headers.get("tracestate", "")
    [turn] = exporter.get_finished_spans()
    assert turn.name == "agent_turn" and set(turn.attributes or {}) == set()
    provider.shutdown()


def test_the_wrapped_tracer_drops_a_root_and_honours_an_unsampled_trace() -> None:
    provider, exporter, _seen, tracer = _wrapped()
    with tracer.start_as_current_span("llm_request"), tracer.start_as_current_span("chat primary-model"):
        pass
    [span] = exporter.get_finished_spans()
    assert span.name == "chat primary-model" and span.parent is None
    provider.shutdown()
    provider, exporter, _seen, tracer = _wrapped(inner=ParentBased(TraceIdRatioBased(0.0)))
    _turn_through(tracer)
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


def test_setup_wraps_livekits_tracer_once(otel: Any) -> None:
    """The tests' telemetry is set up as shipped (trace detail ``turn``): LiveKit's tracer is wrapped."""
    from livekit.agents.telemetry import tracer as livekit_tracer

    from telemetry.span_budget import budget_livekit_tracer

    before = livekit_tracer._tracer
    assert isinstance(before, SpanBudgetTracer)
    try:
        budget_livekit_tracer()
        budget_livekit_tracer()
        wrapped = livekit_tracer._tracer
        assert isinstance(wrapped, SpanBudgetTracer) and not isinstance(wrapped.inner, SpanBudgetTracer)
    finally:
        livekit_tracer._tracer = before
