"""Silero VAD for every call of a process, their 32 ms windows scored together in one model run.

Written here because no library does it: livekit's Silero stream (livekit-plugins-silero 1.x) scores
each call's windows one at a time, each a trip through the event loop's default executor. Measured on
the 2-core bench machine: one trip costs the event loop ~90 µs of CPU and the model ~170 µs, 31 times
a second per call. The Silero model takes a batch (its recurrent state is per row, and a row's result
equals the row scored alone), and a run of 32 windows costs ~55 µs per row.

- ``_WindowBatcher`` (one per model, a thread of its own): the windows a loop completes in one
  iteration are handed over together; those waiting while the model is idle go out in one run, and
  those that come during a run wait for the next. A call alone is scored as soon as its window is
  complete, as before. The worker's job threads (livekit's thread executor, a loop each) share the
  process's model (``process_vad``), so their calls are batched together too.
- ``_BatchedVADStream``: livekit's Silero rules and events, unchanged (thresholds, the 0.35 filter,
  silence and speech counted in whole windows, 0.5 s of prefix padding, the segment's audio on
  START/END_OF_SPEECH). Its buffers keep the prefix padding by moving an index instead of copying it
  on every silent window. Audio is scored at 16 kHz; other input rates are resampled, and the
  stream's frames are then at 16 kHz.
- A stream opened for a ``CallVAD`` reports metrics to that call and hands it the speech segments
  itself, without a second stream wrapped around it (one event hop less per window).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from livekit import rtc
from livekit.agents import utils, vad

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 512  # what Silero scores at 16 kHz (32 ms)
CONTEXT_SAMPLES = 64  # the previous window's tail, prepended to each window
STATE_SHAPE = (2, 128)  # the model's recurrent state per row
WINDOW_S = WINDOW_SAMPLES / SAMPLE_RATE
INT16_MAX = float(np.iinfo(np.int16).max)
MAX_BATCH = 64  # rows per run: beyond ~32 the cost per row stops falling
# Silent audio kept before the prefix padding is moved back to the buffer's start: one copy of the
# padding every ~2 s of silence instead of one per window.
COMPACT_AFTER_S = 2.0
SLOW_SCORING_S = 0.2  # a window waiting this long for its score is logged (at most every 10 s)


@dataclass(frozen=True)
class VADOptions:
    """livekit's Silero defaults (``silero.VAD.load``)."""

    min_speech_duration: float = 0.05
    min_silence_duration: float = 0.55
    prefix_padding_duration: float = 0.5
    max_buffered_speech: float = 60.0
    activation_threshold: float = 0.5
    deactivation_threshold: float | None = None  # None: max(activation - 0.15, 0.01)

    @property
    def exit_threshold(self) -> float:
        if self.deactivation_threshold is not None:
            return self.deactivation_threshold
        return max(self.activation_threshold - 0.15, 0.01)


class _ModelRow:
    """One stream's recurrent state and context between its windows."""

    __slots__ = ("context", "state")

    def __init__(self) -> None:
        self.context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self.state = np.zeros(STATE_SHAPE, dtype=np.float32)

    def reset(self) -> None:
        self.context.fill(0.0)
        self.state.fill(0.0)


_Pending = tuple[asyncio.AbstractEventLoop, _ModelRow, np.ndarray, "asyncio.Future[float]"]


