"""Run one scripted voice call through the real agent: real audio, real VAD, STT/TTS over HTTP.

The ``SalesCall`` is the worker's own call code in voice mode, with ``voice_io``'s microphone and
speaker in place of a LiveKit room. The caller waits for the agent's greeting, then for each line:
waits for the agent to finish its reply (or, for a barge-in line, starts talking a moment after the
reply starts), pauses, tells the STT stand-ins what it is about to say (``POST /admin/utterance``)
and speaks the line. A line the agent did not understand (empty transcript) is said again, once.
Every wait is bounded by ``turn_timeout_s``; the call's figures come from its ``TurnRecorder``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from livekit.agents import AgentStateChangedEvent, FunctionToolsExecutedEvent

from agent.call_context import CallContext
from agent.runtime import Runtime
from agent.sales_call import SalesCall
from agent.simulate.caller_audio import make_clip
from agent.simulate.runner import ISO_SLOT, CallResult
from agent.simulate.scripts import ScriptState, render_turn
from agent.simulate.voice_io import CallerMicrophone, CallerSpeaker
from agent.simulate.voice_scripts import VoiceLine, VoiceScript, voice_script_for

log = logging.getLogger(__name__)

MAX_REPEATS = 1  # a line the agent did not catch is said once more


class _AgentWatch:
    """The agent's state as the caller perceives it: how many replies started, is one playing."""

    def __init__(self, call: SalesCall, speaker: CallerSpeaker) -> None:
        self._call = call
        self._speaker = speaker
        self.replies = 0
        self.state = "initializing"
        self._changed = asyncio.Event()
        call.session.on("agent_state_changed", self._on_state)
        call.session.on("close", lambda _e: self._changed.set())

    def _on_state(self, event: AgentStateChangedEvent) -> None:
        self.state = event.new_state
        if event.new_state == "speaking":
            self.replies += 1
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait until ``condition()`` or the call ends; TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not (condition() or self._call.ending):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout_s:.0f} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                # Playback ends on a timer in the speaker, not with a state change: poll briefly too.
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))

    def reply_done(self, replies_before: int) -> bool:
        return self.replies > replies_before and self.state != "speaking" and not self._speaker.playing

    async def reply_started(self, replies_before: int, timeout_s: float) -> None:
        await self.until(lambda: self.replies > replies_before, timeout_s, "reply")

    async def reply_finished(self, replies_before: int, timeout_s: float) -> None:
        await self.until(lambda: self.reply_done(replies_before), timeout_s, "reply")


def _reactions(utterance_starts: list[float], cuts: list[float]) -> list[float]:
    """For each cut of the agent's audio: how long after the caller started talking it came."""
    reactions = []
    for cut in cuts:
        started = [t for t in utterance_starts if t <= cut]
        if started:
            reactions.append(cut - started[-1])
    return reactions


def _heard_waits(utterance_ends: list[float], reply_starts: list[float]) -> list[float]:
    """For each line the caller finished: how long until the agent's next reply started playing.

    The caller's clock, unlike the turn recorder's (which starts at livekit's estimate of the end of
    speech, made when the VAD gets to it): a VAD running late delays the answer the caller hears.
    A line followed by another line before any reply (a barge-in, a repeat) has no wait of its own.
    """
    waits = []
    for index, ended in enumerate(utterance_ends):
        following = utterance_ends[index + 1] if index + 1 < len(utterance_ends) else float("inf")
        replies = [t for t in reply_starts if ended < t < following]
        if replies:
            waits.append(replies[0] - ended)
    return waits


async def _publish(client: httpx.AsyncClient, stt_admin_urls: Sequence[str], call_id: str, text: str) -> None:
    """Tell every STT stand-in what the caller is about to say (the backup must know it too)."""
    for base in stt_admin_urls:
        response = await client.post(f"{base}/admin/utterance", json={"call_id": call_id, "text": text})
        response.raise_for_status()


def _watch_tools(call: SalesCall, state: ScriptState) -> None:
    def on_tools(event: FunctionToolsExecutedEvent) -> None:
        for output in event.function_call_outputs:
            if output is None or output.is_error:
                continue
            if output.name == "check_availability":
                state.slots = ISO_SLOT.findall(output.output)
            elif output.name == "book_meeting":
                state.meeting_booked = True

    call.session.on("function_tools_executed", on_tools)


