"""LLM failure classes, and what the fallback chain makes of a failed attempt.

``error.type`` (span attribute and metric label) is ``agent.failures.classify``'s code, the same one
the CRM layers use; ``fallback.reason`` is its coarser family, used on the fallback counter.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import DependencyError, SalesAgentError
from agent.failures import Failure, classify
from telemetry import names
from telemetry.config_errors import ConfigError


class LLMConfigError(SalesAgentError, ConfigError):
    """The LLM configuration cannot work (raised at startup, before any call): exit status 2."""


class NoUsableLLMProvider(LLMConfigError):
    """Every provider of the chain was left out (missing API keys): the agent cannot talk."""


class ProviderAttemptError(DependencyError):
    """One provider attempt failed by the chain's own verdict (first-token deadline, empty stream)."""

    def __init__(self, provider: str, error_type: str, detail: str) -> None:
        super().__init__(
            f"LLM provider {provider} failed: {error_type}", dependency="llm", error_type=error_type
        )
        self.provider = provider
        self.detail = detail


@dataclass(frozen=True)
class AttemptFailure:
    """One failed provider attempt as the chain sees it."""

    error_type: str  # agent.failures.classify's code
    reason: str  # fallback.reason: the code's family (FALLBACK_REASONS)
    status_code: int  # HTTP-like status (500 when the provider did not answer)
    retry_after_s: float | None = None  # a 429's Retry-After

    @property
    def provider_attempt(self) -> bool:
        """False for a local refusal (LiteLLM's Router refused, no request was sent): not the
        provider's failure, so never counted as one, nor re-arming its cooldown."""
        return self.error_type != names.ERROR_COOLDOWN


# error.type -> fallback.reason (the coarser family on the fallback counter). Where a code is its own
# family the reason is the code; http_<status> codes are grouped by status in _reason.
FALLBACK_REASONS: dict[str, str] = {
    names.ERROR_CONNECT: names.ERROR_CONNECT,  # refused, DNS, TLS
    names.ERROR_FIRST_TOKEN_TIMEOUT: names.ERROR_TIMEOUT,  # our first-token deadline cut the attempt
    names.ERROR_TIMEOUT: names.ERROR_TIMEOUT,  # LiteLLM / httpx timeout (stream_timeout between chunks)
    names.ERROR_MALFORMED_RESPONSE: names.ERROR_MALFORMED_RESPONSE,  # not the protocol (garbage, bad JSON)
    names.ERROR_EMPTY_RESPONSE: names.ERROR_MALFORMED_RESPONSE,  # neither text nor tool calls
    names.ERROR_STREAM_DROPPED: names.ERROR_STREAM_DROPPED,  # connection cut mid-stream
    names.ERROR_COOLDOWN: names.ERROR_COOLDOWN,  # the Router refused: every deployment cooling down
}

# The HTTP-like status of failures that had no HTTP answer.
_COOLDOWN_STATUS: dict[str, int] = {
    names.ERROR_CONNECT: 503,
    names.ERROR_FIRST_TOKEN_TIMEOUT: 408,
    names.ERROR_TIMEOUT: 408,
    names.ERROR_MALFORMED_RESPONSE: 502,
    names.ERROR_EMPTY_RESPONSE: 502,
    names.ERROR_STREAM_DROPPED: 502,
}


def _reason(failure: Failure) -> str:
    status = failure.status_code
    if status is None:
        return FALLBACK_REASONS.get(failure.error_type, "error")
    if status == 429:
        return "rate_limited"
    return "http_5xx" if status >= 500 else "http_4xx"


def classify_attempt(exc: BaseException) -> AttemptFailure:
    """``agent.failures.classify`` plus what the chain needs: the fallback reason and cooldown status."""
    failure = classify(exc)
    status = failure.status_code or _COOLDOWN_STATUS.get(failure.error_type, 500)
    retry_after = failure.retry_after_s if failure.status_code == 429 else None
    return AttemptFailure(failure.error_type, _reason(failure), status, retry_after)
