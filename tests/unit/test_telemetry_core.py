"""The telemetry core with the session's in-memory exporters (see conftest ``otel``)."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import httpx
import pytest
from livekit.agents.telemetry import otel_metrics
from opentelemetry import metrics, trace

from telemetry import names, redaction
from telemetry.logs import HumanFormatter
from telemetry.redaction import EMAIL_MASK, PHONE_MASK, REDACTED, Redactor
from telemetry.resource import instance_id, package_version
from telemetry.views import TOKENS

tracer = trace.get_tracer(__name__)
meter = metrics.get_meter("sales_agent")
log = logging.getLogger("agent.test_telemetry")


def _histogram_point(otel, name: str, **attrs):
    """The one point with ``attrs``: two matching Views would give two streams, so two points."""
    points = [p for a, p in otel.metric_points(name) if all(a.get(k) == v for k, v in attrs.items())]
    assert len(points) == 1, f"expected one {name} point for {attrs}, got {len(points)}"
    return points[0]


def _bucket_upper_bound(point, value: float) -> float:
    """Upper bound of the (single) bucket holding ``value`` - inf when it fell in the overflow bucket."""
    for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
        if count and value <= bound:
            return bound
    return float("inf")


def test_span_metric_and_log_of_one_operation_share_the_trace_id(otel):
    duration = meter.create_histogram(names.TOOL_DURATION, unit="s")
    with tracer.start_as_current_span("capture_basic_info") as span:
        duration.record(0.3, {names.OPERATION: "trace-link-test", names.OUTCOME: "ok"})
        log.info("captured lead for tenant %s", "acme")
        trace_id = span.get_span_context().trace_id

    [finished] = otel.spans("capture_basic_info")
    assert finished.context.trace_id == trace_id
    [record] = [r for r in otel.logs() if r.log_record.body == "captured lead for tenant acme"]
    assert record.log_record.trace_id == trace_id
    assert record.log_record.span_id == finished.context.span_id
    point = _histogram_point(otel, names.TOOL_DURATION, operation="trace-link-test")
    assert [e.trace_id for e in point.exemplars] == [trace_id]
    assert point.exemplars[0].span_id == finished.context.span_id


def test_only_seconds_histograms_keep_exemplars(otel):
    """A latency bucket links to its trace; a count, a token total or a gauge keeps no exemplar."""
    mark = "exemplar-test"
    with tracer.start_as_current_span("exemplar-scope") as span:
        meter.create_histogram(names.DEPENDENCY_DURATION, unit="s").record(0.2, {"dependency": mark})
        meter.create_counter(names.TOOL_CALLS).add(1, {names.OPERATION: mark})
        meter.create_up_down_counter(names.SESSIONS_ACTIVE).add(1, {names.TENANT_ID: mark})
        meter.create_histogram("sales_agent.test.reply_words", unit="{word}").record(7, {"case": mark})
        trace_id = span.get_span_context().trace_id

    # One collection: the SDK hands out a stream's exemplars once, then starts afresh.
    data = otel.metric_reader.get_metrics_data()
    points = {
        metric.name: [p for p in metric.data.data_points if mark in dict(p.attributes or {}).values()]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    [latency] = points[names.DEPENDENCY_DURATION]
    assert [e.trace_id for e in latency.exemplars] == [trace_id]
    for name in (names.TOOL_CALLS, names.SESSIONS_ACTIVE, "sales_agent.test.reply_words"):
        [point] = points[name]
        assert not point.exemplars, name


def test_resource_identifies_service_instance_and_host(otel):
    with tracer.start_as_current_span("resource-check"):
        log.warning("resource check")
    [span] = otel.spans("resource-check")
    attrs = dict(span.resource.attributes)
    assert attrs["service.name"] == "sales-agent-tests"
    assert attrs["service.version"] == package_version() != "0.0.0+unknown"
    assert attrs["service.instance.id"] == instance_id()
    assert attrs["deployment.environment.name"] == "development"
    assert attrs["host.name"] and attrs["process.pid"] > 0
    assert "process.command_line" not in attrs  # argv may carry secrets
    [record] = [r for r in otel.logs() if r.log_record.body == "resource check"]
    assert record.resource.attributes["service.instance.id"] == instance_id()


def test_redaction_removes_email_and_phone_from_spans_and_logs(otel):
    with tracer.start_as_current_span("redact", attributes={"lead.contact": "jane.doe@acme.com"}) as span:
        span.set_attribute("lead.phone", "call me on +1 (415) 555-0100 please")
        span.add_event("note", {"text": "mail jane.doe@acme.com"})
        log.info("lead jane.doe@acme.com phone +44 20 7946 0958", extra={"contact": "jane.doe@acme.com"})

    [exported] = otel.spans("redact")
    assert exported.attributes["lead.contact"] == EMAIL_MASK
    assert exported.attributes["lead.phone"] == f"call me on {PHONE_MASK} please"
    assert exported.events[0].attributes["text"] == f"mail {EMAIL_MASK}"
    [record] = [r for r in otel.logs() if str(r.log_record.body).startswith("lead ")]
    assert record.log_record.body == f"lead {EMAIL_MASK} phone {PHONE_MASK}"
    assert record.log_record.attributes["contact"] == EMAIL_MASK
    everything = repr([exported.attributes, exported.events[0].attributes, record.log_record.body])
    assert "jane.doe" not in everything and "555-0100" not in everything


def test_span_redaction_runs_once_at_end_and_rebinds_only_what_changed() -> None:
    """One pass per span, when it ends: the processors after it (the exporting ones) see the
    redacted values; a clean span's containers are handed on as they are, not copied."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from telemetry.redaction import RedactingSpanProcessor, Redactor

    received = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(RedactingSpanProcessor(Redactor()))
    provider.add_span_processor(SimpleSpanProcessor(received))
    tracer_ = provider.get_tracer("test")
    with tracer_.start_as_current_span("clean", attributes={names.TENANT_ID: "acme"}) as span:
        span.add_event("retry", {"attempt": 2})
        clean_live = span
    with tracer_.start_as_current_span("dirty", attributes={names.TENANT_ID: "acme"}) as span:
        # Set after the span started: nothing is scanned before the end, so this is caught too.
        span.set_attribute("lead.contact", "jane.doe@acme.com")
        span.add_event("note", {"text": "mail jane.doe@acme.com", "n": 1})
        span.add_event("plain", {"n": 2})
        span.add_link(clean_live.get_span_context(), {"why": "ask jane.doe@acme.com"})
        span.set_status(Status(StatusCode.ERROR, "rejected jane.doe@acme.com"))
        dirty_live = span
    clean_out, dirty_out = received.get_finished_spans()
    assert clean_out._attributes is clean_live._attributes  # the live span's own container, not a copy
    assert clean_out.events[0] is clean_live.events[0]
    assert dirty_out.attributes == {names.TENANT_ID: "acme", "lead.contact": EMAIL_MASK}
    assert [dict(e.attributes or {}) for e in dirty_out.events] == [
        {"text": f"mail {EMAIL_MASK}", "n": 1},
        {"n": 2},
    ]
    assert dirty_out.events[1] is dirty_live.events[1]  # an unchanged event is not copied either
    assert [dict(link.attributes or {}) for link in dirty_out.links] == [{"why": f"ask {EMAIL_MASK}"}]
    assert dirty_out.status.description == f"rejected {EMAIL_MASK}"
    assert (dirty_out.context, dirty_out.parent, dirty_out.name) == (
        dirty_live.context,
        dirty_live.parent,
        dirty_live.name,
    )
    provider.shutdown()


