"""The resilience layer's instruments: dependency call duration, retries, circuit breaker state, and
whether LLM cooldowns are shared through Redis.

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
    from agent.resilience.shared_cooldowns import SharedCooldowns

# Every breaker registers itself here (``observe_breaker``) until its owner closes it.
live_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def observe_breaker(breaker: CircuitBreaker) -> None:
    """Report ``breaker`` on the state gauge from now on; creates the gauge if nothing has yet (a
    breaker that has not been called yet still reports closed)."""
    instruments()
    live_breakers.add(breaker)


# Every Redis-backed cooldown store (``SALES_AGENT_LLM_REDIS_URL``) registers itself here.
live_shared_cooldowns: weakref.WeakSet[SharedCooldowns] = weakref.WeakSet()


def observe_shared_cooldowns(cooldowns: SharedCooldowns) -> None:
    instruments()
    live_shared_cooldowns.add(cooldowns)


def _observe_shared_cooldowns(_options: CallbackOptions) -> Iterable[Observation]:
    # One point per process: 0 when any of its stores runs on its own cooldowns.
    stores = list(live_shared_cooldowns)
    if stores:
        yield Observation(1 if all(s.available for s in stores) else 0)


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
        meter.create_observable_gauge(
            names.LLM_SHARED_COOLDOWNS_AVAILABLE,
            callbacks=[_observe_shared_cooldowns],
            unit="1",
            description="1 while LLM cooldowns are shared through Redis, 0 while this process uses its own",
        )
        self.shared_cooldown_fallbacks = meter.create_counter(
            names.LLM_SHARED_COOLDOWNS_FALLBACKS,
            unit="{call}",
            description="Cooldown reads and writes answered by this process alone (Redis unreachable)",
        )


INSTRUMENTS = InstrumentSet(ResilienceInstruments)
instruments = INSTRUMENTS.get
