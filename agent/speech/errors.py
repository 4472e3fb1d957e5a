"""Speech failure classes, and what the STT/TTS chains make of a failed attempt.

``error.type`` is ``agent.failures.classify``'s code, the same as the LLM chain's and the CRM's; the
fallback reason is the LLM chain's family of it (``agent.llm.errors.classify_attempt``). What only
speech meets — a 200 answer that is not audio — is one of our errors carrying its own code.
"""

from __future__ import annotations

from agent.errors import DependencyError, SalesAgentError
from agent.llm.errors import AttemptFailure, classify_attempt
from telemetry import names
from telemetry.config_errors import ConfigError


class SpeechConfigError(SalesAgentError, ConfigError):
    """The STT or TTS configuration cannot work (raised at startup, before any call: entry points print
    it as one line and exit 2)."""


class NoUsableSpeechProvider(SpeechConfigError):
    """Every provider of a speech chain was left out (missing API keys)."""


class NotAudioResponse(DependencyError):
    """A TTS provider answered 200 with a body that is not audio (raised by our HTTP client's hook:
    livekit would otherwise play an HTML error page to the caller as PCM)."""

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"the speech endpoint answered {content_type or 'no content type'}, not audio",
            dependency="tts",
            error_type=names.ERROR_MALFORMED_RESPONSE,
        )


class SpeechChainExhausted(DependencyError):
    """Every provider of the chain failed for this request."""

    def __init__(self, what: str, tried: list[str]) -> None:
        super().__init__(
            f"every {what} provider failed ({', '.join(tried) or 'none usable'})",
            dependency=what.lower(),
            error_type=names.ERROR_ALL_PROVIDERS_FAILED,
        )


def classify_speech(exc: BaseException) -> AttemptFailure:
    """The failed attempt's ``error.type``, fallback reason and Retry-After. livekit wraps provider
    errors in its own ``APIError``s; ``classify`` reads the wrapped chain from its root. Our own
    attempt deadline (``asyncio.timeout``) raises ``TimeoutError`` over the ``CancelledError`` it
    used to stop the attempt: that is a timeout, not a cancellation."""
    if isinstance(exc, TimeoutError):
        return AttemptFailure(names.ERROR_TIMEOUT, names.ERROR_TIMEOUT, 408)
    return classify_attempt(exc)
