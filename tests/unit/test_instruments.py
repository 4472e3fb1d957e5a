"""Instruments come from an injected MeterProvider (one instruments module per package); stamina's hooks
are off. That importing creates none is checked in a fresh interpreter
(tests/integration/test_instruments_at_import.py)."""

from __future__ import annotations

import pytest
import stamina
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agent import business_metrics
from agent.instruments import all_installed
from agent.resilience import CircuitBreaker, RetryPolicy, retry_async
from telemetry import names


def _points(reader: InMemoryMetricReader) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found.setdefault(metric.name, []).extend(dict(p.attributes) for p in metric.data.data_points)
    return found


async def test_an_injected_provider_gets_the_measurements_and_the_old_ones_come_back(otel) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    global_before = otel.metric_value(names.LEADS_CAPTURED, **{names.TENANT_ID: "injected"})
    breaker = CircuitBreaker("injected-dep", failure_threshold=1)
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise TimeoutError("first attempt times out")
        return "ok"

    with all_installed(provider), stamina.set_testing(True, attempts=3, cap=True):
        business_metrics.lead_captured("injected")
        assert (
            await retry_async(flaky, policy=RetryPolicy(), dependency="injected-dep", operation="op") == "ok"
        )
        breaker.record_failure()  # closed -> open
    points = _points(reader)
    assert points[names.LEADS_CAPTURED] == [{names.TENANT_ID: "injected"}]
    assert {names.DEPENDENCY: "injected-dep", names.OPERATION: "op", names.OUTCOME: "ok"} in points[
        names.DEPENDENCY_RETRIES
    ]
    assert points[names.BREAKER_STATE_GAUGE] == [{names.DEPENDENCY: "injected-dep"}]
    assert names.BREAKER_TRANSITIONS in points
    # The process-wide provider saw none of it, and records again once the block is left.
    assert otel.metric_value(names.LEADS_CAPTURED, **{names.TENANT_ID: "injected"}) == global_before
    business_metrics.lead_captured("injected")
    assert otel.metric_value(names.LEADS_CAPTURED, **{names.TENANT_ID: "injected"}) == global_before + 1
    breaker.unregister()
    provider.shutdown()


@pytest.mark.usefixtures("otel")
def test_setup_telemetry_turns_stamina_default_hooks_off() -> None:
    """Our retry span events and sales_agent.dependency.retries cover retries; stamina's defaults (a
    WARNING log line per retry, a prometheus_client counter nobody exports) are not wanted."""
    assert stamina.instrumentation.get_on_retry_hooks() == ()
