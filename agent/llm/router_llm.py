"""A LiveKit ``llm.LLM`` that streams from LiteLLM's Router across the provider chain.

One turn = one ``RouterLLMStream``. It walks the chain (providers in cooldown are skipped) and makes
one attempt per provider, each its own ``chat {model}`` span; a failure before the first token
(refused, 5xx, 429, garbage, first-token deadline, drop) falls back to the next provider with a
``gen_ai.fallback`` event on the turn span. Once text reached the caller, a failure ends the turn
with what was said (the error is recorded): replaying the turn on another provider would make the
agent say the beginning twice. Tool calls that had arrived whole still run; one cut mid-way is
counted (``sales_agent.llm.tool_calls.dropped``) and the caller is asked to repeat. Every provider
down -> the stream speaks ``fallback_line`` instead of raising, so the session keeps going. LiveKit's
GenAI spans and metrics name the provider and model that served the turn. A stream ends as soon as
its answer is whole; LiteLLM's own end-of-stream bookkeeping runs after (``stream_tail.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from livekit.agents import llm
from livekit.agents.llm import ToolChoice
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import is_given
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from agent.call_context import CallContext
from agent.llm.chain import Provider, ProviderChain
from agent.llm.errors import ProviderAttemptError, classify_attempt
from agent.llm.instruments import instruments
from agent.llm.stream_tail import StreamTails, usage_read
from telemetry import names
from telemetry.span_status import set_error

if TYPE_CHECKING:
    from agent.turn_recorder import TurnRecorder

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
# Stands in for LiveKit's span around the turn's LLM step when the span budget left that one out.
TURN_FAILED_SPAN = "llm.turn_failed"


def _mark_turn_failed(turn_span: trace.Span, description: str, error_type: str | None = None) -> None:
    """The LLM step's failure on LiveKit's span around it (``llm_request_run``); when the span budget
    (telemetry/span_budget.py) did not record that span, on a span of its own in its place, so the
    trace still shows the failed turn."""
    if turn_span.is_recording():
        _set_failed(turn_span, description, error_type)
        return
    with tracer.start_as_current_span(TURN_FAILED_SPAN) as span:
        _set_failed(span, description, error_type)


def _set_failed(span: trace.Span, description: str, error_type: str | None) -> None:
    set_error(span, description)
    if error_type is not None:
        span.set_attribute(names.ERROR_TYPE, error_type)


OPERATION = "chat"
# Spoken after a stream broke in the middle of a tool call (the call could not run).
CUT_OFF_LINE = " Sorry, I was cut off there. Could you repeat that last part for me?"


class RouterLLM(llm.LLM):
    """Use like any LiveKit LLM plugin: ``AgentSession(llm=build_llm(settings))``."""

    def __init__(
        self, chain: ProviderChain, *, call: CallContext | None = None, turns: TurnRecorder | None = None
    ) -> None:
        super().__init__()
        self._chain = chain
        self._call = call
        self._turns = turns
        # Did this call's latest turn fail the caller (every provider failed, or the stream broke
        # mid-answer)? SalesCall reads it to tell "we failed the caller" from "the caller left".
        self.last_turn_failed = False
        self.served_by: Provider | None = None  # the provider that answered this view's last turn
        # LiteLLM's end-of-stream bookkeeping of this view's streams, run once the reply plays.
        self.stream_tails = StreamTails()

    # --- identity (read by LiveKit's GenAI spans and metrics, like its FallbackAdapter's) ---------
    @property
    def model(self) -> str:
        return (self.served_by or self._chain.providers[0]).model

    @property
    def provider(self) -> str:
        return (self.served_by or self._chain.providers[0]).name

    @property
    def chain(self) -> ProviderChain:
        return self._chain

    @property
    def call_context(self) -> CallContext | None:
        return self._call

    @property
    def turns(self) -> TurnRecorder | None:
        return self._turns

    def for_call(self, call: CallContext, turns: TurnRecorder | None = None) -> RouterLLM:
        """The same chain (Router, cooldowns) labelled with one call's tenant/session ids; ``turns``
        hears when each stream starts, sends its first chunk and its first text, and ends."""
        return RouterLLM(self._chain, call=call, turns=turns)

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> RouterLLMStream:
        extra: dict[str, Any] = dict(extra_kwargs) if is_given(extra_kwargs) else {}
        if is_given(parallel_tool_calls) and tools:
            extra["parallel_tool_calls"] = parallel_tool_calls
        if is_given(tool_choice) and tools:
            if isinstance(tool_choice, dict):
                extra["tool_choice"] = {
                    "type": "function",
                    "function": {"name": tool_choice["function"]["name"]},
                }
            elif tool_choice in ("auto", "required", "none"):
                extra["tool_choice"] = tool_choice
        if self._chain.settings.temperature is not None:
            extra.setdefault("temperature", self._chain.settings.temperature)
        # The chain is the one retry layer: LiveKit must not replay a turn the chain already failed over.
        no_retry = APIConnectOptions(max_retry=0, retry_interval=0.0, timeout=conn_options.timeout)
        return RouterLLMStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=no_retry, extra=extra)

    def provider_status(self) -> dict[str, bool]:
        """Provider name -> usable (False while it cools down after failures)."""
        return self._chain.status()

    async def check_provider(self, name: str) -> tuple[bool, dict[str, Any]]:
        """Health check without spending tokens: cooldown state, plus ``GET /models`` for local providers."""
        provider = next((p for p in self._chain.providers if p.name == name), None)
        if provider is None:
            return False, {
                "error": f"unknown provider {name!r}",
                "known": [p.name for p in self._chain.providers],
            }
        remaining = await asyncio.to_thread(self._chain.cooldown_remaining, name)
        details: dict[str, Any] = {"model": provider.model, "cooling_down": remaining > 0}
        if remaining > 0:
            details["cooldown_remaining_s"] = round(remaining, 1)
        healthy = remaining <= 0
        if provider.config.kind == "local" and provider.config.api_base:
            import httpx

            try:
                async with httpx.AsyncClient(timeout=1.0) as client:
                    response = await client.get(provider.config.api_base.rstrip("/") + "/models")
                details["http_status"] = response.status_code
                healthy = healthy and response.status_code == 200
            except httpx.HTTPError as exc:
                details["error"] = type(exc).__name__
                healthy = False
        return healthy, details

    async def warm(self) -> None:
        """Call once at worker start (LiveKit's ``prewarm`` also triggers it) so the first turn is fast."""
        await self._chain.warm()

    async def _prewarm_impl(self) -> None:
        await self._chain.warm()

    async def settle_streams(self) -> None:
        """Run LiteLLM's end-of-stream bookkeeping still waiting now (the call is ending)."""
        await self.stream_tails.settle()

    async def aclose(self) -> None:
        # The Router is shared by every RouterLLM of the process (for_call); only the streams are ours.
        await self.settle_streams()
        await super().aclose()


@dataclass
class _ToolCallAcc:
    call_id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class _ChunkReader:
    """Turns LiteLLM's OpenAI-format stream chunks into LiveKit ChatChunks.

    Text is passed on at once; tool-call deltas (streamed by index) are accumulated and passed on
    whole when the choice finishes, since LiveKit executes a FunctionToolCall as soon as it sees it.
    """

    chunk_id: str = ""
    response_model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    started: bool = False  # a text or tool-call delta arrived (the "first token")
    finished: bool = False  # the finish reason arrived: the answer is whole
    _tools: dict[int, _ToolCallAcc] = field(default_factory=dict)

    def feed(self, chunk: Any) -> list[llm.ChatChunk]:
        self.chunk_id = self.chunk_id or getattr(chunk, "id", "") or ""
        self.response_model = getattr(chunk, "model", None) or self.response_model
        if (raw_usage := getattr(chunk, "usage", None)) is not None:
            self.take_usage(raw_usage)
        out: list[llm.ChatChunk] = []
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None) if delta is not None else None
            tool_deltas = (getattr(delta, "tool_calls", None) or []) if delta is not None else []
            self.started = self.started or bool(content or tool_deltas)
            for tc in tool_deltas:
                acc = self._tools.setdefault(int(getattr(tc, "index", 0) or 0), _ToolCallAcc())
                acc.call_id = getattr(tc, "id", None) or acc.call_id
                if (fn := getattr(tc, "function", None)) is not None:
                    acc.name = getattr(fn, "name", None) or acc.name
                    acc.arguments += getattr(fn, "arguments", None) or ""
            if content:
                out.append(
                    llm.ChatChunk(id=self.chunk_id, delta=llm.ChoiceDelta(role="assistant", content=content))
                )
            if getattr(choice, "finish_reason", None):
                self.finished = True
                out.extend(self.finish())
        return out

    def take_usage(self, raw_usage: Any) -> None:
        self.usage = {
            "input": int(getattr(raw_usage, "prompt_tokens", 0) or 0),
            "output": int(getattr(raw_usage, "completion_tokens", 0) or 0),
        }

    def finish(self) -> list[llm.ChatChunk]:
        calls = [
            llm.FunctionToolCall(name=acc.name, arguments=acc.arguments or "{}", call_id=acc.call_id)
            for _, acc in sorted(self._tools.items())
            if acc.name
        ]
        self._tools.clear()
        if not calls:
            return []
        return [llm.ChatChunk(id=self.chunk_id, delta=llm.ChoiceDelta(role="assistant", tool_calls=calls))]

    def salvage(self) -> tuple[llm.ChatChunk | None, int]:
        """After a broken stream: the tool calls that arrived whole, and how many were cut.

        A call is whole when its arguments parse as a JSON object (an object cut mid-way never
        does); empty arguments count as ``{}`` once the next call has started (calls stream in order).
        """
        indexes = sorted(self._tools)
        whole: list[llm.FunctionToolCall] = []
        for position, index in enumerate(indexes):
            acc = self._tools[index]
            arguments = acc.arguments or ("{}" if position < len(indexes) - 1 else "")
            if acc.name and acc.call_id and _is_json_object(arguments):
                whole.append(llm.FunctionToolCall(name=acc.name, arguments=arguments, call_id=acc.call_id))
        self._tools.clear()
        chunk = None
        if whole:
            chunk = llm.ChatChunk(id=self.chunk_id, delta=llm.ChoiceDelta(role="assistant", tool_calls=whole))
        return chunk, len(indexes) - len(whole)

    def usage_chunk(self) -> llm.ChatChunk | None:
        if not self.usage:
            return None
        total = self.usage["input"] + self.usage["output"]
        return llm.ChatChunk(
            id=self.chunk_id,
            usage=llm.CompletionUsage(
                prompt_tokens=self.usage["input"], completion_tokens=self.usage["output"], total_tokens=total
            ),
        )


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class _TurnIdentity(llm.LLM):
    """What LiveKit's per-turn GenAI spans and metrics read as ``stream._llm``: the provider that
    served this turn (the chain's first before one has), with events going to the RouterLLM."""

    def __init__(self, router_llm: RouterLLM) -> None:
        super().__init__()
        self._router_llm = router_llm
        self._label = router_llm.label
        self.served_by: Provider | None = None

    @property
    def model(self) -> str:
        return (self.served_by or self._router_llm.chain.providers[0]).model

    @property
    def provider(self) -> str:
        return (self.served_by or self._router_llm.chain.providers[0]).name

    def emit(self, event: Any, *args: Any) -> None:
        self._router_llm.emit(event, *args)

    def chat(self, **_kwargs: Any) -> llm.LLMStream:  # pragma: no cover - never a session's LLM
        raise NotImplementedError("a turn's identity does not chat")


