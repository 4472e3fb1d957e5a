"""A circuit breaker per dependency (the spec's: 5 failures, 60 s recovery, 3 calls in half-open).

Hand-written on purpose: the maintained asyncio breakers on PyPI don't fit the spec. purgatory
(threshold + ttl, state-change listeners) and aiobreaker (a pybreaker port: fail_max,
timeout_duration, listeners) both let a single trial call decide the half-open state; the spec needs
"3 calls in half-open", and the tests need an injectable clock to move through the 60 s recovery
without sleeping. The state machine below is ~100 lines with no I/O.

Semantics:
- closed: calls pass; ``failure_threshold`` consecutive transient failures open the circuit.
- open: calls fail fast with ``CircuitOpenError`` (no network call) until ``recovery_s`` elapsed.
- half-open: up to ``half_open_max_calls`` trial calls are admitted; any failure re-opens, and once
  that many trials have succeeded the circuit closes. Further callers meanwhile fail fast.
Non-transient outcomes (a 4xx: the dependency answered, the request was wrong) count as success.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from agent.errors import CircuitOpenError
from agent.resilience.instruments import instruments, live_breakers, observe_breaker
from agent.resilience.retry import is_transient
from telemetry import names

T = TypeVar("T")
log = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    """Values are the gauge values (0 closed, 1 half-open, 2 open)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_s: float = 60.0,
        half_open_max_calls: int = 3,
        is_failure: Callable[[BaseException], bool] = is_transient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or recovery_s < 0:
            raise ValueError("failure_threshold and half_open_max_calls must be >= 1, recovery_s >= 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_s = recovery_s
        self.half_open_max_calls = half_open_max_calls
        self._is_failure = is_failure
        self._clock = clock
        self._lock = threading.Lock()  # the state gauge is read from the metric reader's thread
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials_admitted = 0
        self._trials_succeeded = 0
        observe_breaker(self)

    # --- state ------------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def unregister(self) -> None:
        """Stop reporting this breaker's state gauge (its owner is closed)."""
        live_breakers.discard(self)

    def _maybe_half_open(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.recovery_s:
            self._transition(BreakerState.HALF_OPEN)

    def _transition(self, to: BreakerState) -> None:
        old, self._state = self._state, to
        if to is BreakerState.OPEN:
            self._opened_at = self._clock()
        if to is BreakerState.HALF_OPEN:
            self._trials_admitted = self._trials_succeeded = 0
        if to is BreakerState.CLOSED:
            self._failures = 0
        instruments().breaker_transitions.add(
            1, {names.DEPENDENCY: self.name, names.BREAKER_FROM: old.label, names.BREAKER_TO: to.label}
        )
        level = logging.WARNING if to is BreakerState.OPEN else logging.INFO
        log.log(level, "circuit breaker %s: %s -> %s", self.name, old.label, to.label)

    # --- calls ------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Admit one call or raise ``CircuitOpenError``. Pair with ``record_success/failure/release``."""
        with self._lock:
            self._maybe_half_open()
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.HALF_OPEN and self._trials_admitted < self.half_open_max_calls:
                self._trials_admitted += 1
                return
            retry_in = max(0.0, self.recovery_s - (self._clock() - self._opened_at))
        raise CircuitOpenError(
            f"{self.name} is unavailable (circuit open, next trial in {retry_in:.0f} s)",
            dependency=self.name,
            error_type=names.ERROR_CIRCUIT_OPEN,
        )

    def record_success(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._trials_succeeded += 1
                if self._trials_succeeded >= self.half_open_max_calls:
                    self._transition(BreakerState.CLOSED)
            elif self._state is BreakerState.CLOSED:
                self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._transition(BreakerState.OPEN)
            elif self._state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._transition(BreakerState.OPEN)

    def release(self) -> None:
        """An admitted call ended without a verdict (cancelled): give its half-open slot back."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN and self._trials_admitted > self._trials_succeeded:
                self._trials_admitted -= 1

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` through the breaker; transient failures (``is_failure``) count against it."""
        self.acquire()
        try:
            result = await fn()
        except Exception as exc:
            if self._is_failure(exc):
                self.record_failure()
            else:
                self.record_success()
            raise
        except BaseException:  # cancelled: neither verdict
            self.release()
            raise
        self.record_success()
        return result
