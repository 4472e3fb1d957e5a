"""A LiveKit TTS that speaks each sentence with the first provider of the chain that answers.

livekit wraps this non-streaming TTS in its sentence ``StreamAdapter``: one ``synthesize`` per
sentence, and each sentence walks the chain. A provider that fails before its first audio (error,
429, garbage, no first byte within ``first_byte_deadline_s``) costs only its own request: no
retries of the same provider (livekit's ``FallbackAdapter`` with its default two retries added
~2.1 s to a reply). A stream cut mid-sentence is spoken again from the sentence's start by the
next provider (``sales_agent.tts.replayed``): a sentence restarted after a glitch is what a person
does, a sentence that stops halfway loses what the agent was asking.

Every attempt is a ``tts.synthesize <provider>`` span (provider, ``error.type``) under livekit's
``tts_request`` span, which carries a ``gen_ai.fallback`` event per provider moved past. Every
provider failing is reported to the call (``SpeechCallHooks.tts_unavailable``), which ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from livekit import rtc
from livekit.agents import APIConnectionError, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from agent.speech.errors import classify_speech
from agent.speech.instruments import instruments
from agent.speech.plugins import SAMPLE_RATE, build_tts
from telemetry import names

if TYPE_CHECKING:
    from agent.call_context import CallContext
    from agent.speech.chain import SpeechChain, SpeechProvider
    from agent.speech.settings import TTSSettings
    from agent.speech.stt import SpeechCallHooks

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class ChainTTS(tts.TTS):
    """Per-call TTS over the process's TTS chain (plugin clients are this call's, health is shared)."""

    def __init__(
        self,
        chain: SpeechChain,
        settings: TTSSettings,
        *,
        call: CallContext | None = None,
        hooks: SpeechCallHooks | None = None,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False), sample_rate=SAMPLE_RATE, num_channels=1
        )
        self._chain = chain
        self._settings = settings
        self._call = call
        self._hooks = hooks
        call_id = call.call_id if call else "default"
        self._plugins = {
            p.name: build_tts(p, language=settings.language, call_id=call_id) for p in chain.providers
        }
        self._last_served = chain.providers[0].name

    @property
    def model(self) -> str:
        return "tts-chain"

    @property
    def provider(self) -> str:
        return self._last_served

    @property
    def chain(self) -> SpeechChain:
        return self._chain

    @property
    def settings(self) -> TTSSettings:
        return self._settings

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ChainChunkedStream:
        # The chain is the one retry layer: livekit must not replay a sentence the chain already failed.
        return ChainChunkedStream(
            self, input_text=text, conn_options=APIConnectOptions(max_retry=0, timeout=conn_options.timeout)
        )

    def plugin(self, name: str) -> tts.TTS:
        return self._plugins[name]

    def tenant_attrs(self) -> dict[str, str]:
        return {names.TENANT_ID: self._call.tenant_id} if self._call else {}

    def call_attrs(self) -> dict[str, str]:
        return self._call.span_attributes() if self._call else {}

    def served_by(self, name: str) -> None:
        self._last_served = name

    def exhausted(self) -> None:
        if self._hooks is not None:
            self._hooks.tts_unavailable()

    async def aclose(self) -> None:
        for plugin in self._plugins.values():
            await plugin.aclose()


class ChainChunkedStream(tts.ChunkedStream):
    """One sentence through the chain. The base class reports one ``TTSMetrics`` per sentence (its
    ttfb includes any fallback); the plugins' per-attempt metrics are not forwarded."""

    # Our attempt spans sit directly under livekit's tts_request span (no tts_request_run layer).
    _tts_attempt_span_name: ClassVar[str | None] = None

    def __init__(self, chain_tts: ChainTTS, *, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=chain_tts, input_text=input_text, conn_options=conn_options)
        self._chain_tts = chain_tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        chain_tts = self._chain_tts
        output_emitter.initialize(
            request_id=utils.shortuuid(), sample_rate=SAMPLE_RATE, num_channels=1, mime_type="audio/pcm"
        )
        request_span = trace.get_current_span()
        ins = instruments()
        moved_past: list[tuple[str, str]] = []
        replay = False
        attempt = 0
        for provider, skip in chain_tts.chain.plan():
            if skip:
                moved_past.append((provider.name, names.ERROR_COOLDOWN))
                continue
            attempt += 1
            for from_, reason in moved_past:
                attrs = {
                    names.FALLBACK_FROM: from_,
                    names.FALLBACK_TO: provider.name,
                    names.FALLBACK_REASON: reason,
                }
                request_span.add_event(names.FALLBACK_EVENT, attrs)
                ins.tts_fallbacks.add(1, attrs)
                log.info("TTS fallback %s -> %s (%s)", from_, provider.name, reason)
            moved_past.clear()
            pushed, reason = await self._attempt(provider, attempt, output_emitter, replay=replay)
            if reason is None:
                chain_tts.served_by(provider.name)
                ins.tts_syntheses.add(1, {names.OUTCOME: "ok", **chain_tts.tenant_attrs()})
                return
            replay = replay or pushed
            moved_past.append((provider.name, reason))
        log.error("every TTS provider failed for a sentence of %d characters", len(self._input_text))
        ins.tts_syntheses.add(1, {names.OUTCOME: "failed", **chain_tts.tenant_attrs()})
        request_span.set_status(Status(StatusCode.ERROR, "all TTS providers failed"))
        request_span.set_attribute(names.ERROR_TYPE, names.ERROR_ALL_PROVIDERS_FAILED)
        chain_tts.exhausted()
        raise APIConnectionError("every TTS provider failed", retryable=False)

    async def _attempt(
        self, provider: SpeechProvider, attempt: int, output_emitter: tts.AudioEmitter, *, replay: bool
    ) -> tuple[bool, str | None]:
        """One provider's try at the sentence: (audio pushed?, fallback reason or None on success)."""
        chain_tts = self._chain_tts
        settings = chain_tts.settings
        metric_attrs = {names.GEN_AI_PROVIDER_NAME: provider.name}
        span_attrs: dict[str, Any] = {
            **metric_attrs,
            names.GEN_AI_REQUEST_MODEL: provider.config.model or provider.config.kind,
            names.SPEECH_ATTEMPT: attempt,
            **chain_tts.call_attrs(),
        }
        if replay:
            span_attrs[names.SPEECH_REPLAYED] = True
        ins = instruments()
        start = time.perf_counter()
        pushed = False
        resampler: rtc.AudioResampler | None = None
        loop = asyncio.get_running_loop()
        with tracer.start_as_current_span(
            f"tts.synthesize {provider.name}", kind=SpanKind.CLIENT, attributes=span_attrs
        ) as span:
            try:
                plugin = chain_tts.plugin(provider.name)
                async with asyncio.timeout(settings.first_byte_deadline_s) as deadline:
                    async with plugin.synthesize(
                        self._input_text,
                        conn_options=APIConnectOptions(max_retry=0, timeout=settings.stream_timeout_s),
                    ) as stream:
                        async for audio in stream:
                            frame = audio.frame
                            if not pushed:
                                ins.tts_ttfb.record(time.perf_counter() - start, metric_attrs)
                                if frame.sample_rate != SAMPLE_RATE:
                                    resampler = rtc.AudioResampler(
                                        frame.sample_rate, SAMPLE_RATE, num_channels=1
                                    )
                            pushed = True
                            for out in resampler.push(frame) if resampler else [frame]:
                                output_emitter.push_frame(out)
                            deadline.reschedule(loop.time() + settings.stream_timeout_s)
                        for out in resampler.flush() if resampler else []:
                            output_emitter.push_frame(out)
            except asyncio.CancelledError:  # barge-in or session end: not the provider's fault
                span.set_attribute(names.ERROR_TYPE, names.ERROR_CANCELLED)
                raise
            except Exception as exc:
                timed_out = isinstance(exc, TimeoutError)
                classified = classify_speech(exc)
                error_type = (
                    (names.ERROR_STREAM_TIMEOUT if pushed else names.ERROR_FIRST_BYTE_TIMEOUT)
                    if timed_out
                    else classified.error_type
                )
                reason = names.ERROR_TIMEOUT if timed_out else classified.reason
                span.set_attribute(names.ERROR_TYPE, error_type)
                span.set_status(Status(StatusCode.ERROR, f"{provider.name}: {error_type}"))
                span.record_exception(exc)
                ins.tts_requests.add(
                    1, {**metric_attrs, names.OUTCOME: "error", names.ERROR_TYPE: error_type}
                )
                again = "; the next provider speaks the sentence again" if pushed else ""
                log.warning(
                    "TTS attempt on %s failed: %s (%s)%s",
                    provider.name,
                    error_type,
                    type(exc).__name__,
                    again,
                )
                chain_tts.chain.health.record_failure(provider.name, classified.retry_after_s)
                return pushed, reason
            if not pushed:  # livekit refuses an empty synthesis later; call it what it is here
                span.set_attribute(names.ERROR_TYPE, names.ERROR_EMPTY_RESPONSE)
                span.set_status(Status(StatusCode.ERROR, f"{provider.name}: {names.ERROR_EMPTY_RESPONSE}"))
                ins.tts_requests.add(
                    1, {**metric_attrs, names.OUTCOME: "error", names.ERROR_TYPE: names.ERROR_EMPTY_RESPONSE}
                )
                chain_tts.chain.health.record_failure(provider.name)
                return False, names.ERROR_MALFORMED_RESPONSE
            ins.tts_requests.add(1, {**metric_attrs, names.OUTCOME: "ok"})
            chain_tts.chain.health.record_success(provider.name)
            return True, None
