"""One sales call, from start to its recorded outcome; shared by the LiveKit worker and ``simulate``.

What it adds around livekit's ``AgentSession``:

- a **call root span** (``sales_call``, with ``tenant.id``/``session.id``/``call.id``). The session is
  started inside it, and livekit parents everything of a session (``agent_session`` -> ``agent_turn``
  -> our LLM attempt spans and tool spans -> CRM client span; LiveKit's wrappers in between are left
  out by the span budget) on the context current at ``session.start``, so the whole call is one trace.
- **SessionManager registration**: activity (user input, agent replies) extends the session; when the
  manager expires or idles it out, the caller hears a short goodbye and the session closes.
- the **outcome**: ``end_call``'s outcome (converted / not_interested / callback), else ``failed``
  (the caller left after the agent failed them), ``dropped`` (the caller left while the agent was
  answering) or ``error`` (the session itself failed, or a voice call lost its speech chains, below);
  recorded once as ``call_ended`` and on the root span. ``failed`` and ``error`` are ours and count
  against the availability SLO; the others are the caller's choice (alert-rules/README.md).
- **per-turn figures** (``TurnRecorder``): the caller's wait and its stages, recorded as each reply
  starts, in text and voice calls alike.
- in **voice** calls, the speech chains' verdicts: every STT provider down -> the caller is told so
  and the call ends (``error``, ``stt_unavailable``); every TTS provider down -> the call ends at once
  (``error``, ``tts_unavailable``: nothing can be said); speech that came back as an empty transcript
  -> the caller is asked to repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from livekit.agents import AgentSession, CloseEvent
from opentelemetry import context as otel_context
from opentelemetry import trace

from agent import business_metrics
from agent.call_context import CallContext
from agent.sales_agent import SalesAgent
from agent.tools import SalesTools
from agent.turn_recorder import TurnMode, TurnRecorder
from agent.vocabulary.call_outcome import CallOutcome, EndCallChoice
from telemetry import names
from telemetry.span_status import set_error

if TYPE_CHECKING:
    from livekit.agents import AgentStateChangedEvent, ConversationItemAddedEvent, llm

    from agent.crm import ResilientCrm
    from agent.sessions import SessionManager, SessionOutcome
    from agent.speech import SpeechServices
    from agent.tenants import TenantRegistry

CALL_SPAN_NAME = "sales_call"

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

# What the caller hears when the session manager ends a call (the LLM may be the thing that is stuck).
GOODBYE_BY_REASON = {
    "expired": "We have reached the time limit for this call. Thank you, we will follow up by email.",
    "idle": "It seems we got disconnected. Thank you for your time, we will follow up by email.",
    "evicted": "I have to end the call now. Thank you for your time, we will follow up by email.",
}
STT_DOWN_LINE = "I'm sorry, I can't hear you properly right now. We will call you back shortly. Goodbye."
NOT_UNDERSTOOD_LINE = "Sorry, I didn't catch that. Could you say it again?"
# How a voice session runs: VAD endpointing (livekit's end-of-turn model needs a model download),
# interruptions by voice activity, and no echo-cancellation warm-up (with livekit's default 3 s,
# a caller who barges in during the first seconds of a reply is not heard at all).
VOICE_SESSION_OPTIONS: dict[str, Any] = {
    "turn_handling": {"turn_detection": "vad", "interruption": {"mode": "vad"}},
    "aec_warmup_duration": None,
}


@dataclass
class CallServices:
    """Process- or run-wide dependencies every call uses."""

    llm: llm.LLM
    crm: ResilientCrm
    tenants: TenantRegistry
    sessions: SessionManager | None = None
    speech: SpeechServices | None = None  # voice calls: the STT/TTS chains and the VAD model


class SalesCall:
    """Owns one call's AgentSession, root span, session registration and outcome."""

    def __init__(
        self,
        call: CallContext,
        services: CallServices,
        *,
        mode: TurnMode = "text",
        vad_model: Any = None,
        greet_on_enter: bool = True,
        close_timeout_s: float = 10.0,
        **session_kwargs: Any,
    ) -> None:
        """``mode="voice"`` takes STT, TTS and VAD from ``services.speech`` (one set per call; the
        VAD over ``vad_model`` when given, e.g. the job process's); ``session_kwargs`` go to
        ``AgentSession`` and win over those."""
        tenant = services.tenants.get(call.tenant_id)  # InvalidInput for an unknown tenant
        self.context = call
        self.mode = mode
        self._services = services
        self._close_timeout_s = close_timeout_s
        self.turns = TurnRecorder(call, mode)
        self.end_reason: str | None = None
        self.not_understood = 0  # caller speech that came back as an empty transcript
        self.tools = SalesTools(call, services.crm, on_end_call=self._on_end_call)
        self.agent = SalesAgent(
            self.tools, company=tenant.display_name, pitch=tenant.pitch, greet_on_enter=greet_on_enter
        )
        # A per-call view of the shared chain labels LLM metrics with the tenant and spans with the ids.
        for_call = getattr(services.llm, "for_call", None)
        call_llm = for_call(call, turns=self.turns) if callable(for_call) else services.llm
        self._call_llm = call_llm
        if mode == "voice":
            if services.speech is None:
                raise ValueError("a voice call needs CallServices.speech (the STT/TTS chains and VAD)")
            session_kwargs = {
                **VOICE_SESSION_OPTIONS,
                **services.speech.for_call(call, hooks=self, vad_model=vad_model),
                **session_kwargs,
            }
        self.session: AgentSession = AgentSession(llm=call_llm, **session_kwargs)
        self.root_span: trace.Span | None = None
        self.outcome: CallOutcome | None = None
        self._session_outcome: SessionOutcome | None = None
        self._started_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finalize_task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._ending = False

    # --- public --------------------------------------------------------------------------------
    @property
    def trace_id(self) -> str:
        """The call's trace id (32 hex digits), or "" before ``start``."""
        if self.root_span is None:
            return ""
        return trace.format_trace_id(self.root_span.get_span_context().trace_id)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def ending(self) -> bool:
        """True once the call is closing or closed (end_call, session manager, hang-up)."""
        return self._ending or self._finished.is_set()

    async def start(self, **start_kwargs: Any) -> None:
        """Register the session, open the root span and start the agent session inside it.

        Raises ``CapacityExceeded`` (sessions full) before anything is started.
        """
        self._loop = asyncio.get_running_loop()
        self._started_at = time.monotonic()
        sessions = self._services.sessions
        if sessions is not None:
            sessions.open(self.context.session_id, self.context.tenant_id, self._on_manager_close)
        self.root_span = _tracer.start_span(CALL_SPAN_NAME, attributes=self.context.span_attributes())
        self.session.on("close", self._on_session_close)
        self.session.on("conversation_item_added", self._on_activity)
        self.session.on("user_input_transcribed", self._on_activity)
        self.session.on("conversation_item_added", self._on_conversation_item)
        self.session.on("agent_state_changed", self._on_agent_state)
        # Started in its own task: livekit attaches the session's context there and never detaches
        # it, so the caller's context stays clean while the session's tasks inherit the root span.
        try:
            await asyncio.create_task(self._start_in_root(start_kwargs))
        except BaseException as exc:
            self._finish_now(error=exc)
            raise

    async def wait_finished(self, timeout_s: float | None = None) -> bool:
        """Wait until the call's outcome has been recorded; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """End the call now (idempotent) and wait until its outcome is recorded."""
        if not self._finished.is_set() and self.root_span is not None:
            with contextlib.suppress(Exception):
                await self.session.aclose()
            if self._finalize_task is None:  # the session was never started, or emitted no close event
                self._schedule_finalize(error=None)
        if self._finalize_task is not None:
            await asyncio.shield(self._finalize_task)

    def log_extra(self) -> dict[str, str]:
        return self.context.span_attributes()

    # --- internals -----------------------------------------------------------------------------
    async def _start_in_root(self, start_kwargs: dict[str, Any]) -> None:
        assert self.root_span is not None
        otel_context.attach(trace.set_span_in_context(self.root_span))
        log.info("call started", extra=self.log_extra())
        await self.session.start(self.agent, **start_kwargs)

    def _on_activity(self, _event: object) -> None:
        sessions = self._services.sessions
        if sessions is not None:
            sessions.touch(self.context.session_id)

    def watch_silence_gaps(self) -> None:
        """Measure silences inside replies on the session's audio output (call after ``start``)."""
        from agent.speech.playout import GapWatchingOutput

        output = self.session.output.audio
        if output is not None and not isinstance(output, GapWatchingOutput):
            self.session.output.audio = GapWatchingOutput(output, self.turns.silence_gap)

    # --- turns -----------------------------------------------------------------------------------
    def _on_conversation_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        role = getattr(item, "role", None)
        if role == "user":
            report = getattr(item, "metrics", None) or {}
            ended_at = report.get("stopped_speaking_at") or getattr(item, "created_at", event.created_at)
            self.turns.user_turn_ended(
                ended_at,
                endpointing_s=report.get("end_of_turn_delay"),
                stt_s=report.get("transcription_delay"),
            )
        elif role == "assistant" and getattr(item, "interrupted", False):
            self.turns.reply_interrupted()

    def _on_agent_state(self, event: AgentStateChangedEvent) -> None:
        if event.new_state == "speaking":
            self.turns.reply_started(event.created_at)

    # --- speech chains (SpeechCallHooks) ---------------------------------------------------------
    def stt_unavailable(self) -> None:
        """Every STT provider failed on the caller's speech: say so and end the call."""
        self.turns.unanswered("stt_failed")
        if self._fail_call("stt_unavailable"):
            with contextlib.suppress(RuntimeError):  # session already closing
                self.session.say(STT_DOWN_LINE, allow_interruptions=False, add_to_chat_ctx=False)
            self.session.shutdown(drain=True)

    def tts_unavailable(self) -> None:
        """Every TTS provider failed: nothing can be said, so the call ends now."""
        if self._fail_call("tts_unavailable"):
            self.session.shutdown(drain=False)

    def speech_not_understood(self, speech_s: float) -> None:
        self.not_understood += 1
        self.turns.unanswered("empty_transcript")
        if not self.ending:
            with contextlib.suppress(RuntimeError):
                self.session.say(NOT_UNDERSTOOD_LINE, add_to_chat_ctx=False)

    def _fail_call(self, reason: str) -> bool:
        """Mark the call failed for ``reason``; False when it was already ending for another one."""
        if self.end_reason is not None or self._finished.is_set():
            return False
        self.end_reason = reason
        self.outcome = "error"
        self._ending = True
        log.error("ending the call: %s", reason.replace("_", " "), extra=self.log_extra())
        return True

    async def _on_end_call(self, outcome: EndCallChoice) -> None:
        self.outcome = outcome
        self._ending = True
        # drain=True: the goodbye the LLM says after this tool still goes out before the session closes.
        self.session.shutdown(drain=True)

    async def _on_manager_close(self, reason: SessionOutcome) -> None:
        """SessionManager callback (expiry, idle, eviction): say goodbye, close, wait for the outcome."""
        if self._finished.is_set() or self._finalize_task is not None:
            return  # we are the ones closing it
        self._session_outcome = reason
        running = asyncio.get_running_loop()
        if self._loop is not None and running is not self._loop:
            # Worker jobs in threads run their own loops; the sweep runs on the worker's loop.
            future = asyncio.run_coroutine_threadsafe(self._polite_close(reason), self._loop)
            await asyncio.wrap_future(future)
        else:
            await self._polite_close(reason)

    async def _polite_close(self, reason: SessionOutcome) -> None:
        self._ending = True
        log.info("session manager is ending the call (%s)", reason, extra=self.log_extra())
        goodbye = GOODBYE_BY_REASON.get(reason)
        if goodbye:
            with contextlib.suppress(RuntimeError):  # session already closing
                self.session.say(goodbye, allow_interruptions=False)
        self.session.shutdown(drain=True)
        await self.wait_finished(self._close_timeout_s)

    def _on_session_close(self, event: CloseEvent) -> None:
        self._ending = True
        self._schedule_finalize(error=event.error)

    def _schedule_finalize(self, error: object | None) -> None:
        if self._finalize_task is None:
            self._finalize_task = asyncio.get_running_loop().create_task(self._finalize(error))

    def _call_outcome(self, error: object | None) -> CallOutcome:
        if self.outcome is not None:
            return self.outcome
        if error is not None:
            return "error"
        return "failed" if self._agent_failed_caller() else "dropped"

    def _agent_failed_caller(self) -> bool:
        """Was the agent failing when the call ended without an outcome?

        The truthful signal is the last turn: the caller who hangs up after hearing the "let me call
        you back" line (every LLM provider failed) or an answer cut off mid-stream left because of
        us; a caller who leaves after a real answer chose to. (A voice call whose speech chains
        all failed already has its outcome, ``error``: ``_fail_call``.)
        """
        return bool(getattr(self._call_llm, "last_turn_failed", False))

    async def _finalize(self, error: object | None) -> None:
        self.turns.close()
        settle_streams = getattr(self._call_llm, "settle_streams", None)
        if callable(settle_streams):  # LiteLLM's bookkeeping of the call's last replies: before it ends
            with contextlib.suppress(Exception):
                await settle_streams()
        outcome = self._call_outcome(error)
        self.outcome = outcome
        duration = time.monotonic() - self._started_at
        tenant = self.context.tenant_id
        try:
            # The call's delivered CRM writes are marked before it ends (their removal runs off the
            # tools' path): a finished call leaves none of them in the outbox.
            await self._services.crm.settle()
            business_metrics.call_ended(tenant, outcome, duration)
            sessions = self._services.sessions
            if sessions is not None:
                session_outcome = self._session_outcome or ("error" if error is not None else "completed")
                await sessions.close(self.context.session_id, session_outcome)
        finally:
            self._end_root_span(outcome, duration, error)
            self._finished.set()

    def _finish_now(self, error: BaseException) -> None:
        """The start failed: release the session and close the span without an AgentSession close."""
        self.outcome = "error"
        business_metrics.call_ended(self.context.tenant_id, "error", time.monotonic() - self._started_at)
        sessions = self._services.sessions
        if sessions is not None and self.context.session_id in sessions:
            self._finalize_task = asyncio.get_running_loop().create_task(self._close_session_only("error"))
        self._end_root_span("error", time.monotonic() - self._started_at, error)
        self._finished.set()

    async def _close_session_only(self, outcome: SessionOutcome) -> None:
        assert self._services.sessions is not None
        await self._services.sessions.close(self.context.session_id, outcome)

    def _end_root_span(self, outcome: CallOutcome, duration: float, error: object | None) -> None:
        span = self.root_span
        if span is None or not span.is_recording():
            return
        span.set_attribute(names.CALL_OUTCOME, outcome)
        if self.end_reason is not None:
            span.set_attribute(names.CALL_END_REASON, self.end_reason)
            set_error(span, self.end_reason)
        if error is not None:
            set_error(span, type(error).__name__)
        with trace.use_span(span, end_on_exit=False):
            log.info("call ended: %s after %.1fs", outcome, duration, extra=self.log_extra())
        span.end()
