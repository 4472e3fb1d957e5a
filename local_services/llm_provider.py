"""A local OpenAI-compatible chat provider with fault injection.

Serves ``/v1/chat/completions`` (SSE streaming and plain JSON, tool calls included) and
``/v1/models`` on a loopback port, so tests, the offline demo and the compose stack can exercise the
LiteLLM Router's fallback without API keys. Replies are scripted and deterministic:

- the last user message holds lines ``/tool NAME {json-args}`` -> those tool calls, in order, after
  the text of any ``/say TEXT`` lines (streamed first, as a model that talks before calling tools);
- the last message is a tool result -> a short acknowledgement quoting the first sentence of one
  result of that round: the tool scripted first in the caller's ``/tool`` lines. Tools of one round
  run concurrently and finish in any order, so "the last result" would make the reply (and the
  length of its speech) a race;
- otherwise a canned sales reply (chosen by the number of user turns).

Faults (``POST /admin/fault`` {"mode": ..., options} or ``--fault`` at start):
``ok``, ``500``, ``429`` (with ``Retry-After: retry_after``), ``hang`` (never answers),
``slow_first_token`` (headers at once, first chunk after ``delay_s``), ``drop_mid_stream``
(connection cut after ``after_chunks`` content chunks), ``garbage`` (200 with a non-JSON body).
``GET /admin/stats`` counts requests; ``GET /admin/requests`` lists the last ones one by one (see
``FirstByteTimer``); ``POST /admin/reset`` zeroes counts, forgets the requests and clears the fault.
``--token-delay S`` paces a stream: S seconds between its content chunks, the finish and usage chunks
and ``[DONE]`` right after the last one.

Run: ``sales-agent llm-provider --port 8081 --name primary [--fault MODE]`` (``--port 0``: a free
port, announced as ``READY <port>``). Hand-written on aiohttp because no maintained fake provider offers
SSE + tool calls + faults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.vocabulary.fault_modes import LLM_FAULT_MODES, LlmFaultMode
from agent.vocabulary.local_providers import PRIMARY, local_model
from local_services._serve import FirstByteTimer, bound_port, serve_main
from telemetry.config_errors import describe_validation

log = logging.getLogger(__name__)


_TOOL_LINE = re.compile(r"^\s*/tool\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<args>\{.*\})?\s*$")
_SAY_LINE = re.compile(r"^\s*/say\s+(?P<text>.+?)\s*$")

CANNED_REPLIES: tuple[str, ...] = (
    "Thanks for taking my call! I'm with Acme Sales. Could I get your name and company?",
    "Great, thank you. What challenge are you hoping to solve, and what's your timeline?",
    "That makes sense. Would a short demo with one of our specialists next week help?",
    "Perfect. Is there anything else I can help you with today?",
)


@dataclass
class Fault:
    mode: LlmFaultMode = "ok"
    retry_after: float = 1.0  # 429: Retry-After header, seconds
    delay_s: float = 5.0  # slow_first_token: wait before the first chunk
    after_chunks: int = 2  # drop_mid_stream: content chunks sent before the cut
    hang_s: float = 3600.0  # hang: how long a request is held (ends at shutdown anyway)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Fault:
        mode = str(body.get("mode", "ok"))
        if mode not in LLM_FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {', '.join(LLM_FAULT_MODES)}")
        fault = cls(mode=mode)  # type: ignore[arg-type]
        for key in ("retry_after", "delay_s", "hang_s"):
            if key in body:
                setattr(fault, key, float(body[key]))
        if "after_chunks" in body:
            fault.after_chunks = int(body["after_chunks"])
        return fault


class _ChatMessage(BaseModel):
    """What the scripted replies read of a message; other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class _ChatRequest(BaseModel):
    """A body that is not this shape (not JSON, not an object, messages not a list of messages...) is
    answered 400 naming the field at fault, as an OpenAI server would, not 500 from deep in the script."""

    model_config = ConfigDict(extra="allow")

    messages: list[_ChatMessage] = Field(default_factory=list)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


