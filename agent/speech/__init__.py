"""The voice path's speech: STT and TTS provider chains with failover, and each call's VAD.

``SpeechServices`` is built once per process (the chains' provider health is shared by every
call); ``for_call`` gives one call's ``stt``, ``tts`` and ``vad`` for its ``AgentSession``, with
plugin clients created on the call's event loop. See ``agent/README.md`` for configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.speech.errors import NoUsableSpeechProvider, SpeechConfigError
from agent.speech.settings import SpeechProviderConfig, STTSettings, TTSSettings

if TYPE_CHECKING:
    from livekit.agents import vad

    from agent.call_context import CallContext
    from agent.speech.stt import SpeechCallHooks

__all__ = [
    "NoUsableSpeechProvider",
    "STTSettings",
    "SpeechConfigError",
    "SpeechProviderConfig",
    "SpeechServices",
    "TTSSettings",
]


class SpeechServices:
    """The process's STT and TTS chains and its VAD model."""

    def __init__(
        self, stt_settings: STTSettings, tts_settings: TTSSettings, vad_model: vad.VAD | None = None
    ) -> None:
        """``vad_model``: the process's shared VAD (e.g. ``silero.VAD.load()``), or per call in
        ``for_call``. Raises ``NoUsableSpeechProvider`` when a chain has no provider with its key."""
        from agent.speech.chain import SpeechChain
        from agent.speech.instruments import add_availability_source

        self.stt_settings = stt_settings
        self.tts_settings = tts_settings
        self.vad_model = vad_model
        self.stt_chain = SpeechChain(
            "STT",
            stt_settings.chain,
            allowed_fails=stt_settings.allowed_fails,
            cooldown_s=stt_settings.cooldown_s,
        )
        self.tts_chain = SpeechChain(
            "TTS",
            tts_settings.chain,
            allowed_fails=tts_settings.allowed_fails,
            cooldown_s=tts_settings.cooldown_s,
        )
        add_availability_source("stt", self.stt_chain.status)
        add_availability_source("tts", self.tts_chain.status)

    def for_call(
        self, call: CallContext, hooks: SpeechCallHooks | None = None, *, vad_model: vad.VAD | None = None
    ) -> dict[str, Any]:
        """``AgentSession`` keyword arguments for one call: ``stt``, ``tts``, ``vad``."""
        from agent.speech.call_vad import CallVAD
        from agent.speech.stt import ChainSTT
        from agent.speech.tts import ChainTTS

        model = vad_model or self.vad_model
        if model is None:
            raise ValueError(
                "a voice call needs a VAD model (SpeechServices(vad_model=...) or for_call(vad_model=))"
            )
        call_vad = CallVAD(model)
        return {
            "vad": call_vad,
            "stt": ChainSTT(self.stt_chain, self.stt_settings, vad=call_vad, call=call, hooks=hooks),
            "tts": ChainTTS(self.tts_chain, self.tts_settings, call=call, hooks=hooks),
        }
