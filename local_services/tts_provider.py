"""A local OpenAI-compatible text-to-speech provider with fault injection (``sales-agent tts-provider``).

``POST /v1/audio/speech`` takes what ``openai.TTS(response_format="pcm")`` sends (JSON: ``input``,
``model``, ``voice``, ``response_format``, ...) and streams raw PCM (16-bit mono, 24 kHz, the
format the plugin expects for ``pcm``) as ``audio/pcm`` in 100 ms chunks. The audio is a voiced
buzz, one burst per word, so its length follows the text (about 65 ms per character, as spoken
English runs) and a player hears speech-like sound. Only ``response_format: "pcm"`` is served
(400 otherwise). Faults: see ``local_services.speech_service``; ``garbage`` answers 200 with an
HTML page, which is not audio.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import numpy as np
from aiohttp import web

from local_services.speech_service import (
    FAULT_MODES,
    Fault,
    RunningService,
    SpeechService,
    arg_parser,
    fault_from_args,
    run_main,
    serve,
)

SAMPLE_RATE = 24000
SECONDS_PER_CHAR = 0.065
MIN_SECONDS = 0.3
CHUNK_BYTES = SAMPLE_RATE // 10 * 2  # 100 ms of 16-bit mono


def speech_like_pcm(text: str, seconds_per_char: float = SECONDS_PER_CHAR) -> bytes:
    """16-bit mono PCM at 24 kHz: one voiced burst per word, ``seconds_per_char`` per character."""
    words = text.split() or [text]
    total = max(MIN_SECONDS, seconds_per_char * len(text))
    chars = sum(len(w) + 1 for w in words)
    parts: list[np.ndarray] = []
    for index, word in enumerate(words):
        seconds = total * (len(word) + 1) / chars
        n = max(1, int(seconds * SAMPLE_RATE))
        voiced = int(n * 0.8)
        t = np.arange(voiced) / SAMPLE_RATE
        f0 = 120.0 + 15.0 * (index % 5)  # a little intonation from word to word
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3, 4))
        envelope = np.sin(np.pi * np.arange(voiced) / voiced)
        parts.append(0.25 * tone * envelope)
        parts.append(np.zeros(n - voiced))
    samples = np.concatenate(parts)
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class LocalTTSProvider(SpeechService):
    kind = "tts"

    def __init__(
        self, name: str = "primary", *, fault: Fault | None = None, seconds_per_char: float = SECONDS_PER_CHAR
    ) -> None:
        self.seconds_per_char = seconds_per_char
        self.characters = 0
        self.recent_inputs: deque[str] = deque(maxlen=20)  # the last texts asked for (stats)
        self.audio_s = 0.0
        super().__init__(name, fault=fault)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/audio/speech", self._speech)]

    def stats_extra(self) -> dict[str, Any]:
        return {
            "characters": self.characters,
            "audio_s": round(self.audio_s, 3),
            "recent_inputs": list(self.recent_inputs),
        }

    def reset(self) -> None:
        super().reset()
        self.characters = 0
        self.audio_s = 0.0
        self.recent_inputs.clear()

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return self.error(400, "body is not JSON", "invalid_request_error")
        text = body.get("input") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return self.error(400, "'input' must be a non-empty string", "invalid_request_error")
        response_format = body.get("response_format", "mp3")
        if response_format != "pcm":
            return self.error(
                400,
                f"response_format {response_format!r} is not served here; use 'pcm'",
                "invalid_request_error",
            )
        fault, early = await self.before_answer()
        if early is not None:
            return early
        if fault.mode == "garbage":
            return web.Response(
                status=200, body=b"<html><body>Service maintenance</body></html>", content_type="text/html",
                headers=self.headers(),
            )  # fmt: skip
        audio = speech_like_pcm(text, self.seconds_per_char)
        self.characters += len(text)
        self.recent_inputs.append(text)
        self.audio_s += len(audio) / 2 / SAMPLE_RATE
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm", **self.headers()})
        await response.prepare(request)
        if fault.mode == "drop_mid_stream":
            await self.drop(request, response, audio, min(fault.after_bytes, len(audio) // 2))
            return response
        with suppress(ConnectionError):  # the client gave up (barge-in, deadline): normal
            for start in range(0, len(audio), CHUNK_BYTES):
                await response.write(audio[start : start + CHUNK_BYTES])
            await response.write_eof()
        return response


@asynccontextmanager
async def run_tts_provider(
    name: str = "primary",
    fault: str = "ok",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seconds_per_char: float = SECONDS_PER_CHAR,
    **fault_options: Any,
) -> AsyncIterator[RunningService]:
    """Run a provider in this event loop on a free loopback port (``port=0``) for the block."""
    fault_spec = Fault.parse({"mode": fault, **fault_options}, FAULT_MODES)
    service = LocalTTSProvider(name, fault=fault_spec, seconds_per_char=seconds_per_char)
    async with serve(service, host, port) as running:
        yield running


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(
        "tts-provider",
        "Local OpenAI-compatible TTS provider (POST /v1/audio/speech, streaming PCM) with fault injection.",
        FAULT_MODES,
        default_port=8121,
    )
    parser.add_argument(
        "--seconds-per-char", type=float, default=SECONDS_PER_CHAR, help="audio length per character of text"
    )
    args = parser.parse_args(argv)
    if args.seconds_per_char <= 0:
        parser.error("--seconds-per-char must be positive")
    fault = fault_from_args(args, FAULT_MODES)
    service = LocalTTSProvider(args.name, fault=fault, seconds_per_char=args.seconds_per_char)
    return run_main("tts-provider", lambda: service, args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
