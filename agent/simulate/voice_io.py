"""Audio in and out of a voice ``AgentSession`` without a LiveKit room, at real-time pace.

``CallerMicrophone`` is the session's ``AudioInput``: the frames the worker's session reads from a
LiveKit room (``agent/speech/room_audio.py``: 50 ms at 16 kHz), each delivered once its last sample
has been spoken, on a wall-clock schedule; silence unless a clip is playing, so the VAD measures real
silences, every latency downstream is real and a simulated call costs the per-frame work of a real
one. ``CallerSpeaker`` is the session's ``AudioOutput``: it "plays" what the agent says on a virtual
playout clock, telling the session when playback starts (first frame of a reply), finishes
(when the pushed audio would have played out) or is cut (``clear_buffer``: a barge-in).

Shaped after livekit's own test doubles (``tests/fake_io.py`` in livekit/agents), with real pacing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities

from agent.simulate.caller_audio import Clip
from agent.speech import room_audio

# The worker's session reads the room with these options; the microphone matches them so a simulated
# call's per-frame work (VAD framing, the STT tee, channel hops) is a real call's.
FRAME_S = room_audio.FRAME_MS / 1000
SAMPLE_RATE = room_audio.SAMPLE_RATE


@dataclass
class _Utterance:
    clip: Clip
    done: asyncio.Future[float] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    offset: int = 0


class CallerMicrophone(AudioInput):
    """The simulated caller's microphone: silence, or the clip being spoken, in real time."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__(label="simulated-caller-microphone")
        self.sample_rate = sample_rate
        self._samples_per_frame = int(sample_rate * FRAME_S)
        self._silence = np.zeros(self._samples_per_frame, dtype=np.int16)
        self._queue: deque[_Utterance] = deque()
        self._next_at: float | None = None
        self._closed = False
        self.utterance_starts: list[float] = []  # wall time each clip's first sample was spoken
        self.utterance_ends: list[float] = []  # wall time each clip's last sample was spoken

    @property
    def speaking(self) -> bool:
        return bool(self._queue)

    async def say(self, clip: Clip) -> float:
        """Speak ``clip`` (after anything queued); returns the wall time (``time.time()``) it ended."""
        if clip.sample_rate != self.sample_rate:
            raise ValueError(f"clip is {clip.sample_rate} Hz, the microphone runs at {self.sample_rate} Hz")
        utterance = _Utterance(clip)
        self._queue.append(utterance)
        return await utterance.done

    def close(self) -> None:
        self._closed = True
        for utterance in self._queue:
            if not utterance.done.done():
                utterance.done.cancel()
        self._queue.clear()

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        now = loop.time()
        # A frame goes out when its last sample has been spoken, as a room's re-framed track delivers
        # it: the first one a frame after the microphone opens. Far behind (a stalled loop): resync.
        if self._next_at is None:
            self._next_at = now + FRAME_S
        elif self._next_at < now - 0.2:
            self._next_at = now
        if self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        spoken_until = self._next_at  # loop time of this frame's last sample
        self._next_at += FRAME_S
        if self._closed:
            raise StopAsyncIteration
        # Stamped on the caller's schedule, not at delivery: a frame handed over late (a busy loop)
        # still carries audio spoken on time, and that lag is part of the caller's wait.
        frame_end = time.time() - (loop.time() - spoken_until)
        samples = self._next_samples(frame_end)
        return rtc.AudioFrame(samples.tobytes(), self.sample_rate, 1, self._samples_per_frame)

    def _next_samples(self, frame_end: float) -> np.ndarray:
        """The next frame's samples; ``frame_end`` is the wall time its last sample was spoken."""
        if not self._queue:
            return self._silence
        utterance = self._queue[0]
        n = self._samples_per_frame
        if utterance.offset == 0:
            self.utterance_starts.append(frame_end - FRAME_S)
        chunk = utterance.clip.samples[utterance.offset : utterance.offset + n]
        utterance.offset += n
        if utterance.offset >= len(utterance.clip.samples):
            self._queue.popleft()
            ended = frame_end - (n - len(chunk)) / self.sample_rate  # the line's last sample, in this frame
            self.utterance_ends.append(ended)
            if not utterance.done.done():
                utterance.done.set_result(ended)
        if len(chunk) < n:
            chunk = np.concatenate([chunk, self._silence[: n - len(chunk)]])
        return chunk


class CallerSpeaker(AudioOutput):
    """The simulated caller's ear: a virtual playout clock for the agent's audio."""

    def __init__(self) -> None:
        super().__init__(
            label="simulated-caller-speaker",
            capabilities=AudioOutputCapabilities(pause=False),
            sample_rate=None,
        )
        self._segment_started_at: float | None = None  # wall time the current reply started playing
        self._played_until = 0.0  # monotonic time the pushed audio will have played out
        self._pushed_s = 0.0
        self._finish: asyncio.TimerHandle | None = None
        self.first_frame_times: list[float] = []  # wall time of each reply's first frame
        self.interrupted_at: list[float] = []  # wall time of each clear_buffer that cut a reply
        self.interruptions = 0
        self.audio_s = 0.0

    @property
    def playing(self) -> bool:
        return self._segment_started_at is not None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        now = time.monotonic()
        if self._segment_started_at is None:
            self._segment_started_at = time.time()
            self._played_until = now
            self.first_frame_times.append(self._segment_started_at)
            self.on_playback_started(created_at=self._segment_started_at)
        self._played_until = max(self._played_until, now) + frame.duration
        self._pushed_s += frame.duration
        self.audio_s += frame.duration

    def flush(self) -> None:
        super().flush()
        if self._segment_started_at is None:
            return
        if self._finish is not None:
            self._finish.cancel()
        pushed = self._pushed_s
        delay = max(0.0, self._played_until - time.monotonic())
        self._finish = asyncio.get_running_loop().call_later(delay, self._finished, pushed)

    def _finished(self, pushed: float) -> None:
        self._reset()
        self.on_playback_finished(playback_position=pushed, interrupted=False)

    def clear_buffer(self) -> None:
        if self._segment_started_at is None:
            return
        played = min(self._pushed_s, time.time() - self._segment_started_at)
        self._reset()
        self.interruptions += 1
        self.interrupted_at.append(time.time())
        self.on_playback_finished(playback_position=played, interrupted=True)

    def _reset(self) -> None:
        if self._finish is not None:
            self._finish.cancel()
            self._finish = None
        self._segment_started_at = None
        self._pushed_s = 0.0
