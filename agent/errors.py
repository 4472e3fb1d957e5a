"""The project's error taxonomy.

Every failure a tool can meet is one of three categories, which become the ``error.category``
label of ``sales_agent.errors`` and decide what the LLM is told:

- ``validation``: the input was wrong (a malformed email, a missing field). Nothing was sent
  anywhere; the message says exactly what to fix.
- ``dependency``: a CRM, calendar or LLM provider failed or its circuit is open.
- ``internal``: a bug. Anything not raised as one of the classes below counts as internal.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from telemetry import names

ErrorCategory = Literal["validation", "dependency", "internal"]


class SalesAgentError(Exception):
    """Base class; ``category`` decides the metric label and the LLM-facing message."""

    category: ClassVar[ErrorCategory] = "internal"

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Short, bounded code for the ``error.type`` attribute (never the free-text message).
        self.error_type = error_type or type(self).__name__


class InvalidInput(SalesAgentError):
    """Bad input from the LLM or the caller; safe to show the message to the LLM."""

    category = "validation"

    def __init__(self, message: str, *, field: str | None = None, error_type: str | None = None) -> None:
        super().__init__(message, error_type=error_type)
        self.field = field


class DependencyError(SalesAgentError):
    """A dependency (CRM, calendar, LLM provider) failed after the retry policy was applied."""

    category = "dependency"

    def __init__(self, message: str, *, dependency: str, error_type: str | None = None) -> None:
        super().__init__(message, error_type=error_type)
        self.dependency = dependency


class CircuitOpenError(DependencyError):
    """The dependency's circuit breaker is open: failed fast, no network call was made."""


class DependencyRejected(DependencyError):
    """The dependency answered with a non-retryable 4xx (the request itself is wrong)."""

    def __init__(self, message: str, *, dependency: str, status_code: int) -> None:
        super().__init__(
            message, dependency=dependency, error_type=names.ERROR_HTTP.format(status=status_code)
        )
        self.status_code = status_code


def error_category(exc: BaseException) -> ErrorCategory:
    return exc.category if isinstance(exc, SalesAgentError) else "internal"
