"""The call's VAD (``CallVAD``) over the real Silero model, fed real speech (espeak-ng, a process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from livekit import rtc


async def test_calls_share_the_vad_model_not_its_events(tmp_path: Path, monkeypatch) -> None:
    """Two calls over one Silero model: each call's VAD metrics and speech segments stay its own (a
    shared ``silero.VAD`` instance delivers every session's metrics to all of them)."""
    from livekit.plugins import silero

    from agent.simulate.caller_audio import make_clip
    from agent.speech.call_vad import CallVAD

    model = silero.VAD.load()
    first, second = CallVAD(model), CallVAD(model)
    metrics = {"first": 0, "second": 0}
    first.on("metrics_collected", lambda _m: metrics.__setitem__("first", metrics["first"] + 1))
    second.on("metrics_collected", lambda _m: metrics.__setitem__("second", metrics["second"] + 1))
    clip = make_clip("Hello there, this is a test of the voice detector.", cache_dir=tmp_path)
    silence = np.zeros(8000, dtype=np.int16)
    samples = np.concatenate([silence, clip.samples, silence, silence])
    with first.utterances() as segments, second.utterances() as other_segments:
        stream = first.stream()
        for start in range(0, len(samples), 320):
            chunk = samples[start : start + 320]
            stream.push_frame(rtc.AudioFrame(chunk.tobytes(), 16000, 1, len(chunk)))
        stream.end_input()
        events = [event async for event in stream]
        published = [segments.get_nowait().type.value for _ in range(segments.qsize())]
        assert other_segments.empty()
    await stream.aclose()
    assert published == ["start_of_speech", "end_of_speech"]
    assert [e.type.value for e in events if e.type.value != "inference_done"] == published
    assert metrics["first"] >= 1 and metrics["second"] == 0
    assert first.streams_opened == 1 and second.streams_opened == 0