@dataclass
class _AttemptResult:
    ok: bool
    emitted: bool  # text / tool calls already reached the caller
    error_type: str | None = None
    reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


class RouterLLMStream(llm.LLMStream):
    def __init__(
        self,
        router_llm: RouterLLM,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
        extra: dict[str, Any],
    ) -> None:
        self._identity = _TurnIdentity(router_llm)
        super().__init__(self._identity, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._router_llm = router_llm
        self._extra = extra
        self._turns = router_llm.turns
        self._first_chunk_sent = False
        self._text_sent = False
        self._tool_calls_sent = False

    # --- helpers --------------------------------------------------------------------------------
    def _tenant_attrs(self) -> dict[str, str]:
        call = self._router_llm.call_context
        return {names.TENANT_ID: call.tenant_id} if call else {}

    def _span_call_attrs(self) -> dict[str, str]:
        call = self._router_llm.call_context
        return call.span_attributes() if call else {}

    def _send(self, chunk: llm.ChatChunk) -> None:
        delta = chunk.delta
        if self._turns is not None and delta is not None:
            if not self._first_chunk_sent and (delta.content or delta.tool_calls):
                self._first_chunk_sent = True
                self._turns.llm_first_chunk()
            if not self._text_sent and delta.content:
                self._text_sent = True
                self._turns.llm_text()
            if not self._tool_calls_sent and delta.tool_calls:
                self._turns.llm_tool_calls()
        self._tool_calls_sent = self._tool_calls_sent or bool(delta is not None and delta.tool_calls)
        self._event_ch.send_nowait(chunk)

    # --- the turn -------------------------------------------------------------------------------
    async def _run(self) -> None:
        if self._turns is not None:
            self._turns.llm_started()
        try:
            await self._walk_chain()
        finally:
            if self._turns is not None:
                self._turns.llm_finished(tool_calls=self._tool_calls_sent)

    async def _walk_chain(self) -> None:
        chain = self._router_llm.chain
        turn_span = trace.get_current_span()
        messages, _ = self._chat_ctx.to_provider_format(format="openai")
        tool_schemas = (
            llm.ToolContext(self._tools).parse_function_tools("openai", strict=False) if self._tools else []
        )

        cooling = await chain.cooling_down_now()
        if cooling.issuperset(p.name for p in chain.providers):
            # Everything cools down: a request beats certain failure (and is how a recovered provider
            # is found: the Router holds no cooldowns of its own, so these requests are really sent).
            log.warning("every LLM provider is cooling down; trying the whole chain anyway")
            cooling = set()
        # Providers we moved past (failed or skipped) since the last attempt: (name, reason).
        moved_past: list[tuple[str, str]] = []
        attempt = 0
        for provider in chain.providers:
            if provider.name in cooling:
                moved_past.append((provider.name, names.ERROR_COOLDOWN))
                continue
            attempt += 1
            fallbacks, moved_past = moved_past, []
            result = await self._attempt(provider, attempt, messages, tool_schemas, fallbacks)
            if result.ok:
                await chain.record_success_now(provider.name)
                self._identity.served_by = self._router_llm.served_by = provider
                instruments().completions.add(1, {names.OUTCOME: "ok", **self._tenant_attrs()})
                self._router_llm.last_turn_failed = False
                return
            if result.emitted:
                self._identity.served_by = self._router_llm.served_by = provider
                # Mid-stream failure after the caller heard text: end the turn here, no replay.
                log.warning(
                    "LLM stream from %s failed after output was sent (%s); the turn ends with what was said",
                    provider.name,
                    result.error_type,
                )
                instruments().completions.add(1, {names.OUTCOME: "failed", **self._tenant_attrs()})
                self._router_llm.last_turn_failed = True
                _mark_turn_failed(turn_span, f"stream broke mid-answer: {result.error_type}")
                return
            moved_past.append((provider.name, result.reason or "error"))

        # Every provider failed before saying anything: speak the fallback line, keep the session.
        log.error("all LLM providers failed for this turn; speaking the fallback line")
        instruments().completions.add(1, {names.OUTCOME: "failed", **self._tenant_attrs()})
        self._router_llm.last_turn_failed = True
        _mark_turn_failed(turn_span, "all LLM providers failed", names.ERROR_ALL_PROVIDERS_FAILED)
        self._send(
            llm.ChatChunk(
                id=f"fallback-{uuid.uuid4().hex[:8]}",
                delta=llm.ChoiceDelta(
                    role="assistant", content=self._router_llm.chain.settings.fallback_line
                ),
            )
        )

    def _record_fallback(self, attempt_span: trace.Span, from_: str, to: str, reason: str) -> None:
        """On the attempt the fallback led to: LiveKit's span around the whole LLM step is left out
        of the trace by default (telemetry/span_budget.py), the attempt spans never are."""
        attrs = {names.FALLBACK_FROM: from_, names.FALLBACK_TO: to, names.FALLBACK_REASON: reason}
        attempt_span.add_event(names.FALLBACK_EVENT, attrs)
        instruments().fallbacks.add(1, attrs)
        log.info("LLM fallback %s -> %s (%s)", from_, to, reason)

    async def _attempt(
        self,
        provider: Provider,
        attempt: int,
        messages: list[dict[str, Any]],
        tool_schemas: list[dict[str, Any]],
        fallbacks: list[tuple[str, str]],
    ) -> _AttemptResult:
        """One provider call, its span; ``fallbacks``: the (provider, reason) moved past to reach it."""
        chain = self._router_llm.chain
        settings = chain.settings
        metric_attrs = {names.GEN_AI_PROVIDER_NAME: provider.name, names.GEN_AI_REQUEST_MODEL: provider.model}
        span_attrs = {
            names.GEN_AI_OPERATION_NAME: OPERATION,
            **metric_attrs,
            names.LLM_ATTEMPT: attempt,
            names.LLM_CHAIN_POSITION: provider.position,
            **self._span_call_attrs(),
        }
        start = time.perf_counter()
        first_token_at: float | None = None
        emitted = False
        reader = _ChunkReader()

        def send(chunks: list[llm.ChatChunk]) -> None:
            nonlocal emitted
            for chunk in chunks:
                emitted = emitted or chunk.has_response()
                self._send(chunk)

        with tracer.start_as_current_span(
            f"{OPERATION} {provider.model}", kind=SpanKind.CLIENT, attributes=span_attrs
        ) as span:
            for from_, reason in fallbacks:
                self._record_fallback(span, from_, provider.name, reason)
            try:
                async with asyncio.timeout(settings.first_token_deadline_s) as deadline:
                    kwargs: dict[str, Any] = {"stream_options": {"include_usage": True}, **self._extra}
                    if tool_schemas:
                        kwargs["tools"] = tool_schemas
                    stream = await chain.router.acompletion(
                        model=provider.name, messages=messages, stream=True, num_retries=0, **kwargs
                    )
                    async for chunk in stream:
                        out = reader.feed(chunk)
                        if reader.started and first_token_at is None:
                            first_token_at = time.perf_counter()
                            deadline.reschedule(None)  # the deadline is for the first token only
                        send(out)
                        if reader.finished and (usage := usage_read(stream)) is not None:
                            # The answer is whole: LiteLLM's own end of stream runs once the reply plays.
                            reader.take_usage(usage)
                            self._router_llm.stream_tails.finish_later(stream, provider.name)
                            break
                    send(reader.finish())
                    if not emitted:
                        raise ProviderAttemptError(
                            provider.name, names.ERROR_EMPTY_RESPONSE, "no text and no tool calls"
                        )
            except TimeoutError as exc:
                cut = f"no token within {settings.first_token_deadline_s}s"
                error = (
                    exc
                    if first_token_at is not None
                    else ProviderAttemptError(provider.name, names.ERROR_FIRST_TOKEN_TIMEOUT, cut)
                )
                return await self._fail(span, provider, error, start, emitted, metric_attrs, reader)
            except asyncio.CancelledError:  # barge-in / session end: not the provider's fault
                span.set_attribute(names.ERROR_TYPE, names.ERROR_CANCELLED)
                raise
            except Exception as exc:
                return await self._fail(span, provider, exc, start, emitted, metric_attrs, reader)

            # Success: response side of the span and the per-attempt metrics.
            span.set_attribute(names.GEN_AI_RESPONSE_MODEL, reader.response_model or provider.model)
            if reader.usage:
                span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, reader.usage["input"])
                span.set_attribute(names.GEN_AI_USAGE_OUTPUT_TOKENS, reader.usage["output"])
            if (usage_chunk := reader.usage_chunk()) is not None:
                self._send(usage_chunk)  # feeds LiveKit's own LLMMetrics / gen_ai.* usage
            ins = instruments()
            ins.requests.add(1, {**metric_attrs, names.OUTCOME: "ok"})
            ins.attempt_duration.record(time.perf_counter() - start, {**metric_attrs, names.OUTCOME: "ok"})
            if first_token_at is not None:
                ins.ttft.record(first_token_at - start, metric_attrs)
            self._record_usage(provider, reader.usage, metric_attrs)
            return _AttemptResult(ok=True, emitted=emitted, usage=reader.usage)

    async def _fail(
        self,
        span: trace.Span,
        provider: Provider,
        exc: BaseException,
        start: float,
        emitted: bool,
        metric_attrs: dict[str, str],
        reader: _ChunkReader,
    ) -> _AttemptResult:
        classified = classify_attempt(exc)
        span.set_attribute(names.ERROR_TYPE, classified.error_type)
        set_error(span, f"{provider.name}: {classified.error_type}")
        if not classified.provider_attempt:
            # Refused locally, nothing was sent: no provider error, no cooldown re-armed.
            log.warning("LLM provider %s skipped: refused locally (%s)", provider.name, type(exc).__name__)
            return _AttemptResult(
                ok=False, emitted=False, error_type=classified.error_type, reason=classified.reason
            )
        span.record_exception(exc)
        attrs = {**metric_attrs, names.OUTCOME: "error", names.ERROR_TYPE: classified.error_type}
        instruments().requests.add(1, attrs)
        instruments().attempt_duration.record(
            time.perf_counter() - start, {**metric_attrs, names.OUTCOME: "error"}
        )
        log.warning(
            "LLM attempt on %s failed: %s (%s)", provider.name, classified.error_type, type(exc).__name__
        )
        try:
            await self._router_llm.chain.record_failure_now(provider.name, classified.retry_after_s)
        except Exception:  # the cooldown bookkeeping must never break the turn
            log.exception("could not record the LLM failure in the cooldowns")
        if emitted:
            self._salvage(provider, reader, classified.error_type)
        return _AttemptResult(
            ok=False, emitted=emitted, error_type=classified.error_type, reason=classified.reason
        )

    def _salvage(self, provider: Provider, reader: _ChunkReader, error_type: str) -> None:
        """The stream broke after the caller heard text: keep the tool calls that arrived whole.

        Replaying the turn elsewhere would repeat what was said, so the turn ends here; but a tool
        call streamed whole (e.g. capture_basic_info) still runs. One cut mid-way cannot run: it is
        counted, logged, and the caller is asked to repeat, which makes the LLM call it again.
        """
        calls, dropped = reader.salvage()
        if calls is not None:
            self._send(calls)
        if not dropped:
            return
        instruments().tool_calls_dropped.add(dropped, {names.GEN_AI_PROVIDER_NAME: provider.name})
        log.warning(
            "LLM stream from %s broke (%s) in the middle of %d tool call(s); they were dropped and the "
            "caller is asked to repeat",
            provider.name,
            error_type,
            dropped,
        )
        self._send(
            llm.ChatChunk(
                id=reader.chunk_id or f"cut-{uuid.uuid4().hex[:8]}",
                delta=llm.ChoiceDelta(role="assistant", content=CUT_OFF_LINE),
            )
        )

    def _record_usage(self, provider: Provider, usage: dict[str, int], metric_attrs: dict[str, str]) -> None:
        if not usage:
            return
        tenant = self._tenant_attrs()
        ins = instruments()
        for token_type, count in (("input", usage["input"]), ("output", usage["output"])):
            ins.tokens.add(count, {**metric_attrs, names.GEN_AI_TOKEN_TYPE: token_type, **tenant})
        ins.cost.add(_cost_usd(provider, usage), {**metric_attrs, **tenant})


def _cost_usd(provider: Provider, usage: dict[str, int]) -> float:
    """Cost from LiteLLM's bundled cost map (LITELLM_LOCAL_MODEL_COST_MAP=True); unknown models cost 0."""
    import litellm  # already loaded by the Router

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=provider.config.litellm_model,
            prompt_tokens=usage.get("input", 0),
            completion_tokens=usage.get("output", 0),
        )
        return float(prompt_cost) + float(completion_cost)
    except Exception:  # local / unmapped model
        return 0.0
