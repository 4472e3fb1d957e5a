"""The simulated caller's voice: ``espeak-ng`` speech, made at first use and kept in a cache folder.

A real VAD (Silero) must hear the caller as speech, so the clips are synthesized speech, not tones.
``espeak-ng`` (Debian package, installed by ``.ci/run``) writes 22.05 kHz WAV; the clip is trimmed of
leading/trailing silence (so "end of speech" is the last spoken sample) and resampled with livekit's
resampler to the rate the session's input runs at (16 kHz: ``agent/speech/room_audio.py``). Clips are
cached by text, voice and rate in a folder (``simulate --voice-cache``, default
``~/.cache/sales-agent/voice``): espeak-ng is fast (~50 ms a line), the cache just keeps a long run
from repeating the work.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ESPEAK = "espeak-ng"
DEFAULT_SAMPLE_RATE = 16000  # the rate a call reads its room at (agent/speech/room_audio.py)
DEFAULT_VOICE = "en-us"
WORDS_PER_MINUTE = 175
_SILENCE_THRESHOLD = 300  # |sample| below this (of 32767) counts as silence when trimming


class CallerAudioError(RuntimeError):
    """The caller's audio cannot be made (espeak-ng missing or failing)."""


@dataclass(frozen=True)
class Clip:
    text: str
    samples: np.ndarray  # int16 mono
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "sales-agent" / "voice"


def _trim(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _SILENCE_THRESHOLD)
    return samples[loud[0] : loud[-1] + 1] if loud.size else samples


def _resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return samples
    from livekit import rtc

    resampler = rtc.AudioResampler(from_rate, to_rate, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH)
    frame = rtc.AudioFrame(samples.tobytes(), from_rate, 1, len(samples))
    out = [*resampler.push(frame), *resampler.flush()]
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in out]) if out else samples[:0]


def _synthesize(text: str, voice: str) -> tuple[np.ndarray, int]:
    if shutil.which(ESPEAK) is None:
        raise CallerAudioError(
            "espeak-ng is not installed: voice simulation speaks the caller's lines with it "
            "(apt-get install espeak-ng)"
        )
    with tempfile.TemporaryDirectory(prefix="sales-agent-voice-") as tmp:
        out = Path(tmp) / "line.wav"
        result = subprocess.run(
            [ESPEAK, "-v", voice, "-s", str(WORDS_PER_MINUTE), "-w", str(out), text],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0 or not out.exists():
            raise CallerAudioError(f"espeak-ng failed ({result.returncode}): {result.stderr.decode()[:200]}")
        with wave.open(str(out)) as wav:
            rate = wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return samples, rate


def make_clip(
    text: str,
    *,
    cache_dir: Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    voice: str = DEFAULT_VOICE,
) -> Clip:
    """The spoken ``text`` at ``sample_rate``, from the cache (``cache_dir``, default
    ``default_cache_dir()``) or made now."""
    key = hashlib.sha256(f"{voice}|{WORDS_PER_MINUTE}|{sample_rate}|{text}".encode()).hexdigest()[:24]
    path = (cache_dir or default_cache_dir()) / f"{key}.wav"
    if path.exists():
        with wave.open(str(path)) as wav:
            return Clip(text, np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16), sample_rate)
    raw, rate = _synthesize(text, voice)
    samples = _resample(_trim(raw), rate, sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with wave.open(str(partial), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.tobytes())
    partial.replace(path)  # atomic: concurrent runs never read half a file
    return Clip(text, samples, sample_rate)
