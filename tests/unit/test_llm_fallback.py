"""RouterLLM over the real LiteLLM Router and real HTTP to two local providers (primary, backup)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from livekit.agents import llm

from agent.call_context import CallContext
from agent.llm import LLMSettings, ProviderConfig, build_llm
from agent.llm.router_llm import RouterLLM
from local_services.harness import free_port
from local_services.llm_provider import RunningProvider, run_llm_provider
from telemetry import names

CALL = CallContext(tenant_id="acme", session_id="sess-1", call_id="call-1")
BACKUP_REPLY = "Backup here, happy to help with your order."


def _settings(*providers: tuple[str, str], **overrides: Any) -> LLMSettings:
    chain = [ProviderConfig(name=n, kind="local", model=f"{n}-model", api_base=url) for n, url in providers]
    values: dict[str, Any] = {
        "first_token_deadline_s": 1.0,  # short for speed, loose for a loaded CI box
        "cooldown_s": 30.0,
        "allowed_fails": 2,
        **overrides,
    }
    return LLMSettings(chain=chain, **values)


async def _built(settings: LLMSettings) -> RouterLLM:
    """build_llm + warm(), as the worker does at start (LiteLLM's first-call setup is slow)."""
    router_llm = build_llm(settings)
    await router_llm.warm()
    return router_llm


def _refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


@asynccontextmanager
async def _pair(
    fault: str = "ok", **fault_options: Any
) -> AsyncIterator[tuple[RunningProvider, RunningProvider]]:
    async with (
        run_llm_provider("primary", fault, **fault_options) as primary,
        run_llm_provider("backup", reply=BACKUP_REPLY) as backup,
    ):
        yield primary, backup


def _ctx(text: str = "Hi, who is this?") -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="You are a sales agent.")
    ctx.add_message(role="user", content=text)
    return ctx


async def _turn(router_llm: RouterLLM, text: str = "Hi, who is this?") -> llm.CollectedResponse:
    return await router_llm.chat(chat_ctx=_ctx(text)).collect()


def _attempt_spans(otel: Any) -> list[Any]:
    spans = [s for s in otel.spans() if s.attributes and names.LLM_ATTEMPT in s.attributes]
    return sorted(spans, key=lambda s: s.attributes[names.LLM_ATTEMPT])


def _fallback_events(otel: Any) -> list[dict[str, Any]]:
    return [dict(e.attributes) for s in otel.spans() for e in s.events if e.name == names.FALLBACK_EVENT]


