"""A LiveKit STT that transcribes each caller utterance with the first provider of the chain that answers.

The session's VAD (``CallVAD``) cuts the caller's audio into utterances; ``ChainSTT``'s stream takes
each END_OF_SPEECH segment from that same VAD stream (no second VAD per session) and sends the
segment to the providers in order until one answers. The utterance in flight is therefore never
lost to a failover: the backup gets the very audio the primary failed on (livekit's
``stt.FallbackAdapter`` restarts a stream on the next provider, and the audio already pushed into
the failed one is gone).

Every attempt is a ``stt.recognize <provider>`` span (provider, ``error.type``) under the
utterance's ``stt_utterance`` span, which carries a ``gen_ai.fallback`` event per provider moved
past; attempts, fallbacks, outcomes and availability are metrics. Exactly one ``STTMetrics`` reaches
the session per transcribed utterance (the plugin's, from the attempt that answered): wrapping
livekit's ``StreamAdapter`` around its ``FallbackAdapter`` reports two. Every provider failing is
reported to the call (``SpeechCallHooks.stt_unavailable``), which tells the caller and ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from livekit import rtc
from livekit.agents import stt, utils, vad
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from agent.speech.errors import SpeechChainExhausted, classify_speech
from agent.speech.instruments import instruments
from agent.speech.plugins import build_stt
from telemetry import names

if TYPE_CHECKING:
    from agent.call_context import CallContext
    from agent.speech.call_vad import CallVAD
    from agent.speech.chain import SpeechChain, SpeechProvider
    from agent.speech.settings import STTSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# An empty transcript for at least this much speech means the caller said something we lost.
MIN_UNRECOGNIZED_SPEECH_S = 0.6


class SpeechCallHooks(Protocol):
    """What a call does when its speech chains cannot serve it (``SalesCall`` implements it)."""

    def stt_unavailable(self) -> None: ...

    def tts_unavailable(self) -> None: ...

    def speech_not_understood(self, speech_s: float) -> None: ...


class ChainSTT(stt.STT):
    """Per-call STT over the process's STT chain (plugin clients are this call's, health is shared)."""

    def __init__(
        self,
        chain: SpeechChain,
        settings: STTSettings,
        *,
        vad: CallVAD,
        call: CallContext | None = None,
        hooks: SpeechCallHooks | None = None,
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))
        self._chain = chain
        self._settings = settings
        self._vad = vad
        self._call = call
        self._hooks = hooks
        call_id = call.call_id if call else "default"
        self._plugins = {
            p.name: build_stt(p, language=settings.language, call_id=call_id) for p in chain.providers
        }
        # Only the attempt that answered emits metrics (livekit's STT.recognize emits on success).
        for plugin in self._plugins.values():
            plugin.on("metrics_collected", self._forward_metrics)
        self._recognize_metrics_needed = False
        self._last_served = chain.providers[0].name

    @property
    def model(self) -> str:
        return "stt-chain"

    @property
    def provider(self) -> str:
        return self._last_served

    @property
    def call_vad(self) -> CallVAD:
        return self._vad

    def _forward_metrics(self, *args: Any) -> None:
        self.emit("metrics_collected", *args)

    def _tenant(self) -> dict[str, str]:
        return {names.TENANT_ID: self._call.tenant_id} if self._call else {}

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frames = buffer if isinstance(buffer, list) else [buffer]
        text = await self.transcribe(frames)
        if text is None:
            raise SpeechChainExhausted("STT", [p.name for p in self._chain.providers])
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=self._settings.language, text=text)],
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        return _UtteranceStream(
            self, conn_options=APIConnectOptions(max_retry=0, timeout=conn_options.timeout)
        )

    async def aclose(self) -> None:
        for plugin in self._plugins.values():
            plugin.off("metrics_collected", self._forward_metrics)
            await plugin.aclose()

    # --- one utterance through the chain -------------------------------------------------------
    async def transcribe(self, frames: list[rtc.AudioFrame]) -> str | None:
        """The utterance's text from the first provider that answers; None when every one failed."""
        speech_s = sum(f.duration for f in frames)
        call_attrs = self._call.span_attributes() if self._call else {}
        ins = instruments()
        with tracer.start_as_current_span("stt_utterance", attributes={**call_attrs}) as span:
            span.set_attribute("sales_agent.stt.speech_s", round(speech_s, 3))
            moved_past: list[tuple[str, str]] = []
            attempt = 0
            for provider, skip in self._chain.plan():
                if skip:
                    moved_past.append((provider.name, names.ERROR_COOLDOWN))
                    continue
                attempt += 1
                for from_, reason in moved_past:
                    self._record_fallback(span, from_, provider.name, reason)
                moved_past.clear()
                ok, text, reason = await self._attempt(provider, attempt, frames, call_attrs)
                if ok:
                    self._last_served = provider.name
                    if not text.strip() and speech_s >= MIN_UNRECOGNIZED_SPEECH_S:
                        log.warning(
                            "STT %s returned an empty transcript for %.1f s of speech",
                            provider.name,
                            speech_s,
                        )
                        ins.stt_recognitions.add(1, {names.OUTCOME: "empty", **self._tenant()})
                        span.set_attribute(names.ERROR_TYPE, names.ERROR_EMPTY_TRANSCRIPT)
                        if self._hooks is not None:
                            self._hooks.speech_not_understood(speech_s)
                    else:
                        ins.stt_recognitions.add(1, {names.OUTCOME: "ok", **self._tenant()})
                    return text
                moved_past.append((provider.name, reason))
            log.error("every STT provider failed for an utterance of %.1f s", speech_s)
            ins.stt_recognitions.add(1, {names.OUTCOME: "failed", **self._tenant()})
            span.set_status(Status(StatusCode.ERROR, "all STT providers failed"))
            span.set_attribute(names.ERROR_TYPE, names.ERROR_ALL_PROVIDERS_FAILED)
            if self._hooks is not None:
                self._hooks.stt_unavailable()
            return None

    def _record_fallback(self, span: trace.Span, from_: str, to: str, reason: str) -> None:
        attrs = {names.FALLBACK_FROM: from_, names.FALLBACK_TO: to, names.FALLBACK_REASON: reason}
        span.add_event(names.FALLBACK_EVENT, attrs)
        instruments().stt_fallbacks.add(1, attrs)
        log.info("STT fallback %s -> %s (%s)", from_, to, reason)

    async def _attempt(
        self, provider: SpeechProvider, attempt: int, frames: list[rtc.AudioFrame], call_attrs: dict[str, str]
    ) -> tuple[bool, str, str]:
        metric_attrs = {names.GEN_AI_PROVIDER_NAME: provider.name}
        span_attrs = {
            **metric_attrs,
            names.GEN_AI_REQUEST_MODEL: provider.config.model or provider.config.kind,
            names.SPEECH_ATTEMPT: attempt,
            **call_attrs,
        }
        ins = instruments()
        start = time.perf_counter()
        with tracer.start_as_current_span(
            f"stt.recognize {provider.name}", kind=SpanKind.CLIENT, attributes=span_attrs
        ) as span:
            try:
                async with asyncio.timeout(self._settings.attempt_timeout_s):
                    event = await self._plugins[provider.name].recognize(
                        frames,
                        conn_options=APIConnectOptions(max_retry=0, timeout=self._settings.attempt_timeout_s),
                    )
            except asyncio.CancelledError:  # the session is closing: not the provider's fault
                span.set_attribute(names.ERROR_TYPE, names.ERROR_CANCELLED)
                raise
            except Exception as exc:
                classified = classify_speech(exc)
                span.set_attribute(names.ERROR_TYPE, classified.error_type)
                span.set_status(Status(StatusCode.ERROR, f"{provider.name}: {classified.error_type}"))
                span.record_exception(exc)
                ins.stt_requests.add(
                    1, {**metric_attrs, names.OUTCOME: "error", names.ERROR_TYPE: classified.error_type}
                )
                ins.stt_attempt_duration.record(
                    time.perf_counter() - start, {**metric_attrs, names.OUTCOME: "error"}
                )
                log.warning(
                    "STT attempt on %s failed: %s (%s)",
                    provider.name,
                    classified.error_type,
                    type(exc).__name__,
                )
                self._chain.health.record_failure(provider.name, classified.retry_after_s)
                return False, "", classified.reason
            text = event.alternatives[0].text if event.alternatives else ""
            ins.stt_requests.add(1, {**metric_attrs, names.OUTCOME: "ok"})
            ins.stt_attempt_duration.record(
                time.perf_counter() - start, {**metric_attrs, names.OUTCOME: "ok"}
            )
            self._chain.health.record_success(provider.name)
            return True, text, ""


