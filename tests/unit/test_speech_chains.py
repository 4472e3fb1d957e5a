"""STT and TTS chains against the local stand-ins over real HTTP (no audio session: fast).

Every fault mode on the primary: the backup answers with the same input, the failed attempt is a
span with its ``error.type``, the move is a ``gen_ai.fallback`` event and a counter, the primary
cools down (availability gauge 0). Every provider down: the call is told (hooks). Bad answers (a
transcript that is not JSON, an empty one, a TTS body that is not audio) are named errors.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectionError

from agent.call_context import CallContext
from agent.speech import SpeechConfigError, SpeechServices, STTSettings, TTSSettings
from agent.speech.errors import NoUsableSpeechProvider
from agent.speech.settings import SpeechProviderConfig
from agent.speech.stt import ChainSTT
from agent.speech.tts import ChainTTS
from local_services.speech_service import RunningService
from local_services.stt_provider import run_stt_provider
from local_services.tts_provider import SAMPLE_RATE, run_tts_provider, speech_like_pcm
from telemetry import names

CALL = CallContext("acme", "session-1", "call-1")
LINE = "Hi, I'm Dana from Initech."
SENTENCE = "Thanks for taking my call today."
FAST = {"attempt_timeout_s": 0.5}  # STT: a hang costs half a second here
FAST_TTS = {"first_byte_deadline_s": 0.5, "stream_timeout_s": 0.5}


@dataclass
class Hooks:
    stt_down: int = 0
    tts_down: int = 0
    not_understood: list[float] = field(default_factory=list)

    def stt_unavailable(self) -> None:
        self.stt_down += 1

    def tts_unavailable(self) -> None:
        self.tts_down += 1

    def speech_not_understood(self, speech_s: float) -> None:
        self.not_understood.append(speech_s)


@dataclass
class Rig:
    primary: RunningService
    backup: RunningService
    speech: SpeechServices
    hooks: Hooks


def _frames(seconds: float = 1.0) -> list[rtc.AudioFrame]:
    n = int(16000 * seconds)
    return [rtc.AudioFrame(np.zeros(n, dtype=np.int16).tobytes(), 16000, 1, n)]


@pytest.fixture
async def stt_rig() -> AsyncIterator[Rig]:
    from livekit.plugins import silero

    async with run_stt_provider("primary") as primary, run_stt_provider("backup") as backup:
        settings = STTSettings.for_local(
            [s.admin_url + "/calls/{call_id}/v1" for s in (primary, backup)], **FAST
        )
        speech = SpeechServices(settings, TTSSettings.for_local(["http://127.0.0.1:9/v1"]), silero.VAD.load())
        for service in (primary, backup):
            service.service.say(CALL.call_id, LINE)
        yield Rig(primary, backup, speech, Hooks())


@pytest.fixture
async def tts_rig() -> AsyncIterator[Rig]:
    async with run_tts_provider("primary") as primary, run_tts_provider("backup") as backup:
        settings = TTSSettings.for_local([primary.url, backup.url], **FAST_TTS)
        speech = SpeechServices(STTSettings.for_local(["http://127.0.0.1:9/v1"]), settings)
        yield Rig(primary, backup, speech, Hooks())


def _chain_stt(rig: Rig) -> ChainSTT:
    return rig.speech.for_call(CALL, rig.hooks, vad_model=rig.speech.vad_model)["stt"]


def _chain_tts(rig: Rig) -> ChainTTS:
    from livekit.plugins import silero

    return rig.speech.for_call(CALL, rig.hooks, vad_model=silero.VAD.load())["tts"]


def _attempts(otel, prefix: str) -> list:
    return sorted((s for s in otel.spans() if s.name.startswith(prefix)), key=lambda s: s.start_time)


STT_FAULTS = {
    "500": "http_500",
    "429": "http_429",
    "hang": "timeout",
    "slow_first_byte": "timeout",
    "drop_mid_stream": "stream_dropped",
    "garbage": "malformed_response",
}


@pytest.mark.parametrize(("mode", "error_type"), sorted(STT_FAULTS.items()))
async def test_stt_fault_on_the_primary_is_answered_by_the_backup_with_the_same_audio(
    otel, stt_rig: Rig, mode: str, error_type: str
) -> None:
    stt_rig.primary.service.set_fault(mode)
    fallbacks = {names.FALLBACK_FROM: "primary", names.FALLBACK_TO: "backup"}
    fallbacks_before = otel.metric_value(names.STT_FALLBACKS, **fallbacks)
    errors_before = otel.metric_value(
        names.STT_REQUESTS, **{names.GEN_AI_PROVIDER_NAME: "primary", names.ERROR_TYPE: error_type}
    )
    metrics_events: list[object] = []
    chain = _chain_stt(stt_rig)
    chain.on("metrics_collected", metrics_events.append)

    assert await chain.transcribe(_frames()) == LINE

    assert stt_rig.backup.service.stats.requests == 1  # the very utterance the primary failed on
    primary_span, backup_span = _attempts(otel, "stt.recognize ")
    assert primary_span.attributes[names.GEN_AI_PROVIDER_NAME] == "primary"
    assert primary_span.attributes[names.ERROR_TYPE] == error_type
    assert backup_span.attributes[names.GEN_AI_PROVIDER_NAME] == "backup"
    assert names.ERROR_TYPE not in backup_span.attributes
    [utterance] = otel.spans("stt_utterance")
    assert [
        e.attributes[names.FALLBACK_FROM] for e in utterance.events if e.name == names.FALLBACK_EVENT
    ] == ["primary"]
    assert otel.metric_value(names.STT_FALLBACKS, **fallbacks) - fallbacks_before == 1
    assert (
        otel.metric_value(
            names.STT_REQUESTS, **{names.GEN_AI_PROVIDER_NAME: "primary", names.ERROR_TYPE: error_type}
        )
        - errors_before
        == 1
    )
    assert len(metrics_events) == 1  # one STTMetrics per utterance, from the attempt that answered
    assert stt_rig.speech.stt_chain.status() == {"primary": False, "backup": True}  # cooling down
    gauge = {
        attrs[names.GEN_AI_PROVIDER_NAME]: p.value
        for attrs, p in otel.metric_points(names.STT_PROVIDER_AVAILABLE)
    }
    assert gauge["primary"] == 0
    await chain.aclose()


async def test_a_cooling_down_primary_is_skipped_for_the_next_utterance(otel, stt_rig: Rig) -> None:
    stt_rig.primary.service.set_fault("500")
    chain = _chain_stt(stt_rig)
    assert await chain.transcribe(_frames()) == LINE
    stt_rig.backup.service.say(CALL.call_id, "Second line.")
    assert await chain.transcribe(_frames()) == "Second line."
    assert stt_rig.primary.service.stats.requests == 1  # not asked again while it cools down
    utterances = sorted(otel.spans("stt_utterance"), key=lambda s: s.start_time)
    reasons = [
        e.attributes[names.FALLBACK_REASON] for e in utterances[1].events if e.name == names.FALLBACK_EVENT
    ]
    assert reasons == ["cooldown"]
    await chain.aclose()


async def test_every_stt_provider_down_tells_the_call(otel, stt_rig: Rig) -> None:
    stt_rig.primary.service.set_fault("500")
    stt_rig.backup.service.set_fault("garbage")
    failed_before = otel.metric_value(
        names.STT_RECOGNITIONS, **{names.OUTCOME: "failed", names.TENANT_ID: "acme"}
    )
    chain = _chain_stt(stt_rig)
    assert await chain.transcribe(_frames()) is None
    assert stt_rig.hooks.stt_down == 1
    [utterance] = otel.spans("stt_utterance")
    assert utterance.attributes[names.ERROR_TYPE] == "all_providers_failed"
    after = otel.metric_value(names.STT_RECOGNITIONS, **{names.OUTCOME: "failed", names.TENANT_ID: "acme"})
    assert after - failed_before == 1
    await chain.aclose()


async def test_an_empty_transcript_for_speech_asks_the_caller_again(otel, stt_rig: Rig) -> None:
    stt_rig.primary.service.set_fault("empty")
    chain = _chain_stt(stt_rig)
    assert await chain.transcribe(_frames(1.5)) == ""
    assert stt_rig.hooks.not_understood == [pytest.approx(1.5)]
    assert stt_rig.backup.service.stats.requests == 0  # an answer, not a failure: no fallback
    [utterance] = otel.spans("stt_utterance")
    assert utterance.attributes[names.ERROR_TYPE] == "empty_transcript"
    # A short noise with no words is not the caller's lost sentence.
    assert await chain.transcribe(_frames(0.3)) == ""
    assert len(stt_rig.hooks.not_understood) == 1
    await chain.aclose()


async def _speak(chain: ChainTTS, text: str = SENTENCE) -> float:
    seconds = 0.0
    async with chain.synthesize(text) as stream:
        async for audio in stream:
            assert audio.frame.sample_rate == SAMPLE_RATE
            seconds += audio.frame.duration
    return seconds


TTS_FAULTS = {
    "500": "http_500",
    "429": "http_429",
    "hang": "first_byte_timeout",
    "slow_first_byte": "first_byte_timeout",
    "garbage": "malformed_response",
}
FULL_SENTENCE_S = len(speech_like_pcm(SENTENCE)) / 2 / SAMPLE_RATE


@pytest.mark.parametrize(("mode", "error_type"), sorted(TTS_FAULTS.items()))
async def test_tts_fault_on_the_primary_is_spoken_by_the_backup(
    otel, tts_rig: Rig, mode: str, error_type: str
) -> None:
    tts_rig.primary.service.set_fault(mode)
    chain = _chain_tts(tts_rig)
    seconds = await _speak(chain)
    assert seconds == pytest.approx(FULL_SENTENCE_S, abs=0.05)  # the whole sentence, once, no noise
    primary_span, backup_span = _attempts(otel, "tts.synthesize ")
    assert primary_span.attributes[names.ERROR_TYPE] == error_type
    assert backup_span.attributes[names.GEN_AI_PROVIDER_NAME] == "backup"
    [request] = [
        s for s in otel.spans("tts_request") if s.attributes.get("lk.tts.label", "").endswith("ChainTTS")
    ]
    assert [e.attributes[names.FALLBACK_TO] for e in request.events if e.name == names.FALLBACK_EVENT] == [
        "backup"
    ]
    assert tts_rig.speech.tts_chain.status()["primary"] is False
    await chain.aclose()


async def test_a_sentence_cut_mid_stream_is_spoken_again_by_the_backup(otel, tts_rig: Rig) -> None:
    tts_rig.primary.service.set_fault("drop_mid_stream")
    chain = _chain_tts(tts_rig)
    seconds = await _speak(chain)
    # The caller heard the start of the sentence, then the whole sentence from the backup.
    assert FULL_SENTENCE_S < seconds < 2 * FULL_SENTENCE_S
    primary_span, backup_span = _attempts(otel, "tts.synthesize ")
    assert primary_span.attributes[names.ERROR_TYPE] == "stream_dropped"
    assert backup_span.attributes[names.SPEECH_REPLAYED] is True
    await chain.aclose()


async def test_every_tts_provider_down_fails_the_sentence_and_tells_the_call(otel, tts_rig: Rig) -> None:
    tts_rig.primary.service.set_fault("500")
    tts_rig.backup.service.set_fault("429")
    chain = _chain_tts(tts_rig)
    with pytest.raises(APIConnectionError):
        await _speak(chain)
    assert tts_rig.hooks.tts_down == 1
    await chain.aclose()


# --- configuration ---------------------------------------------------------------------------------
def test_a_provider_without_its_key_is_left_out_and_none_usable_is_a_clear_error(monkeypatch, caplog) -> None:
    for var in ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with caplog.at_level(logging.WARNING), pytest.raises(NoUsableSpeechProvider) as error:
        SpeechServices(STTSettings.load(), TTSSettings.load())
    assert "No usable STT provider" in error.value.message
    assert "deepgram left out of the chain: no API key (set DEEPGRAM_API_KEY)" in caplog.text


def test_chain_from_environment_json(monkeypatch) -> None:
    monkeypatch.setenv(
        "SALES_AGENT_TTS_CHAIN",
        '[{"name": "edge", "kind": "local", "api_base": "http://127.0.0.1:8121/v1"}, '
        '{"name": "openai", "kind": "openai", "voice": "ash"}]',
    )
    monkeypatch.setenv("SALES_AGENT_TTS_FIRST_BYTE_DEADLINE_S", "1.5")
    settings = TTSSettings.load()
    assert [p.name for p in settings.chain] == ["edge", "openai"]
    assert settings.first_byte_deadline_s == 1.5


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("chain: [{name: a, kind: cartesia}]", "kind 'cartesia' cannot do STT"),
        ("chain: [{name: a, kind: local}]", "kind 'local' needs api_base"),
        ("chain: []", "the STT chain is empty"),
        ("chain: [{name: a, kind: openai}, {name: a, kind: deepgram}]", "must be unique"),
        ("attempt_timeout_s: -1", "attempt_timeout_s"),
        ("- just a list", "expected a mapping of STT settings"),
        ("chain: [", "not valid YAML"),
    ],
)
def test_a_broken_stt_config_file_is_a_clear_error_naming_the_file(
    tmp_path: Path, monkeypatch, yaml_text: str, message: str
) -> None:
    config = tmp_path / "stt.yaml"
    config.write_text(yaml_text)
    monkeypatch.setenv("SALES_AGENT_STT_CONFIG", str(config))
    with pytest.raises(SpeechConfigError) as error:
        STTSettings.load()
    assert str(config) in error.value.message
    assert message in error.value.message


def test_a_missing_config_file_is_named(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SALES_AGENT_TTS_CONFIG", str(tmp_path / "nope.yaml"))
    expected = r"SALES_AGENT_TTS_CONFIG=.*nope\.yaml: the file does not exist; expected a YAML file"
    with pytest.raises(SpeechConfigError, match=expected):
        TTSSettings.load()


def test_per_call_api_base() -> None:
    config = SpeechProviderConfig(name="p", kind="local", api_base="http://h:1/calls/{call_id}/v1")
    assert config.base_url("sim-ab/1") == "http://h:1/calls/sim-ab%2F1/v1"


async def test_ready_reports_each_speech_provider_without_gating(stt_rig: Rig) -> None:
    from unittest.mock import MagicMock

    from agent.runtime import build_health_registry

    llm = MagicMock()
    llm.provider_status.return_value = {}
    registry = build_health_registry(llm, MagicMock(), speech=stt_rig.speech)
    stt_rig.primary.service.set_fault("500")
    chain = _chain_stt(stt_rig)
    await chain.transcribe(_frames())
    report = await registry.run(use_cache=False)
    checks = {c.name: c for c in report.checks if c.name.startswith(("stt.", "tts."))}
    assert set(checks) == {"stt.primary", "stt.backup", "tts.primary"}
    assert not checks["stt.primary"].healthy and checks["stt.primary"].details == {"cooling_down": True}
    assert checks["stt.backup"].healthy and not checks["stt.primary"].critical
    await chain.aclose()


async def test_every_calls_speech_clients_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx loads the CA bundle for each new client (~50 ms of the event loop's CPU): once per process."""
    import ssl

    from livekit.plugins import silero

    created: list[int] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        created.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    local = ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]
    speech = SpeechServices(STTSettings.for_local(local), TTSSettings.for_local(local), silero.VAD.load())
    for index in range(3):
        chains = speech.for_call(CallContext("acme", f"session-{index}", f"call-{index}"))
        await chains["stt"].aclose()
        await chains["tts"].aclose()
    assert len(created) <= 1  # two STT and two TTS clients per call, three calls (0: made by an earlier test)
