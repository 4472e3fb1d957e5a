"""The batched Silero VAD (``agent/speech/silero_batch.py``) against livekit's own Silero stream, on real
speech (espeak-ng, a process): the same events, and fewer trips through the loop's executor."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import vad

FRAME = 800  # 50 ms at 16 kHz, the worker's room frames


@pytest.fixture(scope="module")
def caller_samples(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Two sentences with a pause between them that ends a turn, then silence (16 kHz)."""
    from agent.simulate.caller_audio import make_clip

    cache = tmp_path_factory.mktemp("voice")
    first = make_clip("Hi, I would like to hear about your pricing.", cache_dir=cache).samples
    second = make_clip("We are a team of forty people.", cache_dir=cache).samples
    pause = np.zeros(16000, dtype=np.int16)
    return np.concatenate([pause[:4000], first, pause, second, pause])


def _frames(samples: np.ndarray, rate: int = 16000, size: int = FRAME) -> list[rtc.AudioFrame]:
    return [
        rtc.AudioFrame(samples[i : i + size].tobytes(), rate, 1, len(samples[i : i + size]))
        for i in range(0, len(samples), size)
    ]


async def _events(stream: vad.VADStream, frames: list[rtc.AudioFrame]) -> list[vad.VADEvent]:
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    events = [event async for event in stream]
    await stream.aclose()
    return events


def _shape(event: vad.VADEvent) -> tuple[Any, ...]:
    """What the session reads of an event, and the segment's audio."""
    audio = b"".join(bytes(frame.data) for frame in event.frames) if event.type != "inference_done" else b""
    return (
        event.type.value,
        event.samples_index,
        round(event.timestamp, 6),
        round(event.speech_duration, 6),
        round(event.silence_duration, 6),
        round(event.probability, 6),
        event.speaking,
        round(event.raw_accumulated_silence, 6),
        round(event.raw_accumulated_speech, 6),
        audio,
    )


async def test_the_batched_vad_reports_what_livekits_silero_stream_reports(caller_samples) -> None:
    from livekit.plugins import silero

    from agent.speech.silero_batch import BatchedSileroVAD

    theirs = await _events(silero.VAD.load().stream(), _frames(caller_samples))
    ours = await _events(BatchedSileroVAD.load().stream(), _frames(caller_samples))
    kinds = [e.type.value for e in theirs if e.type.value != "inference_done"]
    assert kinds == ["start_of_speech", "end_of_speech"] * 2  # the clip has two turns
    assert [_shape(e) for e in ours] == [_shape(e) for e in theirs]


class _CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.trips = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        self.trips += 1
        return super().submit(fn, *args, **kwargs)


async def _feed_calls(model: vad.VAD, samples: np.ndarray, calls: int) -> tuple[int, int, list[list[str]]]:
    """``calls`` streams fed the same audio frame by frame, a frame of each in turn, as a room's
    tracks arrive: (trips through the loop's default executor, windows scored, each stream's
    segment events)."""
    loop = asyncio.get_running_loop()
    executor = _CountingExecutor()
    loop.set_default_executor(executor)
    streams = [model.stream() for _ in range(calls)]
    frames = _frames(samples)

    async def collect(stream: vad.VADStream) -> list[vad.VADEvent]:
        return [event async for event in stream]

    readers = [asyncio.create_task(collect(stream)) for stream in streams]
    for frame in frames:
        for stream in streams:
            stream.push_frame(frame)
        await asyncio.sleep(0.001)  # the next frame comes later, as it would from a room
    for stream in streams:
        stream.end_input()
    results = await asyncio.wait_for(asyncio.gather(*readers), timeout=60)
    for stream in streams:
        await stream.aclose()
    windows = sum(1 for events in results for e in events if e.type.value == "inference_done")
    kinds = [[e.type.value for e in events if e.type.value != "inference_done"] for events in results]
    return executor.trips, windows, kinds


