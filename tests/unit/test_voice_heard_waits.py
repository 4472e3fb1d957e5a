"""The caller's own clock in simulated voice calls: when each line ended, how soon the agent answered."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from agent.simulate.caller_audio import DEFAULT_SAMPLE_RATE, Clip
from agent.simulate.voice_io import FRAME_S, CallerMicrophone
from agent.simulate.voice_runner import _heard_waits
from agent.worker import room_options


def test_each_line_is_paired_with_the_first_reply_before_the_next_line() -> None:
    ends = [10.0, 20.0, 21.0, 30.0]  # the 2nd line was followed by another before any reply (barge-in)
    replies = [5.0, 10.8, 11.5, 21.9, 30.7]  # 5.0: the greeting; 11.5: a second reply to line 1
    assert _heard_waits(ends, replies) == pytest.approx([0.8, 0.9, 0.7])
    assert _heard_waits([40.0], replies) == []  # never answered: no wait to report


async def test_the_microphone_stamps_when_each_line_ended() -> None:
    microphone = CallerMicrophone()
    samples = np.full(int(microphone.sample_rate * 3 * FRAME_S), 1000, dtype=np.int16)  # three frames
    said = asyncio.ensure_future(microphone.say(Clip("hi", samples, microphone.sample_rate)))
    for _ in range(5):
        await asyncio.wait_for(microphone.__anext__(), 1.0)
    ended = await asyncio.wait_for(said, 1.0)
    microphone.close()
    assert microphone.utterance_ends == [ended]
    assert len(microphone.utterance_starts) == 1 and microphone.utterance_starts[0] <= ended


async def test_the_microphone_hands_the_session_what_the_worker_reads_from_a_room() -> None:
    # A simulated call must cost a real call's per-frame work: the microphone's frames are the ones the
    # worker's session asks the room for, at the rate Silero scores (no resampling per frame).
    room = room_options().get_audio_input_options()
    assert room is not None
    microphone = CallerMicrophone()
    frame = await asyncio.wait_for(microphone.__anext__(), 1.0)
    microphone.close()
    assert (frame.sample_rate, frame.num_channels) == (room.sample_rate, room.num_channels)
    assert frame.samples_per_channel == room.sample_rate * room.frame_size_ms // 1000
    assert room.sample_rate == DEFAULT_SAMPLE_RATE  # clips are made at the rate the microphone runs at


async def test_a_frame_goes_out_only_once_its_last_sample_is_spoken() -> None:
    loop = asyncio.get_running_loop()
    microphone = CallerMicrophone()
    opened = loop.time()
    for delivered in range(1, 4):
        await asyncio.wait_for(microphone.__anext__(), 1.0)
        assert loop.time() >= opened + delivered * FRAME_S - 1e-3  # never ahead of the speech it carries
    microphone.close()


async def test_a_line_ends_at_its_last_sample_not_at_its_frame_end() -> None:
    microphone = CallerMicrophone()
    samples = np.full(int(microphone.sample_rate * 1.5 * FRAME_S), 1000, dtype=np.int16)  # ends mid-frame
    said = asyncio.ensure_future(microphone.say(Clip("hi", samples, microphone.sample_rate)))
    for _ in range(2):
        await asyncio.wait_for(microphone.__anext__(), 1.0)
    frame_out = time.time()
    ended = await asyncio.wait_for(said, 1.0)
    microphone.close()
    assert ended <= frame_out - 0.5 * FRAME_S + 1e-3  # half the last frame was padding after the line
    assert microphone.utterance_starts[0] <= ended - 1.5 * FRAME_S + 1e-3


async def test_a_frame_handed_over_late_is_stamped_when_its_audio_was_spoken() -> None:
    microphone = CallerMicrophone()
    await asyncio.wait_for(microphone.__anext__(), 1.0)  # silence
    samples = np.full(int(microphone.sample_rate * 0.5 * FRAME_S), 1000, dtype=np.int16)
    said = asyncio.ensure_future(microphone.say(Clip("hi", samples, microphone.sample_rate)))
    await asyncio.sleep(0)  # queued
    time.sleep(0.12)  # noqa: ASYNC251 - the loop stalls on purpose, past the next frame's end
    await asyncio.wait_for(microphone.__anext__(), 1.0)  # handed over at once, ~70 ms late
    handed_over = time.time()
    ended = await asyncio.wait_for(said, 1.0)
    microphone.close()
    assert ended <= handed_over - 0.06  # the caller stopped talking on schedule, before the late hand-over
