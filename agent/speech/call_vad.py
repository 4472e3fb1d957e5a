"""One call's VAD: the process's shared model, this call's events, one VAD stream per session.

Two measured traps (livekit-agents 1.8, Silero) shape this wrapper:

- A ``silero.VAD`` instance shared by several sessions delivers every session's VAD metrics to all
  of them (each session listens on the instance): 27k metric events instead of 1.3k at 20 calls.
  The model (the ONNX session, the expensive part) is shared; the wrapper, which the session
  listens on, is per call, and the metrics come from the wrapper's own stream.
- livekit's ``stt.StreamAdapter`` runs a second VAD stream per session (VAD is ~2/3 of a voice
  call's CPU). Here the session's one VAD stream also feeds the STT: ``ChainSTT`` subscribes with
  ``utterances()`` and gets each END_OF_SPEECH event (with the utterance's frames) from it.

The process's model is ``silero_batch.BatchedSileroVAD`` (every call's windows in one model run): it
opens the call's stream itself, reporting to this wrapper (``stream_for``). Any other ``vad.VAD`` gets
``_PublishingStream`` around its own stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from livekit import rtc
from livekit.agents import vad

_SEGMENT_EVENTS = (vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH)


class CallVAD(vad.VAD):
    """Per-call face of a shared VAD model (see the module docstring)."""

    def __init__(self, model: vad.VAD) -> None:
        super().__init__(capabilities=model.capabilities)
        self._model = model
        self._subscribers: list[asyncio.Queue[vad.VADEvent]] = []
        self.streams_opened = 0

    @property
    def model(self) -> str:
        return self._model.model

    @property
    def provider(self) -> str:
        return self._model.provider

    @property
    def min_silence_duration(self) -> float | None:
        return getattr(self._model, "min_silence_duration", None)

    def stream(self) -> vad.VADStream:
        self.streams_opened += 1
        stream_for = getattr(self._model, "stream_for", None)
        if stream_for is not None:  # the batched Silero reports to this call itself: no wrapper hop
            return stream_for(self, self._publish)
        return _PublishingStream(self, self._model.stream())

    @contextlib.contextmanager
    def utterances(self) -> Iterator[asyncio.Queue[vad.VADEvent]]:
        """START_OF_SPEECH / END_OF_SPEECH events of this call's VAD stream(s) while the block runs."""
        queue: asyncio.Queue[vad.VADEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            yield queue
        finally:
            self._subscribers.remove(queue)

    def _publish(self, event: vad.VADEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)


class _PublishingStream(vad.VADStream):
    """Runs the model's stream, passes its events on, and publishes speech segments to the call.

    Frames go straight into the model's stream: the base class would queue each one on this stream's
    own channel for a task to move it on, one more hop and task wake-up per frame of every call.
    """

    def __init__(self, call_vad: CallVAD, inner: vad.VADStream) -> None:
        self._inner = inner
        self._call_vad = call_vad
        # The base class starts _main_task and the metrics monitor; metrics go to call_vad.
        super().__init__(call_vad)

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        self._check_input_not_ended()
        self._check_not_closed()
        self._inner.push_frame(frame)

    def flush(self) -> None:
        self._check_input_not_ended()
        self._check_not_closed()
        self._inner.flush()

    def end_input(self) -> None:
        self._check_input_not_ended()
        self._input_ch.close()  # this stream's own checks: no frame after the end
        with contextlib.suppress(RuntimeError):  # the inner stream already closed
            self._inner.end_input()

    async def _main_task(self) -> None:
        try:
            async for event in self._inner:
                self._event_ch.send_nowait(event)
                if event.type in _SEGMENT_EVENTS:
                    self._call_vad._publish(event)
        finally:
            await self._inner.aclose()
