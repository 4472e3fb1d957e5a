"""What the local STT and TTS stand-ins share: fault injection, request stats, admin routes, serving.

Both speak the OpenAI audio API (``stt_provider``: ``/v1/audio/transcriptions``; ``tts_provider``:
``/v1/audio/speech``) so the real ``livekit-plugins-openai`` clients talk to them over HTTP. Faults
are switched at run time with ``POST /admin/fault {"mode": ...}`` (or ``--fault`` at start):

- ``ok``; ``500``; ``429`` (with ``Retry-After: retry_after``); ``hang`` (no answer until ``hang_s``
  or shutdown); ``slow_first_byte`` (headers and body after ``delay_s``); ``drop_mid_stream`` (part
  of the body, then the connection is cut); ``garbage`` (200 with a body that is not the protocol);
  the STT adds ``empty`` (a valid answer with an empty transcript).
- ``count``: the fault applies to that many requests, then the service is ``ok`` again.

``GET /admin/stats`` counts requests; ``POST /admin/reset`` zeroes the counts and clears the fault.
Every answer carries ``x-request-id`` (the OpenAI client warns on each response without one).

Hand-written on aiohttp like ``llm_provider``: no maintained fake of the OpenAI audio API offers
fault injection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from agent.vocabulary.fault_modes import TTS_FAULT_MODES
from local_services._serve import FirstByteTimer, bound_port, serve_main

log = logging.getLogger(__name__)

FAULT_MODES: tuple[str, ...] = TTS_FAULT_MODES  # the STT adds "empty"


@dataclass
class Fault:
    mode: str = "ok"
    retry_after: float = 1.0  # 429: Retry-After header, seconds
    delay_s: float = 3.0  # slow_first_byte: wait before answering
    hang_s: float = 3600.0  # hang: how long a request is held (ends at shutdown anyway)
    after_bytes: int = 9600  # drop_mid_stream: body bytes sent before the cut (TTS: 0.2 s of audio)
    count: int | None = None  # requests the fault applies to (None: until changed)

    @classmethod
    def parse(cls, body: dict[str, Any], modes: tuple[str, ...] = FAULT_MODES) -> Fault:
        mode = str(body.get("mode", "ok"))
        if mode not in modes:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {', '.join(modes)}")
        fault = cls(mode=mode)
        try:
            for key in ("retry_after", "delay_s", "hang_s"):
                if key in body:
                    setattr(fault, key, float(body[key]))
            if "after_bytes" in body:
                fault.after_bytes = int(body["after_bytes"])
            if body.get("count") is not None:
                fault.count = int(body["count"])
                if fault.count < 1:
                    raise ValueError("count must be at least 1")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad fault option: {exc}") from exc
        return fault


@dataclass
class Stats:
    requests: int = 0
    faulted: int = 0
    by_mode: dict[str, int] = field(default_factory=dict)

    def count(self, mode: str) -> None:
        self.requests += 1
        self.faulted += mode != "ok"
        self.by_mode[mode] = self.by_mode.get(mode, 0) + 1


class SpeechService:
    """The aiohttp application of one stand-in: its name, fault, stats and admin routes.

    Subclasses add their API route in ``routes()`` and use ``before_answer`` for the faults that
    happen before any body is sent.
    """

    kind = "speech"
    modes: tuple[str, ...] = FAULT_MODES

    def __init__(self, name: str, *, fault: Fault | None = None) -> None:
        self.name = name
        self.fault = fault or Fault()
        self.stats = Stats()
        self.closing = asyncio.Event()
        self.app = web.Application(client_max_size=32 * 1024 * 1024)
        self.first_byte = FirstByteTimer()
        self.first_byte.install(self.app)
        self.app.add_routes(
            [
                *self.routes(),
                web.post("/admin/fault", self._set_fault),
                web.get("/admin/stats", self._stats),
                web.post("/admin/reset", self._reset),
            ]
        )
        self.app.on_shutdown.append(self._on_shutdown)

    def routes(self) -> list[web.RouteDef]:
        return []

    def stats_extra(self) -> dict[str, Any]:
        return {}

    def set_fault(self, mode: str, **options: Any) -> None:
        self.fault = Fault.parse({"mode": mode, **options}, self.modes)

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.closing.set()  # releases hanging / slow requests so shutdown is quick

    async def pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)

    @staticmethod
    def headers() -> dict[str, str]:
        return {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"}

    async def before_answer(self) -> tuple[Fault, web.Response | None]:
        """Count the request; answer it here for 500 / 429 / hang, wait for slow_first_byte."""
        fault = self.fault
        self.stats.count(fault.mode)
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                self.fault = Fault()
        if fault.mode == "500":
            return fault, self.error(500, f"{self.name}: injected internal error", "server_error")
        if fault.mode == "429":
            response = self.error(429, f"{self.name}: injected rate limit", "rate_limit_exceeded")
            response.headers["Retry-After"] = str(max(1, round(fault.retry_after)))
            return fault, response
        if fault.mode == "hang":
            await self.pause(fault.hang_s)
            return fault, self.error(503, "hang released", "unavailable")
        if fault.mode == "slow_first_byte":
            await self.pause(fault.delay_s)
        return fault, None

    def error(self, status: int, message: str, kind: str) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": kind}}, status=status, headers=self.headers()
        )

    @staticmethod
    async def drop(request: web.Request, response: web.StreamResponse, body: bytes, after_bytes: int) -> None:
        """Send the first ``after_bytes`` of ``body``, then cut the connection (no terminating chunk)."""
        with contextlib.suppress(ConnectionError):
            await response.write(body[:after_bytes])
            await asyncio.sleep(0.05)  # let the bytes leave before the reset
        if request.transport is not None:
            request.transport.abort()

    # --- admin -------------------------------------------------------------------------------
    async def _set_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            self.fault = Fault.parse(body, self.modes)
        except (ValueError, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.info("%s %s fault set to %s", self.kind, self.name, self.fault.mode)
        return web.json_response({"name": self.name, "fault": asdict(self.fault)})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": self.name,
                "fault": self.fault.mode,
                **asdict(self.stats),
                **self.stats_extra(),
                **self.first_byte.as_dict(),
            }
        )

    async def _reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"name": self.name, "reset": True})

    def reset(self) -> None:
        self.stats = Stats()
        self.fault = Fault()
        self.first_byte.clear()


@dataclass
class RunningService:
    service: SpeechService
    url: str  # base URL including /v1
    port: int

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def admin_url(self) -> str:
        return self.url.removesuffix("/v1")


@contextlib.asynccontextmanager
async def serve(
    service: SpeechService, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningService]:
    """Run ``service`` in this event loop on ``host:port`` (0 = a free port) for the block."""
    runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = bound_port(runner)
    try:
        yield RunningService(service, f"http://{host}:{bound}/v1", bound)
    finally:
        service.closing.set()
        await runner.cleanup()


def arg_parser(
    prog: str, description: str, modes: tuple[str, ...], default_port: int
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    parser.add_argument("--name", default="primary", help="provider name (shown in stats)")
    parser.add_argument("--fault", default="ok", choices=modes, help="fault mode at start")
    parser.add_argument("--retry-after", type=float, default=1.0, help="429: Retry-After seconds")
    parser.add_argument("--delay", type=float, default=3.0, help="slow_first_byte: delay seconds")
    return parser


def fault_from_args(args: argparse.Namespace, modes: tuple[str, ...]) -> Fault:
    return Fault.parse({"mode": args.fault, "retry_after": args.retry_after, "delay_s": args.delay}, modes)


def run_main(name: str, build: Callable[[], SpeechService], host: str, port: int) -> int:
    """Serve until SIGINT/SIGTERM (``serve_main``: ``READY <port>`` once listening); the exit status."""
    return serve_main(name, lambda: serve(build(), host, port), host=host, port=port)