@dataclass
class ProviderStats:
    chat_requests: int = 0
    stream_requests: int = 0
    faulted_requests: int = 0
    by_mode: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chat_requests": self.chat_requests,
            "stream_requests": self.stream_requests,
            "faulted_requests": self.faulted_requests,
            "by_mode": dict(self.by_mode),
        }


@dataclass
class ScriptedReply:
    text: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, json arguments)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _first_sentence(text: str) -> str:
    text = text.strip()
    match = re.match(r"(.+?[.!?])(\s|$)", text, re.S)
    return (match.group(1) if match else text)[:200]


def _parse_script(content: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """A user message's ``/say`` texts and ``/tool`` calls (name, JSON arguments), in order."""
    said: list[str] = []
    calls: list[tuple[str, str]] = []
    for line in _text_of(content).splitlines():
        if m := _SAY_LINE.match(line):
            said.append(m.group("text"))
        elif m := _TOOL_LINE.match(line):
            args = m.group("args") or "{}"
            try:
                json.loads(args)
            except json.JSONDecodeError:
                args = "{}"
            calls.append((m.group("name"), args))
    return said, calls


def _acknowledged_result(messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The result a tool round's reply quotes: of the trailing tool messages, the one whose tool
    comes first in the last ``/tool`` script (the assistant's ``tool_calls`` name each result's
    tool); the last result when no script names any of them."""
    start = len(messages)
    while start > 0 and messages[start - 1].get("role") == "tool":
        start -= 1
    results = list(messages[start:])
    names: dict[str, str] = {}
    script: list[str] = []
    for message in reversed(messages[:start]):
        if message.get("role") == "assistant" and not names:
            for call in message.get("tool_calls") or ():
                names[str(call.get("id"))] = str((call.get("function") or {}).get("name"))
        elif message.get("role") == "user":
            script = [name for name, _ in _parse_script(message.get("content"))[1]]
            break

    def rank(result: dict[str, Any]) -> int:
        name = names.get(str(result.get("tool_call_id")), "")
        return script.index(name) if name in script else len(script)

    return min(reversed(results), key=rank)  # ties (no script): the last result, as before


def script_reply(messages: Sequence[dict[str, Any]], canned: str | None = None) -> ScriptedReply:
    """The deterministic reply to a conversation (see the module docstring)."""
    if not messages:
        return ScriptedReply(text=canned or CANNED_REPLIES[0])
    last = messages[-1]
    if last.get("role") == "tool":
        said = _first_sentence(_text_of(_acknowledged_result(messages).get("content"))) or "done"
        return ScriptedReply(text=f"Got it: {said}")
    if last.get("role") == "user":
        said, calls = _parse_script(last.get("content"))
        if calls or said:
            return ScriptedReply(text=" ".join(said), tool_calls=calls)
    if canned:
        return ScriptedReply(text=canned)
    user_turns = sum(1 for m in messages if m.get("role") == "user")
    return ScriptedReply(text=CANNED_REPLIES[(max(user_turns, 1) - 1) % len(CANNED_REPLIES)])


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class LocalLLMProvider:
    """The aiohttp application and its mutable state (fault, stats)."""

    def __init__(
        self,
        name: str = "local",
        *,
        model: str | None = None,
        fault: Fault | None = None,
        reply: str | None = None,
        token_delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self.model = model or local_model(name)
        self.fault = fault or Fault()
        self.reply = reply
        self.token_delay_s = token_delay_s
        self.stats = ProviderStats()
        self._closing = asyncio.Event()
        self.app = web.Application()
        self.first_byte = FirstByteTimer()  # for streams: the first chunk follows the headers at once
        self.first_byte.install(self.app)
        self.app.add_routes(
            [
                web.post("/v1/chat/completions", self._chat),
                web.post("/chat/completions", self._chat),
                web.get("/v1/models", self._models),
                web.get("/models", self._models),
                web.post("/admin/fault", self._set_fault),
                web.get("/admin/stats", self._stats),
                web.get("/admin/requests", self._requests),
                web.post("/admin/reset", self._reset),
            ]
        )
        self.app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing.set()  # releases hanging / slow requests so shutdown is quick

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    # --- admin -------------------------------------------------------------------------------
    async def _set_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            self.fault = Fault.parse(body)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            return web.json_response({"error": f"malformed fault request: {exc}"}, status=400)
        log.info("provider %s fault set to %s", self.name, self.fault.mode)
        return web.json_response({"name": self.name, "fault": self.fault.__dict__})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"name": self.name, "fault": self.fault.mode, **self.stats.as_dict(), **self.first_byte.as_dict()}
        )

    async def _requests(self, _request: web.Request) -> web.Response:
        """The last chat requests one by one (``FirstByteTimer.records``), each labelled with its
        conversation's first user message: what a benchmark joins to the call and turn it served."""
        return web.json_response({"requests": list(self.first_byte.records)})

    async def _reset(self, _request: web.Request) -> web.Response:
        self.stats = ProviderStats()
        self.fault = Fault()
        self.first_byte.clear()
        return web.json_response({"name": self.name, "reset": True})

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": self.name}]}
        )

    # --- chat --------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        fault = self.fault
        self.stats.chat_requests += 1
        self.stats.by_mode[fault.mode] = self.stats.by_mode.get(fault.mode, 0) + 1
        if fault.mode != "ok":
            self.stats.faulted_requests += 1
        try:
            body = _ChatRequest.model_validate_json(await request.read()).model_dump(exclude_unset=True)
        except ValidationError as exc:
            problem = describe_validation(exc)
            return web.json_response(
                {"error": {"message": f"malformed chat request: {problem}", "type": "invalid_request_error"}},
                status=400,
            )
        stream = bool(body.get("stream"))
        if stream:
            self.stats.stream_requests += 1

        if fault.mode == "500":
            return web.json_response(
                {"error": {"message": f"{self.name}: injected internal error", "type": "server_error"}},
                status=500,
            )
        if fault.mode == "429":
            return web.json_response(
                {"error": {"message": f"{self.name}: injected rate limit", "type": "rate_limit_exceeded"}},
                status=429,
                headers={"Retry-After": str(int(fault.retry_after))},
            )
        if fault.mode == "hang":
            await self._pause(fault.hang_s)
            return web.json_response({"error": {"message": "hang released"}}, status=503)
        if fault.mode == "garbage":
            ctype = "text/event-stream" if stream else "application/json"
            return web.Response(status=200, body=b"<html>\x00\xffnot json at all{{{", content_type=ctype)

        messages = body.get("messages") or []
        first_user = next((m for m in messages if m.get("role") == "user"), None)
        if first_user is not None:
            self.first_byte.label(request, _text_of(first_user.get("content")))
        reply = script_reply(messages, self.reply)
        prompt_tokens = sum(_count_tokens(_text_of(m.get("content"))) for m in messages)
        if not stream:
            return web.json_response(self._completion(reply, prompt_tokens))
        return await self._stream(request, reply, prompt_tokens, fault, body)

    def _usage(self, reply: ScriptedReply, prompt_tokens: int) -> dict[str, int]:
        completion = _count_tokens(reply.text) + sum(_count_tokens(a) for _, a in reply.tool_calls)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }

    def _completion(self, reply: ScriptedReply, prompt_tokens: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {"name": n, "arguments": a},
                }
                for n, a in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": self._usage(reply, prompt_tokens),
        }

    def _chunks(self, reply: ScriptedReply, prompt_tokens: int, include_usage: bool) -> list[dict[str, Any]]:
        """Content-bearing chunks first, then the finish chunk and (optionally) the usage chunk."""
        deltas: list[dict[str, Any]] = []
        if reply.text:
            words = reply.text.split(" ")
            deltas.extend({"content": w if i == 0 else " " + w} for i, w in enumerate(words))
        if reply.tool_calls:
            for index, (name, args) in enumerate(reply.tool_calls):
                call_id = f"call_{uuid.uuid4().hex[:12]}"
                head = {
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                deltas.append({"tool_calls": [head]})
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": args}}]})
        deltas[0] = {"role": "assistant", **deltas[0]}
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self.model}  # fmt: skip
        chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        finish = "tool_calls" if reply.tool_calls else "stop"
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if include_usage:
            chunks.append({**base, "choices": [], "usage": self._usage(reply, prompt_tokens)})
        return chunks

    async def _stream(
        self,
        request: web.Request,
        reply: ScriptedReply,
        prompt_tokens: int,
        fault: Fault,
        body: dict[str, Any],
    ) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        if fault.mode == "slow_first_token":
            await self._pause(fault.delay_s)
        chunks = self._chunks(reply, prompt_tokens, include_usage)
        content_chunks = len(chunks) - (2 if include_usage else 1)
        for index, chunk in enumerate(chunks):
            if fault.mode == "drop_mid_stream" and index >= min(fault.after_chunks, content_chunks):
                # Cut the TCP connection without the terminating chunk: the client sees a broken stream.
                if request.transport is not None:
                    request.transport.abort()
                return response
            if self.token_delay_s and 0 < index < content_chunks:
                # A model's decoding time between tokens; the finish and usage chunks and [DONE]
                # follow the last token at once, as hosted providers send them.
                await self._pause(self.token_delay_s)
            try:
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            except ConnectionError:  # the client gave up (e.g. its first-token deadline): normal
                return response
        with contextlib.suppress(ConnectionError):
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        return response