def test_secrets_never_exported(otel):
    key = "sk-live-0123456789abcdefghij"
    with tracer.start_as_current_span("secrets") as span:
        span.set_attribute("llm.api_key", "plain-looking-value")
        span.set_attribute("http.request.header.authorization", "Bearer abcdefghijklmnop")
        span.set_attribute("http.url", "https://llm.example/v1?api_key=abc123&model=m")
        span.set_attribute("error.message", f"provider rejected key {key}")
        span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, 42)
        span.set_attribute(names.GEN_AI_TOKEN_TYPE, "input")
        log.error("auth failed for %s", key, extra={"session_token": "opaque"})
    [exported] = otel.spans("secrets")
    assert exported.attributes["llm.api_key"] == REDACTED
    assert exported.attributes["http.request.header.authorization"] == REDACTED
    assert exported.attributes["http.url"] == f"https://llm.example/v1?api_key={REDACTED}&model=m"
    assert exported.attributes["error.message"] == f"provider rejected key {REDACTED}"
    assert exported.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == 42  # counts are not secrets
    assert exported.attributes[names.GEN_AI_TOKEN_TYPE] == "input"
    [record] = [r for r in otel.logs() if str(r.log_record.body).startswith("auth failed")]
    assert key not in str(record.log_record.body)
    assert record.log_record.attributes["session_token"] == REDACTED


