"""``/health`` (liveness) and ``/ready`` (readiness) over aiohttp.

``/health`` answers 200 whenever the event loop can serve a request: a wedged loop times the probe
out, which is exactly what a liveness probe should see. ``/ready`` runs the registry (cached) and
answers 503 with the JSON detail when a critical check fails, 200 otherwise; both list every check.

Entry points bind the listening socket at start (``sock``), so a taken port fails before the process
registers anywhere; a malformed request is answered 400 and logged as one rate-limited line
(``protocol_log``).
"""

from __future__ import annotations

import logging
import socket
import time
from types import TracebackType

from aiohttp import web

from agent.health.protocol_log import ProtocolErrorLogger
from agent.health.registry import HealthRegistry
from telemetry.config_errors import listen_error

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(
        self,
        registry: HealthRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        setting: str = "health port",
    ) -> None:
        self._registry = registry
        self._sock = sock
        self._host, self._port = sock.getsockname()[:2] if sock is not None else (host, port)
        self._setting = setting
        self._runner: web.AppRunner | None = None
        self._started_at = time.monotonic()

    def use(self, registry: HealthRegistry) -> None:
        """Serve ``registry`` from now on: the LiveKit worker answers with its warm-up check alone
        until the services whose checks need LiteLLM exist (``agent/worker_warmup.py``)."""
        self._registry = registry

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(
            self.app(), access_log=None, logger=ProtocolErrorLogger(log, what="health endpoints")
        )
        await runner.setup()
        site: web.BaseSite = (
            web.SockSite(runner, self._sock)
            if self._sock is not None
            else web.TCPSite(runner, self._host, self._port)
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise listen_error(exc, self._host, self._port, self._setting) from None
        self._runner = runner
        if runner.addresses:  # the bound (host, port, ...) of each listening socket
            self._port = runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _health(self, request: web.Request) -> web.Response:
        uptime = round(time.monotonic() - self._started_at, 3)
        return web.json_response({"status": "alive", "uptime_s": uptime})

    async def _ready(self, request: web.Request) -> web.Response:
        report = await self._registry.run()
        return web.json_response(report.to_json(), status=200 if report.ready else 503)
