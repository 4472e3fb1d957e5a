"""The turn metric is the caller's wait: end of the caller's turn -> first output of the reply.

Issue 15 item 4: ``sales_agent.turn.response_latency`` used to end at the first chunk of the first
LLM stream, so a turn that spent seconds in a tool (CRM retries) was recorded as ~0.1 s. These tests
run a real text call whose tool waits on a slow CRM and check the recorded wait covers it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace

from agent.app_settings import AppSettings
from agent.call_context import CallContext
from agent.llm import LLMSettings
from agent.runtime import Runtime, start_runtime
from agent.sales_call import SalesCall
from agent.simulate.scripts import tool
from agent.tenants import TenantRegistry
from agent.turn_recorder import TurnRecorder
from local_services.crm_service import run_crm_service
from local_services.llm_provider import run_llm_provider
from telemetry import names

TENANTS = {"tenants": {"acme": {"display_name": "Acme Corp"}}}
CONTACT = {"name": "Dana Scully", "company": "Initech", "role": "CTO", "email": "dana@initech.example.com"}
TEXT_ACME = {names.TENANT_ID: "acme", names.TURN_MODE: "text"}


@pytest.fixture
async def text_stack(tmp_path: Path) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    async with (
        run_llm_provider("primary") as primary,
        run_crm_service(tmp_path / "crm.sqlite3") as crm_url,
        httpx.AsyncClient(base_url=crm_url) as crm_admin,
    ):
        settings = AppSettings.from_env(
            llm={"chain": LLMSettings.for_local([primary.url]).chain},
            crm={"crm_url": crm_url, "outbox_path": str(tmp_path / "outbox.sqlite3")},
        )
        runtime = await start_runtime(settings, tenants=TenantRegistry.from_mapping(TENANTS))
        try:
            yield runtime, crm_admin
        finally:
            await runtime.aclose()


def _histogram(otel, name: str, **attrs: str) -> tuple[int, float]:
    count, total = 0, 0.0
    for point_attrs, point in otel.metric_points(name):
        if all(point_attrs.get(k) == v for k, v in attrs.items()):
            count += point.count
            total += point.sum
    return count, total


async def test_a_turn_spent_in_a_slow_tool_is_recorded_whole(otel, text_stack) -> None:
    runtime, crm_admin = text_stack
    (await crm_admin.post("/admin/fault", json={"mode": "slow", "delay_s": 1.0})).raise_for_status()
    before = _histogram(otel, names.TURN_RESPONSE_LATENCY, **TEXT_ACME)
    tools_before = _histogram(otel, names.TURN_STAGE_DURATION, **TEXT_ACME, **{names.TURN_STAGE: "tools"})

    ctx = CallContext(tenant_id="acme", session_id=uuid.uuid4().hex, call_id=f"t-{uuid.uuid4().hex[:6]}")
    call = SalesCall(ctx, runtime.services, greet_on_enter=False, turn_handling={"turn_detection": "manual"})
    await call.start()
    await call.session.run(user_input=tool("capture_basic_info", **CONTACT))
    await call.aclose()

    tool_spans = [s for s in otel.spans("capture_basic_info") if s.context.trace_id == int(call.trace_id, 16)]
    assert len(tool_spans) == 1
    tool_s = (tool_spans[0].end_time - tool_spans[0].start_time) / 1e9
    assert tool_s >= 1.0  # the CRM's delay

    [turn] = call.turns.recorded
    # The caller waited through the tool and the second LLM stream, and the metric says so (the old
    # metric stopped at the first stream's tool-call chunk: a few milliseconds).
    assert turn.wait_s >= tool_s
    assert turn.stages["tools"] >= tool_s
    assert turn.stages["llm"] > 0
    count, total = _histogram(otel, names.TURN_RESPONSE_LATENCY, **TEXT_ACME)
    assert count - before[0] == 1
    assert total - before[1] == pytest.approx(turn.wait_s)
    tools_count, _ = _histogram(otel, names.TURN_STAGE_DURATION, **TEXT_ACME, **{names.TURN_STAGE: "tools"})
    assert tools_count - tools_before[0] == 1


async def test_the_wait_is_recorded_when_the_reply_starts_not_at_session_close(otel, text_stack) -> None:
    runtime, _ = text_stack
    before = _histogram(otel, names.TURN_RESPONSE_LATENCY, **TEXT_ACME)[0]
    ctx = CallContext(tenant_id="acme", session_id=uuid.uuid4().hex, call_id=f"t-{uuid.uuid4().hex[:6]}")
    call = SalesCall(ctx, runtime.services, greet_on_enter=False, turn_handling={"turn_detection": "manual"})
    await call.start()
    await call.session.run(user_input="Hi, who is this?")
    await call.session.run(user_input="Tell me more.")
    assert not call.finished
    points = [p for a, p in otel.metric_points(names.TURN_RESPONSE_LATENCY) if a == TEXT_ACME]  # mid-call
    await call.aclose()
    assert sum(p.count for p in points) - before == 2
    # The exemplars (one per bucket since the last collection) point into the call's trace.
    exemplars = [e for point in points for e in point.exemplars or ()]
    assert exemplars
    assert {trace.format_trace_id(e.trace_id) for e in exemplars} == {call.trace_id}


def test_stages_add_up_across_tool_calls_and_streams(monkeypatch) -> None:
    """Two LLM streams around a tool call, then TTS: each stage is the time spent in it."""
    clock = [100.0]
    monkeypatch.setattr("agent.turn_recorder.time.time", lambda: clock[0])
    recorder = TurnRecorder(CallContext("acme", "s", "c"), "voice")

    def at(t: float) -> None:
        clock[0] = t

    recorder.user_turn_ended(100.0, endpointing_s=0.6, stt_s=0.55)
    at(100.6)
    recorder.llm_started()
    at(100.7)
    recorder.llm_first_chunk()  # a tool call: livekit runs it from here
    recorder.llm_tool_calls()
    at(100.75)
    recorder.llm_finished(tool_calls=True)
    at(103.7)
    recorder.llm_started()  # after 3 s in the tool
    at(103.9)
    recorder.llm_first_chunk()
    recorder.llm_text()
    at(104.0)
    turn = recorder.reply_started(104.1)
    assert turn is not None
    assert turn.wait_s == pytest.approx(4.1)
    assert turn.stages == pytest.approx(
        {"endpointing": 0.6, "stt": 0.55, "llm": 0.3, "tools": 3.0, "tts": 0.2}
    )
    # Each stream's own wait for its first chunk (simulate's time to first token, no span needed).
    assert recorder.llm_first_chunks_s == pytest.approx([0.1, 0.2])
    assert recorder.reply_started(105.0) is None  # a reply nobody waited for (goodbye) is not a turn


def test_a_stream_that_started_just_before_the_users_message_counts(monkeypatch) -> None:
    """Text calls: livekit starts the LLM stream a moment before adding the user's message."""
    clock = [10.0]
    monkeypatch.setattr("agent.turn_recorder.time.time", lambda: clock[0])
    recorder = TurnRecorder(CallContext("acme", "s", "c"), "text")
    recorder.llm_started()
    clock[0] = 10.02
    recorder.user_turn_ended(9.99)
    clock[0] = 10.2
    recorder.llm_first_chunk()
    recorder.llm_text()
    turn = recorder.reply_started(10.21)
    assert turn is not None and turn.stages["llm"] == pytest.approx(0.2)
    assert "tts" not in turn.stages  # text calls have no audio stage


def test_a_turn_the_call_ended_on_is_counted_unanswered(otel) -> None:
    attrs = {names.TENANT_ID: "acme", names.UNANSWERED_REASON: "call_ended"}
    before = otel.metric_value(names.TURN_UNANSWERED, **attrs)
    recorder = TurnRecorder(CallContext("acme", "s", "c"), "voice")
    recorder.user_turn_ended(1.0)
    recorder.close()
    assert otel.metric_value(names.TURN_UNANSWERED, **attrs) - before == 1
