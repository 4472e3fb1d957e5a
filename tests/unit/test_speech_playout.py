"""Silences inside the agent's replies, measured on the audio output (``GapWatchingOutput``)."""

from __future__ import annotations

import asyncio

import numpy as np
from livekit import rtc

from agent.call_context import CallContext
from agent.simulate.voice_io import CallerSpeaker
from agent.speech.playout import GapWatchingOutput
from agent.turn_recorder import TurnRecorder
from telemetry import names


def _frame(seconds: float) -> rtc.AudioFrame:
    n = int(24000 * seconds)
    return rtc.AudioFrame(np.zeros(n, dtype=np.int16).tobytes(), 24000, 1, n)


async def test_audio_arriving_after_the_reply_ran_dry_is_a_silence_gap(otel) -> None:
    acme = {names.TENANT_ID: "acme"}
    before = sum(p.count for a, p in otel.metric_points(names.TURN_SILENCE_GAP) if a == acme)
    gaps: list[float] = []
    recorder = TurnRecorder(CallContext("acme", "s", "c"), "voice")
    speaker = CallerSpeaker()
    output = GapWatchingOutput(speaker, lambda s: (gaps.append(s), recorder.silence_gap(s)))
    started: list[float] = []
    output.on("playback_started", lambda ev: started.append(ev.created_at))

    await output.capture_frame(_frame(0.1))  # plays 0.1 s from now
    await output.capture_frame(_frame(0.1))  # arrives in time: back to back, no gap
    await asyncio.sleep(0.6)  # the next sentence comes ~0.4 s after the audio ran out
    await output.capture_frame(_frame(0.1))
    output.flush()
    await output.capture_frame(_frame(0.1))  # a new reply after the flush: a new clock, no gap
    output.clear_buffer()

    assert started, "playback_started passes through the wrapper"
    assert len(gaps) == 1 and 0.3 < gaps[0] < 0.6
    after = sum(p.count for a, p in otel.metric_points(names.TURN_SILENCE_GAP) if a == acme)
    assert after - before == 1
    assert speaker.interruptions == 1  # clear_buffer reached the real output
