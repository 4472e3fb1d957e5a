"""Speech failure classes and the mapping of provider failures to bounded ``error.type`` codes.

The codes are the LLM chain's (``agent.llm.errors.ERROR_TYPES``), so dashboards and alerts read one
vocabulary; what only speech can meet (a body that is not audio, an unusable transcript) maps onto
``malformed_response``.
"""

from __future__ import annotations

from agent.errors import DependencyError, SalesAgentError
from agent.llm.errors import ERROR_TYPES, Classified, classify


class SpeechConfigError(SalesAgentError):
    """The STT or TTS configuration cannot work (raised at startup, before any call)."""


class NoUsableSpeechProvider(SpeechConfigError):
    """Every provider of a speech chain was left out (missing API keys)."""


class SpeechAttemptError(DependencyError):
    """One STT/TTS attempt failed for a reason we detected ourselves; ``error_type`` is a code."""

    def __init__(self, provider: str, error_type: str, detail: str) -> None:
        super().__init__(f"speech provider {provider} failed: {error_type} ({detail})", dependency="speech",
                         error_type=error_type)  # fmt: skip
        self.provider = provider
        self.detail = detail


class NotAudioResponse(ValueError):
    """A TTS provider answered 200 with a body that is not audio (raised by the HTTP client's hook)."""


class SpeechChainExhausted(DependencyError):
    """Every provider of the chain failed for this request."""

    def __init__(self, what: str, tried: list[str]) -> None:
        super().__init__(f"every {what} provider failed ({', '.join(tried) or 'none usable'})",
                         dependency=what.lower(), error_type="all_providers_failed")  # fmt: skip


def classify_speech(exc: BaseException) -> Classified:
    """``classify`` plus the failures only speech has; livekit wraps provider errors in its own
    ``APIError``s, whose ``__cause__`` chain the LLM classifier already walks."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            break
        if isinstance(current, NotAudioResponse):
            return Classified("malformed_response", "malformed_response", 502)
        if isinstance(current, SpeechAttemptError):
            return Classified(current.error_type, ERROR_TYPES.get(current.error_type, "error"), 502)
        current = current.__cause__ or current.__context__
    return classify(exc)
