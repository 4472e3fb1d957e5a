"""What a failure is, decided once: ``classify(exc)`` for every layer.

The LLM chain (one provider attempt), the dependency caller (CRM, calendar), its retry events and
circuit breaker, and the tool wrapper all ask this module, so one failure carries one ``error.type``
code everywhere (the list is beside ``ERROR_TYPE`` in ``telemetry/names.py``) and one answer to "is
it worth retrying?". The decision is made on exception types, never on message text.

Retryability follows livekit-agents' ``_exceptions.py``: connection failures, timeouts, dropped
streams and 5xx answers are retryable; a 4xx answer is final (the request itself is wrong) except
408 (request timeout), 429 (rate limited) and 499 (client closed request).

Wrapped failures: httpx, the OpenAI SDK and LiteLLM each wrap the exception below them, LiteLLM by
raising inside ``except`` (so the link is ``__context__``, not ``__cause__``). The chain is read from
its root, the original failure, upwards and the first exception a rule recognises decides: the root
knows best what happened (a refused connection inside LiteLLM's ``InternalServerError`` with status
500 is a connect error, not an HTTP 500). The OpenAI SDK's and LiteLLM's classes are looked up only
when those libraries are already imported: their exceptions cannot exist otherwise, and importing
LiteLLM costs seconds. livekit's plugins (the speech chains') wrap the SDK's errors in livekit's
``APIStatusError`` / ``APITimeoutError``, recognised the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from agent.errors import DependencyRejected, SalesAgentError
from telemetry import names

# 4xx answers that may succeed when sent again (livekit-agents: APIStatusError.retryable).
RETRYABLE_4XX = frozenset({408, 429, 499})


@dataclass(frozen=True, slots=True)
class Failure:
    error_type: str  # a code from telemetry.names.ERROR_TYPES, else the exception's class name
    retryable: bool  # worth another attempt; also what counts against a circuit breaker
    status_code: int | None = None  # the HTTP status the dependency answered with, if it answered
    retry_after_s: float | None = None  # how long the dependency asked us to wait (Retry-After)


def classify(exc: BaseException) -> Failure:
    """The failure ``exc`` stands for (see the module docstring for how it is decided)."""
    if isinstance(exc, SalesAgentError):  # ours: decided where it was raised, whatever it wraps
        return _recognise(exc)  # type: ignore[return-value]
    for link in reversed(_chain(exc)):
        failure = _recognise(link)
        if failure is not None:
            return failure
    return Failure(type(exc).__name__, retryable=False)


def http_failure(status: int, retry_after_s: float | None = None) -> Failure:
    """The failure for an HTTP answer with ``status``."""
    retryable = status >= 500 or status in RETRYABLE_4XX
    return Failure(names.ERROR_HTTP.format(status=status), retryable, status, retry_after_s)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (``__cause__``, else ``__context__``), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _loaded(module: str, name: str) -> tuple[type[BaseException], ...]:
    """``(module.name,)`` if that module is imported, else ``()``: an isinstance check nothing passes."""
    cls = getattr(sys.modules.get(module), name, None)
    return (cls,) if isinstance(cls, type) else ()


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    return parse_retry_after(headers.get("retry-after")) if headers is not None else None


def _response_headers(exc: BaseException) -> Mapping[str, str] | None:
    # The OpenAI SDK keeps the httpx response; LiteLLM copies the headers for the errors it maps itself.
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers if headers is not None else getattr(exc, "litellm_response_headers", None)


def _recognise(exc: BaseException) -> Failure | None:
    if isinstance(exc, SalesAgentError):  # already decided where it was raised
        status = exc.status_code if isinstance(exc, DependencyRejected) else None
        return Failure(exc.error_type, retryable=False, status_code=status)
    if isinstance(exc, asyncio.CancelledError):
        return Failure(names.ERROR_CANCELLED, retryable=False)
    if isinstance(
        exc, (json.JSONDecodeError, UnicodeDecodeError, *_loaded("openai", "APIResponseValidationError"))
    ):
        # The same body comes back if asked again; and a CRM answering garbage is not "down".
        return Failure(names.ERROR_MALFORMED_RESPONSE, retryable=False)
    if isinstance(exc, (httpx.TimeoutException, TimeoutError, *_loaded("openai", "APITimeoutError"))):
        return Failure(names.ERROR_TIMEOUT, retryable=True)
    if isinstance(exc, httpx.ConnectError | ConnectionRefusedError | socket.gaierror):
        return Failure(names.ERROR_CONNECT, retryable=True)
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError | ConnectionResetError):
        return Failure(names.ERROR_STREAM_DROPPED, retryable=True)
    if isinstance(exc, (httpx.TransportError, *_loaded("openai", "APIConnectionError"))):
        return Failure(names.ERROR_CONNECT, retryable=True)  # any other transport failure
    if isinstance(exc, httpx.HTTPStatusError):
        return http_failure(exc.response.status_code, _retry_after(exc.response.headers))
    if isinstance(exc, _loaded("openai", "APIStatusError")):  # LiteLLM's HTTP errors subclass it
        return http_failure(exc.status_code, _retry_after(_response_headers(exc)))  # type: ignore[attr-defined]
    if isinstance(exc, _loaded("litellm.exceptions", "APIError")):  # an HTTP error LiteLLM did not map
        return http_failure(exc.status_code, _retry_after(_response_headers(exc)))  # type: ignore[attr-defined]
    if isinstance(exc, _loaded("livekit.agents", "APIStatusError")) and exc.status_code > 0:  # type: ignore[attr-defined]
        # livekit's plugins re-raise the SDK's HTTP errors as their own; where the original is lost
        # (re-raised across livekit's stream tasks) the status they copied is what is left.
        return http_failure(exc.status_code)  # type: ignore[attr-defined]
    if isinstance(exc, _loaded("livekit.agents", "APITimeoutError")):
        return Failure(names.ERROR_TIMEOUT, retryable=True)
    if isinstance(exc, _loaded("litellm.types.router", "RouterRateLimitError")):
        # The Router refused locally, every deployment of the group cooling down: no request was sent.
        return Failure(names.ERROR_COOLDOWN, retryable=False, retry_after_s=exc.cooldown_time)  # type: ignore[attr-defined]
    return None
