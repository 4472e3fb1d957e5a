"""The local STT and TTS stand-ins in-process: the OpenAI audio API, per-call lines, faults, admin.
(tests/integration/test_stand_ins.py runs them as processes, in the stand-ins' common shape.)"""

from __future__ import annotations

import io
import wave

import httpx
import pytest

from local_services.stt_provider import run_stt_provider
from local_services.tts_provider import SAMPLE_RATE, run_tts_provider


def _wav(seconds: float = 0.5) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x00" * int(16000 * seconds))
    return buffer.getvalue()


async def _transcribe(client: httpx.AsyncClient, url: str, data: bytes | None = None) -> httpx.Response:
    return await client.post(
        url, files={"file": ("a.wav", data if data is not None else _wav(), "audio/wav")}, data={"model": "m"}
    )


async def test_stt_returns_each_calls_own_published_line_once() -> None:
    async with run_stt_provider("p") as stt, httpx.AsyncClient(base_url=stt.admin_url) as client:
        for call, line in (("call-a", "Hi from A."), ("call-b", "Hi from B.")):
            response = await client.post("/admin/utterance", json={"call_id": call, "text": line})
            assert response.status_code == 200
        b = await _transcribe(client, "/calls/call-b/v1/audio/transcriptions")
        a = await _transcribe(client, "/calls/call-a/v1/audio/transcriptions")
        again = await _transcribe(client, "/calls/call-a/v1/audio/transcriptions")
        assert (a.json(), b.json(), again.json()) == (
            {"text": "Hi from A."},
            {"text": "Hi from B."},
            {"text": ""},
        )
        assert a.headers["x-request-id"]
        stats = (await client.get("/admin/stats")).json()
        assert stats["transcripts"] == 3 and stats["audio_s"] == pytest.approx(1.5)


async def test_stt_bad_requests_are_named() -> None:
    async with run_stt_provider("p") as stt, httpx.AsyncClient(base_url=stt.admin_url) as client:
        not_wav = await _transcribe(client, "/v1/audio/transcriptions", b"RIFF-not-really")
        assert not_wav.status_code == 400 and "not a WAV" in not_wav.json()["error"]["message"]
        no_file = await client.post("/v1/audio/transcriptions", data={"model": "m"})
        assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]["message"]
        bad_utterance = await client.post("/admin/utterance", json={"text": "x"})
        assert bad_utterance.status_code == 400
        bad_fault = await client.post("/admin/fault", json={"mode": "explode"})
        assert bad_fault.status_code == 400 and "unknown fault mode" in bad_fault.json()["error"]


async def test_stt_faults_and_count() -> None:
    async with run_stt_provider("p") as stt, httpx.AsyncClient(base_url=stt.admin_url) as client:
        await client.post("/admin/fault", json={"mode": "429", "retry_after": 7, "count": 1})
        limited = await _transcribe(client, "/v1/audio/transcriptions")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
        assert (await _transcribe(client, "/v1/audio/transcriptions")).status_code == 200  # count used up
        await client.post("/admin/fault", json={"mode": "garbage"})
        garbage = await _transcribe(client, "/v1/audio/transcriptions")
        assert garbage.status_code == 200
        with pytest.raises(ValueError):
            garbage.json()
        await client.post("/admin/fault", json={"mode": "drop_mid_stream"})
        with pytest.raises(httpx.RemoteProtocolError):
            await _transcribe(client, "/v1/audio/transcriptions")
        await client.post("/admin/reset")
        assert (await client.get("/admin/stats")).json()["fault"] == "ok"


async def test_tts_streams_pcm_whose_length_follows_the_text() -> None:
    async with (
        run_tts_provider("p", seconds_per_char=0.05) as tts,
        httpx.AsyncClient(base_url=tts.url) as client,
    ):
        short = await client.post("/audio/speech", json={"input": "Hello there.", "response_format": "pcm"})
        long = await client.post(
            "/audio/speech", json={"input": "Hello there, how are you doing today?", "response_format": "pcm"}
        )
        assert short.headers["content-type"] == "audio/pcm"
        assert len(short.content) / 2 / SAMPLE_RATE == pytest.approx(12 * 0.05, abs=0.01)
        assert len(long.content) > 2 * len(short.content)
        assert any(short.content)  # real audio, not silence
        mp3 = await client.post("/audio/speech", json={"input": "Hi", "response_format": "mp3"})
        assert mp3.status_code == 400 and "use 'pcm'" in mp3.json()["error"]["message"]
        empty = await client.post("/audio/speech", json={"input": " ", "response_format": "pcm"})
        assert empty.status_code == 400
        await client.post(tts.admin_url + "/admin/fault", json={"mode": "garbage"})
        html = await client.post("/audio/speech", json={"input": "Hi", "response_format": "pcm"})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        stats = (await client.get(tts.admin_url + "/admin/stats")).json()
        assert stats["recent_inputs"] == ["Hello there.", "Hello there, how are you doing today?"]


async def test_speech_stand_ins_time_their_first_byte_for_api_requests_only() -> None:
    """Benchmarks subtract the provider's own time from the agent's measures (bench item 12)."""
    async with run_tts_provider("p") as tts, httpx.AsyncClient(base_url=tts.admin_url) as client:
        for text in ("Hello there.", "Thanks for taking my call."):
            response = await client.post("/v1/audio/speech", json={"input": text, "response_format": "pcm"})
            assert response.status_code == 200
        stats = (await client.get("/admin/stats")).json()
        assert stats["first_byte_count"] == 2  # the admin requests are not counted
        assert 0 < stats["first_byte_s_max"] <= stats["first_byte_s_total"]
        await client.post("/admin/reset")
        stats = (await client.get("/admin/stats")).json()
        assert (stats["first_byte_count"], stats["first_byte_s_total"]) == (0, 0.0)
    async with run_stt_provider("p") as stt, httpx.AsyncClient(base_url=stt.admin_url) as client:
        await _transcribe(client, "/v1/audio/transcriptions")
        assert (await client.get("/admin/stats")).json()["first_byte_count"] == 1
