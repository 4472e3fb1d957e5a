"""Exit is one bounded shutdown; malformed requests get 4xx and no traceback (issue 16, items 8 and 9).

How long the exit takes is measured by ``bench/bench_exit.py``; these tests pin the mechanisms
without timing anything: a collector that refuses connections makes the shutdown stop its OTLP
exporters first, simulate shuts telemetry down once, the health port answers malformed requests
with 400 and at most one log line without a traceback, and the local stand-ins answer 400 (never
500) to bodies of the wrong shape.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import httpx
import pytest

from agent.health import HealthRegistry, HealthServer, HealthSettings
from local_services.crm_service import run_crm_service
from local_services.harness import free_port
from local_services.llm_provider import run_llm_provider
from telemetry.settings import TelemetrySettings
from telemetry.setup import Telemetry


class _FakeOtlpExporter:
    def __init__(self) -> None:
        self.abandoned = False

    def abandon(self) -> None:
        self.abandoned = True


def _telemetry(endpoint: str) -> tuple[Telemetry, list[_FakeOtlpExporter]]:
    exporters = [_FakeOtlpExporter() for _ in range(3)]
    settings = TelemetrySettings(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, SALES_AGENT_SHUTDOWN_TIMEOUT_S=5)
    telemetry = Telemetry(settings, None, None, None, otlp_enabled=True, _otlp_exporters=exporters)  # type: ignore[arg-type]
    return telemetry, exporters


def test_shutdown_with_the_collector_refusing_connections_stops_the_otlp_exporters_first(caplog):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    telemetry, exporters = _telemetry(endpoint)
    with caplog.at_level(logging.WARNING, logger="telemetry.setup"):
        assert telemetry.shutdown() is True
    assert all(e.abandoned for e in exporters)
    assert (
        f"the OTLP collector at {endpoint}/v1/" in caplog.text
        and "does not accept connections" in caplog.text
    )


def test_shutdown_with_a_reachable_collector_exports_what_is_buffered():
    with socket.create_server(("127.0.0.1", 0)) as collector:
        telemetry, exporters = _telemetry(f"http://127.0.0.1:{collector.getsockname()[1]}")
        assert telemetry.shutdown() is True
    assert not any(e.abandoned for e in exporters)


def test_simulate_shuts_telemetry_down_once_and_never_flushes_separately():
    """Exit took the flush timeout plus the shutdown timeout, in series."""
    import inspect

    from agent.simulate import command

    source = inspect.getsource(command)
    assert "force_flush" not in source
    assert source.count("telemetry.shutdown") == 1


# --- the health port ------------------------------------------------------------------------------------

MALFORMED = (
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",  # bad header value
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",  # line too long
    b"GET /ready HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,  # TLS on the plain port
)


async def _raw(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(200), 10)
    finally:
        writer.close()


async def test_malformed_requests_to_the_health_port_get_400_and_one_line_without_traceback(caplog):
    registry = HealthRegistry(HealthSettings(cache_ttl_s=0))
    with caplog.at_level(logging.DEBUG):
        async with HealthServer(registry) as server:
            answers = [await _raw(server.port, payload) for _ in range(3) for payload in MALFORMED]
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{server.url}/health")).status_code == 200
    assert all(answer.startswith(b"HTTP/1.") and b" 400 " in answer[:20] for answer in answers), answers
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info or r.exc_text]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "health endpoints: answered 400 to a malformed request" in warnings[0]


# --- the local stand-ins ---------------------------------------------------------------------------------

LLM_BODIES: list[tuple[Any, str]] = [
    (b"not json", "Invalid JSON"),
    (b"\xff\xfe\x00", "Invalid JSON"),
    (b"[1, 2]", "Input should be an object"),
    (b'{"messages": "hello"}', "messages: Input should be a valid array"),
    (b'{"messages": [1]}', "messages.0: Input should be an object"),
    (b'{"messages": [{"content": "hi"}]}', "messages.0.role: Field required"),
    (b'{"messages": [], "stream": "often"}', "stream: Input should be a valid boolean"),
]


@pytest.mark.parametrize(("body", "fragment"), LLM_BODIES)
async def test_the_llm_stand_in_answers_400_to_a_malformed_chat_request(body, fragment):
    async with run_llm_provider("primary") as provider, httpx.AsyncClient() as client:
        response = await client.post(f"{provider.url}/chat/completions", content=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


async def test_the_llm_stand_in_answers_400_to_a_malformed_fault():
    async with run_llm_provider("primary") as provider, httpx.AsyncClient() as client:
        admin = provider.url.removesuffix("/v1")
        response = await client.post(
            f"{admin}/admin/fault", json={"mode": "slow_first_token", "delay_s": [1]}
        )
    assert response.status_code == 400 and "malformed fault request" in response.json()["error"]


CRM_REQUESTS: list[tuple[str, str, Any, str]] = [
    (
        "PUT",
        "/v1/contacts",
        {"contact_key": "a@b.co", "name": "Ada", "company": {"nested": 1}},
        "company: Input should be",
    ),
    (
        "PUT",
        "/v1/contacts/lead",
        {"contact_key": "a@b.co", "status": "hot", "score": {"x": 1}},
        "score: Input should be",
    ),
    (
        "POST",
        "/v1/contacts/notes",
        {"contact_key": "a@b.co", "text": ["a", "b"]},
        "text: Input should be a valid string",
    ),
    ("POST", "/v1/contacts/lookup", {"contact_key": 42}, "contact_key: Input should be a valid string"),
    ("POST", "/v1/calendar/bookings", {"contact_key": "a@b.co", "start": 20300101}, "start: Input should be"),
    ("POST", "/admin/fault", {"mode": "slow", "delay_s": "soon"}, "delay_s: Input should be a valid number"),
    ("POST", "/admin/fault", {"mode": "down", "count": "all"}, "count: Input should be a valid integer"),
    ("PUT", "/v1/contacts", "[1, 2]", "Input should be an object"),
]


@pytest.mark.parametrize(("method", "path", "body", "fragment"), CRM_REQUESTS)
async def test_the_crm_stand_in_answers_400_to_a_malformed_body(tmp_path, method, path, body, fragment):
    content = body.encode() if isinstance(body, str) else None
    async with run_crm_service(tmp_path / "crm.sqlite3") as url, httpx.AsyncClient(base_url=url) as client:
        if path.endswith("/lead") or path.endswith("/notes"):  # the contact exists: only the body is wrong
            await client.put(
                "/v1/contacts", json={"contact_key": "a@b.co", "name": "Ada"}, headers={"X-Tenant-Id": "acme"}
            )
        response = await client.request(
            method,
            path,
            json=None if content else body,
            content=content,
            headers={"X-Tenant-Id": "acme", "Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body" and fragment in response.json()["message"]
