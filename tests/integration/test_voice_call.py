"""Voice calls end to end, offline and in real time: espeak-ng caller audio -> Silero VAD -> STT over
HTTP -> the agent (LLM chain, tools, CRM) -> TTS over HTTP -> the caller's ear.

No LiveKit room: ``agent.simulate.voice_io`` is the audio in and out; everything else is what the
worker runs. Calls are short (a greeting and one to three caller lines); waits are bounded and
driven by the session's events, never by fixed sleeps. The stand-ins' TTS speaks at 30 ms per
character (a real voice is ~65 ms) to keep each call a few seconds long.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agent.app_settings import AppSettings
from agent.llm import ProviderConfig
from agent.runtime import Runtime, start_runtime
from agent.sales_call import NOT_UNDERSTOOD_LINE, STT_DOWN_LINE, SalesCall
from agent.simulate.runner import CallResult
from agent.simulate.scripts import tool
from agent.simulate.stack import Stack, open_stack
from agent.simulate.voice_runner import run_voice_call
from agent.simulate.voice_scripts import VoiceLine, VoiceScript
from agent.speech import SpeechServices, STTSettings, TTSSettings
from agent.tenants import TenantRegistry
from agent.vocabulary.local_providers import local_model
from local_services.otlp_sink import run_otlp_sink
from telemetry import names
from telemetry.span_budget import KeptParentSpanExporter

pytestmark = pytest.mark.timeout(240)

TENANTS = {"tenants": {"acme": {"display_name": "Acme Corp"}}}
VOICE_ACME = {names.TENANT_ID: "acme", names.TURN_MODE: "voice"}
SECONDS_PER_CHAR = 0.03
TURN_TIMEOUT_S = 30.0

QUICK = VoiceScript(
    "quick",
    (
        VoiceLine(
            "Hi, I'm Dana, call me later.",
            (
                tool("capture_basic_info", name="Dana Example", company="Initech", phone="+1 415 555 0100"),
                tool("end_call", outcome="callback"),
            ),
        ),
    ),
    "callback",
)


@pytest.fixture(scope="session")
def vad_model() -> Any:
    """One Silero model for the whole session (each call wraps it in its own CallVAD)."""
    from agent.speech.silero_batch import BatchedSileroVAD

    return BatchedSileroVAD.load()


@pytest.fixture(scope="session")
def clip_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng clips go to a session folder, made once and shared by every test."""
    return tmp_path_factory.mktemp("voice-clips")


@dataclass
class VoiceRig:
    stack: Stack
    runtime: Runtime
    http: httpx.AsyncClient
    speech: SpeechServices
    clip_cache: Path

    def service(self, kind: str, name: str) -> Any:
        """The in-process stand-in behind ``stt-primary`` etc. (faults, stats)."""
        endpoints = {"stt": self.stack.stt, "tts": self.stack.tts}[kind]
        return next(ep for ep in endpoints if ep.name == name)

    async def fault(self, target: str, mode: str, **options: Any) -> None:
        base = self.stack.fault_targets()[target][0]
        (await self.http.post(f"{base}/admin/fault", json={"mode": mode, **options})).raise_for_status()

    async def stats(self, target: str) -> dict[str, Any]:
        base = self.stack.fault_targets()[target][0]
        return (await self.http.get(f"{base}/admin/stats")).json()

    async def call(self, index: int = 0, script: VoiceScript | None = QUICK, **kwargs: Any) -> CallResult:
        return await run_voice_call(
            index,
            "acme",
            run_id="test",
            runtime=self.runtime,
            stt_admin_urls=[ep.admin_url for ep in self.stack.stt],
            http=self.http,
            turn_timeout_s=TURN_TIMEOUT_S,
            script=script,
            clip_cache=self.clip_cache,
            **kwargs,
        )


