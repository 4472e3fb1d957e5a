"""The caller's own clock in simulated voice calls: when each line ended, how soon the agent answered."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agent.simulate.caller_audio import Clip
from agent.simulate.voice_io import FRAME_S, CallerMicrophone
from agent.simulate.voice_runner import _heard_waits


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
