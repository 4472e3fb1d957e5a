"""A loopback OTLP/HTTP receiver that counts what it gets: the export benchmark's collector stand-in.

It decodes every ``POST /v1/traces`` body as an ``ExportTraceServiceRequest`` (protobuf, optionally
gzip) and counts spans, so "0 dropped" is checked against what really arrived, not what was sent.
``/v1/metrics`` and ``/v1/logs`` are accepted and counted by request. Modes (``POST /admin/mode``
``{"mode": "ok|hang"}`` or ``--mode``): ``ok`` answers 200; ``hang`` reads the request and never
answers (a wedged collector). "Down" is simply no sink: a closed port.

    python -m bench.otlp_sink [--host 127.0.0.1] [--port 0] [--mode ok|hang]

prints ``READY <port>`` on stdout once listening; ``GET /stats`` returns the counters as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MODES = ("ok", "hang")


@dataclass
class SinkStats:
    spans: int = 0
    trace_requests: int = 0
    other_requests: int = 0
    bad_requests: int = 0
    hung_requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)


class OtlpSink:
    def __init__(self, mode: str = "ok", *, keep: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown sink mode {mode!r}; expected one of {', '.join(MODES)}")
        self.mode = mode
        self.keep = keep  # keep every decoded ExportTraceServiceRequest in ``traces`` (tests)
        self.traces: list[ExportTraceServiceRequest] = []
        self.stats = SinkStats()
        self._hang = asyncio.Event()  # never set: hung requests wait until the sink stops
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._other)
        app.router.add_post("/v1/logs", self._other)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/admin/mode", self._set_mode)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _body(self, request: web.Request) -> bytes:
        body = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    async def _maybe_hang(self) -> None:
        if self.mode == "hang":
            self.stats.hung_requests += 1
            await self._hang.wait()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        await self._maybe_hang()
        message = ExportTraceServiceRequest()
        try:
            message.ParseFromString(body)
        except Exception:  # protobuf's DecodeError; a sink must not die on a bad body
            self.stats.bad_requests += 1
            return web.Response(status=400, text="not an ExportTraceServiceRequest")
        self.stats.trace_requests += 1
        if self.keep:
            self.traces.append(message)
        self.stats.spans += sum(
            len(scope.spans) for resource in message.resource_spans for scope in resource.scope_spans
        )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    async def _other(self, request: web.Request) -> web.Response:
        await self._body(request)
        await self._maybe_hang()
        self.stats.other_requests += 1
        self.stats.by_path[request.path] = self.stats.by_path.get(request.path, 0) + 1
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response({"mode": self.mode, **self.stats.__dict__})

    async def _set_mode(self, request: web.Request) -> web.Response:
        mode = (await request.json()).get("mode")
        if mode not in MODES:
            return web.json_response({"error": f"mode must be one of {', '.join(MODES)}"}, status=400)
        self.mode = mode
        return web.json_response({"mode": mode})


@contextlib.asynccontextmanager
async def run_otlp_sink(mode: str = "ok", *, keep: bool = False) -> AsyncIterator[OtlpSink]:
    """In-process sink on a free loopback port (``keep``: hold the decoded trace requests)."""
    sink = OtlpSink(mode, keep=keep)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


@contextlib.contextmanager
def spawn_otlp_sink(mode: str = "ok", *, timeout_s: float = 60.0) -> Iterator[tuple[str, int]]:
    """Run the sink as its own process (so its CPU is not the measured process's); yields (url, port)."""
    import subprocess

    from bench._common import REPO_ROOT, child_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.otlp_sink", "--mode", mode],
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = _read_ready(proc, timeout_s)
        yield f"http://127.0.0.1:{port}", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _read_ready(proc: Any, timeout_s: float) -> int:
    import selectors

    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"OTLP sink exited with {proc.returncode} before it was ready")
            if sel.select(timeout=0.5):
                line = proc.stdout.readline()
                if line.startswith("READY "):
                    return int(line.split()[1])
    raise TimeoutError(f"OTLP sink not ready within {timeout_s} s")


def sink_stats(url: str) -> dict[str, Any]:
    """The sink's counters. urllib on purpose: an instrumented client (httpx) would add spans of its own."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:
        return json.loads(response.read())


async def _serve(host: str, port: int, mode: str) -> None:
    sink = OtlpSink(mode)
    await sink.start(host, port)
    print(f"READY {sink.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sink.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback OTLP/HTTP sink counting received spans")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=MODES, default="ok")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