@contextlib.asynccontextmanager
async def voice_rig(tmp_path: Path, vad_model: Any, clip_cache: Path) -> AsyncIterator[VoiceRig]:
    async with (
        open_stack(voice=True, tts_seconds_per_char=SECONDS_PER_CHAR) as stack,
        httpx.AsyncClient(timeout=10.0) as http,
    ):
        settings = AppSettings.from_env(
            llm={
                "chain": [
                    ProviderConfig(
                        name=ep.name, kind="local", model=local_model(ep.name), api_base=ep.api_base
                    )
                    for ep in stack.llm
                ]
            },
            crm={"crm_url": stack.crm_url, "outbox_path": str(tmp_path / "outbox.sqlite3")},
            stt={
                "chain": STTSettings.for_local([ep.per_call_api_base for ep in stack.stt]).chain,
                "attempt_timeout_s": 1.0,
            },
            tts={
                "chain": TTSSettings.for_local([ep.api_base for ep in stack.tts]).chain,
                "first_byte_deadline_s": 1.0,
            },
        )
        speech = SpeechServices(settings.stt, settings.tts, vad_model)
        runtime = await start_runtime(settings, tenants=TenantRegistry.from_mapping(TENANTS), speech=speech)
        try:
            yield VoiceRig(stack, runtime, http, speech, clip_cache)
        finally:
            await runtime.aclose()


@pytest.fixture
async def rig(tmp_path: Path, vad_model: Any, clip_cache: Path) -> AsyncIterator[VoiceRig]:
    async with voice_rig(tmp_path, vad_model, clip_cache) as voice:
        yield voice


def _histogram_count(otel, name: str, **attrs: str) -> int:
    return sum(p.count for a, p in otel.metric_points(name) if all(a.get(k) == v for k, v in attrs.items()))


class _Toggle(SpanExporter):
    """Lets one test send the process's spans to an OTLP sink (the provider cannot drop processors)."""

    def __init__(self) -> None:
        self.target: SpanExporter | None = None

    def export(self, spans: Any) -> SpanExportResult:
        return self.target.export(spans) if self.target is not None else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


_OTLP = _Toggle()
_OTLP_PROCESSOR: BatchSpanProcessor | None = None


def _otlp_processor() -> BatchSpanProcessor:
    global _OTLP_PROCESSOR
    if _OTLP_PROCESSOR is None:
        _OTLP_PROCESSOR = BatchSpanProcessor(_OTLP, schedule_delay_millis=200)
        trace.get_tracer_provider().add_span_processor(_OTLP_PROCESSOR)  # type: ignore[attr-defined]
    return _OTLP_PROCESSOR


def _spans_from_otlp(requests: list[Any], trace_id: str) -> list[dict[str, Any]]:
    """Decoded OTLP -> flat span dicts of one trace (name, ids, times, attributes, events)."""
    spans = []
    for request in requests:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    if span.trace_id.hex() != trace_id:
                        continue
                    attrs = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}
                    spans.append(
                        {
                            "name": span.name,
                            "id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex() or None,
                            "start": span.start_time_unix_nano,
                            "attrs": attrs,
                            "events": [e.name for e in span.events],
                        }
                    )
    return spans


