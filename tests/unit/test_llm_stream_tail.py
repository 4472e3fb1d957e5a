"""A stream ends as soon as its answer is whole; LiteLLM's own end of stream runs once, later.

Real LiteLLM Router over real HTTP to a local provider. LiteLLM's success callbacks are observed
with a ``CustomLogger`` (its public extension point), which is how we know its end-of-stream
bookkeeping ran: it dispatches them last, after rebuilding and pricing the response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from litellm_probe import MARK
from livekit.agents import llm
from waiting import until

from agent.call_context import CallContext
from agent.llm import LLMSettings, ProviderConfig, build_llm
from agent.llm.router_llm import RouterLLM
from agent.llm.stream_tail import StreamTails, usage_read
from local_services.llm_provider import run_llm_provider
from telemetry import names

CALL = CallContext(tenant_id="acme", session_id="sess-tail", call_id="call-tail")


async def _turns(loop_turns: int) -> None:
    for _ in range(loop_turns):
        await asyncio.sleep(0)


def _ctx(text: str) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content=text)
    return ctx


@asynccontextmanager
async def _call_llm() -> AsyncIterator[RouterLLM]:
    """One call's RouterLLM over a warmed Router and one local provider."""
    async with run_llm_provider("primary") as primary:
        settings = LLMSettings(
            chain=[ProviderConfig(name="primary", kind="local", model="primary-model", api_base=primary.url)]
        )
        router_llm = build_llm(settings)
        await router_llm.warm()
        yield router_llm.for_call(CALL)


async def test_the_answer_ends_the_stream_and_litellm_finishes_it_once_later(otel, litellm_success) -> None:
    async with _call_llm() as call_llm:
        output_tokens = {names.GEN_AI_TOKEN_TYPE: "output", names.TENANT_ID: "acme"}
        tokens_before = otel.metric_value(names.LLM_TOKENS, **output_tokens)
        response = await call_llm.chat(chat_ctx=_ctx(f"Hi, who is this? {MARK}")).collect()
        await _turns(20)

        # The caller has the whole answer and its usage; LiteLLM's bookkeeping waits for the reply to play.
        assert response.text and response.usage is not None and response.usage.completion_tokens > 0
        assert litellm_success.completion_tokens == []
        assert call_llm.stream_tails.pending == 1
        [attempt] = [s for s in otel.spans() if s.name == "chat primary-model"]
        assert attempt.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.completion_tokens
        tokens = otel.metric_value(names.LLM_TOKENS, **output_tokens)
        assert tokens == tokens_before + response.usage.completion_tokens

        await call_llm.settle_streams()
        await until(lambda: litellm_success.completion_tokens)
        assert litellm_success.completion_tokens == [response.usage.completion_tokens]
        assert call_llm.stream_tails.pending == 0


async def test_litellm_finishes_by_itself_after_the_delay(litellm_success) -> None:
    async with _call_llm() as call_llm:
        call_llm.stream_tails.delay_s = 0.05

        await call_llm.chat(chat_ctx=_ctx(f"Hi {MARK}")).collect()
        await until(lambda: call_llm.stream_tails.pending == 0 and litellm_success.completion_tokens)
        assert len(litellm_success.completion_tokens) == 1


# --- the pieces, without LiteLLM -----------------------------------------------------------------


class FakeStream:
    """What ``usage_read`` and ``StreamTails`` see of LiteLLM's stream: ``chunks`` and the iteration."""

    def __init__(self, chunks: list[Any], rest: int = 2, fail: Exception | None = None, hang: bool = False):
        self.chunks = chunks
        self.rest = rest
        self.fail = fail
        self.hang = hang
        self.read = 0

    def __aiter__(self) -> AsyncIterator[int]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[int]:
        if self.hang:
            await asyncio.Event().wait()
        for index in range(self.rest):
            self.read += 1
            yield index
        if self.fail is not None:
            raise self.fail


def _usage(completion: int | None) -> SimpleNamespace:
    return SimpleNamespace(prompt_tokens=10, completion_tokens=completion)


def test_usage_is_read_only_once_the_provider_sent_it() -> None:
    assert usage_read(object()) is None  # not a LiteLLM stream (a test double): read it to its end
    assert usage_read(FakeStream([SimpleNamespace(usage=None)])) is None
    assert usage_read(FakeStream([SimpleNamespace(usage=_usage(None))])) is None
    usage = _usage(7)
    assert usage_read(FakeStream([SimpleNamespace(usage=None), SimpleNamespace(usage=usage)])) is usage


async def test_settle_runs_the_waiting_tails_now() -> None:
    tails = StreamTails(delay_s=60.0)
    streams = [FakeStream([]), FakeStream([])]
    for stream in streams:
        tails.finish_later(stream, "primary")
    await _turns(5)
    assert [s.read for s in streams] == [0, 0] and tails.pending == 2
    await asyncio.wait_for(tails.settle(), 5.0)
    assert [s.read for s in streams] == [2, 2] and tails.pending == 0


async def test_a_failing_tail_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    tails = StreamTails(delay_s=0.0)
    with caplog.at_level(logging.WARNING, logger="agent.llm.stream_tail"):
        tails.finish_later(FakeStream([], fail=RuntimeError("cost map broken")), "backup")
        await tails.settle()
    assert tails.pending == 0
    assert "LiteLLM's end of stream failed for backup" in caplog.text


async def test_a_hanging_tail_is_cancelled_at_call_end(caplog: pytest.LogCaptureFixture) -> None:
    tails = StreamTails(delay_s=0.0)
    with caplog.at_level(logging.WARNING, logger="agent.llm.stream_tail"):
        tails.finish_later(FakeStream([], hang=True), "primary")
        await tails.settle(timeout_s=0.1)
        await _turns(5)
    assert tails.pending == 0
    assert "unfinished at call end (1 streams): cancelled" in caplog.text
