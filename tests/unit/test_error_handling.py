"""The error wrapper: categories -> metric + span + log + the ToolError text the LLM sees."""

from __future__ import annotations

import asyncio
import json

import pytest
from livekit.agents.llm import (
    FunctionToolCall,
    StopResponse,
    ToolContext,
    ToolError,
    execute_function_call,
    function_tool,
)
from livekit.agents.llm.utils import build_legacy_openai_schema
from opentelemetry.trace import StatusCode

from agent.call_context import CallContext
from agent.error_handling import error_handled, with_error_handling
from agent.errors import CircuitOpenError, DependencyError, DependencyRejected, InvalidInput
from telemetry import names

CALL = CallContext(tenant_id="acme", session_id="sess-1", call_id="call-1")


def _errors(otel, category: str, operation: str) -> float:
    return otel.metric_value(names.ERRORS, **{names.ERROR_CATEGORY: category, names.OPERATION: operation})


async def test_success_records_span_and_ok_metrics(otel):
    before = otel.metric_value(names.TOOL_CALLS, **{names.OPERATION: "op_ok", names.OUTCOME: "ok"})

    async def work() -> str:
        return "done"

    assert await with_error_handling("op_ok", CALL, work) == "done"
    (span,) = otel.spans("op_ok")
    assert span.attributes[names.TENANT_ID] == "acme"
    assert span.attributes[names.SESSION_ID] == "sess-1"
    assert span.attributes[names.CALL_ID] == "call-1"
    assert span.attributes[names.OPERATION] == "op_ok"
    assert span.status.status_code != StatusCode.ERROR
    after = otel.metric_value(
        names.TOOL_CALLS, **{names.OPERATION: "op_ok", names.OUTCOME: "ok", names.TENANT_ID: "acme"}
    )
    assert after == before + 1
    assert otel.metric_value(names.TOOL_DURATION, **{names.OPERATION: "op_ok"}) >= 1


@pytest.mark.parametrize(
    ("exc", "category", "error_type", "expected_text", "forbidden_text"),
    [
        (
            InvalidInput("'bob@' is not a valid email address", field="email"),
            "validation",
            "InvalidInput",
            "not a valid email address",
            None,
        ),
        (
            DependencyError("connect timeout to 10.0.0.5:8080", dependency="crm"),
            "dependency",
            "DependencyError",
            "The CRM is temporarily unavailable",
            "10.0.0.5",
        ),
        (
            CircuitOpenError("breaker open", dependency="calendar"),
            "dependency",
            "CircuitOpenError",
            "The calendar is temporarily unavailable",
            None,
        ),
        (
            DependencyRejected("400 from CRM", dependency="crm", status_code=422),
            "dependency",
            "http_422",
            "The CRM rejected",
            None,
        ),
        (
            KeyError("SECRET_API_KEY=sk-123 at /srv/app/db.py"),
            "internal",
            "KeyError",
            "something went wrong on our side",
            "sk-123",
        ),
    ],
)
async def test_failure_becomes_tool_error(
    otel, caplog, exc, category, error_type, expected_text, forbidden_text
):
    op = f"op_{category}_{error_type}"
    before = _errors(otel, category, op)

    async def work() -> None:
        raise exc

    with pytest.raises(ToolError) as info:
        await with_error_handling(op, CALL, work)

    message = info.value.message
    assert expected_text in message
    if forbidden_text:
        assert forbidden_text not in message
    assert info.value.__cause__ is exc

    assert _errors(otel, category, op) == before + 1
    assert otel.metric_value(names.ERRORS, **{names.ERROR_TYPE: error_type, names.OPERATION: op}) >= 1
    assert otel.metric_value(names.TOOL_CALLS, **{names.OPERATION: op, names.OUTCOME: "error"}) >= 1

    (span,) = otel.spans(op)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[names.ERROR_CATEGORY] == category
    assert span.attributes[names.ERROR_TYPE] == error_type
    assert any(event.name == "exception" for event in span.events)

    # The OTel logging bridge is the telemetry module's job; here the stdlib record is checked.
    records = [r for r in caplog.records if getattr(r, names.OPERATION, None) == op]
    assert len(records) == 1
    record = records[0]
    assert getattr(record, names.ERROR_CATEGORY) == category
    assert getattr(record, names.SESSION_ID) == "sess-1"
    assert getattr(record, names.TENANT_ID) == "acme"
    if category == "validation":
        assert record.levelname == "WARNING"
        assert record.exc_info is None
    else:
        assert record.levelname == "ERROR"
        assert record.exc_info is not None and record.exc_info[1] is exc


async def test_stop_response_and_cancellation_pass_through(otel):
    async def stop() -> None:
        raise StopResponse()

    with pytest.raises(StopResponse):
        await with_error_handling("op_stop", CALL, stop)

    async def cancelled() -> None:
        raise asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        await with_error_handling("op_cancel", CALL, cancelled)
    assert otel.metric_value(names.ERRORS, **{names.OPERATION: "op_cancel"}) == 0


class _Tools:
    """A minimal object with tools the way the SalesAgent declares them."""

    def __init__(self, call: CallContext | None) -> None:
        self.call_context = call
        self.seen: list[tuple[str, str]] = []

    @function_tool()
    @error_handled("capture_email")
    async def capture_email(self, name: str, email: str, phone: str | None = None) -> str:
        """Record the caller's name and email.

        Args:
            name: The caller's full name.
            email: The caller's email address.
            phone: Optional phone number.
        """
        if "@" not in email or email.endswith("@"):
            raise InvalidInput(f"'{email}' is not a valid email address", field="email")
        self.seen.append((name, email))
        return f"Saved {name}."


