"""The chain finds a recovered provider while every provider cools down, a local cooldown refusal is
not a provider 429, a stream broken mid tool calls loses nothing silently, and LiveKit's GenAI
metrics name the provider that served. Requests are counted at the local providers."""

from __future__ import annotations

import json
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.telemetry import trace_types
from livekit.agents.voice.run_result import FunctionCallEvent

from agent.llm import LLMSettings, ProviderConfig, build_llm
from agent.llm.errors import classify_attempt
from agent.llm.router_llm import CUT_OFF_LINE, RouterLLM
from local_services.llm_provider import run_llm_provider
from telemetry import names

BACKUP_REPLY = "Backup here, happy to help."


def _settings(*providers: tuple[str, str], **overrides: Any) -> LLMSettings:
    chain = [ProviderConfig(name=n, kind="local", model=f"{n}-model", api_base=url) for n, url in providers]
    return LLMSettings(chain=chain, **{"first_token_deadline_s": 1.0, **overrides})


async def _built(settings: LLMSettings) -> RouterLLM:
    router_llm = build_llm(settings)
    await router_llm.warm()
    return router_llm


async def _turn(router_llm: RouterLLM, text: str = "Hi, who is this?") -> llm.CollectedResponse:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="You are a sales agent.")
    ctx.add_message(role="user", content=text)
    return await router_llm.chat(chat_ctx=ctx).collect()


def _phantom_429s(otel: Any) -> float:
    return otel.metric_value(names.LLM_REQUESTS, **{names.ERROR_TYPE: "http_429"})


async def test_next_turn_after_every_provider_cooled_down_and_recovered_reaches_a_provider(otel) -> None:
    async with (
        run_llm_provider("primary", "500") as primary,
        run_llm_provider("backup", "500", reply=BACKUP_REPLY) as backup,
    ):
        router_llm = await _built(
            _settings(("rc_primary", primary.url), ("rc_backup", backup.url), allowed_fails=0, cooldown_s=30)
        )
        first = await _turn(router_llm)
        assert first.text == router_llm.chain.settings.fallback_line
        assert router_llm.provider_status() == {"rc_primary": False, "rc_backup": False}

        primary.set_fault("ok")  # both healthy again, 30 s of cooldown left
        backup.set_fault("ok")
        phantom_before = _phantom_429s(otel)
        second = await _turn(router_llm)
    assert second.text.startswith("Thanks for taking my call")  # a provider answered, not the line
    assert primary.stats.chat_requests == 2  # the request was really sent
    assert _phantom_429s(otel) == phantom_before
    assert router_llm.provider_status()["rc_primary"] is True  # its answer ended its cooldown


async def test_a_local_cooldown_refusal_is_not_a_provider_429_and_does_not_rearm(otel) -> None:
    """LiteLLM refuses a deployment in its own cooldown list without a request (RouterRateLimitError).
    The trial counted 2,881 such refusals as provider http_429, each re-arming the cooldown."""
    async with (
        run_llm_provider("primary") as primary,
        run_llm_provider("backup", reply=BACKUP_REPLY) as backup,
    ):
        router_llm = await _built(_settings(("lr_primary", primary.url), ("lr_backup", backup.url)))
        # As if LiteLLM had cooled the primary down itself: its Router would refuse it locally.
        router_llm.chain.router.health().cooldowns.add_deployment_to_cooldown(
            model_id="lr_primary", original_exception=Exception("x"), exception_status=500, cooldown_time=30
        )
        phantom_before = _phantom_429s(otel)
        response = await _turn(router_llm)
    assert response.text == BACKUP_REPLY
    assert primary.stats.chat_requests == 0  # refused locally: nothing was sent
    assert _phantom_429s(otel) == phantom_before
    assert router_llm.chain.cooldown_remaining("lr_primary") == 0  # not re-armed by the refusal
    fallbacks = [dict(e.attributes) for s in otel.spans() for e in s.events if e.name == names.FALLBACK_EVENT]
    assert fallbacks[-1][names.FALLBACK_REASON] == "cooldown"


def test_router_rate_limit_error_classifies_as_a_refusal() -> None:
    from litellm.types.router import RouterRateLimitError

    refusal = RouterRateLimitError(
        model="primary", cooldown_time=30, enable_pre_call_checks=False, cooldown_list=["primary"]
    )
    classified = classify_attempt(refusal)
    assert classified.error_type == names.ERROR_COOLDOWN and classified.reason == "cooldown"
    assert not classified.provider_attempt


async def test_a_stream_broken_after_text_keeps_whole_tool_calls_and_reports_the_cut_one(
    otel, caplog
) -> None:
    note = {"note": "wants a demo"}
    contact = {"name": "Ann Lee", "company": "Acme", "email": "ann@acme.com"}
    prompt = "\n".join(
        (
            "/say Let me note that.",
            f"/tool log_note {json.dumps(note)}",
            f"/tool capture_basic_info {json.dumps(contact)}",
        )
    )
    # 4 words, then log_note (head, arguments), then capture_basic_info's head: cut before its arguments.
    async with (
        run_llm_provider("primary", "drop_mid_stream", after_chunks=7) as primary,
        run_llm_provider("backup") as backup,
    ):
        router_llm = await _built(_settings(("sb_primary", primary.url), ("sb_backup", backup.url)))
        dropped = {names.GEN_AI_PROVIDER_NAME: "sb_primary"}
        before = otel.metric_value(names.LLM_TOOL_CALLS_DROPPED, **dropped)
        response = await _turn(router_llm, prompt)
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [("log_note", note)]
    assert response.text == "Let me note that." + CUT_OFF_LINE  # the caller is asked to repeat
    assert backup.stats.chat_requests == 0  # not replayed elsewhere (it would repeat the text)
    assert otel.metric_value(names.LLM_TOOL_CALLS_DROPPED, **dropped) == before + 1
    assert any("dropped" in r.getMessage() for r in caplog.records)


async def test_livekit_genai_metrics_name_the_provider_that_served_the_turn(otel) -> None:
    async with (
        run_llm_provider("primary", "500") as primary,
        run_llm_provider("backup", reply=BACKUP_REPLY) as backup,
    ):
        router_llm = await _built(_settings(("gm_primary", primary.url), ("gm_backup", backup.url)))
        async with AgentSession(llm=router_llm) as session:
            from livekit.agents import Agent

            await session.start(Agent(instructions="You are a sales agent."))
            result = await session.run(user_input="Hello?")
    assert not [e for e in result.events if isinstance(e, FunctionCallEvent)]
    points = otel.metric_points(trace_types.METRIC_GEN_AI_CLIENT_OPERATION_DURATION)
    served = {
        (attrs.get(trace_types.ATTR_GEN_AI_PROVIDER_NAME), attrs.get(trace_types.ATTR_GEN_AI_REQUEST_MODEL))
        for attrs, _ in points
        if str(attrs.get(trace_types.ATTR_GEN_AI_PROVIDER_NAME, "")).startswith("gm")
    }
    assert served == {("gm_backup", "gm_backup-model")}  # not "litellm-router" / the primary's model
    assert not any("litellm" in str(attrs.get(trace_types.ATTR_GEN_AI_PROVIDER_NAME)) for attrs, _ in points)
