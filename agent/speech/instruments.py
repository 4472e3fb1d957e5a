"""The speech chains' instruments (names from ``telemetry.names``), created from an injected meter.

``telemetry.instruments`` explains the shape; nothing is created at import. The availability gauges
read the chains registered with ``add_availability_source``, whichever provider they were created on.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Literal

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from telemetry import names
from telemetry.instruments import InstrumentSet

Kind = Literal["stt", "tts"]

# Weak: a chain that is no longer used (tests build many) stops reporting instead of leaking.
_availability_sources: dict[Kind, list[weakref.WeakMethod[Callable[[], dict[str, bool]]]]] = {
    "stt": [],
    "tts": [],
}


def add_availability_source(kind: Kind, source: Callable[[], dict[str, bool]]) -> None:
    """``source`` must be a bound method (``SpeechChain.status``), held weakly. Creates the instruments
    if nothing has yet, so a chain reports its providers before its first request."""
    instruments()
    _availability_sources[kind].append(weakref.WeakMethod(source))  # type: ignore[arg-type]


def _observer(kind: Kind) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        sources = _availability_sources[kind]
        sources[:] = [ref for ref in sources if ref() is not None]
        for ref in list(sources):
            source = ref()
            if source is None:
                continue
            for provider, available in source().items():
                yield Observation(1 if available else 0, {names.GEN_AI_PROVIDER_NAME: provider})

    return observe


class SpeechInstruments:
    def __init__(self, meter: Meter) -> None:
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
        meter.create_observable_gauge(
            names.STT_PROVIDER_AVAILABLE,
            callbacks=[_observer("stt")],
            unit="1",
            description="1 when the STT provider is usable, 0 while it cools down after failures",
        )
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
        meter.create_observable_gauge(
            names.TTS_PROVIDER_AVAILABLE,
            callbacks=[_observer("tts")],
            unit="1",
            description="1 when the TTS provider is usable, 0 while it cools down after failures",
        )


INSTRUMENTS = InstrumentSet(SpeechInstruments)
instruments = INSTRUMENTS.get
