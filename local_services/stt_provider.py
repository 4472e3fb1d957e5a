"""A local OpenAI-compatible speech-to-text provider with fault injection (``sales-agent stt-provider``).

``POST /v1/audio/transcriptions`` takes what ``openai.STT`` sends (multipart: a WAV ``file``,
``model``, ``language``, ...) and answers ``{"text": ...}``. It does not recognise speech: it returns
the line the simulated caller said, which the caller publishes as it starts speaking:

- ``POST /admin/utterance {"call_id": ..., "text": ...}``: the caller of ``call_id`` is saying
  ``text`` now. The next transcription for that call returns it, once (a second segment of the same
  utterance gets an empty transcript instead of repeating the line).
- The call is named by the request path: ``/calls/<call_id>/v1/audio/transcriptions``. ``simulate``
  configures each call's STT with that base URL (``api_base`` with ``{call_id}`` in the chain
  config), so concurrent calls get their own lines and a backup provider knows the line its primary
  failed on. A real provider needs none of this; plain ``/v1/audio/transcriptions`` is call
  ``default``, which answers ``--reply`` when nothing was published.

The body must be a WAV file (400 otherwise). Faults: see ``local_services.speech_service``; ``empty``
answers ``{"text": ""}``.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from agent.vocabulary.fault_modes import STT_FAULT_MODES
from local_services.speech_service import (
    Fault,
    RunningService,
    SpeechService,
    arg_parser,
    fault_from_args,
    run_main,
    serve,
)

DEFAULT_CALL = "default"


def wav_duration_s(data: bytes) -> float:
    """Duration of a WAV file; ``ValueError`` when ``data`` is not one."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            return wav.getnframes() / float(wav.getframerate())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"file is not a WAV file ({exc})") from exc


class LocalSTTProvider(SpeechService):
    kind = "stt"
    modes = STT_FAULT_MODES

    def __init__(self, name: str = "primary", *, fault: Fault | None = None, reply: str = "") -> None:
        self.reply = reply
        self._said: dict[str, str] = {}
        self.audio_s = 0.0
        self.transcripts = 0
        super().__init__(name, fault=fault)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/audio/transcriptions", self._transcribe),
            web.post("/calls/{call_id}/v1/audio/transcriptions", self._transcribe),
            web.post("/admin/utterance", self._utterance),
        ]

    def say(self, call_id: str, text: str) -> None:
        """In-process form of ``POST /admin/utterance``."""
        self._said[call_id] = text

    def forget(self, call_id: str) -> None:
        self._said.pop(call_id, None)

    def stats_extra(self) -> dict[str, Any]:
        return {"audio_s": round(self.audio_s, 3), "transcripts": self.transcripts, "calls": len(self._said)}

    def reset(self) -> None:
        super().reset()
        self.audio_s = 0.0
        self.transcripts = 0

    async def _utterance(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        call_id, text = (body.get("call_id"), body.get("text")) if isinstance(body, dict) else (None, None)
        if not isinstance(call_id, str) or not call_id or not isinstance(text, str):
            return web.json_response({"error": 'expected {"call_id": "<id>", "text": "<line>"}'}, status=400)
        self.say(call_id, text)
        return web.json_response({"call_id": call_id, "queued": True})

    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info.get("call_id", DEFAULT_CALL)
        try:
            form = await request.post()
        except ValueError:
            return self.error(400, "expected a multipart/form-data body", "invalid_request_error")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return self.error(400, "missing the 'file' part (a WAV file)", "invalid_request_error")
        try:
            duration = wav_duration_s(upload.file.read())
        except ValueError as exc:
            return self.error(400, str(exc), "invalid_request_error")
        fault, early = await self.before_answer()
        if early is not None:
            return early
        if fault.mode == "garbage":
            return web.Response(
                status=200, body=b"<html>\x00\xffnot a transcript{{{", content_type="application/json",
                headers=self.headers(),
            )  # fmt: skip
        text = (
            ""
            if fault.mode == "empty"
            else self._said.pop(call_id, self.reply if call_id == DEFAULT_CALL else "")
        )
        self.audio_s += duration
        self.transcripts += 1
        body = json.dumps({"text": text}).encode()
        if fault.mode == "drop_mid_stream":
            response = web.StreamResponse(headers={"Content-Type": "application/json", **self.headers()})
            response.content_length = len(body)
            await response.prepare(request)
            await self.drop(request, response, body, min(fault.after_bytes, len(body) // 2))
            return response
        return web.Response(body=body, content_type="application/json", headers=self.headers())


@asynccontextmanager
async def run_stt_provider(
    name: str = "primary", fault: str = "ok", *, host: str = "127.0.0.1", port: int = 0, **fault_options: Any
) -> AsyncIterator[RunningService]:
    """Run a provider in this event loop on a free loopback port (``port=0``) for the block."""
    service = LocalSTTProvider(name, fault=Fault.parse({"mode": fault, **fault_options}, STT_FAULT_MODES))
    async with serve(service, host, port) as running:
        yield running


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(
        "stt-provider",
        "Local OpenAI-compatible STT provider (POST /v1/audio/transcriptions) with fault injection.",
        STT_FAULT_MODES,
        default_port=8111,
    )
    parser.add_argument(
        "--reply", default="", help="transcript for un-routed requests with nothing published"
    )
    args = parser.parse_args(argv)
    fault = fault_from_args(args, STT_FAULT_MODES)
    return run_main(
        "stt-provider",
        lambda: LocalSTTProvider(args.name, fault=fault, reply=args.reply),
        args.host,
        args.port,
    )


if __name__ == "__main__":
    raise SystemExit(main())
