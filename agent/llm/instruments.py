"""The LLM layer's instruments (names from ``telemetry.names``), created from an injected meter.

``telemetry.instruments`` explains the shape; nothing is created at import. The availability gauge
reads the chains registered with ``add_availability_source``, whichever provider it was created on.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from telemetry import names
from telemetry.instruments import InstrumentSet

# Weak: a chain that is no longer used (tests build many) stops reporting instead of leaking.
_availability_sources: list[weakref.WeakMethod[Callable[[], dict[str, bool]]]] = []


def add_availability_source(source: Callable[[], dict[str, bool]]) -> None:
    """``source`` must be a bound method (e.g. ``ProviderChain.status``); it is held weakly. Creates the
    instruments if nothing has yet, so a chain reports its providers before its first turn."""
    instruments()
    _availability_sources.append(weakref.WeakMethod(source))  # type: ignore[arg-type]


def _observe_availability(_options: CallbackOptions) -> Iterable[Observation]:
    _availability_sources[:] = [ref for ref in _availability_sources if ref() is not None]
    for ref in list(_availability_sources):
        source = ref()
        if source is None:
            continue
        try:
            status = source()
        except Exception:  # a broken cooldown store must not break the metrics export
            continue
        for provider, available in status.items():
            yield Observation(1 if available else 0, {names.GEN_AI_PROVIDER_NAME: provider})


class LLMInstruments:
    def __init__(self, meter: Meter) -> None:
        self.requests = meter.create_counter(
            names.LLM_REQUESTS,
            unit="{request}",
            description="LLM provider attempts by provider/model/outcome",
        )
        self.attempt_duration = meter.create_histogram(
            names.LLM_ATTEMPT_DURATION, unit="s", description="Duration of one provider attempt"
        )
        self.ttft = meter.create_histogram(
            names.LLM_TIME_TO_FIRST_TOKEN, unit="s", description="Time to first token of a provider attempt"
        )
        self.fallbacks = meter.create_counter(
            names.LLM_FALLBACKS, unit="{fallback}", description="Fallbacks from one provider to the next"
        )
        self.tokens = meter.create_counter(names.LLM_TOKENS, unit="{token}", description="LLM tokens used")
        self.cost = meter.create_counter(
            names.LLM_COST, unit="{USD}", description="LLM cost in USD (LiteLLM's bundled cost map)"
        )
        self.completions = meter.create_counter(
            names.LLM_COMPLETIONS, unit="{completion}", description="LLM turns: ok or failed (every provider)"
        )
        self.tool_calls_dropped = meter.create_counter(
            names.LLM_TOOL_CALLS_DROPPED,
            unit="{call}",
            description="Tool calls cut by a broken stream (the caller is asked to repeat)",
        )
        meter.create_observable_gauge(
            names.LLM_PROVIDER_AVAILABLE,
            callbacks=[_observe_availability],
            unit="1",
            description="1 when the provider is usable, 0 while it cools down after failures",
        )


INSTRUMENTS = InstrumentSet(LLMInstruments)
instruments = INSTRUMENTS.get
