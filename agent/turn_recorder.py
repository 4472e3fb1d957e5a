"""Per-turn figures of one call, recorded when each turn's reply starts: the caller's wait and its stages.

The caller's wait runs from the end of the caller's turn to the agent's first output of the reply:

- start: the end of the caller's speech (voice: livekit's VAD-based ``stopped_speaking_at`` on the
  user message) or the moment the text arrived (text calls);
- end: the session's agent state turning ``speaking``, which livekit sets on the reply's first
  audio frame played (voice) or first text forwarded (text) — after any tool calls, fallbacks and
  LLM streams in between.

Stages (``sales_agent.turn.stage.duration{stage}``): ``endpointing`` (end of speech -> turn
committed) and ``stt`` (end of speech -> final transcript), both from livekit's user-message
metrics; ``llm`` (each LLM stream's wait for its first chunk, fallbacks included), ``tools`` (tool
execution between LLM streams), ``tts`` (first reply text -> first audio), from our LLM's hooks.
Everything is recorded the moment the wait ends — livekit's own ``lk.agents.turn.*`` histograms
arrive only when the session closes, too late to alert on a call going badly — with the
exemplar pointing at the turn's LLM span (the call's trace). Interruptions (the caller barged in),
silence gaps in a reply and turns the caller never got an answer to are counted too.

The old measure (first token of the first LLM stream) missed tool time entirely: an 8.2 s turn
spent in CRM retries was recorded as 0.12 s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry import context as otel_context

from agent.call_context import CallContext
from agent.instruments import instruments
from telemetry import names

log = logging.getLogger(__name__)

TurnMode = Literal["text", "voice"]
# A stream that started this soon before the user's message was recorded belongs to that turn.
_SAME_TURN_S = 0.05
Stage = Literal["endpointing", "stt", "llm", "tools", "tts"]


@dataclass
class _Turn:
    ended_at: float  # end of the caller's turn (wall clock)
    stages: dict[str, float] = field(default_factory=dict)
    tools_started_at: float | None = None
    text_at: float | None = None
    context: otel_context.Context | None = None


@dataclass
class _Stream:
    """The LLM stream in flight. Tracked apart from the turn: in text calls livekit starts the
    stream a moment before it adds the user's message to the conversation."""

    started_at: float
    first_chunk_s: float | None = None


@dataclass(frozen=True)
class RecordedTurn:
    wait_s: float
    stages: dict[str, float]
    ended_at: float = 0.0  # the caller's end of turn, wall clock: where the wait starts


class TurnRecorder:
    """One call's turns (all calls run on the call's own event loop, so no locking)."""

    def __init__(self, call: CallContext, mode: TurnMode) -> None:
        self.call = call
        self.mode = mode
        self._turn: _Turn | None = None
        self._stream: _Stream | None = None
        self.recorded: list[RecordedTurn] = []  # what this call recorded (simulate's summary)
        # Each LLM stream's wait for its first chunk, fallbacks included (simulate's time to first token).
        self.llm_first_chunks_s: list[float] = []
        self._attrs = {names.TENANT_ID: call.tenant_id, names.TURN_MODE: mode}

    # --- the caller's side ------------------------------------------------------------------
    def user_turn_ended(
        self, ended_at: float, *, endpointing_s: float | None = None, stt_s: float | None = None
    ) -> None:
        """The caller's turn was committed; a newer one replaces an unanswered older one."""
        turn = _Turn(ended_at=ended_at)
        if endpointing_s is not None:
            turn.stages["endpointing"] = max(0.0, endpointing_s)
        if stt_s is not None:
            turn.stages["stt"] = max(0.0, stt_s)
        stream = self._stream
        if (
            stream is not None
            and stream.started_at >= ended_at - _SAME_TURN_S
            and stream.first_chunk_s is not None
        ):
            self._add(turn, "llm", stream.first_chunk_s)  # the reply's stream began before the message landed
        self._turn = turn

    # --- the LLM's side (RouterLLMStream calls these) --------------------------------------
    def llm_started(self) -> None:
        now = time.time()
        self._stream = _Stream(started_at=now)
        turn = self._turn
        if turn is not None and turn.tools_started_at is not None:
            self._add(turn, "tools", now - turn.tools_started_at)
            turn.tools_started_at = None

    def llm_first_chunk(self) -> None:
        stream = self._stream
        if stream is None or stream.first_chunk_s is not None:
            return
        stream.first_chunk_s = time.time() - stream.started_at
        self.llm_first_chunks_s.append(stream.first_chunk_s)
        if self._turn is not None:
            self._add(self._turn, "llm", stream.first_chunk_s)
            self._turn.context = otel_context.get_current()

    def llm_tool_calls(self) -> None:
        """The stream handed over tool calls: livekit starts running them now, the stream may go on."""
        turn = self._turn
        if turn is not None and turn.tools_started_at is None and turn.text_at is None:
            turn.tools_started_at = time.time()

    def llm_text(self) -> None:
        turn = self._turn
        if turn is not None and turn.text_at is None:
            turn.text_at = time.time()
            turn.context = otel_context.get_current()

    def llm_finished(self, *, tool_calls: bool) -> None:
        stream, self._stream = self._stream, None
        turn = self._turn
        if turn is None:
            return
        if stream is not None and stream.first_chunk_s is None:
            self._add(turn, "llm", time.time() - stream.started_at)  # a stream that said nothing
        if tool_calls and turn.text_at is None and turn.tools_started_at is None:
            turn.tools_started_at = time.time()

    # --- the reply --------------------------------------------------------------------------
    def reply_started(self, at: float) -> RecordedTurn | None:
        """The agent's first output of the reply (agent state ``speaking``): the wait is over."""
        turn, self._turn = self._turn, None
        if turn is None:
            return None  # a greeting, a goodbye: no caller turn waited for it
        wait = max(0.0, at - turn.ended_at)
        if self.mode == "voice" and turn.text_at is not None:
            turn.stages["tts"] = max(0.0, at - turn.text_at)
        ins = instruments()
        context = turn.context
        ins.turn_response_latency.record(wait, self._attrs, context=context)
        for stage, seconds in turn.stages.items():
            ins.turn_stage_duration.record(seconds, {**self._attrs, names.TURN_STAGE: stage}, context=context)
        recorded = RecordedTurn(wait, dict(turn.stages), turn.ended_at)
        self.recorded.append(recorded)
        return recorded

    def reply_interrupted(self) -> None:
        instruments().turn_interruptions.add(1, {names.TENANT_ID: self.call.tenant_id})

    def silence_gap(self, seconds: float) -> None:
        instruments().turn_silence_gap.record(seconds, {names.TENANT_ID: self.call.tenant_id})

    def unanswered(self, reason: str) -> None:
        """A caller turn that will get no reply (its speech was lost, or the call ended first)."""
        instruments().turn_unanswered.add(
            1, {names.TENANT_ID: self.call.tenant_id, names.UNANSWERED_REASON: reason}
        )

    def close(self) -> None:
        if self._turn is not None:
            self._turn = None
            self.unanswered("call_ended")

    @staticmethod
    def _add(turn: _Turn, stage: str, seconds: float) -> None:
        turn.stages[stage] = turn.stages.get(stage, 0.0) + max(0.0, seconds)