async def run_voice_call(
    index: int,
    tenant_id: str,
    *,
    run_id: str,
    runtime: Runtime,
    stt_admin_urls: Sequence[str],
    http: httpx.AsyncClient,
    turn_timeout_s: float = 30.0,
    script: VoiceScript | None = None,
    on_started: Callable[[SalesCall], None] | None = None,
    session_options: dict[str, Any] | None = None,
    clip_cache: Path | None = None,
) -> CallResult:
    """One scripted voice call from start to recorded outcome; never raises (errors land in the result).

    ``script``: instead of the ``index``-th of the rotation; ``on_started``: sees the running call;
    ``session_options``: ``AgentSession`` arguments over the voice defaults (benchmarks compare them);
    ``clip_cache``: where the caller's spoken lines are kept (``caller_audio.default_cache_dir()``).
    """
    script = script or voice_script_for(index, run_id)
    call_ctx = CallContext(tenant_id=tenant_id, session_id=uuid.uuid4().hex, call_id=f"sim-{run_id}-{index}")
    result = CallResult(
        index=index, script=script.name, tenant_id=tenant_id, call_id=call_ctx.call_id, mode="voice"
    )
    started = time.perf_counter()
    microphone = CallerMicrophone()
    speaker = CallerSpeaker()
    call = SalesCall(call_ctx, runtime.services, mode="voice", **(session_options or {}))
    call.session.input.audio = microphone
    call.session.output.audio = speaker
    state = ScriptState()
    _watch_tools(call, state)
    watch = _AgentWatch(call, speaker)
    try:
        await call.start()
        call.watch_silence_gaps()
        result.trace_id = call.trace_id
        if on_started is not None:
            on_started(call)
        lines = script.lines
        replies_before, position, repeats = 0, 0, 0
        if lines and lines[0].barge_in_after_s is None:
            await watch.reply_finished(0, turn_timeout_s)  # the greeting
        while position < len(lines) and not call.ending:
            line = lines[position]
            if line.barge_in_after_s is not None:  # talk over the reply, once it has started
                await watch.reply_started(replies_before, turn_timeout_s)
                await asyncio.sleep(line.barge_in_after_s)
            else:
                await asyncio.sleep(line.pause_before_s)
            if call.ending:
                break
            replies_before, not_understood_before = watch.replies, call.not_understood
            await _say(call, microphone, line, state, index, stt_admin_urls, http, clip_cache)
            result.turns += 1
            following = lines[position + 1] if position + 1 < len(lines) else None
            if following is None or following.barge_in_after_s is None:
                await watch.reply_finished(replies_before, turn_timeout_s)
                if call.not_understood > not_understood_before and repeats < MAX_REPEATS:
                    repeats += 1  # "say that again": the same line once more
                    log.info("the agent did not catch the line; the caller says it again")
                    continue
            position += 1
        await watch.until(lambda: call.finished, turn_timeout_s, "end of the call")
    except Exception as exc:  # one broken call must not stop the run
        result.error = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("simulated voice call %s failed: %s", call_ctx.call_id, result.error)
    finally:
        microphone.close()
        await call.aclose()
        with contextlib.suppress(Exception):
            await _publish(http, stt_admin_urls, call_ctx.call_id, "")  # forget what this call said
    result.outcome = str(call.outcome or "error")
    result.end_reason = call.end_reason
    result.lead_captured = call.tools.contact_key is not None
    result.meetings = call.tools.meetings_booked
    result.duration_s = time.perf_counter() - started
    result.recorded_turns = list(call.turns.recorded)
    result.interruptions = speaker.interruptions
    result.barge_in_reactions_s = _reactions(microphone.utterance_starts, speaker.interrupted_at)
    result.heard_waits_s = _heard_waits(microphone.utterance_ends, speaker.first_frame_times)
    result.ttfts_s = list(call.turns.llm_first_chunks_s)
    return result


async def _say(
    call: SalesCall,
    microphone: CallerMicrophone,
    line: VoiceLine,
    state: ScriptState,
    index: int,
    stt_admin_urls: Sequence[str],
    http: httpx.AsyncClient,
    clip_cache: Path | None,
) -> None:
    transcript = render_turn(line.transcript(), state, index)
    if "{slot}" in line.transcript() and not state.slots:
        transcript = transcript.replace("converted", "callback")  # no slot was offered: no sale
    clip = make_clip(line.spoken, cache_dir=clip_cache, sample_rate=microphone.sample_rate)
    await _publish(http, stt_admin_urls, call.context.call_id, transcript)
    await microphone.say(clip)