def test_function_tool_schema_keeps_parameters():
    tool = _Tools(CALL).capture_email
    schema = build_legacy_openai_schema(tool)["function"]
    assert schema["name"] == "capture_email"
    assert schema["description"].startswith("Record the caller's name and email")
    params = schema["parameters"]
    assert set(params["properties"]) == {"name", "email", "phone"}
    assert set(params["required"]) == {"name", "email"}
    assert params["properties"]["email"]["description"] == "The caller's email address."


async def _run_tool(tools: _Tools, args: dict[str, str]):
    ctx = ToolContext([tools.capture_email])
    call = FunctionToolCall(name="capture_email", arguments=json.dumps(args), call_id="fc-1")
    return await execute_function_call(call, ctx)


async def test_under_function_tool_ok_and_validation_error(otel):
    tools = _Tools(CALL)
    ok = await _run_tool(tools, {"name": "Ada", "email": "ada@example.com"})
    assert not ok.fnc_call_out.is_error
    assert ok.fnc_call_out.output == "Saved Ada."
    assert tools.seen == [("Ada", "ada@example.com")]

    before = _errors(otel, "validation", "capture_email")
    bad = await _run_tool(tools, {"name": "Bob", "email": "bob@"})
    assert bad.fnc_call_out.is_error
    assert "not a valid email address" in bad.fnc_call_out.output
    assert "capture_email" in bad.fnc_call_out.output
    assert _errors(otel, "validation", "capture_email") == before + 1
    assert len(otel.spans("capture_email")) == 2


async def test_missing_call_context_is_a_clear_error():
    with pytest.raises(RuntimeError, match="call_context must be a CallContext"):
        await _Tools(None).capture_email(name="x", email="x@example.com")


async def test_error_log_reaches_otel_with_the_tool_span_trace_id(otel):
    async def boom() -> None:
        raise RuntimeError("kaput")

    with pytest.raises(ToolError):
        await with_error_handling("op_log_bridge", CALL, boom)
    (span,) = otel.spans("op_log_bridge")
    records = [r.log_record for r in otel.logs()]
    records = [r for r in records if (r.attributes or {}).get(names.OPERATION) == "op_log_bridge"]
    assert len(records) == 1
    record = records[0]
    assert record.trace_id == span.context.trace_id
    assert record.span_id == span.context.span_id
    assert record.attributes[names.ERROR_CATEGORY] == "internal"
    assert record.attributes[names.CALL_ID] == "call-1"
    assert "Traceback" in record.attributes["exception.stacktrace"]


async def test_pydantic_validation_error_is_a_validation_error_without_the_values(otel):
    from pydantic import BaseModel, EmailStr

    class Args(BaseModel):
        name: str
        email: EmailStr

    before = _errors(otel, "validation", "op_pydantic")

    async def work() -> None:
        Args.model_validate({"email": "secret-person@@example"})

    with pytest.raises(ToolError) as info:
        await with_error_handling("op_pydantic", CALL, work)
    message = info.value.message
    assert "name: Field required" in message
    assert "email: value is not a valid email address" in message
    assert "secret-person" not in message  # input values may be PII
    assert _errors(otel, "validation", "op_pydantic") == before + 1
    # Nor in what is exported: the span's exception event and the log line carry the safe message.
    (span,) = otel.spans("op_pydantic")
    (event,) = [e for e in span.events if e.name == "exception"]
    assert "secret-person" not in str(dict(event.attributes))
    logged = [str(r.log_record.body) for r in otel.logs() if "op_pydantic" in str(r.log_record.body)]
    assert logged and not any("secret-person" in body for body in logged)


async def test_tool_error_raised_by_the_tool_keeps_its_message(otel):
    async def work() -> None:
        raise ToolError("slot_start must be one of the offered slots")

    with pytest.raises(ToolError, match=r"^slot_start must be one of the offered slots$"):
        await with_error_handling("op_toolerror", CALL, work)
    assert _errors(otel, "validation", "op_toolerror") >= 1


async def test_our_status_messages_survive_livekits_pii_filter(otel):
    """With PII redaction on, livekit's filter replaces the status of any span that recorded an exception
    with "exception details redacted"; our own (PII-safe) message must still reach the exporter."""
    from agent.errors import CircuitOpenError
    from agent.resilience import CircuitBreaker, DependencyCaller, RetryPolicy

    breaker = CircuitBreaker("crm-status-test", failure_threshold=1)
    caller = DependencyCaller("crm-status-test", breaker, RetryPolicy(retries=0))

    async def down() -> None:
        raise CircuitOpenError(
            "crm is unavailable (circuit open, next trial in 42 s)",
            dependency="crm",
            error_type="circuit_open",
        )

    try:
        with pytest.raises(CircuitOpenError):
            await caller.call("upsert_contact", down)
    finally:
        breaker.unregister()
    (span,) = otel.spans("crm-status-test.upsert_contact")
    assert any(event.name == "exception" for event in span.events)  # what triggers livekit's filter
    assert span.status.description == "crm is unavailable (circuit open, next trial in 42 s)"
