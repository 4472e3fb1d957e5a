"""Fixtures shared by ``tests/unit`` and ``tests/integration`` (each folder's conftest.py holds its rule).

OpenTelemetry's global providers are set once per process, so the whole test session shares one
``setup_telemetry`` call with in-memory exporters; each test gets them cleared through ``otel``.
Modules beside this file that are not ``test_*.py`` (``prometheus_helpers.py``) are helpers, imported
by name: pytest puts this folder on ``sys.path`` (``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina

# Offline: LiteLLM must use its bundled cost map, never the network (README: LITELLM_LOCAL_MODEL_COST_MAP).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The test process starts many runtimes and keeps earlier tests' objects around: the start-up heap
# freeze (agent/heap.py) is tested on its own, not applied to the whole test session.
os.environ.setdefault("SALES_AGENT_GC_FREEZE", "false")

from opentelemetry.sdk._logs.export import InMemoryLogExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry.settings import TelemetrySettings
from telemetry.setup import Telemetry, setup_telemetry


@dataclass
class OtelCapture:
    telemetry: Telemetry
    span_exporter: InMemorySpanExporter
    metric_reader: InMemoryMetricReader
    log_exporter: InMemoryLogExporter

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        found = list(self.span_exporter.get_finished_spans())
        return [s for s in found if name is None or s.name == name]

    def logs(self) -> list[Any]:
        return list(self.log_exporter.get_finished_logs())

    def metric_points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """All data points of metric ``name`` (cumulative), as (attributes, point)."""
        data = self.metric_reader.get_metrics_data()
        points: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return points
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
        return points

    def metric_value(self, name: str, **attrs: Any) -> float:
        """Sum of counter/gauge values (or histogram counts) whose attributes include ``attrs``."""
        total = 0.0
        for point_attrs, point in self.metric_points(name):
            if all(point_attrs.get(k) == v for k, v in attrs.items()):
                total += getattr(point, "value", None) if hasattr(point, "value") else point.count
        return total

    def reset(self) -> None:
        self.span_exporter.clear()
        self.log_exporter.clear()


@pytest.fixture(scope="session")
def _otel_session() -> Iterator[OtelCapture]:
    span_exporter = InMemorySpanExporter()
    metric_reader = InMemoryMetricReader()
    log_exporter = InMemoryLogExporter()
    telemetry = setup_telemetry(
        # In-memory only, whatever the developer's environment says (no OTLP, no /metrics server).
        TelemetrySettings(
            OTEL_SERVICE_NAME="sales-agent-tests",
            OTEL_SDK_DISABLED=False,
            OTEL_EXPORTER_OTLP_ENDPOINT=None,
            SALES_AGENT_METRICS_ENABLED=False,
            # Every livekit instrument aggregated: tests check what livekit records through our views;
            # the default (its duplicates of ours dropped) is tested on a private provider.
            SALES_AGENT_METRICS_DETAIL="all",
        ),
        span_exporters=[span_exporter],
        metric_readers=[metric_reader],
        log_exporters=[log_exporter],
    )
    yield OtelCapture(telemetry, span_exporter, metric_reader, log_exporter)
    telemetry.shutdown()


@pytest.fixture
def otel(_otel_session: OtelCapture) -> OtelCapture:
    """The process-wide in-memory telemetry, emptied of earlier tests' spans and logs.

    Metrics are cumulative: compare values before and after the code under test.
    """
    _otel_session.reset()
    return _otel_session


@pytest.fixture(autouse=True)
def _fresh_process_resilience() -> Iterator[None]:
    """Breakers and cooldowns are process-wide in the agent (``process_resilience``): a test that ran
    the worker's wiring leaves none behind for the next test."""
    yield
    from agent.resilience.state import reset_process_resilience

    reset_process_resilience()


@pytest.fixture
def litellm_success() -> Any:
    """LiteLLM's success callbacks of the calls marked ``litellm_probe.MARK`` (tests/litellm_probe.py)."""
    from litellm_probe import registered_probe  # imports litellm: only the tests that ask for it

    return registered_probe()


@pytest.fixture
def outbox_backend(tmp_path: Path) -> Any:
    """Where a test's CRM outbox lives: an SQLite file here; the PostgreSQL cases (integration)
    override it (``outbox_backends.py``)."""
    from outbox_backends import sqlite_backend

    return sqlite_backend(tmp_path)


@pytest.fixture
def fast_retries() -> Iterator[None]:
    """stamina's testing mode: no backoff sleeps; the policy's attempt counts are kept (cap=True)."""
    with stamina.set_testing(True, attempts=10, cap=True):
        yield


@pytest.fixture
async def crm_service(tmp_path: Path) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The local CRM service on a free loopback port, and a client for its /admin fault and stats API."""
    from local_services.crm_service import run_crm_service

    async with run_crm_service(tmp_path / "crm.sqlite3") as url, httpx.AsyncClient(base_url=url) as admin:
        yield url, admin


@pytest.fixture
async def crm_env(crm_service: tuple[str, httpx.AsyncClient], tmp_path: Path) -> AsyncIterator[Any]:
    """The agent's CRM client (default settings, outbox in tmp_path) against ``crm_service``: (crm, admin)."""
    from agent.crm import CrmSettings, build_crm

    url, admin = crm_service
    crm = build_crm(CrmSettings(crm_url=url, outbox_path=str(tmp_path / "outbox.sqlite3")))
    try:
        yield crm, admin
    finally:
        await crm.aclose()


@dataclass
class EchoServer:
    url: str
    seen_headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    """A loopback HTTP server answering every GET ``ok`` and recording its headers (lower-case names).

    Not a stand-in for a dependency: the target of a traced client request, to see what it propagates.
    """
    server_state = EchoServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_state.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
