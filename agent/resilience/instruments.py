"""The resilience layer's instruments: dependency call duration, retries, circuit breaker state.

Created from an injected meter (``telemetry.instruments``), never at import. The breaker state gauge
reads the breakers alive in this process (``live_breakers``), whichever provider it was created on.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from telemetry import names
from telemetry.instruments import InstrumentSet

if TYPE_CHECKING:
    from agent.resilience.breaker import CircuitBreaker

# Every breaker registers itself here (``observe_breaker``) until its owner closes it.
live_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def observe_breaker(breaker: CircuitBreaker) -> None:
    """Report ``breaker`` on the state gauge from now on; creates the gauge if nothing has yet (a
    breaker that has not been called yet still reports closed)."""
    instruments()
    live_breakers.add(breaker)


def _observe_states(_options: CallbackOptions) -> Iterable[Observation]:
    # One point per dependency; if a process holds several breakers for one, report the worst state.
    worst: dict[str, int] = {}
    for breaker in list(live_breakers):
        worst[breaker.name] = max(worst.get(breaker.name, 0), int(breaker.state))
    for name, state in worst.items():
        yield Observation(state, {names.DEPENDENCY: name})


class ResilienceInstruments:
    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            names.DEPENDENCY_DURATION,
            unit="s",
            description="Duration of one logical dependency call, retries and backoff included",
        )
        self.retries = meter.create_counter(
            names.DEPENDENCY_RETRIES,
            unit="{retry}",
            description=(
                "Retry attempts of dependency calls; outcome is the retry attempt's own result (ok | error)"
            ),
        )
        meter.create_observable_gauge(
            names.BREAKER_STATE_GAUGE,
            callbacks=[_observe_states],
            unit="1",
            description="Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open",
        )
        self.breaker_transitions = meter.create_counter(
            names.BREAKER_TRANSITIONS,
            unit="{transition}",
            description="Circuit breaker state changes per dependency",
        )


INSTRUMENTS = InstrumentSet(ResilienceInstruments)
instruments = INSTRUMENTS.get
