"""The caller's audio as a call's session takes it from the LiveKit room: 16 kHz mono, 50 ms frames.

livekit's room input defaults to 24 kHz, a rate nothing in the call uses: Silero scores 16 kHz and
resamples anything else itself, one FFI request per frame on the event loop (15 % of the loop's busy
time at 50 voice calls in ``bench_density``), and STT providers take 16 kHz speech. Asking the room's
audio stream for 16 kHz leaves that resampling to livekit's native side, which resamples the track
anyway. The frame size stays livekit's default. ``simulate``'s microphone delivers the same frames.
"""

from __future__ import annotations

from livekit.agents.voice.room_io import AudioInputOptions

SAMPLE_RATE = 16000
FRAME_MS = AudioInputOptions.frame_size_ms  # livekit's default, 50 ms
NUM_CHANNELS = 1


def room_audio_input() -> AudioInputOptions:
    """A fresh ``AudioInputOptions`` for one call's room input (the dataclass is mutable: one per call)."""
    return AudioInputOptions(sample_rate=SAMPLE_RATE, num_channels=NUM_CHANNELS, frame_size_ms=FRAME_MS)