async def test_healthy_primary_answers_with_one_attempt(otel) -> None:
    async with _pair() as (primary, backup):
        router_llm = (await _built(_settings(("primary", primary.url), ("backup", backup.url)))).for_call(
            CALL
        )
        before = otel.metric_value(
            names.LLM_REQUESTS, **{names.GEN_AI_PROVIDER_NAME: "primary", "outcome": "ok"}
        )
        response = await _turn(router_llm)
        healthy, details = await router_llm.check_provider("primary")
    assert healthy and details["http_status"] == 200 and not details["cooling_down"]
    assert response.text.startswith("Thanks for taking my call")
    assert response.usage is not None and response.usage.completion_tokens > 0
    assert (primary.stats.chat_requests, backup.stats.chat_requests) == (1, 0)
    [span] = _attempt_spans(otel)
    attrs = span.attributes
    assert attrs[names.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[names.GEN_AI_PROVIDER_NAME] == "primary"
    assert attrs[names.GEN_AI_REQUEST_MODEL] == "primary-model"
    assert attrs[names.GEN_AI_RESPONSE_MODEL] == "primary-model"
    assert attrs[names.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert attrs[names.LLM_CHAIN_POSITION] == 0
    assert attrs[names.SESSION_ID] == "sess-1"
    assert _fallback_events(otel) == []
    after = otel.metric_value(names.LLM_REQUESTS, **{names.GEN_AI_PROVIDER_NAME: "primary", "outcome": "ok"})
    assert after == before + 1
    assert otel.metric_value(names.LLM_TOKENS, **{names.TENANT_ID: "acme"}) > 0


FAULTS = [
    # (fault mode, options, expected error.type, expected fallback.reason)
    ("500", {}, "http_500", "http_5xx"),
    ("429", {"retry_after": 7}, "http_429", "rate_limited"),
    ("hang", {}, "first_token_timeout", "timeout"),
    ("slow_first_token", {"delay_s": 5}, "first_token_timeout", "timeout"),
    ("drop_mid_stream", {"after_chunks": 0}, "stream_dropped", "stream_dropped"),
    ("garbage", {}, "malformed_response", "malformed_response"),
]


@pytest.mark.parametrize(("fault", "options", "error_type", "reason"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_before_first_token_falls_back_to_backup(
    otel, fault, options, error_type, reason
) -> None:
    async with _pair(fault, **options) as (primary, backup):
        router_llm = await _built(_settings(("primary", primary.url), ("backup", backup.url)))
        fallbacks_before = otel.metric_value(names.LLM_FALLBACKS, **{names.FALLBACK_REASON: reason})
        response = await _turn(router_llm)
        primary_requests = primary.stats.chat_requests
    assert response.text == BACKUP_REPLY
    # No double retries: exactly one request reached the faulty primary in this turn.
    assert primary_requests == 1
    assert backup.stats.chat_requests == 1
    first, second = _attempt_spans(otel)
    assert first.attributes[names.GEN_AI_PROVIDER_NAME] == "primary"
    assert first.attributes[names.ERROR_TYPE] == error_type
    assert first.status.status_code.name == "ERROR"
    assert second.attributes[names.GEN_AI_PROVIDER_NAME] == "backup"
    assert second.attributes[names.LLM_ATTEMPT] == 2
    assert names.ERROR_TYPE not in second.attributes
    assert _fallback_events(otel) == [
        {names.FALLBACK_FROM: "primary", names.FALLBACK_TO: "backup", names.FALLBACK_REASON: reason}
    ]
    assert otel.metric_value(names.LLM_FALLBACKS, **{names.FALLBACK_REASON: reason}) == fallbacks_before + 1
    # Only a 429's Retry-After cools a provider down after one failure (allowed_fails=2 otherwise).
    assert router_llm.provider_status()["primary"] is (fault != "429")


async def test_connection_refused_falls_back(otel) -> None:
    async with run_llm_provider("backup", reply=BACKUP_REPLY) as backup:
        router_llm = await _built(_settings(("primary", _refused_url()), ("backup", backup.url)))
        response = await _turn(router_llm)
    assert response.text == BACKUP_REPLY
    first, second = _attempt_spans(otel)
    assert first.attributes[names.ERROR_TYPE] == "connect_error"
    assert second.attributes[names.GEN_AI_PROVIDER_NAME] == "backup"
    assert _fallback_events(otel)[0][names.FALLBACK_REASON] == "connect_error"


async def test_drop_after_tokens_ends_turn_without_replay(otel) -> None:
    """Documented behaviour: text already spoken is not repeated by another provider."""
    async with _pair("drop_mid_stream", after_chunks=3) as (primary, backup):
        router_llm = await _built(_settings(("primary", primary.url), ("backup", backup.url)))
        failed_before = otel.metric_value(names.LLM_COMPLETIONS, outcome="failed")
        response = await _turn(router_llm)
    assert response.text == "Thanks for taking"  # the three chunks that were sent, nothing more
    assert backup.stats.chat_requests == 0
    [span] = _attempt_spans(otel)
    assert span.attributes[names.ERROR_TYPE] == "stream_dropped"
    assert _fallback_events(otel) == []
    assert otel.metric_value(names.LLM_COMPLETIONS, outcome="failed") == failed_before + 1


async def test_stream_that_stalls_after_tokens_is_cut_by_the_stream_timeout(otel) -> None:
    """After the first token only LiteLLM's stream timeout guards the turn: a stall must not hang it."""
    async with (
        run_llm_provider("primary", token_delay_s=3.0) as primary,  # one chunk, then 3 s of silence
        run_llm_provider("backup", reply=BACKUP_REPLY) as backup,
    ):
        settings = _settings(("primary", primary.url), ("backup", backup.url), stream_timeout_s=0.3)
        router_llm = await _built(settings)
        response = await asyncio.wait_for(_turn(router_llm), timeout=30)
    assert response.text == "Thanks"  # what arrived before the stall; not replayed elsewhere
    assert backup.stats.chat_requests == 0
    [span] = _attempt_spans(otel)
    assert span.attributes[names.ERROR_TYPE] == "timeout"


async def test_cooldown_skips_primary_until_it_passes(otel) -> None:
    # Chain names unique to this test so the availability gauge reads only this chain.
    async with _pair("500") as (primary, backup):
        router_llm = await _built(
            _settings(("cd_primary", primary.url), ("cd_backup", backup.url), allowed_fails=1, cooldown_s=3.0)
        )
        for _ in range(2):  # allowed_fails=1: the second failure starts the cooldown
            assert (await _turn(router_llm)).text == BACKUP_REPLY
        assert primary.stats.chat_requests == 2
        assert router_llm.provider_status() == {"cd_primary": False, "cd_backup": True}
        healthy, details = await router_llm.check_provider("cd_primary")
        assert not healthy and details["cooling_down"]
        otel.reset()
        assert (await _turn(router_llm)).text == BACKUP_REPLY
        assert primary.stats.chat_requests == 2  # skipped: no request reached it
        assert _fallback_events(otel) == [
            {
                names.FALLBACK_FROM: "cd_primary",
                names.FALLBACK_TO: "cd_backup",
                names.FALLBACK_REASON: "cooldown",
            }
        ]
        [attempt] = _attempt_spans(otel)
        assert attempt.attributes[names.GEN_AI_PROVIDER_NAME] == "cd_backup"
        available = {names.GEN_AI_PROVIDER_NAME: "cd_primary"}
        assert otel.metric_value(names.LLM_PROVIDER_AVAILABLE, **available) == 0

        primary.set_fault("ok")
        for _ in range(100):  # bounded wait (10 s) for the 3 s cooldown to expire
            if router_llm.provider_status()["cd_primary"]:
                break
            await asyncio.sleep(0.1)
        response = await _turn(router_llm)
        assert response.text.startswith("Thanks for taking my call")
        assert primary.stats.chat_requests == 3
        assert otel.metric_value(names.LLM_PROVIDER_AVAILABLE, **available) == 1


async def test_cost_from_local_cost_map() -> None:
    from agent.llm.chain import Provider
    from agent.llm.router_llm import _cost_usd

    priced = Provider(ProviderConfig(name="oa", kind="openai", model="gpt-4o-mini"), 0)
    local = Provider(
        ProviderConfig(name="lo", kind="local", model="tiny", api_base="http://127.0.0.1:1/v1"), 0
    )
    assert _cost_usd(priced, {"input": 1000, "output": 1000}) > 0
    assert _cost_usd(local, {"input": 1000, "output": 1000}) == 0


async def test_all_providers_down_speaks_fallback_line(otel) -> None:
    async with _pair("500") as (primary, backup):
        backup.set_fault("500")
        router_llm = await _built(_settings(("primary", primary.url), ("backup", backup.url)))
        failed_before = otel.metric_value(names.LLM_COMPLETIONS, outcome="failed")
        response = await _turn(router_llm)
    assert response.text == router_llm.chain.settings.fallback_line
    assert otel.metric_value(names.LLM_COMPLETIONS, outcome="failed") == failed_before + 1
    assert [s.attributes[names.ERROR_TYPE] for s in _attempt_spans(otel)] == ["http_500", "http_500"]


async def test_tool_calls_stream_through(otel) -> None:
    async with _pair() as (primary, backup):
        router_llm = await _built(_settings(("primary", primary.url), ("backup", backup.url)))
        response = await _turn(
            router_llm, '/tool log_note {"note": "wants a demo"}\n/tool check_availability {"days_ahead": 3}'
        )
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("log_note", '{"note": "wants a demo"}'),
        ("check_availability", '{"days_ahead": 3}'),
    ]
    assert all(c.call_id for c in response.tool_calls)


async def test_three_provider_chain_events_and_positions(otel) -> None:
    async with _pair("500") as (primary, backup), run_llm_provider("middle", "429", retry_after=30) as middle:
        router_llm = await _built(
            _settings(("primary", primary.url), ("middle", middle.url), ("backup", backup.url))
        )
        assert (await _turn(router_llm)).text == BACKUP_REPLY
        assert [e[names.FALLBACK_TO] for e in _fallback_events(otel)] == ["middle", "backup"]
        otel.reset()
        assert (await _turn(router_llm)).text == BACKUP_REPLY  # middle now cools down (Retry-After)
        assert middle.stats.chat_requests == 1
    assert _fallback_events(otel) == [
        {names.FALLBACK_FROM: "primary", names.FALLBACK_TO: "backup", names.FALLBACK_REASON: "http_5xx"},
        {names.FALLBACK_FROM: "middle", names.FALLBACK_TO: "backup", names.FALLBACK_REASON: "cooldown"},
    ]
    spans = _attempt_spans(otel)
    assert [
        (s.attributes[names.GEN_AI_PROVIDER_NAME], s.attributes[names.LLM_CHAIN_POSITION]) for s in spans
    ] == [
        ("primary", 0),
        ("backup", 2),
    ]
    assert [s.attributes[names.LLM_ATTEMPT] for s in spans] == [1, 2]


async def test_livekit_retries_are_disabled_and_local_chain_helper() -> None:
    from livekit.agents.types import APIConnectOptions

    settings = LLMSettings.for_local(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"])
    assert [p.name for p in settings.chain] == ["primary", "backup"]
    router_llm = build_llm(settings)
    stream = router_llm.chat(chat_ctx=_ctx(), conn_options=APIConnectOptions(max_retry=3, timeout=7.0))
    try:
        assert stream._conn_options.max_retry == 0  # the chain is the only retry layer
        assert stream._conn_options.timeout == 7.0
    finally:
        await stream.aclose()