@dataclass
class RunningProvider:
    provider: LocalLLMProvider
    url: str  # base URL including /v1, e.g. http://127.0.0.1:PORT/v1
    port: int

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def stats(self) -> ProviderStats:
        return self.provider.stats

    def set_fault(self, mode: LlmFaultMode, **options: Any) -> None:
        self.provider.fault = Fault.parse({"mode": mode, **options})

    def reset(self) -> None:
        self.provider.stats = ProviderStats()
        self.provider.fault = Fault()
        self.provider.first_byte.clear()


@contextlib.asynccontextmanager
async def run_llm_provider(
    name: str = PRIMARY,
    fault: LlmFaultMode = "ok",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    model: str | None = None,
    reply: str | None = None,
    token_delay_s: float = 0.0,
    **fault_options: Any,
) -> AsyncIterator[RunningProvider]:
    """Run a provider in this event loop on a free loopback port (``port=0``) for the block."""
    provider = LocalLLMProvider(
        name, model=model, fault=Fault.parse({"mode": fault, **fault_options}), reply=reply,
        token_delay_s=token_delay_s,
    )  # fmt: skip
    runner = web.AppRunner(provider.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = bound_port(runner)
        yield RunningProvider(provider, f"http://{host}:{bound}/v1", bound)
    finally:
        provider._closing.set()
        await runner.cleanup()


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-provider", description="Local OpenAI-compatible LLM provider with fault injection."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port (see the READY line)")
    parser.add_argument("--name", default=PRIMARY, help="provider name (shown in stats and model id)")
    parser.add_argument("--model", default=None, help="model id to report (default NAME-model)")
    parser.add_argument("--fault", default="ok", choices=LLM_FAULT_MODES, help="fault mode at start")
    parser.add_argument("--retry-after", type=float, default=1.0, help="429: Retry-After seconds")
    parser.add_argument("--delay", type=float, default=5.0, help="slow_first_token: delay seconds")
    parser.add_argument("--after-chunks", type=int, default=2, help="drop_mid_stream: chunks before the cut")
    parser.add_argument(
        "--token-delay", type=float, default=0.0, help="seconds between a stream's content-bearing chunks"
    )
    parser.add_argument("--reply", default=None, help="fixed text reply instead of the canned script")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)

    def start() -> contextlib.AbstractAsyncContextManager[RunningProvider]:
        return run_llm_provider(
            args.name,
            args.fault,
            host=args.host,
            port=args.port,
            model=args.model,
            reply=args.reply,
            token_delay_s=args.token_delay,
            retry_after=args.retry_after,
            delay_s=args.delay,
            after_chunks=args.after_chunks,
        )

    return serve_main("llm-provider", start, host=args.host, port=args.port)


if __name__ == "__main__":
    raise SystemExit(main())