@pytest.mark.parametrize(
    "phone", ["+1 (415) 555-0100", "415-555-0100", "+447911123456", "020 7946 0958", "06 12 34 56 78"]
)
def test_phone_formats_are_redacted(phone):
    assert Redactor().text(f"call {phone} today") == f"call {PHONE_MASK} today"


def test_pre_check_never_skips_a_string_the_full_scan_would_change(monkeypatch):
    """The cheap pre-check may only skip strings no pattern matches: compare against a scan of everything."""
    rng = random.Random(20261129)
    alphabet = "0123456789" * 4 + " -.()+@abcxyzSK_=/:\t"
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(5, 30))) for _ in range(4000)]
    secrets = [
        "Authorization: BEARER abcdefgh12345",
        "basic\tdXNlcjpwYXNzd29yZA==",
        "GET /v1?ApI_KeY=zzz&x=1",
        "Token=abc",
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_" + "a1" * 12,
        "xoxb-1234567890-abc",
        "sk-abcdefgh1234",
        "secret=s3cr3t",
        "PASSWORD=hunter2",
    ]
    phones = ["(415) 555-0100", "415.555.0100", "0161 496 0000", "+447911123456"]
    ids = ["5f0c2a9e41b34d7f9a0e3c1b2d4f6a81", "capture_basic_info", "call-20261129-0001"]
    samples += secrets + phones + ids
    fast = [Redactor().text(text) for text in samples]
    monkeypatch.setattr(redaction, "_maybe_sensitive", lambda _value: True)  # scan every string
    assert fast == [Redactor().text(text) for text in samples]
    by_text = dict(zip(samples, fast, strict=True))
    assert all(by_text[text] != text for text in secrets + phones), "each secret and phone is masked"
    assert [by_text[text] for text in ids] == ids


@pytest.mark.parametrize(
    "text",
    [
        "PUT http://crm:8200/v1/contacts/ann.lee%40umbrella.example.com",  # httpx url.full, quoted key
        "HTTPStatusError: 503 for url 'http://crm/v1/contacts/ANN.LEE%40UMBRELLA.EXAMPLE.COM/notes'",
        "GET /v1/contacts/ann.lee%2540umbrella.example.com",  # encoded twice
        "PUT http://crm/v1/contacts/%2B14155550123/lead",  # E.164 phone, '+' quoted
        "GET /lookup?phone=%2B1+415+555+0123&x=1",  # form-encoded: '+' is a space
    ],
)
def test_percent_encoded_contact_data_is_redacted(text):
    redacted = Redactor().text(text)
    assert redacted != text
    lowered = redacted.lower()
    assert "ann.lee" not in lowered and "umbrella" not in lowered and "555" not in lowered, redacted


