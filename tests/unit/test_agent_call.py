"""One scripted call end to end in LiveKit's text mode, through the real agent stack.

SalesAgent + its tools + SalesCall (root span, sessions, outcome) + RouterLLM over the local
providers + ResilientCrm over the local CRM service, all on loopback; the LLM is driven by the
provider's ``/tool NAME {json}`` convention so the conversation is deterministic.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit.agents.telemetry.pii import GEN_AI_PII_ATTRIBUTES
from livekit.agents.voice.run_result import ChatMessageEvent, FunctionCallOutputEvent
from opentelemetry.trace import SpanKind
from outbox_backends import removals_held
from waiting import until

from agent.app_settings import AppSettings
from agent.call_context import CallContext
from agent.llm import ProviderConfig
from agent.runtime import Runtime, start_runtime
from agent.sales_call import CALL_SPAN_NAME, SalesCall
from agent.session_settings import SessionSettings
from agent.tenants import TenantRegistry
from local_services.crm_service import run_crm_service
from local_services.llm_provider import run_llm_provider
from telemetry import names

TENANTS = {
    "tenants": {
        "acme": {"display_name": "Acme Corp", "pitch": "cost analytics"},
        "globex": {"display_name": "Globex", "pitch": "logistics software"},
    }
}


@dataclass
class Stack:
    runtime: Runtime
    crm_url: str
    providers: tuple[Any, ...] = ()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with (
        run_llm_provider("primary") as primary,
        run_llm_provider("backup") as backup,
        run_crm_service(tmp_path / "crm.sqlite3") as crm_url,
    ):
        chain = [
            ProviderConfig(name=p.name, kind="local", model=f"{p.name}-model", api_base=p.url)
            for p in (primary, backup)
        ]
        settings = AppSettings.from_env(
            llm={"chain": chain}, crm={"crm_url": crm_url, "outbox_path": str(tmp_path / "outbox.sqlite3")}
        )
        runtime = await start_runtime(settings, tenants=TenantRegistry.from_mapping(TENANTS))
        try:
            yield Stack(runtime, crm_url, (primary, backup))
        finally:
            await runtime.aclose()


def tool(name: str, /, **args: Any) -> str:
    return f"/tool {name} {json.dumps(args)}"


def new_call(stack: Stack, tenant: str = "acme") -> SalesCall:
    ctx = CallContext(tenant_id=tenant, session_id=uuid.uuid4().hex, call_id=f"test-{uuid.uuid4().hex[:8]}")
    return SalesCall(ctx, stack.runtime.services, greet_on_enter=False)


def outputs(result: Any) -> list[Any]:
    return [e.item for e in result.events if isinstance(e, FunctionCallOutputEvent)]


def replies(result: Any) -> list[str]:
    return [e.item.text_content or "" for e in result.events if isinstance(e, ChatMessageEvent)]


def chain_to_root(span: Any, by_id: dict[int, Any]) -> list[str]:
    """Span names from ``span`` up to the root of its trace."""
    path = [span.name]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        path.append(span.name)
    return path


CONTACT = {"name": "Dana Scully", "company": "Initech", "role": "CTO", "email": "dana@initech.example.com"}


async def test_scripted_call_is_one_trace_from_call_root_to_crm_server(otel, stack: Stack) -> None:
    acme = {names.TENANT_ID: "acme"}
    leads_before = otel.metric_value(names.LEADS_CAPTURED, **acme)
    qualified_before = otel.metric_value(names.LEADS_QUALIFIED, **acme, **{names.LEAD_BAND: "hot"})
    calls_before = otel.metric_value(names.CALLS, **acme, **{names.CALL_OUTCOME: "callback"})
    started_before = otel.metric_value(names.SESSIONS_STARTED, **acme)
    ended_before = otel.metric_value(names.SESSIONS_ENDED, **acme, **{names.SESSION_OUTCOME: "completed"})

    call = new_call(stack)
    await call.start()
    assert call.context.session_id in stack.runtime.sessions
    greeting = await call.session.run(user_input="Hi, who is this?")
    captured = await call.session.run(user_input=tool("capture_basic_info", **CONTACT))
    qualified = await call.session.run(
        user_input=tool(
            "qualify_lead", budget=90000, authority="decision_maker", need="high", timeline="this_quarter"
        )
    )
    await call.session.run(user_input=tool("end_call", outcome="callback"))
    assert await call.wait_finished(10)

    assert replies(greeting)  # the canned sales reply
    assert "saved" in outputs(captured)[0].output.lower()
    assert not outputs(captured)[0].is_error
    assert outputs(qualified)[0].output.startswith("Lead scored 100/100 (hot)")
    assert call.outcome == "callback"
    assert call.context.session_id not in stack.runtime.sessions

    spans = otel.spans()
    [root] = [
        s for s in spans if s.name == CALL_SPAN_NAME and s.attributes[names.CALL_ID] == call.context.call_id
    ]
    trace_id = root.context.trace_id
    assert root.attributes[names.TENANT_ID] == "acme"
    assert root.attributes[names.SESSION_ID] == call.context.session_id
    assert root.attributes[names.CALL_OUTCOME] == "callback"
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace}

    # Every LLM attempt (one provider call) sits under a turn of this call.
    attempts = [s for s in in_trace if s.name == "chat primary-model"]
    assert len(attempts) >= 5  # greeting, 2 per tool turn (call + acknowledgement)...
    for attempt in attempts:
        path = chain_to_root(attempt, by_id)
        assert path[-1] == CALL_SPAN_NAME and path[1] == "agent_turn"  # LiveKit's llm_node is left out

    # Tool span -> CRM client span -> HTTP client span -> CRM server span, under the turn.
    [tool_span] = [s for s in in_trace if s.name == "capture_basic_info"]
    # LiveKit's function_tool wrapper is left out by the span budget: the tool span hangs from the turn.
    assert chain_to_root(tool_span, by_id)[1] == "agent_turn"
    assert not {"function_tool", "llm_node", "llm_request", "llm_request_run", "agent_speaking"} & {
        s.name for s in in_trace
    }
    assert chain_to_root(tool_span, by_id)[-1] == CALL_SPAN_NAME
    assert tool_span.attributes[names.CALL_ID] == call.context.call_id
    crm_spans = [s for s in in_trace if s.parent and s.parent.span_id == tool_span.context.span_id]
    assert [s.name for s in crm_spans] == ["crm.upsert_contact"]
    http_client = [
        s
        for s in in_trace
        if s.kind is SpanKind.CLIENT and s.parent and s.parent.span_id == crm_spans[0].context.span_id
    ]
    assert http_client
    server = [
        s
        for s in in_trace
        if s.kind is SpanKind.SERVER and s.parent and s.parent.span_id == http_client[-1].context.span_id
    ]
    assert len(server) == 1 and "/v1/contacts" in server[0].name

    # With PII redaction on (the default), livekit's own filter keeps the conversation off the spans:
    # no chat context, prompts, instructions or tool payloads reach an exporter.
    content = [
        (s.name, key)
        for s in in_trace
        for key in s.attributes or {}
        if ".pii." in f".{key}." or key in GEN_AI_PII_ATTRIBUTES
    ]
    assert not content
    assert any(s.name == "agent_turn" for s in in_trace)  # the turns, which carry the caller's words

    # The call's logs carry its trace id.
    bodies = {r.log_record.body for r in otel.logs() if r.log_record.trace_id == trace_id}
    assert "call started" in bodies
    assert any(str(b).startswith("call ended: callback") for b in bodies)

    # Business and session metrics.
    assert otel.metric_value(names.LEADS_CAPTURED, **acme) == leads_before + 1
    assert (
        otel.metric_value(names.LEADS_QUALIFIED, **acme, **{names.LEAD_BAND: "hot"}) == qualified_before + 1
    )
    assert otel.metric_value(names.CALLS, **acme, **{names.CALL_OUTCOME: "callback"}) == calls_before + 1
    assert otel.metric_value(names.SESSIONS_STARTED, **acme) == started_before + 1
    ended = otel.metric_value(names.SESSIONS_ENDED, **acme, **{names.SESSION_OUTCOME: "completed"})
    assert ended == ended_before + 1


async def test_bad_tool_arguments_give_the_llm_a_specific_error_and_the_call_goes_on(
    otel, stack: Stack
) -> None:
    validation = {names.ERROR_CATEGORY: "validation", names.OPERATION: "capture_basic_info"}
    errors_before = otel.metric_value(names.ERRORS, **validation)

    call = new_call(stack, "globex")
    await call.start()
    missing = await call.session.run(
        user_input=tool("capture_basic_info", name="Dana", email="dana@x.example.com")
    )
    malformed = await call.session.run(
        user_input=tool("capture_basic_info", name="Dana", company="Initech", email="dana at initech")
    )
    fixed = await call.session.run(user_input=tool("capture_basic_info", **CONTACT))
    await call.aclose()

    [missing_out] = outputs(missing)
    assert missing_out.is_error
    assert "company: this field is required" in missing_out.output
    [malformed_out] = outputs(malformed)
    assert malformed_out.is_error
    assert "email" in malformed_out.output and "not valid" in malformed_out.output
    assert "Ask the caller to confirm the email" in malformed_out.output
    # The LLM answered each error (the provider quotes the tool output's first sentence) ...
    assert replies(missing)[-1].startswith("Got it: Invalid input for capture_basic_info")
    # ... and the call went on: the corrected call went through.
    [fixed_out] = outputs(fixed)
    assert not fixed_out.is_error
    assert call.tools.contact_key == CONTACT["email"]
    assert call.outcome == "dropped"  # closed without end_call

    assert otel.metric_value(names.ERRORS, **validation) == errors_before + 2
    error_spans = [s for s in otel.spans("capture_basic_info") if s.attributes.get(names.ERROR_CATEGORY)]
    assert [s.attributes[names.ERROR_CATEGORY] for s in error_spans] == ["validation", "validation"]


async def test_a_call_the_agent_failed_ends_failed_and_one_it_answered_ends_dropped(
    otel, stack: Stack
) -> None:
    from local_services.llm_provider import Fault

    def calls(outcome: str) -> float:
        return otel.metric_value(names.CALLS, **{names.TENANT_ID: "acme", names.CALL_OUTCOME: outcome})

    failed_before, dropped_before = calls("failed"), calls("dropped")
    for provider in stack.providers:
        provider.provider.fault = Fault(mode="500")
    failing = new_call(stack)
    await failing.start()
    heard = await failing.session.run(user_input="Hello? Can you hear me?")
    await failing.aclose()  # the caller hangs up after the "call you back" line
    assert replies(heard)  # the fallback line was spoken
    assert failing.outcome == "failed"
    assert calls("failed") == failed_before + 1 and calls("dropped") == dropped_before

    for provider in stack.providers:
        provider.provider.fault = Fault()
    answered = new_call(stack)
    await answered.start()
    await answered.session.run(user_input="Hello? Can you hear me?")
    await answered.aclose()  # hangs up after a real answer: the caller's choice
    assert answered.outcome == "dropped"
    assert calls("dropped") == dropped_before + 1 and calls("failed") == failed_before + 1


async def test_a_call_ends_after_litellm_finished_each_of_its_streams(
    otel, stack: Stack, litellm_success: Any
) -> None:
    """Each stream ends at its answer (LiteLLM's bookkeeping runs later: agent/llm/stream_tail.py);
    the call's end runs what is still waiting, so nothing of the call is left behind."""
    from litellm_probe import MARK

    call = new_call(stack)
    await call.start()
    await call.session.run(user_input=f"Hi, who is this? {MARK}")
    await call.session.run(user_input=tool("capture_basic_info", **CONTACT))
    assert call.session.llm.stream_tails.pending >= 1  # the last reply's bookkeeping is still to run
    await call.session.run(user_input=tool("end_call", outcome="callback"))
    assert await call.wait_finished(10)

    assert call.session.llm.stream_tails.pending == 0
    attempts = [
        s for s in otel.spans("chat primary-model") if s.attributes[names.CALL_ID] == call.context.call_id
    ]
    assert len(attempts) >= 5  # greeting reply, then a tool call and its acknowledgement per tool turn
    # LiteLLM reports from a task it schedules at the end of its stream.
    await until(lambda: len(litellm_success.completion_tokens) >= len(attempts), timeout_s=5.0)
    assert len(litellm_success.completion_tokens) == len(attempts)


async def test_a_call_ends_after_its_delivered_writes_left_the_outbox(otel, stack: Stack) -> None:
    """A tool's CRM write answers once the CRM has it; the outbox's removal of the entry runs after
    (``Outbox.complete_later``). The call's end waits for it: a finished call leaves nothing queued."""
    store = stack.runtime.crm.outbox.store
    call = new_call(stack)
    with removals_held(store) as removal_may_run:
        await call.start()
        capture = call.session.run(user_input=tool("capture_basic_info", **CONTACT))
        result = await asyncio.wait_for(capture, 10)
        assert "saved" in str(outputs(result)[0].output).lower()  # answered before its removal ran
        assert store.pending_stats() != {}  # delivered, still in the file
        ending = asyncio.ensure_future(call.session.run(user_input=tool("end_call", outcome="callback")))
        await asyncio.sleep(0.3)
        assert not call.finished  # the call's end waits for the removal
        removal_may_run.set()
        await ending
    assert await call.wait_finished(10)
    assert store.pending_stats() == {}


async def test_tools_cannot_reach_another_tenants_records(otel, stack: Stack) -> None:
    crm = stack.runtime.crm
    key = CONTACT["email"]
    # Tenant B (globex) already has this person on record.
    globex = new_call(stack, "globex")
    await globex.start()
    await globex.session.run(user_input=tool("capture_basic_info", **{**CONTACT, "company": "Globex Client"}))
    await globex.aclose()
    globex_before = await crm.get_contact("globex", key)
    assert globex_before is not None

    # A session of tenant A (acme) works with the same email, and tries to name tenant B explicitly.
    acme = new_call(stack, "acme")
    await acme.start()
    smuggled = await acme.session.run(
        user_input=tool("log_note", note="moved to acme", tenant_id="globex", contact_key=key)
    )
    await acme.session.run(user_input=tool("capture_basic_info", **CONTACT))
    await acme.session.run(
        user_input=tool("qualify_lead", budget=0, authority="none", need="low", timeline="none")
    )
    await acme.session.run(user_input=tool("log_note", note="acme-only note"))
    await acme.aclose()

    [smuggled_out] = outputs(smuggled)
    assert smuggled_out.is_error
    assert "tenant_id: unexpected argument" in smuggled_out.output
    assert "contact_key: unexpected argument" in smuggled_out.output

    # Tenant B's record is exactly as it was; tenant A has its own.
    assert await crm.get_contact("globex", key) == globex_before
    acme_record = await crm.get_contact("acme", key)
    assert acme_record is not None
    assert "acme-only note" in json.dumps(acme_record)
    assert "acme-only note" not in json.dumps(globex_before)
    assert "Initech" in json.dumps(acme_record) and "Initech" not in json.dumps(globex_before)


async def test_tools_that_need_a_contact_say_so(otel, stack: Stack) -> None:
    call = new_call(stack)
    await call.start()
    result = await call.session.run(user_input=tool("log_note", note="hello"))
    await call.aclose()
    [out] = outputs(result)
    assert out.is_error
    assert "call capture_basic_info before log_note" in out.output


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_idle_call_is_closed_politely_by_the_session_manager(otel, stack: Stack) -> None:
    from dataclasses import replace

    from agent.sessions import SessionManager

    clock = FakeClock()
    sessions = SessionManager(SessionSettings(inactivity_minutes=5), stack.runtime.tenants, clock=clock)
    idle = {names.TENANT_ID: "acme", names.SESSION_OUTCOME: "idle"}
    idle_before = otel.metric_value(names.SESSIONS_ENDED, **idle)
    dropped_attrs = {names.TENANT_ID: "acme", names.CALL_OUTCOME: "dropped"}
    dropped_before = otel.metric_value(names.CALLS, **dropped_attrs)

    ctx = CallContext(tenant_id="acme", session_id=uuid.uuid4().hex, call_id="test-idle")
    call = SalesCall(ctx, replace(stack.runtime.services, sessions=sessions), greet_on_enter=False)
    await call.start()
    await call.session.run(user_input="Hello?")
    clock.now += 4 * 60  # activity 4 min ago: not idle yet
    assert await sessions.sweep() == {}
    clock.now += 2 * 60
    assert await sessions.sweep() == {ctx.session_id: "idle"}
    assert call.finished

    said = [m.text_content for m in call.session.history.messages() if m.role == "assistant"]
    assert any("disconnected" in (text or "") for text in said)  # the goodbye went out
    assert call.outcome == "dropped"
    assert otel.metric_value(names.SESSIONS_ENDED, **idle) == idle_before + 1
    assert otel.metric_value(names.CALLS, **dropped_attrs) == dropped_before + 1


async def test_call_beyond_capacity_is_refused_before_anything_starts(otel, stack: Stack) -> None:
    from dataclasses import replace

    from agent.sessions import CapacityExceeded, SessionManager

    sessions = SessionManager(SessionSettings(max_sessions=1), stack.runtime.tenants)
    services = replace(stack.runtime.services, sessions=sessions)
    first = SalesCall(CallContext("acme", "s-1", "c-1"), services, greet_on_enter=False)
    second = SalesCall(CallContext("acme", "s-2", "c-2"), services, greet_on_enter=False)
    await first.start()
    with pytest.raises(CapacityExceeded):
        await second.start()
    assert second.trace_id == ""  # no root span was opened
    await first.aclose()
    assert len(sessions) == 0


async def test_sweep_on_another_loop_closes_the_call_on_its_own_loop(otel, stack: Stack) -> None:
    """Thread executor: the sweep runs on the worker's loop, each call on its job thread's loop."""
    from dataclasses import replace

    from agent.sessions import SessionManager

    clock = FakeClock()
    sessions = SessionManager(SessionSettings(expiry_minutes=30), stack.runtime.tenants, clock=clock)
    ctx = CallContext(tenant_id="globex", session_id=uuid.uuid4().hex, call_id="test-expired")
    call = SalesCall(ctx, replace(stack.runtime.services, sessions=sessions), greet_on_enter=False)
    await call.start()
    await call.session.run(user_input="Hello?")
    clock.now += 31 * 60

    swept = await asyncio.to_thread(lambda: asyncio.run(sessions.sweep()))

    assert swept == {ctx.session_id: "expired"}
    assert call.finished
    said = [m.text_content or "" for m in call.session.history.messages() if m.role == "assistant"]
    assert any("time limit" in text for text in said)
    [root] = [s for s in otel.spans(CALL_SPAN_NAME) if s.attributes[names.CALL_ID] == "test-expired"]
    assert root.attributes[names.CALL_OUTCOME] == "dropped"


async def test_a_taken_slot_tells_the_llm_to_offer_another(otel, stack: Stack) -> None:
    import re

    first, second = new_call(stack), new_call(stack)
    await first.start()
    await second.start()
    await first.session.run(user_input=tool("capture_basic_info", **CONTACT))
    await second.session.run(
        user_input=tool("capture_basic_info", **{**CONTACT, "email": "fox@initech.example.com"})
    )
    offered = outputs(await first.session.run(user_input=tool("check_availability", days_ahead=7)))[0].output
    slot = re.findall(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}[+-]\d{2}:\d{2}", offered)[0]
    booked = outputs(await first.session.run(user_input=tool("book_meeting", slot_start=slot)))[0]
    taken = outputs(await second.session.run(user_input=tool("book_meeting", slot_start=slot)))[0]
    await first.aclose()
    await second.aclose()

    assert not booked.is_error and booked.output.startswith("Meeting booked")
    assert taken.is_error
    assert "no longer available; call check_availability and offer another one" in taken.output
    assert first.tools.meetings_booked == 1 and second.tools.meetings_booked == 0
