"""A stream ends as soon as its answer is whole; LiteLLM's own end of stream runs once, later, and
only when something reads it.

Real LiteLLM Router over real HTTP to a local provider. LiteLLM's success callbacks are observed
with a ``CustomLogger`` (its public extension point), which is how we know its end-of-stream
bookkeeping ran: it dispatches them last, after rebuilding and pricing the response. Without a
callback or a cache, its dispatch (``Logging.dispatch_success_handlers``) is watched directly.
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
from agent.llm import LLMSettings, ProviderConfig, build_llm, stream_tail
from agent.llm.router_llm import RouterLLM
from agent.llm.stream_tail import StreamTails, litellm_reads_end_of_stream, usage_read
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


@pytest.fixture
def no_litellm_readers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """LiteLLM as the agent ships it: no callback, no cache (the probe above, once registered, stays
    in LiteLLM's lists for the process). Returns the calls whose success LiteLLM dispatched (priced,
    its logging payload built, handed to the callbacks): the last step of its end of stream."""
    import litellm
    from litellm.litellm_core_utils.litellm_logging import Logging

    for name in ("callbacks", "success_callback", "_async_success_callback"):
        monkeypatch.setattr(litellm, name, [])
    monkeypatch.setattr(litellm, "cache", None)
    dispatched: list[Any] = []
    original = Logging.dispatch_success_handlers

    async def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
        dispatched.append(self)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Logging, "dispatch_success_handlers", watched)
    return dispatched


async def test_with_no_callback_or_cache_litellm_end_of_stream_is_skipped(
    no_litellm_readers: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Any] = []
    close_unread = stream_tail.close_unread

    async def watched_close(stream: Any) -> None:
        await close_unread(stream)
        closed.append(stream)

    monkeypatch.setattr(stream_tail, "close_unread", watched_close)
    async with _call_llm() as call_llm:
        await until(lambda: no_litellm_readers)  # the warm-up's stream, read to its end, dispatches
        warm_up = len(no_litellm_readers)
        first = await call_llm.chat(chat_ctx=_ctx("Hi, who is this?")).collect()
        await call_llm.settle_streams()
        second = await call_llm.chat(chat_ctx=_ctx("And what do you sell?")).collect()
        await call_llm.settle_streams()
        await _turns(20)
        skipped = no_litellm_readers[warm_up:]
        # The control: with a reader, the same stream's end is LiteLLM's again (the watch works).
        monkeypatch.setattr(stream_tail, "litellm_reads_end_of_stream", lambda _stream: True)
        await call_llm.chat(chat_ctx=_ctx("Thanks, bye.")).collect()
        await call_llm.settle_streams()
        await until(lambda: len(no_litellm_readers) > warm_up)

    assert first.text and second.text and second.usage is not None and second.usage.completion_tokens > 0
    assert len(closed) == 2  # each stream closed once its answer was whole ...
    assert all(stream.completion_stream is None for stream in closed)
    assert skipped == []  # ... and LiteLLM's pricing, logging payload and dispatch never ran for them
    assert len(no_litellm_readers) == warm_up + 1  # the control turn's dispatch


def test_what_reads_litellm_end_of_stream(
    no_litellm_readers: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import litellm

    stream = SimpleNamespace(logging_obj=SimpleNamespace(dynamic_async_success_callbacks=None))
    assert not litellm_reads_end_of_stream(stream)
    assert litellm_reads_end_of_stream(
        SimpleNamespace(logging_obj=SimpleNamespace(dynamic_async_success_callbacks=["langfuse"]))
    )
    monkeypatch.setattr(litellm, "success_callback", ["langfuse"])
    assert litellm_reads_end_of_stream(stream)
    monkeypatch.setattr(litellm, "success_callback", [])
    monkeypatch.setattr(litellm, "cache", object())
    assert litellm_reads_end_of_stream(stream)


# --- the pieces, without LiteLLM -----------------------------------------------------------------


@pytest.fixture
def litellm_read(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Pin whether something reads LiteLLM's end of stream (callbacks change with test order)."""

    def pin(reads: bool) -> None:
        monkeypatch.setattr(stream_tail, "litellm_reads_end_of_stream", lambda _stream: reads)

    pin(True)
    return pin


class FakeStream:
    """What ``usage_read`` and ``StreamTails`` see of LiteLLM's stream: ``chunks``, the iteration
    (LiteLLM's end of stream, counted in ``read``) and ``aclose``."""

    def __init__(self, chunks: list[Any], rest: int = 2, fail: Exception | None = None, hang: bool = False):
        self.chunks = chunks
        self.rest = rest
        self.fail = fail
        self.hang = hang
        self.read = 0
        self.closed = False

    async def aclose(self) -> None:
        if self.fail is not None:
            raise self.fail
        self.closed = True

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


async def test_settle_runs_the_waiting_tails_now(litellm_read: Any) -> None:
    tails = StreamTails(delay_s=60.0)
    streams = [FakeStream([]), FakeStream([])]
    for stream in streams:
        tails.finish_later(stream, "primary")
    await _turns(5)
    assert [s.read for s in streams] == [0, 0] and tails.pending == 2
    await asyncio.wait_for(tails.settle(), 5.0)
    assert [s.read for s in streams] == [2, 2] and tails.pending == 0


@pytest.mark.parametrize("litellm_reads", [True, False])
async def test_a_failing_tail_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, litellm_read: Any, litellm_reads: bool
) -> None:
    litellm_read(litellm_reads)
    tails = StreamTails(delay_s=0.0)
    with caplog.at_level(logging.WARNING, logger="agent.llm.stream_tail"):
        tails.finish_later(FakeStream([], fail=RuntimeError("cost map broken")), "backup")
        await tails.settle()
    assert tails.pending == 0
    assert "LiteLLM's end of stream failed for backup" in caplog.text


async def test_a_hanging_tail_is_cancelled_at_call_end(
    caplog: pytest.LogCaptureFixture, litellm_read: Any
) -> None:
    tails = StreamTails(delay_s=0.0)
    with caplog.at_level(logging.WARNING, logger="agent.llm.stream_tail"):
        tails.finish_later(FakeStream([], hang=True), "primary")
        await tails.settle(timeout_s=0.1)
        await _turns(5)
    assert tails.pending == 0
    assert "unfinished at call end (1 streams): cancelled" in caplog.text


async def test_with_nothing_reading_it_the_tail_closes_the_stream_unread(litellm_read: Any) -> None:
    litellm_read(False)
    tails = StreamTails(delay_s=0.0)
    stream = FakeStream([])
    tails.finish_later(stream, "primary")
    await asyncio.wait_for(tails.settle(), 5.0)
    assert (stream.read, stream.closed) == (0, True)