async def test_a_voice_call_end_to_end(otel, rig: VoiceRig) -> None:
    """Real VAD, STT and TTS over HTTP: outcome, lead, one trace (decoded from OTLP) with every
    stage of every turn, turn metrics before the call ends, one VAD stream and one STTMetrics per
    utterance."""
    processor = _otlp_processor()
    waits_before = _histogram_count(otel, names.TURN_RESPONSE_LATENCY, **VOICE_ACME)
    seen: dict[str, Any] = {"mid_call_waits": None, "stt_metrics": 0}

    def on_started(call: SalesCall) -> None:
        seen["call"] = call
        assert call.session.stt is not None
        call.session.stt.on(
            "metrics_collected", lambda _m: seen.__setitem__("stt_metrics", seen["stt_metrics"] + 1)
        )

    async with run_otlp_sink(keep=100_000) as sink:
        # As setup_telemetry wraps every exporter: children of a span the budget left out are
        # handed over on its nearest kept ancestor.
        _OTLP.target = KeptParentSpanExporter(OTLPSpanExporter(endpoint=f"{sink.url}/v1/traces"))
        try:
            task = asyncio.create_task(rig.call(0, script=None, on_started=on_started))  # voice_converted
            # Turn metrics arrive during the call, not at its end.
            deadline = time.monotonic() + 60
            while not task.done() and time.monotonic() < deadline:
                if _histogram_count(otel, names.TURN_RESPONSE_LATENCY, **VOICE_ACME) > waits_before:
                    seen["mid_call_waits"] = "call" in seen and not seen["call"].finished
                    break
                await asyncio.sleep(0.1)
            result = await task
            await asyncio.to_thread(processor.force_flush)
        finally:
            _OTLP.target = None
        requests = list(sink.sink.received.traces)

    assert result.error is None, result.error
    assert result.outcome == "converted" and result.meetings == 1 and result.lead_captured
    assert seen["mid_call_waits"] is True
    call: SalesCall = seen["call"]
    assert call.session.vad.streams_opened == 1  # type: ignore[union-attr]  # the STT reads the session's one
    crm = await rig.http.get(f"{rig.stack.crm_url}/admin/stats")
    assert crm.json()["contacts"] >= 1
    assert len(result.recorded_turns) == 3 and all(t.wait_s > 0 for t in result.recorded_turns)
    assert {"endpointing", "stt", "llm", "tts"} <= set(result.recorded_turns[0].stages)

    spans = _spans_from_otlp(requests, result.trace_id)
    by_id = {s["id"]: s for s in spans}
    [root] = [s for s in spans if s["parent"] is None]
    assert root["name"] == "sales_call" and root["attrs"][names.CALL_OUTCOME] == "converted"

    def ancestors(span: dict[str, Any]) -> list[str]:
        names_up = []
        while span["parent"] in by_id:
            span = by_id[span["parent"]]
            names_up.append(span["name"])
        return names_up

    stray = [
        (s["name"], ancestors(s)) for s in spans if s is not root and ancestors(s)[-1:] != ["sales_call"]
    ]
    assert not stray, stray  # one tree
    kinds = ("user_turn", "eou_wait", "stt_utterance", "agent_turn", "tts_request")
    named = {
        name: sorted((s for s in spans if s["name"] == name), key=lambda s: s["start"]) for name in kinds
    }
    assert len(named["user_turn"]) == 3 and len(named["stt_utterance"]) == 3
    assert all(ancestors(s)[0] == "user_turn" for s in named["eou_wait"])  # endpointing, per turn
    attempts = [s for s in spans if s["name"].startswith("stt.recognize ")]
    assert all(ancestors(s)[0] == "stt_utterance" for s in attempts)
    assert all(s["attrs"][names.GEN_AI_PROVIDER_NAME] == "primary" for s in attempts)
    chats = [s for s in spans if s["name"].startswith("chat ")]
    assert all("agent_turn" in ancestors(s) for s in chats)
    # The span budget leaves LiveKit's function_tool wrapper out: our tool spans hang from the turn.
    assert not any(s["name"] == "function_tool" for s in spans)
    tools = {s["name"] for s in spans if ancestors(s)[:1] == ["agent_turn"]}
    assert {"capture_basic_info", "qualify_lead", "check_availability", "book_meeting", "end_call"} <= tools
    tts_attempts = [s for s in spans if s["name"].startswith("tts.synthesize ")]
    assert tts_attempts and all(
        ancestors(s)[:3][-1] in ("tts_stream_adapter", "tts_node") for s in tts_attempts
    )
    # Per caller line, in order: user turn -> STT -> LLM attempt -> TTS attempt.
    for user_turn in named["user_turn"]:
        stt = next(s for s in named["stt_utterance"] if s["start"] >= user_turn["start"])
        chat = next(s for s in chats if s["start"] >= stt["start"])
        tts = next(s for s in tts_attempts if s["start"] >= chat["start"])
        assert user_turn["start"] < stt["start"] < chat["start"] < tts["start"]
    # One STTMetrics per transcribed utterance (livekit's StreamAdapter(FallbackAdapter) reports two).
    assert seen["stt_metrics"] == 3


STT_FAULTS = ("500", "429", "hang", "slow_first_byte", "drop_mid_stream", "garbage")
TTS_FAULTS = ("500", "429", "hang", "slow_first_byte", "drop_mid_stream", "garbage")