def _score_rows(
    session: onnxruntime.InferenceSession, rows: list[_ModelRow], windows: list[np.ndarray]
) -> list[float]:
    """Runs in an executor thread: one model run for every row, each row's state carried forward.
    Only the waiting stream touches its row, so writing it here races with nothing."""
    count = len(rows)
    model_input = np.empty((count, CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
    state = np.empty((STATE_SHAPE[0], count, STATE_SHAPE[1]), dtype=np.float32)
    for i, (row, window) in enumerate(zip(rows, windows, strict=True)):
        model_input[i, :CONTEXT_SAMPLES] = row.context
        np.divide(window, INT16_MAX, out=model_input[i, CONTEXT_SAMPLES:], dtype=np.float32)
        state[:, i, :] = row.state
    out, new_state = session.run(None, {"input": model_input, "state": state, "sr": np.array(SAMPLE_RATE)})
    for i, row in enumerate(rows):
        row.context[:] = model_input[i, -CONTEXT_SAMPLES:]
        row.state[:] = new_state[:, i, :]
    return [float(p) for p in out[:, 0]]


class _WindowBatcher:
    """Scores the windows of every stream of the process, on a thread of its own, in as few model
    runs as the load allows. A process may run calls on several event loops (livekit's thread
    executor: a loop per job thread), so the batch is the process's and each result goes back to
    its stream's loop."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._ready: list[_Pending] = []  # handed over, waiting for the model
        self._running = False
        # A loop's windows of one iteration are handed over together, at its end.
        self._gathering: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="silero-batch")
        self.runs = 0  # model runs so far
        self.windows = 0  # windows scored so far

    def score(self, row: _ModelRow, window: np.ndarray) -> asyncio.Future[float]:
        """The speech probability of ``window`` (int16 samples, left untouched until the result)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        gathering = self._gathering.get(loop)
        if gathering is None:  # the loop's first window of this iteration
            gathering = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathering.append((loop, row, window, future))
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        windows = self._gathering.pop(loop)
        with self._lock:
            self._ready.extend(windows)
            if self._running:
                return  # the thread takes them after its current run
            self._running = True
        self._thread.submit(self._run_while_ready)

    def _run_while_ready(self) -> None:
        while True:
            with self._lock:
                batch = self._ready[:MAX_BATCH]
                del self._ready[:MAX_BATCH]
                if not batch:
                    self._running = False
                    return
            try:
                scores: list[float] | BaseException = _score_rows(
                    self._session, [row for _, row, _, _ in batch], [window for _, _, window, _ in batch]
                )
            except Exception as exc:  # every waiting stream gets it; the thread goes on
                scores = exc
            self.runs += 1
            self.windows += len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[float], int]]] = {}
            for i, (loop, _, _, future) in enumerate(batch):
                by_loop.setdefault(loop, []).append((future, i))
            for loop, waiting in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                    loop.call_soon_threadsafe(_deliver, waiting, scores)


def _deliver(waiting: list[tuple[asyncio.Future[float], int]], scores: list[float] | BaseException) -> None:
    """On the stream's loop: each future gets its row's score, or the run's error."""
    for future, row in waiting:
        if future.done():  # its stream was closed meanwhile
            continue
        if isinstance(scores, BaseException):
            future.set_exception(scores)
        else:
            future.set_result(scores[row])


class BatchedSileroVAD(vad.VAD):
    """The process's Silero model; each ``stream()`` is one call's VAD, scored with the others."""

    def __init__(self, session: onnxruntime.InferenceSession, opts: VADOptions | None = None) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=WINDOW_S))
        self._session = session
        self.opts = opts or VADOptions()
        self.batcher = _WindowBatcher(session)

    @classmethod
    def load(cls, opts: VADOptions | None = None) -> BatchedSileroVAD:
        """The model file that ships inside livekit-plugins-silero, on the CPU, one thread per run."""
        from livekit.plugins.silero import onnx_model

        return cls(onnx_model.new_inference_session(force_cpu=True), opts)

    @property
    def model(self) -> str:
        return "silero"

    @property
    def provider(self) -> str:
        return "ONNX"

    @property
    def min_silence_duration(self) -> float:
        return self.opts.min_silence_duration

    def stream(self) -> vad.VADStream:
        return _BatchedVADStream(self, reporter=self)

    def stream_for(self, reporter: vad.VAD, on_segment: Callable[[vad.VADEvent], None]) -> vad.VADStream:
        """A stream whose metrics go to ``reporter`` (one call's VAD) and whose START/END_OF_SPEECH
        events are also handed to ``on_segment``."""
        return _BatchedVADStream(self, reporter=reporter, on_segment=on_segment)