def test_redaction_is_decided_by_key_before_any_value_scan(otel):
    with tracer.start_as_current_span("by-key") as span:
        span.set_attribute(names.OPERATION, "capture_basic_info")
        span.set_attribute("db.statement", "where email = 'lee@umbrella.example.com'")
        # A `pii` segment marks user data (LiveKit's lk.pii.* convention): no pattern needs to match.
        log.info("note taken", extra={"app.pii.notes": "I am Lee from Umbrella, call me back"})
    [exported] = otel.spans("by-key")
    assert exported.attributes[names.OPERATION] == "capture_basic_info"
    assert exported.attributes["db.statement"] == f"where email = '{EMAIL_MASK}'"  # unknown key: scanned
    [record] = [r for r in otel.logs() if r.log_record.body == "note taken"]
    assert record.log_record.attributes["app.pii.notes"] == REDACTED
    assert Redactor().attributes({"lk.pii.user_input": "Lee from Umbrella"}) == {
        "lk.pii.user_input": REDACTED
    }
    assert Redactor(pii=False).attributes({"lk.pii.user_input": "Lee"}) == {"lk.pii.user_input": "Lee"}
    assert redaction.key_policy(names.TENANT_ID) is redaction.KeyPolicy.SAFE
    assert redaction.key_policy(names.CALL_ID) is redaction.KeyPolicy.SCAN  # a room name may hold a number
    # LiveKit's generated ids and states, by LiveKit's own names (an upgrade that renames one fails here).
    from livekit.agents.telemetry import trace_types

    for livekit_key in (
        trace_types.ATTR_SPEECH_ID,
        trace_types.ATTR_AGENT_TURN_ID,
        trace_types.ATTR_AGENT_PARENT_TURN_ID,
        trace_types.ATTR_OLD_STATE,
        trace_types.ATTR_NEW_STATE,
        trace_types.ATTR_AGENT_LABEL,
    ):
        assert redaction.key_policy(livekit_key) is redaction.KeyPolicy.SAFE, livekit_key
    assert redaction.key_policy("http.request.header.authorization") is redaction.KeyPolicy.SECRET
    # The project's bounded keys are not scanned at all: that is the point of naming them.
    scans = []
    original = Redactor.text
    try:
        Redactor.text = lambda self, value: scans.append(value) or original(self, value)  # type: ignore[method-assign]
        Redactor().attributes({names.TENANT_ID: "acme", names.OUTCOME: "ok", "free.text": "hello"})
    finally:
        Redactor.text = original  # type: ignore[method-assign]
    assert scans == ["hello"]


def test_redaction_leaves_ordinary_numbers_alone():
    redactor = Redactor()
    for text in ("2026-11-29 03:40:01", "v1.45.1", "127.0.0.1:4318", "ts 1764387442", "took 0.312 s"):
        assert redactor.text(text) == text
    assert Redactor(pii=False).text("jane@acme.com sk-0123456789abcdef") == f"jane@acme.com {REDACTED}"


def test_latency_histograms_use_second_buckets_ours_and_livekit(otel, monkeypatch):
    ours = meter.create_histogram(names.DEPENDENCY_DURATION, unit="s")
    ours.record(0.3, {names.DEPENDENCY: "bucket-test"})
    # Recorded through livekit's own code path, inside a (faked) job: it stamps room_id/job_id.
    monkeypatch.setattr(otel_metrics, "_job_attrs", lambda: {"room_id": "RM_x1", "job_id": "AJ_y2"})
    otel_metrics._record_turn_metrics({"e2e_latency": 0.3, "llm_metadata": {"model_name": "bucket-test"}})
    otel_metrics.record_execute_tool_duration(0.3, tool_name="bucket_test_tool")

    for name, attrs in (
        (names.DEPENDENCY_DURATION, {"dependency": "bucket-test"}),
        ("lk.agents.turn.e2e_latency", {"model_name": "bucket-test"}),
        ("gen_ai.execute_tool.duration", {"gen_ai.tool.name": "bucket_test_tool"}),
    ):
        point = _histogram_point(otel, name, **attrs)
        assert _bucket_upper_bound(point, 0.3) < 1.0, name


