"""The resilience state every job of a worker process shares: circuit breakers and cooldowns.

LiveKit runs each job (call) on its own event loop, in a thread of the worker process by default,
and each job builds its own CRM and LLM clients (httpx/aiohttp clients must stay on the loop that
created them). Breakers and cooldowns built with those clients saw only their own call: with the CRM
down every call paid its full retries (4 requests, ~9 s of silence) and the breaker never opened.
So the state lives here instead, once per process (``process_resilience()``), and the per-job
clients look their breaker up by dependency and endpoint. Breakers and cooldowns are plain state
behind locks, usable from any loop or thread.

``ResilienceState()`` on its own is a private state (a test, or a tool that wants isolation).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.resilience.breaker import CircuitBreaker
from agent.resilience.cooldowns import Cooldowns


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    recovery_s: float = 60.0
    half_open_max_calls: int = 3


class ResilienceState:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.cooldowns = Cooldowns(clock=clock)
        self._lock = threading.Lock()
        self._breakers: dict[tuple[str, str, BreakerConfig], CircuitBreaker] = {}

    def breaker(self, dependency: str, endpoint: str, config: BreakerConfig) -> CircuitBreaker:
        """The one breaker for ``dependency`` at ``endpoint`` (e.g. its base URL) with ``config``."""
        key = (dependency, endpoint, config)
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = CircuitBreaker(
                    dependency,
                    failure_threshold=config.failure_threshold,
                    recovery_s=config.recovery_s,
                    half_open_max_calls=config.half_open_max_calls,
                    clock=self.clock,
                )
                self._breakers[key] = breaker
            return breaker

    def close(self) -> None:
        """Stop reporting this state's breakers (a private state whose owner is closed)."""
        with self._lock:
            for breaker in self._breakers.values():
                breaker.unregister()
            self._breakers.clear()


_process_lock = threading.Lock()
_process_state: ResilienceState | None = None


def process_resilience() -> ResilienceState:
    """This process's shared state (created on first use)."""
    global _process_state
    with _process_lock:
        if _process_state is None:
            _process_state = ResilienceState()
        return _process_state


def reset_process_resilience() -> None:
    """Start this process's shared state afresh (tests: one test's open breaker must not reach the
    next); the old state's breakers stop reporting."""
    global _process_state
    with _process_lock:
        old, _process_state = _process_state, None
    if old is not None:
        old.close()
