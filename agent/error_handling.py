"""The spec's ``withErrorHandling``: every tool runs inside it, so no failure is silent.

One wrapper gives each tool call a span named after the operation (with tenant, session and call
ids), the ``sales_agent.tool.*`` metrics, an error categorised by ``agent.errors`` into
``sales_agent.errors`` and a log line; the LLM then receives a ``livekit.agents.llm.ToolError``
whose message is written for it (what to fix, what is down, or a plain apology) and the call goes on.

Usage on an agent (``@function_tool`` must be the OUTER decorator; ``functools.wraps`` keeps the
signature and type hints, so the tool's JSON schema is the method's own)::

    class SalesAgent(Agent):
        call_context: CallContext

        @function_tool()
        @error_handled("capture_basic_info")
        async def capture_basic_info(self, name: str, email: str) -> str: ...
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pydantic
from livekit.agents.llm import StopResponse, ToolError
from opentelemetry import trace
from opentelemetry.semconv.attributes import exception_attributes

from agent.call_context import CallContext
from agent.errors import DependencyError, DependencyRejected, ErrorCategory, error_category
from agent.failures import classify
from agent.instruments import instruments
from telemetry import names
from telemetry.span_status import set_error

T = TypeVar("T")

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

# How the LLM-facing text names a dependency; unknown ones fall back to "a backend service".
_DEPENDENCY_LABELS = {
    "crm": "The CRM",
    "calendar": "The calendar",
    "llm": "The language model provider",
    "outbox": "The local CRM outbox",
}


def _validation_message(operation: str, exc: BaseException) -> str:
    if isinstance(exc, ToolError):  # the tool already wrote its message for the LLM
        return exc.message
    if isinstance(exc, pydantic.ValidationError):
        # Field path + reason only: the offending input values may be PII.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in exc.errors()
        )
        detail = problems or "the arguments are invalid"
    else:
        detail = getattr(exc, "message", None) or str(exc)
    detail = detail.rstrip(". ")
    field = getattr(exc, "field", None)
    fix = f" Ask the caller to confirm the {field} and" if field else " Correct the arguments and"
    return f"Invalid input for {operation}: {detail}.{fix} call {operation} again."


def _dependency_message(operation: str, exc: DependencyError) -> str:
    who = _DEPENDENCY_LABELS.get(exc.dependency, "A backend service")
    if isinstance(exc, DependencyRejected):
        return (
            f"{who} rejected the {operation} request, so it did not complete. Do not retry it as is; "
            "tell the caller you will follow up on this after the call."
        )
    return (
        f"{who} is temporarily unavailable, so {operation} did not complete. Tell the caller briefly, "
        "offer to try again in a moment or to follow up after the call, and continue the conversation."
    )


def _internal_message(operation: str) -> str:
    # No exception text: internals (paths, queries, keys) must never reach the LLM or the caller.
    return (
        f"Sorry, something went wrong on our side while running {operation}. Do not retry it; "
        "apologise briefly and continue the conversation."
    )


def _categorise(exc: BaseException) -> ErrorCategory:
    if isinstance(exc, ToolError | pydantic.ValidationError):
        return "validation"
    return error_category(exc)


def llm_message(operation: str, exc: BaseException) -> str:
    """The text the LLM sees for ``exc``: specific for bad input, truthful for outages, vague for bugs."""
    category = _categorise(exc)
    if category == "validation":
        return _validation_message(operation, exc)
    if category == "dependency" and isinstance(exc, DependencyError):
        return _dependency_message(operation, exc)
    return _internal_message(operation)


async def with_error_handling(operation: str, call: CallContext, fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` as the tool ``operation`` of ``call``; failures become a ``ToolError`` for the LLM."""
    span_attrs = {**call.span_attributes(), names.OPERATION: operation}
    started = time.perf_counter()
    outcome = "ok"
    with _tracer.start_as_current_span(
        operation, attributes=span_attrs, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            return await fn()
        except (StopResponse, asyncio.CancelledError):
            # Control flow, not failures: livekit's "no reply needed" and task cancellation.
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome = "error"
            category = _categorise(exc)
            error_type = classify(exc).error_type
            message = llm_message(operation, exc)
            if category == "validation":
                # A pydantic error's own text (and so its traceback) repeats the offending input values,
                # possibly PII: record the field-and-reason message instead, here and in the log line.
                span.add_event(
                    "exception",
                    {
                        exception_attributes.EXCEPTION_TYPE: type(exc).__qualname__,
                        exception_attributes.EXCEPTION_MESSAGE: message,
                    },
                )
            else:
                span.record_exception(exc)
            set_error(span, f"{category}: {error_type}")
            span.set_attribute(names.ERROR_TYPE, error_type)
            span.set_attribute(names.ERROR_CATEGORY, category)
            instruments().errors.add(
                1,
                {
                    names.ERROR_CATEGORY: category,
                    names.ERROR_TYPE: error_type,
                    names.OPERATION: operation,
                    names.TENANT_ID: call.tenant_id,
                },
            )
            extra = {**span_attrs, names.ERROR_CATEGORY: category, names.ERROR_TYPE: error_type}
            if category == "validation":
                # Expected (the LLM sent bad arguments): no stack trace needed.
                log.warning("%s: %s", operation, message, extra=extra)
            else:
                log.exception("%s failed (%s, %s)", operation, category, error_type, extra=extra)
            raise ToolError(message) from exc
        finally:
            labels = {names.OPERATION: operation, names.OUTCOME: outcome}
            ins = instruments()
            ins.tool_calls.add(1, {**labels, names.TENANT_ID: call.tenant_id})
            ins.tool_duration.record(time.perf_counter() - started, labels)


def error_handled(
    operation: str | None = None,
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Decorate an async method of an object with ``.call_context`` to run it via ``with_error_handling``.

    ``operation`` defaults to the method name. Put ``@function_tool()`` above this decorator.
    """

    def decorate(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        op = operation or method.__name__

        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
            call = getattr(self, "call_context", None)
            if not isinstance(call, CallContext):
                raise RuntimeError(f"{type(self).__name__}.call_context must be a CallContext to run {op}")
            return await with_error_handling(op, call, lambda: method(self, *args, **kwargs))

        return wrapper

    return decorate