async def test_many_calls_share_each_model_run(caller_samples) -> None:
    """livekit's stream makes one executor trip and one model run per 32 ms window per call (found
    in the 70-call profile: the trips filled the event loop); eight calls fed at once share runs."""
    from agent.speech.silero_batch import BatchedSileroVAD

    model = BatchedSileroVAD.load()
    trips, windows, kinds = await _feed_calls(model, caller_samples, calls=8)
    assert windows == 8 * (len(caller_samples) // 512) == model.batcher.windows
    assert model.batcher.runs * 4 <= windows, f"{model.batcher.runs} model runs for {windows} windows"
    assert trips == 0  # the model has a thread of its own
    assert kinds == [["start_of_speech", "end_of_speech"] * 2] * 8


async def test_livekits_stream_makes_a_trip_per_window(caller_samples) -> None:
    """The control for the test above: the counting method sees livekit's per-window trips."""
    from livekit.plugins import silero

    trips, windows, _ = await _feed_calls(silero.VAD.load(), caller_samples, calls=2)
    assert trips >= windows


def test_calls_on_different_event_loops_share_the_model_runs(caller_samples) -> None:
    """livekit's thread executor runs each job on a loop of its own: the process's model batches the
    windows of six calls on six loops together and sends each score back to its own loop. One call
    per loop, so a run of several windows can only come from several loops (measured: ~3 a run)."""
    import threading

    from agent.speech.silero_batch import process_vad

    model = process_vad()
    assert process_vad() is model
    runs_before, windows_before = model.batcher.runs, model.batcher.windows
    loops = 6
    start = threading.Barrier(loops)
    kinds: list[list[list[str]]] = []

    def job() -> None:
        async def main() -> list[list[str]]:
            start.wait(timeout=30)
            return (await _feed_calls(model, caller_samples, calls=1))[2]

        kinds.append(asyncio.run(main()))

    threads = [threading.Thread(target=job) for _ in range(loops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert kinds == [[["start_of_speech", "end_of_speech"] * 2]] * loops
    windows = model.batcher.windows - windows_before
    runs = model.batcher.runs - runs_before
    assert windows == loops * (len(caller_samples) // 512)
    assert runs * 3 <= windows * 2, f"{runs} model runs for {windows} windows over {loops} loops"


async def test_a_call_opened_through_its_call_vad_reports_to_that_call(caller_samples) -> None:
    """No wrapper stream: segments reach ``utterances()``, metrics reach the call's own VAD."""
    from agent.speech.call_vad import CallVAD
    from agent.speech.silero_batch import BatchedSileroVAD

    model = BatchedSileroVAD.load()
    call, other = CallVAD(model), CallVAD(model)
    metrics = {"call": 0, "other": 0, "model": 0}
    call.on("metrics_collected", lambda _m: metrics.__setitem__("call", metrics["call"] + 1))
    other.on("metrics_collected", lambda _m: metrics.__setitem__("other", metrics["other"] + 1))
    model.on("metrics_collected", lambda _m: metrics.__setitem__("model", metrics["model"] + 1))
    with call.utterances() as segments:
        stream = call.stream()
        assert type(stream).__module__ == "agent.speech.silero_batch"
        events = await _events(stream, _frames(caller_samples))
        published = [segments.get_nowait() for _ in range(segments.qsize())]
    assert [e.type.value for e in published] == ["start_of_speech", "end_of_speech"] * 2
    assert published == [e for e in events if e.type.value != "inference_done"]
    assert metrics["call"] >= 1 and metrics["other"] == 0 and metrics["model"] == 0


async def test_a_flush_starts_a_fresh_segment(caller_samples) -> None:
    from livekit.plugins import silero

    from agent.speech.silero_batch import BatchedSileroVAD

    half = len(caller_samples) // 3  # inside the first sentence

    async def run(stream: vad.VADStream) -> list[tuple[Any, ...]]:
        for frame in _frames(caller_samples[:half]):
            stream.push_frame(frame)
        stream.flush()
        return [_shape(e) for e in await _events(stream, _frames(caller_samples[half:]))]

    assert await run(BatchedSileroVAD.load().stream()) == await run(silero.VAD.load().stream())


async def test_other_input_rates_are_scored_at_16_khz(caller_samples) -> None:
    from agent.speech.silero_batch import BatchedSileroVAD

    at_48k = np.repeat(caller_samples, 3)  # crude, but speech stays speech
    events = await _events(BatchedSileroVAD.load().stream(), _frames(at_48k, 48000, 2400))
    segments = [e for e in events if e.type.value != "inference_done"]
    assert [e.type.value for e in segments] == ["start_of_speech", "end_of_speech"] * 2
    assert all(frame.sample_rate == 16000 for e in segments for frame in e.frames)


async def test_speech_longer_than_the_buffer_keeps_its_start_and_is_still_scored(caller_samples) -> None:
    from agent.speech.silero_batch import BatchedSileroVAD, VADOptions

    model = BatchedSileroVAD(BatchedSileroVAD.load()._session, VADOptions(max_buffered_speech=0.3))
    events = await _events(model.stream(), _frames(caller_samples))
    ends = [e for e in events if e.type.value == "end_of_speech"]
    assert len(ends) == 2
    # At most the 2 s kept before compaction, the padding and the 0.3 s of speech, never the turn.
    assert all(e.frames[0].samples_per_channel <= int((2.0 + 0.5 + 0.3) * 16000) for e in ends)
    assert ends[0].speech_duration > 1.0  # the turn is measured whole


async def test_a_failing_model_run_fails_every_window_that_waited_for_it() -> None:
    from agent.speech.silero_batch import WINDOW_SAMPLES, _ModelRow, _WindowBatcher

    class BrokenSession:
        def run(self, *_args: Any) -> Any:
            raise RuntimeError("model file corrupt")

    batcher = _WindowBatcher(BrokenSession())  # type: ignore[arg-type]
    window = np.zeros(WINDOW_SAMPLES, dtype=np.int16)
    waiting = [batcher.score(_ModelRow(), window) for _ in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), timeout=10)
    assert [str(r) for r in results] == ["model file corrupt"] * 3
    assert batcher.runs == 1  # one run for the three
    with pytest.raises(RuntimeError, match="model file corrupt"):  # the thread still takes new windows
        await asyncio.wait_for(batcher.score(_ModelRow(), window), timeout=10)
    assert batcher.runs == 2
