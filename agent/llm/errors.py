"""LLM failure classes and the mapping of provider exceptions to bounded codes.

``error.type`` (span attribute and metric label) is a short code from ``ERROR_TYPES``, never an
exception message; ``fallback.reason`` is the coarser family used on the fallback counter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agent.errors import DependencyError, SalesAgentError


class LLMConfigError(SalesAgentError):
    """The LLM configuration cannot work (raised at startup, before any call)."""


class NoUsableLLMProvider(LLMConfigError):
    """Every provider of the chain was left out (missing API keys): the agent cannot talk."""


class ProviderAttemptError(DependencyError):
    """One provider attempt failed; ``error_type`` is a code from ``ERROR_TYPES``."""

    def __init__(self, provider: str, error_type: str, detail: str) -> None:
        super().__init__(
            f"LLM provider {provider} failed: {error_type}", dependency="llm", error_type=error_type
        )
        self.provider = provider
        self.detail = detail


# error.type code -> fallback.reason family
ERROR_TYPES: dict[str, str] = {
    "connect_error": "connect_error",  # refused, DNS, TLS
    "http_5xx": "http_5xx",
    "http_429": "rate_limited",
    "http_401": "http_4xx",
    "http_403": "http_4xx",
    "http_404": "http_4xx",
    "http_4xx": "http_4xx",
    "first_token_timeout": "timeout",  # our first-token deadline cut the attempt
    "timeout": "timeout",  # LiteLLM / httpx timeout (stream_timeout between chunks)
    "malformed_response": "malformed_response",  # body is not the protocol (garbage, bad JSON)
    "stream_dropped": "stream_dropped",  # connection cut mid-stream
    "empty_response": "malformed_response",  # stream ended with neither text nor tool calls
    # LiteLLM refused locally (RouterRateLimitError: a deployment in the Router's own cooldown). No
    # request reached the provider: not a provider attempt, so never counted as one nor re-arming
    # a cooldown. The chain runs the Router without cooldowns, so this is a guard, not a path.
    "cooldown_refused": "cooldown",
    "error": "error",  # anything else
}
# Refusals raised by LiteLLM itself, by class name (importing litellm here would cost ~4 s).
LOCAL_REFUSALS = frozenset({"RouterRateLimitError", "RouterRateLimitErrorBasic"})


@dataclass(frozen=True)
class Classified:
    error_type: str
    reason: str
    status_code: int  # HTTP-like status (500 when unknown)
    retry_after_s: float | None = None  # a 429's Retry-After (seconds form only)

    @property
    def provider_attempt(self) -> bool:
        """False when no request reached the provider (a local refusal): nothing to count against it."""
        return self.error_type != "cooldown_refused"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _classify_code(exc: BaseException) -> tuple[str, int]:
    import httpx  # cheap; litellm is imported only where it is already loaded

    if isinstance(exc, ProviderAttemptError):
        return exc.error_type, 408 if ERROR_TYPES.get(exc.error_type) == "timeout" else 502
    chain = _chain(exc)
    if any(type(e).__name__ in LOCAL_REFUSALS for e in chain):
        return "cooldown_refused", 429
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain)
    if any(isinstance(e, json.JSONDecodeError | UnicodeDecodeError) for e in chain) or (
        "codec can't decode" in text or "Expecting value" in text or "JSONDecodeError" in text
    ):
        return "malformed_response", 502
    if any(isinstance(e, httpx.ConnectError | ConnectionRefusedError) for e in chain):
        return "connect_error", 503
    if any(isinstance(e, httpx.RemoteProtocolError | httpx.ReadError) for e in chain):
        return "stream_dropped", 502
    if (
        any(isinstance(e, httpx.TimeoutException | TimeoutError) for e in chain)
        or "Timeout" in type(exc).__name__
    ):
        return "timeout", 408
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        if status == 429:
            return "http_429", 429
        if status in (401, 403, 404):
            return f"http_{status}", status
        if 400 <= status < 500:
            return "http_4xx", status
        if status >= 500:
            # LiteLLM maps transport failures to InternalServerError("Connection error.") with 500.
            if "Connection error" in str(exc):
                return "connect_error", 503
            return "http_5xx", status
    if "Connection error" in str(exc) or "APIConnectionError" in type(exc).__name__:
        return "stream_dropped", 502
    return "error", 500


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None) or getattr(
        getattr(exc, "response", None), "headers", None
    )
    try:
        value = headers.get("retry-after") if headers is not None else None
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError, AttributeError):  # HTTP-date form or odd header: ignore
        return None


def classify(exc: BaseException) -> Classified:
    code, status = _classify_code(exc)
    retry_after = _retry_after(exc) if code == "http_429" else None
    return Classified(code, ERROR_TYPES.get(code, "error"), status, retry_after)