@pytest.mark.parametrize("mode", STT_FAULTS)
async def test_stt_fault_on_the_primary_the_call_completes_on_the_backup(
    otel, rig: VoiceRig, mode: str
) -> None:
    await rig.fault("stt-primary", mode, delay_s=3.0)
    fallbacks = {names.FALLBACK_FROM: "primary", names.FALLBACK_TO: "backup"}
    before = otel.metric_value(names.STT_FALLBACKS, **fallbacks)
    result = await rig.call()
    assert result.error is None, result.error
    assert result.outcome == "callback" and result.lead_captured  # the caller's line got through
    assert (await rig.stats("stt-backup"))["transcripts"] >= 1
    assert otel.metric_value(names.STT_FALLBACKS, **fallbacks) - before >= 1


@pytest.mark.parametrize("mode", TTS_FAULTS)
async def test_tts_fault_on_the_primary_the_call_completes_on_the_backup(
    otel, rig: VoiceRig, mode: str
) -> None:
    """``drop_mid_stream`` is the agent's sentence cut mid-way: the backup says it again."""
    await rig.fault("tts-primary", mode, delay_s=3.0)
    fallbacks = {names.FALLBACK_FROM: "primary", names.FALLBACK_TO: "backup"}
    before = otel.metric_value(names.TTS_FALLBACKS, **fallbacks)
    result = await rig.call()
    assert result.error is None, result.error
    assert result.outcome == "callback" and result.lead_captured
    assert (await rig.stats("tts-backup"))["characters"] > 0
    assert otel.metric_value(names.TTS_FALLBACKS, **fallbacks) - before >= 1


async def test_every_stt_provider_down_the_caller_is_told_and_the_call_ends(rig: VoiceRig) -> None:
    await rig.fault("stt-primary", "500")
    await rig.fault("stt-backup", "hang")
    result = await rig.call()
    assert result.error is None, result.error
    assert (result.outcome, result.end_reason) == ("error", "stt_unavailable")
    spoken = " ".join((await rig.stats("tts-primary"))["recent_inputs"])  # one request per sentence
    assert STT_DOWN_LINE in spoken


async def test_every_tts_provider_down_the_call_ends_cleanly(rig: VoiceRig) -> None:
    await rig.fault("tts-primary", "500")
    await rig.fault("tts-backup", "garbage")
    started = time.monotonic()
    result = await rig.call()
    assert result.error is None, result.error
    assert (result.outcome, result.end_reason) == ("error", "tts_unavailable")
    assert time.monotonic() - started < TURN_TIMEOUT_S  # ended by the agent, not by a timeout


async def test_an_empty_transcript_the_agent_asks_again_and_the_call_goes_on(otel, rig: VoiceRig) -> None:
    attrs = {names.TENANT_ID: "acme", names.UNANSWERED_REASON: "empty_transcript"}
    before = otel.metric_value(names.TURN_UNANSWERED, **attrs)
    await rig.fault("stt-primary", "empty", count=1)
    result = await rig.call()
    assert result.error is None, result.error
    assert result.outcome == "callback" and result.turns == 2  # the line, then the line again
    assert NOT_UNDERSTOOD_LINE in " ".join((await rig.stats("tts-primary"))["recent_inputs"])
    assert otel.metric_value(names.TURN_UNANSWERED, **attrs) - before == 1


async def test_barge_in_cuts_the_agents_audio_and_is_counted(otel, rig: VoiceRig) -> None:
    """The caller talks 0.8 s into a ~2.5 s reply: the reply is cut and the caller's words are heard."""
    before = otel.metric_value(names.TURN_INTERRUPTIONS, **{names.TENANT_ID: "acme"})
    result = await rig.call(1, script=None)  # voice_barge_in
    assert result.error is None, result.error
    assert result.interruptions >= 1  # clear_buffer on the caller's speaker
    assert otel.metric_value(names.TURN_INTERRUPTIONS, **{names.TENANT_ID: "acme"}) - before >= 1
    assert result.outcome == "callback" and result.lead_captured  # the barge-in line reached STT


async def test_a_long_silence_makes_no_turn(otel, rig: VoiceRig) -> None:
    """Four seconds of caller silence: no utterance, no reply, then the call goes on."""
    result = await rig.call(2, script=None)  # voice_silence
    assert result.error is None, result.error
    assert result.outcome == "not_interested"
    utterances = [s for s in otel.spans("stt_utterance") if s.attributes.get(names.CALL_ID) == "sim-test-2"]
    assert len(utterances) == 2 == len(result.recorded_turns)