def test_livekit_job_ids_never_reach_metric_labels(otel, monkeypatch):
    monkeypatch.setattr(
        otel_metrics, "_job_attrs", lambda: {"room_id": "RM_x1", "job_id": "AJ_y2", "lk.agent_name": "a"}
    )
    otel_metrics._record_turn_metrics({"e2e_latency": 0.3, "llm_metadata": {"model_name": "label-test"}})
    otel_metrics.record_event_loop_blocked(0.3, severity="warn")
    otel_metrics.record_execute_tool_duration(0.3, tool_name="label_test_tool")
    seen: set[str] = set()
    for name in (
        "lk.agents.turn.e2e_latency",
        "lk.agents.event_loop.blocked_duration",
        "gen_ai.execute_tool.duration",
    ):
        for attrs, _ in otel.metric_points(name):
            seen |= set(attrs)
    assert {"model_name", "severity", "gen_ai.tool.name"} <= seen
    assert not seen & {"room_id", "job_id", "lk.agent_name"}


def test_session_and_call_ids_are_dropped_from_our_metrics(otel):
    counter = meter.create_counter(names.TOOL_CALLS)
    counter.add(1, {names.OPERATION: "forbidden-test", names.SESSION_ID: "s-1", names.CALL_ID: "c-1"})
    [(attrs, _)] = [
        (a, p) for a, p in otel.metric_points(names.TOOL_CALLS) if a.get("operation") == "forbidden-test"
    ]
    assert attrs == {"operation": "forbidden-test"}


def test_durations_and_tokens_get_their_own_buckets_once(otel):
    meter.create_histogram(names.SESSION_DURATION, unit="s").record(95.0, {names.TENANT_ID: "bucket-test"})
    point = _histogram_point(otel, names.SESSION_DURATION, **{"tenant.id": "bucket-test"})
    assert tuple(point.explicit_bounds) == names.DURATION_BUCKETS_S
    # gen_ai.client.token.usage counts tokens: token buckets, not latency ones.
    from livekit.agents.telemetry import trace_types

    otel_metrics._record_genai_tokens(
        {names.GEN_AI_REQUEST_MODEL: "bucket-test"}, input_tokens=300, output_tokens=0
    )
    point = _histogram_point(
        otel, trace_types.METRIC_GEN_AI_CLIENT_TOKEN_USAGE, **{"gen_ai.request.model": "bucket-test"}
    )
    assert tuple(point.explicit_bounds) == tuple(TOKENS._boundaries)


def test_psutil_gauges_are_plausible(otel):
    values = {
        name: otel.metric_value(name)
        for name in ("process.memory.usage", "process.unix.file_descriptor.count", "process.thread.count")
    }
    assert values["process.memory.usage"] > 1_000_000  # a Python process with the SDK loaded: MBs
    assert values["process.unix.file_descriptor.count"] > 0
    assert values["process.thread.count"] >= 1
    states = {a["system.memory.state"] for a, _ in otel.metric_points("system.memory.usage")}
    assert {"used", "free"} <= states
    assert otel.metric_value("system.memory.usage", **{"system.memory.state": "used"}) > 0
    assert otel.metric_value("system.filesystem.usage", **{"system.filesystem.state": "used"}) > 0
    assert otel.metric_value("process.cpu.time") > 0
    directions = {a["network.io.direction"] for a, _ in otel.metric_points("system.network.io")}
    assert directions == {"transmit", "receive"}
    for window in ("1m", "5m", "15m"):
        assert otel.metric_points(f"system.cpu.load_average.{window}")


def test_cpu_time_is_a_counter_by_mode_for_the_host_and_the_process(otel):
    # Counters: rate() over any window, however often and by whom they are collected.
    host = {a["cpu.mode"]: p.value for a, p in otel.metric_points("system.cpu.time")}
    assert {"idle", "user", "system"} <= set(host) and "guest" not in host  # guest is inside user
    assert host["idle"] > 0 and host["user"] > 0
    assert otel.metric_value("process.cpu.time", **{"cpu.mode": "user"}) > 0


