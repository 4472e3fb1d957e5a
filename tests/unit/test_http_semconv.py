"""Whoever instruments httpx first must not fix the old HTTP conventions (milliseconds) for the process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability as Stability,
)
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetryStabilitySignalType as Signal,
)
from opentelemetry.instrumentation._semconv import (
    _StabilityMode as Mode,
)
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from agent.crm.backends import pooled_client
from telemetry.http_semconv import OPT_IN_VARIABLE


@pytest.fixture
def fresh_semconv_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process in which nothing has been instrumented yet and the operator set no opt-in."""
    saved = (Stability._initialized, dict(Stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING))
    monkeypatch.delenv(OPT_IN_VARIABLE, raising=False)
    Stability._initialized = False
    # An earlier test may have left httpx instrumented process-wide; the client would then skip its own.
    monkeypatch.setattr(HTTPXClientInstrumentor(), "_is_instrumented_by_opentelemetry", False)
    Stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = {}
    # An earlier test's setup_telemetry may have instrumented httpx process-wide (the instrumentor is a
    # singleton); pooled_client then leaves its client alone and this test would see nothing.
    monkeypatch.setattr(HTTPXClientInstrumentor(), "_is_instrumented_by_opentelemetry", False)
    yield
    Stability._initialized, Stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = saved[0], saved[1]


async def test_a_crm_client_built_before_telemetry_setup_still_gets_seconds(
    fresh_semconv_state: None,
) -> None:
    client = pooled_client(
        "http://127.0.0.1:9", connect_timeout_s=1, read_timeout_s=1, max_connections=1, api_key=None
    )
    await client.aclose()
    assert Stability._get_opentelemetry_stability_opt_in_mode(Signal.HTTP) == Mode.HTTP


async def test_an_operator_choice_is_kept(fresh_semconv_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPT_IN_VARIABLE, "http/dup")
    client = pooled_client(
        "http://127.0.0.1:9", connect_timeout_s=1, read_timeout_s=1, max_connections=1, api_key=None
    )
    await client.aclose()
    assert Stability._get_opentelemetry_stability_opt_in_mode(Signal.HTTP) == Mode.HTTP_DUP
