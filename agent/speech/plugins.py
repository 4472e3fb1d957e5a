"""One provider of a chain as a livekit plugin instance (built per call, on the call's event loop).

Every attempt goes through the plugin's batch API (``STT.recognize`` for one utterance,
``TTS.synthesize`` for one sentence), so a failed attempt can be repeated on the next provider with
the same input. ``local`` is the OpenAI audio API at ``api_base`` (our stand-ins, or any compatible
server). OpenAI-API plugins get an HTTP client of ours that refuses a 200 speech answer whose body
is not audio: livekit would otherwise play an HTML error page as PCM.
"""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING

import httpx

from agent.speech.errors import NotAudioResponse

if TYPE_CHECKING:
    from livekit.agents import stt, tts

    from agent.speech.chain import SpeechProvider

SAMPLE_RATE = 24000  # every TTS of the chain speaks at this rate (OpenAI's PCM, Cartesia's default)
_AUDIO_TYPES = ("audio/", "application/octet-stream", "text/event-stream")


async def _reject_non_audio(response: httpx.Response) -> None:
    if response.request.url.path.endswith("/audio/speech") and response.status_code == 200:
        content_type = response.headers.get("content-type", "").lower()
        if not content_type.startswith(_AUDIO_TYPES):
            raise NotAudioResponse(content_type)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every call's speech clients. httpx builds a new one per client, loading the
    CA bundle each time: ~50 ms of CPU on the event loop, four times per voice call (two STT and two TTS
    providers), 10 % of the loop's busy time at 20 calls (bench item 12). A context is safe to share."""
    return httpx.create_ssl_context()


def _openai_client(provider: SpeechProvider, call_id: str) -> object:
    import openai

    key = provider.config.key()
    return openai.AsyncClient(
        api_key=key.get_secret_value() if key else None,
        base_url=provider.config.base_url(call_id),
        max_retries=0,  # the chain is the one retry layer
        http_client=httpx.AsyncClient(
            verify=_tls_context(),
            timeout=httpx.Timeout(connect=5.0, read=15.0, write=5.0, pool=5.0),
            event_hooks={"response": [_reject_non_audio]},
        ),
    )


def build_stt(provider: SpeechProvider, *, language: str, call_id: str) -> stt.STT:
    config = provider.config
    if config.kind == "deepgram":
        from livekit.plugins import deepgram

        key = config.key()
        return deepgram.STT(
            model=config.model or "nova-3", language=language, api_key=key.get_secret_value() if key else ""
        )
    from livekit.plugins import openai

    return openai.STT(
        model=config.model or "gpt-4o-mini-transcribe",
        language=language,
        client=_openai_client(provider, call_id),  # type: ignore[arg-type]
        use_realtime=False,  # one request per utterance: a failed one can go to the next provider
    )


def build_tts(provider: SpeechProvider, *, language: str, call_id: str) -> tts.TTS:
    config = provider.config
    if config.kind == "cartesia":
        from livekit.plugins import cartesia

        key = config.key()
        options = {"voice": config.voice} if config.voice else {}
        return cartesia.TTS(
            model=config.model or "sonic-3",
            language=language,
            sample_rate=SAMPLE_RATE,
            api_key=key.get_secret_value() if key else None,
            **options,
        )
    from livekit.plugins import openai

    options = {"voice": config.voice} if config.voice else {}
    return openai.TTS(
        model=config.model or "gpt-4o-mini-tts",
        response_format="pcm",  # raw 16-bit mono 24 kHz: no decoder between the provider and the caller
        client=_openai_client(provider, call_id),  # type: ignore[arg-type]
        **options,
    )
