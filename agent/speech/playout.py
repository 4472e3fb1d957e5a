"""Silence gaps inside the agent's replies, measured on the audio path itself.

The caller hears a gap when a reply's next audio reaches the output after the audio before it has
finished playing (a slow TTS sentence, a failover mid-reply). ``GapWatchingOutput`` sits in front of
the session's real audio output (the room's, or ``simulate``'s caller), passes everything through,
and keeps a playout clock per reply: frames play back to back from the first one, so a frame that
arrives later than the clock says is a gap of that length.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from livekit import rtc
from livekit.agents.voice.io import AudioOutput, AudioOutputCapabilities

# Shorter stalls are jitter the caller does not notice as the agent falling silent.
MIN_SILENCE_GAP_S = 0.15


class GapWatchingOutput(AudioOutput):
    def __init__(self, next_in_chain: AudioOutput, on_gap: Callable[[float], None]) -> None:
        super().__init__(
            label="silence-gap-watch",
            capabilities=AudioOutputCapabilities(pause=next_in_chain.can_pause),
            next_in_chain=next_in_chain,
            sample_rate=next_in_chain.sample_rate,
        )
        self._on_gap = on_gap
        self._played_until: float | None = None  # monotonic time the reply's audio so far ends

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        now = time.monotonic()
        if self._played_until is not None and now - self._played_until >= MIN_SILENCE_GAP_S:
            self._on_gap(now - self._played_until)
        self._played_until = max(self._played_until or now, now) + frame.duration
        assert self.next_in_chain is not None
        await self.next_in_chain.capture_frame(frame)

    def flush(self) -> None:
        super().flush()
        self._played_until = None  # the reply's audio is complete; the next reply starts a new clock
        assert self.next_in_chain is not None
        self.next_in_chain.flush()

    def clear_buffer(self) -> None:
        self._played_until = None
        assert self.next_in_chain is not None
        self.next_in_chain.clear_buffer()
