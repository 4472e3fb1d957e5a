"""One dependency call done right: span, circuit breaker, stamina retries, latency, error mapping.

``DependencyCaller.call`` is what every client here (CRM, calendar; the benchmarks reuse it) wraps its
single-attempt HTTP function in. Each attempt passes the breaker (an open breaker fails fast, no
network call, no retry); transient failures are retried per ``RetryPolicy``; what finally escapes is
one of the project's errors: ``CircuitOpenError``, ``DependencyRejected`` (a final 4xx: not 408, 429
or 499; the server's own message is kept) or ``DependencyError``, with ``agent.failures.classify``'s
``error.type``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import httpx
from opentelemetry import trace

from agent.errors import CircuitOpenError, DependencyError, DependencyRejected, SalesAgentError
from agent.failures import classify
from agent.resilience.breaker import CircuitBreaker
from agent.resilience.instruments import instruments
from agent.resilience.retry import RetryPolicy, retry_async
from telemetry import names
from telemetry.span_status import set_error

T = TypeVar("T")

_tracer = trace.get_tracer(__name__)


class DependencyCaller:
    """Calls to one dependency (``crm``, ``calendar``...) through its breaker and retry policy."""

    def __init__(
        self,
        dependency: str,
        breaker: CircuitBreaker,
        policy: RetryPolicy,
        overrides: Mapping[str, RetryPolicy] | None = None,
    ) -> None:
        self.dependency = dependency
        self.breaker = breaker
        self.policy = policy
        self.overrides = dict(overrides or {})

    def policy_for(self, operation: str) -> RetryPolicy:
        return self.overrides.get(operation, self.policy)

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        policy: RetryPolicy | None = None,
        span_attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> T:
        policy = policy or self.policy_for(operation)
        attrs = {names.DEPENDENCY: self.dependency, names.OPERATION: operation}
        start = time.perf_counter()
        outcome = "error"
        with _tracer.start_as_current_span(
            f"{self.dependency}.{operation}",
            attributes={**attrs, **(span_attributes or {})},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                result = await retry_async(
                    lambda: self.breaker.call(fn),
                    policy=policy,
                    dependency=self.dependency,
                    operation=operation,
                )
                outcome = "ok"
                return result
            except Exception as exc:
                error = self.translate(exc)
                outcome = _outcome(error)
                span.record_exception(exc)
                set_error(span, error.message)
                span.set_attribute(names.ERROR_TYPE, error.error_type)
                if error is exc:
                    raise
                raise error from exc
            finally:
                instruments().duration.record(time.perf_counter() - start, {**attrs, names.OUTCOME: outcome})

    def translate(self, exc: BaseException) -> SalesAgentError:
        """The project error for a failure that escaped the retry policy (``classify`` names it)."""
        if isinstance(exc, SalesAgentError):
            return exc
        dep, failure = self.dependency, classify(exc)
        status = failure.status_code
        if status is not None and 400 <= status < 500 and not failure.retryable:
            return DependencyRejected(
                f"{dep} rejected the request (HTTP {status}): {_server_message(exc)}",
                dependency=dep,
                status_code=status,
            )
        if status is not None:
            message = f"{dep} is unavailable (HTTP {status} after retries)"
        elif failure.error_type == names.ERROR_TIMEOUT:
            message = f"{dep} timed out"
        elif failure.retryable:
            message = f"{dep} is unreachable ({type(exc).__name__})"
        else:
            message = f"{dep} call failed: {exc}"
        return DependencyError(message, dependency=dep, error_type=failure.error_type)


def _outcome(error: SalesAgentError) -> str:
    if isinstance(error, CircuitOpenError):
        return "circuit_open"
    if isinstance(error, DependencyRejected):
        return "rejected"
    return "error"


def _server_message(exc: BaseException) -> str:
    if not isinstance(exc, httpx.HTTPStatusError):
        return type(exc).__name__
    response = exc.response
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:200]
    return response.reason_phrase
