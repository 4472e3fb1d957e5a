"""The speech chains' metric instruments (names from ``telemetry.names``), created once per process."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from functools import cache

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from telemetry import names


class _Availability:
    """An observable gauge fed by the chains' ``status`` methods, held weakly (tests build many)."""

    def __init__(self, meter: metrics.Meter, name: str, what: str) -> None:
        self._sources: list[weakref.WeakMethod[Callable[[], dict[str, bool]]]] = []
        meter.create_observable_gauge(
            name,
            callbacks=[self._observe],
            unit="1",
            description=f"1 when the {what} provider is usable, 0 while it cools down after failures",
        )

    def add(self, source: Callable[[], dict[str, bool]]) -> None:
        self._sources.append(weakref.WeakMethod(source))  # type: ignore[arg-type]

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        self._sources = [ref for ref in self._sources if ref() is not None]
        for ref in list(self._sources):
            source = ref()
            if source is None:
                continue
            for provider, available in source().items():
                yield Observation(1 if available else 0, {names.GEN_AI_PROVIDER_NAME: provider})


class SpeechInstruments:
    def __init__(self) -> None:
        meter = metrics.get_meter("sales_agent")
        self.stt_requests = meter.create_counter(
            names.STT_REQUESTS, unit="{request}", description="STT provider attempts by provider/outcome"
        )
        self.stt_attempt_duration = meter.create_histogram(
            names.STT_ATTEMPT_DURATION, unit="s", description="Duration of one STT attempt (one utterance)"
        )
        self.stt_fallbacks = meter.create_counter(
            names.STT_FALLBACKS, unit="{fallback}", description="STT fallbacks from one provider to the next"
        )
        self.stt_recognitions = meter.create_counter(
            names.STT_RECOGNITIONS,
            unit="{utterance}",
            description="Caller utterances: ok, empty transcript, or failed on every provider",
        )
        self.stt_available = _Availability(meter, names.STT_PROVIDER_AVAILABLE, "STT")
        self.tts_requests = meter.create_counter(
            names.TTS_REQUESTS, unit="{request}", description="TTS provider attempts by provider/outcome"
        )
        self.tts_ttfb = meter.create_histogram(
            names.TTS_TIME_TO_FIRST_BYTE, unit="s", description="Time to the first audio of one TTS attempt"
        )
        self.tts_fallbacks = meter.create_counter(
            names.TTS_FALLBACKS, unit="{fallback}", description="TTS fallbacks from one provider to the next"
        )
        self.tts_syntheses = meter.create_counter(
            names.TTS_SYNTHESES,
            unit="{sentence}",
            description="Sentences synthesized: ok, or failed on every provider",
        )
        self.tts_available = _Availability(meter, names.TTS_PROVIDER_AVAILABLE, "TTS")


@cache
def instruments() -> SpeechInstruments:
    return SpeechInstruments()
