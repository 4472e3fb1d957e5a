"""One classifier: the same failure gets the same error.type on the retry events, the dependency span,
the tool span, the error metric and the LLM attempt, and one retry verdict (agent/failures.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from livekit.agents import llm

from agent.call_context import CallContext
from agent.crm import CrmSettings, build_crm
from agent.error_handling import with_error_handling
from agent.errors import CircuitOpenError, DependencyRejected
from agent.failures import classify
from agent.llm import LLMSettings, build_llm
from local_services.harness import free_port
from local_services.llm_provider import run_llm_provider
from telemetry import names

CALL = CallContext(tenant_id="acme", session_id="sess-f", call_id="call-f")
REQUEST = httpx.Request("GET", "http://crm.test/x")


def _answer(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    response = httpx.Response(status, headers=headers, request=REQUEST)
    return httpx.HTTPStatusError("x", request=REQUEST, response=response)


def _documented(code: str) -> bool:
    return code in names.ERROR_TYPES or (code.startswith("http_") and code[5:].isdigit())


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (httpx.ConnectError("refused"), "connect_error", True),
        (httpx.ConnectTimeout("slow connect"), "timeout", True),
        (httpx.ReadTimeout("slow read"), "timeout", True),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "stream_dropped",
            True,
        ),
        (httpx.ReadError("reset"), "stream_dropped", True),
        (_answer(500), "http_500", True),
        (_answer(503), "http_503", True),
        (_answer(408), "http_408", True),
        (_answer(429), "http_429", True),
        (_answer(499), "http_499", True),
        (_answer(400), "http_400", False),
        (_answer(404), "http_404", False),
        (_answer(422), "http_422", False),
        (json.JSONDecodeError("Expecting value", "<html>", 0), "malformed_response", False),
        (CircuitOpenError("open", dependency="crm", error_type="circuit_open"), "circuit_open", False),
        (DependencyRejected("no", dependency="crm", status_code=409), "http_409", False),
        (asyncio.CancelledError(), "cancelled", False),
        (KeyError("bug"), "KeyError", False),
    ],
)
def test_classify_by_type(exc: BaseException, code: str, retryable: bool) -> None:
    failure = classify(exc)
    assert (failure.error_type, failure.retryable) == (code, retryable)
    assert _documented(code) or code == "KeyError"  # an unrecognised exception: its class name


def test_retry_after_is_read_from_the_answer() -> None:
    assert classify(_answer(429, {"Retry-After": "7"})).retry_after_s == 7.0
    assert classify(_answer(503, {"Retry-After": "2"})).retry_after_s == 2.0
    assert classify(_answer(429)).retry_after_s is None


def _refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # a port that was free a moment ago: nothing listens there


def _errors_metric(otel: Any, code: str) -> float:
    return otel.metric_value(names.ERRORS, **{names.ERROR_TYPE: code, names.OPERATION: "check_availability"})


CRM_FAILURES = [
    # (fault posted to the local CRM, or None for a refused connection; expected error.type)
    ({"mode": "500"}, "http_500"),
    ({"mode": "down"}, "http_503"),
    ({"mode": "down", "style": "reset"}, "stream_dropped"),
    (None, "connect_error"),
]


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize(("fault", "code"), CRM_FAILURES, ids=[c for _f, c in CRM_FAILURES])
async def test_a_crm_failure_has_one_code_on_every_layer(otel, crm_service, tmp_path, fault, code) -> None:
    url, admin = crm_service
    if fault is None:
        url = _refused_url()
    else:
        await admin.post("/admin/fault", json=fault)
    crm = build_crm(CrmSettings(crm_url=url, outbox_path=str(tmp_path / "outbox.sqlite3")))
    before = _errors_metric(otel, code)
    try:
        with pytest.raises(Exception, match="temporarily unavailable"):  # the ToolError the LLM reads
            await with_error_handling("check_availability", CALL, lambda: crm.list_free_slots("acme"))
    finally:
        await crm.aclose()

    (dependency_span,) = otel.spans("calendar.list_free_slots")
    retry_codes = {
        e.attributes[names.ERROR_TYPE] for e in dependency_span.events if e.name == names.RETRY_EVENT
    }
    (tool_span,) = otel.spans("check_availability")
    assert retry_codes == {code}  # every retry was caused by this failure
    assert dependency_span.attributes[names.ERROR_TYPE] == code
    assert tool_span.attributes[names.ERROR_TYPE] == code
    assert _errors_metric(otel, code) == before + 1


async def test_an_llm_provider_500_has_the_crms_code(otel) -> None:
    """The same HTTP answer from an LLM provider: http_500 on the attempt span and its metric too."""
    async with run_llm_provider("primary", "500") as primary, run_llm_provider("backup") as backup:
        router_llm = build_llm(LLMSettings.for_local([primary.url, backup.url], first_token_deadline_s=5.0))
        await router_llm.warm()
        before = otel.metric_value(names.LLM_REQUESTS, **{names.ERROR_TYPE: "http_500"})
        ctx = llm.ChatContext.empty()
        ctx.add_message(role="user", content="Hi")
        await router_llm.chat(chat_ctx=ctx).collect()
    attempts = [s for s in otel.spans() if s.attributes and names.LLM_ATTEMPT in s.attributes]
    failed = [s for s in attempts if s.attributes.get(names.GEN_AI_PROVIDER_NAME) == "primary"]
    assert [s.attributes[names.ERROR_TYPE] for s in failed] == ["http_500"]
    assert otel.metric_value(names.LLM_REQUESTS, **{names.ERROR_TYPE: "http_500"}) == before + 1


def test_livekit_plugin_errors_whose_original_was_lost_are_still_named() -> None:
    """livekit's plugins re-raise SDK errors as their own; across livekit's stream tasks the original
    (``__context__``) can be gone, leaving livekit's copy of the status (the TTS chain meets this)."""
    from livekit.agents import APIStatusError, APITimeoutError

    assert classify(APIStatusError("busy", status_code=503, body=None)).error_type == "http_503"
    assert classify(APIStatusError("slow down", status_code=429, body=None)).retryable
    assert classify(APITimeoutError()).error_type == names.ERROR_TIMEOUT