class _UtteranceStream(stt.RecognizeStream):
    """Speech events for the session: the call VAD's segments, each transcribed by the chain.

    The audio livekit pushes here is the audio its VAD stream already gets; the segments come from
    that stream (``CallVAD.utterances``), so the frames pushed here are only drained.
    """

    def __init__(self, chain_stt: ChainSTT, *, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=chain_stt, conn_options=conn_options)
        self._chain_stt = chain_stt

    async def _metrics_monitor_task(self, event_aiter: Any) -> None:
        async for _ in event_aiter:  # metrics come from the plugin that answered, not from here
            pass

    async def _run(self) -> None:
        async def drain_input() -> None:
            async for _ in self._input_ch:
                pass

        with self._chain_stt.call_vad.utterances() as segments:
            draining = asyncio.create_task(drain_input())
            next_event: asyncio.Task[vad.VADEvent] | None = None
            try:
                while not draining.done():
                    next_event = asyncio.create_task(segments.get())
                    await asyncio.wait({next_event, draining}, return_when=asyncio.FIRST_COMPLETED)
                    if not next_event.done():
                        break  # the input ended: the session closed this stream
                    await self._on_vad_event(next_event.result())
            finally:
                for task in (draining, next_event):
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task

    async def _on_vad_event(self, event: vad.VADEvent) -> None:
        if event.type == vad.VADEventType.START_OF_SPEECH:
            self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
            return
        speech_end_time = time.time() - event.silence_duration - event.inference_duration
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH, speech_end_time=speech_end_time)
        )
        text = await self._chain_stt.transcribe(list(event.frames))
        if not text:
            return
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                alternatives=[stt.SpeechData(language=self._chain_stt._settings.language, text=text)],
                speech_end_time=speech_end_time,
            )
        )
