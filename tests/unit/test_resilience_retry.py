"""Retries with stamina: transient failures only, Retry-After honoured, one logical write."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import stamina

from agent.crm import Contact, CrmSettings, build_crm
from agent.errors import DependencyRejected
from agent.resilience import RetryPolicy, httpx_backoff_hook, parse_retry_after, retry_async
from telemetry import names

ANN = Contact(name="Ann Lee", company="Acme", role="CTO", email="ann@acme.com", phone="+44 20 7946 0958")


pytestmark = pytest.mark.usefixtures("fast_retries")


async def stats(admin: httpx.AsyncClient) -> dict:
    return (await admin.get("/admin/stats")).json()


def _response(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://crm.test/x")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError("x", request=request, response=response)


def test_backoff_hook_classifies_failures():
    hook = httpx_backoff_hook(RetryPolicy())
    assert hook(httpx.ConnectError("refused")) is True
    assert hook(httpx.ReadTimeout("slow")) is True
    assert hook(_response(500)) is True
    assert hook(_response(503)) is True
    assert hook(_response(429, {"Retry-After": "7"})) == 7.0
    assert hook(_response(429, {"Retry-After": "120"})) is False  # longer than wait_max: give up now
    assert hook(_response(429)) is True
    for status in (400, 401, 403, 404, 409, 422):
        assert hook(_response(status)) is False
    assert hook(ValueError("bug")) is False


def test_parse_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_5xx_then_success_is_one_logical_write(crm_env, otel):
    crm, admin = crm_env
    before_ok = otel.metric_value(names.DEPENDENCY_RETRIES, dependency="crm", outcome="ok")
    before_err = otel.metric_value(names.DEPENDENCY_RETRIES, dependency="crm", outcome="error")
    await admin.post("/admin/fault", json={"mode": "500", "count": 2})

    outcome = await crm.upsert_contact("acme", ANN)

    assert outcome.status == "synced"
    s = await stats(admin)
    assert s["requests"] == 3 and s["writes_applied"] == 1 and s["contacts"] == 1
    assert otel.metric_value(names.DEPENDENCY_RETRIES, dependency="crm", outcome="error") - before_err == 1
    assert otel.metric_value(names.DEPENDENCY_RETRIES, dependency="crm", outcome="ok") - before_ok == 1
    (span,) = otel.spans("crm.upsert_contact")
    events = [e for e in span.events if e.name == names.RETRY_EVENT]
    assert [e.attributes[names.RETRY_ATTEMPT] for e in events] == [1, 2]
    assert all(e.attributes[names.ERROR_TYPE] == "http_500" for e in events)
    assert crm.outbox_stats().depth == 0


async def test_retried_write_whose_response_was_lost_is_applied_once(crm_env):
    crm, admin = crm_env
    # The same idempotency key sent twice (a retry after a lost response) is applied once.
    first = await crm.crm.upsert_contact("acme", "ann@acme.com", ANN.model_dump(), "key-1")
    again = await crm.crm.upsert_contact("acme", "ann@acme.com", ANN.model_dump(), "key-1")
    assert first == again
    s = await stats(admin)
    assert s["writes_applied"] == 1 and s["idempotent_replays"] == 1


async def test_4xx_is_not_retried_and_raises_a_clear_error(crm_env, otel):
    crm, admin = crm_env
    with pytest.raises(DependencyRejected) as info:
        await crm.add_note("acme", "nobody@acme.com", "called back")  # contact does not exist: 404
    assert info.value.status_code == 404
    assert "crm rejected the request (HTTP 404)" in info.value.message
    assert "no such contact (save the contact first)" in info.value.message
    assert "nobody@acme.com" not in info.value.message  # no PII in errors, logs or spans
    assert (await stats(admin))["requests"] == 1
    (span,) = otel.spans("crm.add_note")
    assert not [e for e in span.events if e.name == names.RETRY_EVENT]
    assert crm.outbox_stats().depth == 0  # a rejected write is not queued: retrying can't fix it


async def test_429_retry_after_is_recorded_and_retried(crm_env, otel):
    crm, admin = crm_env
    await admin.post("/admin/fault", json={"mode": "429", "retry_after": 7, "count": 1})
    outcome = await crm.upsert_contact("acme", ANN)
    assert outcome.status == "synced"
    (span,) = otel.spans("crm.upsert_contact")
    (event,) = [e for e in span.events if e.name == names.RETRY_EVENT]
    assert event.attributes[names.RETRY_AFTER] == 7.0
    assert event.attributes[names.ERROR_TYPE] == "http_429"


async def test_429_retry_after_sets_the_actual_backoff(monkeypatch):
    """Outside testing mode stamina sleeps exactly the server's Retry-After (sleep recorded, not done)."""
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("stamina._core._smart_sleep", fake_sleep)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise _response(429, {"Retry-After": "7"})
        if calls == 2:
            raise _response(503)
        return "ok"

    with stamina.set_testing(False):
        result = await retry_async(
            flaky, policy=RetryPolicy(wait_jitter_s=0), dependency="crm", operation="probe"
        )
    assert result == "ok"
    assert slept == [7.0, 2.0]  # Retry-After, then the policy's own backoff (1 s x 2^1, no jitter)


async def test_retry_after_longer_than_max_wait_queues_the_write(crm_env):
    crm, admin = crm_env
    await admin.post("/admin/fault", json={"mode": "429", "retry_after": 300, "count": 1})
    outcome = await crm.upsert_contact("acme", ANN)
    assert outcome.status == "queued"
    assert (await stats(admin))["requests"] == 1


async def test_connection_refused_is_transient(tmp_path):
    crm = build_crm(CrmSettings(crm_url="http://127.0.0.1:9", outbox_path=str(tmp_path / "o.sqlite3")))
    try:
        outcome = await crm.upsert_contact("acme", ANN)
    finally:
        await crm.aclose()
    assert outcome.status == "queued"
    assert "will sync to the CRM shortly" in outcome.message


async def test_first_attempt_that_succeeds_never_enters_stamina(monkeypatch):
    """The fast path: a call that works first time costs no retrier (bench/instrumentation.py)."""

    def no_retrier(**_kwargs: object) -> None:
        raise AssertionError("stamina.retry_context entered for a call that succeeded")

    monkeypatch.setattr(stamina, "retry_context", no_retrier)

    async def works() -> str:
        return "ok"

    assert await retry_async(works, policy=RetryPolicy(), dependency="crm", operation="probe") == "ok"


async def test_non_transient_first_failure_is_raised_without_retrier(monkeypatch):
    monkeypatch.setattr(stamina, "retry_context", lambda **_: pytest.fail("retrier built for a 404"))

    async def rejected() -> str:
        raise _response(404)

    with pytest.raises(httpx.HTTPStatusError):
        await retry_async(rejected, policy=RetryPolicy(), dependency="crm", operation="probe")


async def test_time_spent_in_the_first_attempt_counts_against_the_timeout():
    calls = 0

    async def slow_then_503() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise _response(503)

    policy = RetryPolicy(timeout_s=0.01)  # the first attempt alone uses up the call's budget
    with pytest.raises(httpx.HTTPStatusError):
        await retry_async(slow_then_503, policy=policy, dependency="crm", operation="probe")
    assert calls == 1