_process_vad: BatchedSileroVAD | None = None
_process_vad_lock = threading.Lock()


def process_vad() -> BatchedSileroVAD:
    """The process's one model, loaded at the first call: every job thread of a worker gets the
    same, so every call of the process is scored in the same runs."""
    global _process_vad
    with _process_vad_lock:
        if _process_vad is None:
            _process_vad = BatchedSileroVAD.load()
        return _process_vad


class _SpeechBuffer:
    """Scored audio since the current segment's prefix padding, at the model's rate."""

    def __init__(self, opts: VADOptions) -> None:
        self.prefix = int(opts.prefix_padding_duration * SAMPLE_RATE)
        self.slack = int(COMPACT_AFTER_S * SAMPLE_RATE)
        self.samples = np.zeros(
            self.slack + self.prefix + int(opts.max_buffered_speech * SAMPLE_RATE), np.int16
        )
        self.length = 0
        self.segment_start = 0  # where the current segment's audio (its padding included) starts
        self.full = False

    def reset(self) -> None:
        self.length = self.segment_start = 0
        self.full = False

    def append(self, window: np.ndarray) -> None:
        room = len(self.samples) - self.length
        if room < len(window) and not self.full:
            self.full = True
            log.warning("VAD: max_buffered_speech reached, the segment's later audio is not kept")
        count = min(room, len(window))
        self.samples[self.length : self.length + count] = window[:count]
        self.length += count

    def new_segment(self) -> None:
        """Silence: the next segment starts with the padding before this point (livekit's
        ``_reset_write_cursor``, done by moving an index; the copy happens once in a while)."""
        self.segment_start = max(0, self.length - self.prefix)
        self.full = False
        if self.segment_start > self.slack:
            kept = self.length - self.segment_start
            self.samples[:kept] = self.samples[self.segment_start : self.length]
            self.length, self.segment_start = kept, 0

    def segment(self) -> rtc.AudioFrame:
        data = self.samples[self.segment_start : self.length].tobytes()
        return rtc.AudioFrame(data, SAMPLE_RATE, 1, len(data) // 2)


class _BatchedVADStream(vad.VADStream):
    def __init__(
        self,
        owner: BatchedSileroVAD,
        *,
        reporter: vad.VAD,
        on_segment: Callable[[vad.VADEvent], None] | None = None,
    ) -> None:
        self._opts = owner.opts
        self._batcher = owner.batcher
        self._on_segment = on_segment
        self._row = _ModelRow()
        self._slow_logged_at = -1e9
        super().__init__(reporter)  # starts _main_task; metrics go to the reporter

    def _send(self, event: vad.VADEvent) -> None:
        self._event_ch.send_nowait(event)
        if self._on_segment is not None and event.type is not vad.VADEventType.INFERENCE_DONE:
            self._on_segment(event)

    @utils.log_exceptions(logger=log)
    async def _main_task(self) -> None:
        opts = self._opts
        exit_threshold = opts.exit_threshold
        speech = _SpeechBuffer(opts)
        unscored = np.zeros(0, dtype=np.int16)
        resampler: rtc.AudioResampler | None = None
        input_rate = 0
        d = _Detection()

        async for item in self._input_ch:
            if isinstance(item, self._FlushSentinel):  # a hard segment boundary: start afresh
                self._row.reset()
                speech.reset()
                unscored = np.zeros(0, dtype=np.int16)
                d = _Detection()
                if resampler is not None:
                    resampler = _resampler(input_rate)
                continue
            if not isinstance(item, rtc.AudioFrame):
                continue
            if input_rate == 0:
                input_rate = item.sample_rate
                if input_rate != SAMPLE_RATE:
                    resampler = _resampler(input_rate)
            elif item.sample_rate != input_rate:
                log.error(
                    "VAD: a frame at %d Hz after frames at %d Hz: skipped", item.sample_rate, input_rate
                )
                continue
            frames = resampler.push(item) if resampler is not None else [item]
            for frame in frames:
                unscored = np.concatenate((unscored, _mono(frame)))

            while len(unscored) >= WINDOW_SAMPLES:
                window, unscored = unscored[:WINDOW_SAMPLES], unscored[WINDOW_SAMPLES:]
                started = time.perf_counter()
                raw = await self._batcher.score(self._row, window)
                probability = d.smoother.apply(exp=1.0, sample=raw)
                waited = time.perf_counter() - started
                if waited > SLOW_SCORING_S and started - self._slow_logged_at > 10.0:
                    self._slow_logged_at = started
                    log.warning(
                        "VAD: a window waited %.0f ms for its score (event loop or CPU busy)", waited * 1e3
                    )
                d.samples_index += WINDOW_SAMPLES
                d.timestamp += WINDOW_S
                speech.append(window)
                if d.speaking:
                    d.speech_s += WINDOW_S
                else:
                    d.silence_s += WINDOW_S
                self._event_ch.send_nowait(
                    vad.VADEvent(
                        type=vad.VADEventType.INFERENCE_DONE,
                        samples_index=d.samples_index,
                        timestamp=d.timestamp,
                        silence_duration=d.silence_s,
                        speech_duration=d.speech_s,
                        probability=probability,
                        inference_duration=waited,
                        frames=[rtc.AudioFrame(window.tobytes(), SAMPLE_RATE, 1, WINDOW_SAMPLES)],
                        speaking=d.speaking,
                        raw_accumulated_silence=d.below_s,
                        raw_accumulated_speech=d.above_s,
                    )
                )
                if probability >= opts.activation_threshold or (d.speaking and probability > exit_threshold):
                    d.above_s += WINDOW_S
                    d.below_s = 0.0
                    if not d.speaking and d.above_s >= opts.min_speech_duration:
                        d.speaking = True
                        d.silence_s, d.speech_s = 0.0, d.above_s
                        self._send(_segment_event(vad.VADEventType.START_OF_SPEECH, speech, d, d.speech_s))
                    continue
                d.below_s += WINDOW_S
                d.above_s = 0.0
                if not d.speaking:
                    speech.new_segment()
                elif d.below_s >= opts.min_silence_duration:
                    d.speaking = False
                    d.silence_s = d.below_s
                    spoken = max(0.0, d.speech_s - d.below_s)
                    self._send(_segment_event(vad.VADEventType.END_OF_SPEECH, speech, d, spoken))
                    d.speech_s = 0.0
                    speech.new_segment()


class _Detection:
    """A stream's speech/silence state since its start or its last flush."""

    __slots__ = (
        "above_s",
        "below_s",
        "samples_index",
        "silence_s",
        "smoother",
        "speaking",
        "speech_s",
        "timestamp",
    )

    def __init__(self) -> None:
        self.smoother = utils.ExpFilter(alpha=0.35)
        self.speaking = False
        self.speech_s = self.silence_s = 0.0  # published: the current state's length
        self.above_s = self.below_s = 0.0  # raw: windows in a row above / below the thresholds
        self.samples_index = 0
        self.timestamp = 0.0


def _resampler(input_rate: int) -> rtc.AudioResampler:
    return rtc.AudioResampler(input_rate, SAMPLE_RATE, quality=rtc.AudioResamplerQuality.QUICK)


def _segment_event(
    kind: vad.VADEventType, speech: _SpeechBuffer, d: _Detection, speech_s: float
) -> vad.VADEvent:
    # No inference_duration, as livekit's Silero stream: the session takes the speech's start and
    # end as now - speech_duration (or silence_duration) - inference_duration.
    return vad.VADEvent(
        type=kind,
        samples_index=d.samples_index,
        timestamp=d.timestamp,
        silence_duration=d.silence_s,
        speech_duration=speech_s,
        frames=[speech.segment()],
        speaking=kind is vad.VADEventType.START_OF_SPEECH,
    )


def _mono(frame: rtc.AudioFrame) -> np.ndarray[Any, np.dtype[np.int16]]:
    samples = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels == 1:
        return samples
    return samples.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
