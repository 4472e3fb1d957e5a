"""A call's VAD stream hands each frame straight to the model's stream (agent/speech/call_vad.py)."""

from __future__ import annotations

import asyncio

import pytest
from livekit import rtc
from livekit.agents import vad

from agent.speech.call_vad import CallVAD


class _RecordingStream(vad.VADStream):
    """The model's stream: records what reaches it; says END_OF_SPEECH when its input ends."""

    def __init__(self, model: vad.VAD, received: list[object]) -> None:
        self.received = received
        super().__init__(model)

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        self.received.append(frame)
        super().push_frame(frame)

    def flush(self) -> None:
        self.received.append("flush")
        super().flush()

    async def _main_task(self) -> None:
        async for _item in self._input_ch:
            pass
        end = vad.VADEvent(
            type=vad.VADEventType.END_OF_SPEECH,
            samples_index=0,
            timestamp=0.0,
            speech_duration=0.0,
            silence_duration=0.0,
        )
        self._event_ch.send_nowait(end)


class _Model(vad.VAD):
    def __init__(self) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.032))
        self.received: list[object] = []

    def stream(self) -> vad.VADStream:
        return _RecordingStream(self, self.received)


def _frame() -> rtc.AudioFrame:
    return rtc.AudioFrame(bytes(640), 16000, 1, 320)


async def test_frames_reach_the_model_stream_without_a_hop_and_events_come_back() -> None:
    model = _Model()
    call_vad = CallVAD(model)
    stream = call_vad.stream()
    frame = _frame()
    with call_vad.utterances() as segments:
        stream.push_frame(frame)
        stream.flush()
        # Synchronously: no task had to run for the model's stream to have them.
        assert model.received == [frame, "flush"]
        stream.end_input()
        with pytest.raises(RuntimeError):
            stream.push_frame(_frame())  # nothing after the end of input
        event = await asyncio.wait_for(anext(aiter(stream)), 5)
        assert event.type is vad.VADEventType.END_OF_SPEECH
        assert (await asyncio.wait_for(segments.get(), 5)).type is vad.VADEventType.END_OF_SPEECH
    await stream.aclose()
