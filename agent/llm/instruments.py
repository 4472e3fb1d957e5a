"""The LLM layer's metric instruments (names from ``telemetry.names``), created once per process."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from functools import cache

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from telemetry import names


class LLMInstruments:
    def __init__(self) -> None:
        meter = metrics.get_meter("sales_agent")
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
        # Weak: a chain that is no longer used (tests build many) stops reporting instead of leaking.
        self._availability_sources: list[weakref.WeakMethod[Callable[[], dict[str, bool]]]] = []
        meter.create_observable_gauge(
            names.LLM_PROVIDER_AVAILABLE,
            callbacks=[self._observe_availability],
            unit="1",
            description="1 when the provider is usable, 0 while it cools down after failures",
        )

    def add_availability_source(self, source: Callable[[], dict[str, bool]]) -> None:
        """``source`` must be a bound method (e.g. ``ProviderChain.status``); it is held weakly."""
        self._availability_sources.append(weakref.WeakMethod(source))  # type: ignore[arg-type]

    def _observe_availability(self, _options: CallbackOptions) -> Iterable[Observation]:
        self._availability_sources = [ref for ref in self._availability_sources if ref() is not None]
        for ref in list(self._availability_sources):
            source = ref()
            if source is None:
                continue
            try:
                status = source()
            except Exception:  # a broken cooldown store must not break the metrics export
                continue
            for provider, available in status.items():
                yield Observation(1 if available else 0, {names.GEN_AI_PROVIDER_NAME: provider})


@cache
def instruments() -> LLMInstruments:
    return LLMInstruments()
