"""RouterLLM inside a real LiveKit text-mode AgentSession: tools run, all-down keeps the session alive."""

from __future__ import annotations

import json
from typing import Any

from livekit.agents import Agent, AgentSession, function_tool
from livekit.agents.voice.run_result import ChatMessageEvent, FunctionCallEvent, FunctionCallOutputEvent
from opentelemetry.trace import StatusCode

from agent.llm import LLMSettings, ProviderConfig, build_llm
from agent.llm.router_llm import RouterLLM
from local_services.llm_provider import run_llm_provider
from telemetry import names


def _settings(*providers: tuple[str, str]) -> LLMSettings:
    chain = [ProviderConfig(name=n, kind="local", model=f"{n}-model", api_base=url) for n, url in providers]
    return LLMSettings(chain=chain, first_token_deadline_s=1.0, cooldown_s=30.0, allowed_fails=5)


async def _built(settings: LLMSettings) -> RouterLLM:
    """build_llm + warm(), as the worker does at start (LiteLLM's first-call setup is slow)."""
    router_llm = build_llm(settings)
    await router_llm.warm()
    return router_llm


class NoteAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a sales agent.")
        self.notes: list[str] = []

    @function_tool
    async def log_note(self, note: str) -> str:
        """Save a note about the caller.

        Args:
            note: the note text
        """
        self.notes.append(note)
        return f"Note saved: {note}. Anything else?"


def _messages(events: list[Any]) -> list[str]:
    return [e.item.text_content or "" for e in events if isinstance(e, ChatMessageEvent)]


async def test_tool_call_reaches_agent_tool_through_fallback(otel) -> None:
    async with (
        run_llm_provider("primary", "500") as primary,
        run_llm_provider("backup") as backup,
    ):
        agent = NoteAgent()
        async with AgentSession(
            llm=await _built(_settings(("primary", primary.url), ("backup", backup.url)))
        ) as s:
            await s.start(agent)
            result = await s.run(user_input='/tool log_note {"note": "wants a demo in March"}')
    assert agent.notes == ["wants a demo in March"]
    calls = [e for e in result.events if isinstance(e, FunctionCallEvent)]
    outputs = [e for e in result.events if isinstance(e, FunctionCallOutputEvent)]
    assert [c.item.name for c in calls] == ["log_note"]
    assert json.loads(calls[0].item.arguments) == {"note": "wants a demo in March"}
    assert "Note saved" in outputs[0].item.output
    # The provider acknowledged the tool result with its first sentence.
    assert _messages(result.events)[-1] == "Got it: Note saved: wants a demo in March."
    # Both LLM calls of the turn (tool call, then acknowledgement) failed over from primary.
    assert primary.stats.chat_requests == 2
    assert backup.stats.chat_requests == 2


async def test_all_down_session_survives_and_speaks_fallback_line(otel) -> None:
    async with (
        run_llm_provider("primary", "500") as primary,
        run_llm_provider("backup", "429") as backup,
    ):
        router_llm = await _built(_settings(("primary", primary.url), ("backup", backup.url)))
        failed_before = otel.metric_value(names.LLM_COMPLETIONS, outcome="failed")
        async with AgentSession(llm=router_llm) as session:
            await session.start(NoteAgent())
            first = await session.run(user_input="Hello?")
            # No double retries: LiveKit's APIConnectOptions did not replay the failed turn.
            assert (primary.stats.chat_requests, backup.stats.chat_requests) == (1, 1)
            primary.set_fault("ok")
            second = await session.run(user_input="Are you there?")
    assert _messages(first.events) == [router_llm.chain.settings.fallback_line]
    assert (
        _messages(second.events)[-1]
        == "Great, thank you. What challenge are you hoping to solve, and what's your timeline?"
    )
    assert otel.metric_value(names.LLM_COMPLETIONS, outcome="failed") == failed_before + 1
    # The failed turn shows in the trace although the span budget leaves out LiveKit's llm_request_run
    # (where the verdict used to go): on a span of its own under the turn (llm_node is left out too).
    spans = otel.spans()
    by_id = {s.context.span_id: s for s in spans}
    [failed] = [
        s for s in spans if (s.attributes or {}).get(names.ERROR_TYPE) == names.ERROR_ALL_PROVIDERS_FAILED
    ]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.parent is not None and by_id[failed.parent.span_id].name == "agent_turn"
