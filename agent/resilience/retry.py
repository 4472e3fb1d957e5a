"""Retry policy on top of stamina, with telemetry.

stamina does the retrying (exponential backoff, jitter, attempt/time caps, testing mode); this module
adds what every dependency call here needs around it: which failures are worth retrying
(``agent.failures.classify`` decides; ``httpx_backoff_hook`` also honours Retry-After), the spec's
defaults as a configurable ``RetryPolicy``, and each retry attempt as a span event plus a
``sales_agent.dependency.retries`` counter.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import stamina
from opentelemetry import trace

from agent.failures import classify
from agent.resilience.instruments import instruments
from telemetry import names

T = TypeVar("T")

BackoffHook = Callable[[Exception], bool | float]


@dataclass(frozen=True)
class RetryPolicy:
    """The spec's retry configuration: 3 retries, 1 s initial, 10 s max, x2, jitter.

    ``retry_after_max_s``: a 429/503 whose Retry-After asks for longer than this is not retried
    inside the call (the caller queues the write or reports the dependency as unavailable) rather
    than holding a live conversation for minutes.
    """

    retries: int = 3
    wait_initial_s: float = 1.0
    wait_max_s: float = 10.0
    wait_exp_base: float = 2.0
    wait_jitter_s: float = 1.0
    timeout_s: float | None = 30.0  # overall cap on one logical call including waits
    retry_after_max_s: float = 10.0

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def with_overrides(self, **changes: float | int | None) -> RetryPolicy:
        return replace(self, **changes)  # type: ignore[arg-type]


NO_RETRY = RetryPolicy(retries=0)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying / counts against a circuit breaker (``agent.failures.classify``'s verdict)."""
    return classify(exc).retryable


def httpx_backoff_hook(policy: RetryPolicy) -> BackoffHook:
    """stamina backoff hook: False = don't retry, True = policy backoff, float = wait that long."""

    def hook(exc: Exception) -> bool | float:
        failure = classify(exc)
        if not failure.retryable:
            return False
        if failure.retry_after_s is not None:
            return failure.retry_after_s if failure.retry_after_s <= policy.retry_after_max_s else False
        return True

    return hook


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    dependency: str,
    operation: str,
    on: BackoffHook | None = None,
) -> T:
    """Run ``fn`` under ``policy`` with stamina; re-raises the last exception when it gives up.

    Each retry adds a ``retry`` event to the current span (attempt number, the failure that caused
    it, the server's Retry-After when given) and counts in ``sales_agent.dependency.retries``.
    """
    hook = on or httpx_backoff_hook(policy)
    # Fast path: the first attempt runs outside stamina. Entering stamina.retry_context builds a
    # tenacity retrier (RNG, hook inspection, per-attempt context managers): ~27 µs per call, more
    # than a span, measured by bench/instrumentation.py. Most calls succeed first time and never need it.
    started = time.monotonic()
    try:
        return await fn()
    except Exception as exc:
        if policy.retries == 0 or hook(exc) is False:
            raise
        first_failure: Exception = exc
    # Slow path: hand the failure to stamina as its attempt 1 (replayed, not re-run), so stamina alone
    # decides the backoff, honours Retry-After and testing mode, and caps attempts and the time left.
    timeout = None
    if policy.timeout_s is not None:
        timeout = policy.timeout_s - (time.monotonic() - started)
        if timeout <= 0:
            raise first_failure
    span = trace.get_current_span()
    attrs = {names.DEPENDENCY: dependency, names.OPERATION: operation}
    previous: BaseException = first_failure
    async for attempt in stamina.retry_context(
        on=hook,
        attempts=policy.attempts,
        timeout=timeout,
        wait_initial=policy.wait_initial_s,
        wait_max=policy.wait_max_s,
        wait_jitter=policy.wait_jitter_s,
        wait_exp_base=policy.wait_exp_base,
    ):
        with attempt:
            if attempt.num == 1:
                raise first_failure
            failure = classify(previous)
            event = {names.RETRY_ATTEMPT: attempt.num - 1, names.ERROR_TYPE: failure.error_type, **attrs}
            if failure.retry_after_s is not None:
                event[names.RETRY_AFTER] = failure.retry_after_s
            span.add_event(names.RETRY_EVENT, event)
            try:
                result = await fn()
            except Exception as exc:
                instruments().retries.add(1, {**attrs, names.OUTCOME: "error"})
                previous = exc
                raise
            instruments().retries.add(1, {**attrs, names.OUTCOME: "ok"})
            return result
    raise AssertionError("unreachable: stamina re-raises the last failure")  # pragma: no cover