def test_garbage_collections_are_counted_by_generation(otel):
    import gc

    gc.collect()  # a full collection: generation 2's count moves
    full = gc.get_stats()[2]["collections"]
    collections = otel.metric_points(names.CPYTHON_GC_COLLECTIONS)
    points = {a[names.CPYTHON_GC_GENERATION]: p.value for a, p in collections}
    assert set(points) == {0, 1, 2}
    assert points[2] >= full >= 1


def test_cpu_utilization_does_not_depend_on_who_collected_last(otel):
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:  # keep this process busy
        pass
    first = otel.metric_value("process.cpu.utilization")
    second = otel.metric_value("process.cpu.utilization")  # another reader collecting right after
    assert second > 0, "the second collection saw an idle process: its window was reset by the first"
    assert abs(first - second) < 0.05


def test_cpu_window_covers_at_least_the_window_whatever_the_reading_rate():
    from telemetry.system_metrics import CpuWindow

    now = [0.0]
    seconds = {"idle": 0.0, "user": 0.0}
    window = CpuWindow(lambda: dict(seconds), window_s=60, clock=lambda: now[0])
    for _ in range(12):  # 2 minutes at 90 % busy, read by three readers every 10 s
        now[0] += 10
        seconds["user"] += 9
        seconds["idle"] += 1
        readings = [window.shares() for _ in range(3)]
        assert all(r == readings[0] for r in readings)
        assert abs(readings[0]["user"] - 0.9) < 1e-9
    for _ in range(12):  # then idle: the reading follows within the window
        now[0] += 10
        seconds["idle"] += 10
        shares = window.shares()
    assert shares["idle"] == 1.0


async def test_event_loop_lag_is_measured(otel):
    task = otel.telemetry.start_loop_lag_monitor(interval_s=0.02)
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point
        lag = 0.0
        for _ in range(50):  # bounded: until the monitor has observed the block
            await asyncio.sleep(0.02)
            lag = max(lag, otel.metric_value(names.EVENT_LOOP_LAG))
            if lag >= 0.2:
                break
        assert lag >= 0.2
    finally:
        task.cancel()


async def test_httpx_requests_get_client_spans_and_traceparent(otel, echo_server):
    async with httpx.AsyncClient() as client:
        with tracer.start_as_current_span("crm-call") as parent:
            response = await client.get(f"{echo_server.url}/contacts")
    assert response.status_code == 200
    trace_id = parent.get_span_context().trace_id
    [client_span] = [
        s for s in otel.spans() if s.kind == trace.SpanKind.CLIENT and s.context.trace_id == trace_id
    ]
    assert client_span.parent.span_id == parent.get_span_context().span_id
    [headers] = echo_server.seen_headers
    assert headers["traceparent"].split("-")[1] == trace.format_trace_id(trace_id)
    assert otel.metric_points("http.client.request.duration"), "stable-semconv duration in seconds"


def test_human_log_line_is_one_line_with_trace_id():
    formatter = HumanFormatter(Redactor())
    with tracer.start_as_current_span("fmt") as span:
        try:
            raise ValueError("bad input from jane@acme.com")
        except ValueError:
            record = logging.LogRecord("agent.x", logging.ERROR, __file__, 1, "failed %s", ("op",), None)
            import sys

            record.exc_info = sys.exc_info()
            line = formatter.format(record)
    assert "\n" not in line
    assert f"trace={trace.format_trace_id(span.get_span_context().trace_id)}" in line
    assert "ERROR agent.x" in line and "failed op" in line and "ValueError" in line
    assert "jane@acme.com" not in line


def test_export_status_without_otlp(otel):
    status = otel.telemetry.export_status()
    assert status["otlp_enabled"] is False
    assert set(status["signals"]) == {"traces", "metrics", "logs"}
    assert all(s["healthy"] for s in status["signals"].values())
