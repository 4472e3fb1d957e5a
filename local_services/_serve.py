"""The process side every stand-in's ``main`` shares: serve until SIGINT/SIGTERM, announce readiness.

A stand-in's ``main(argv)`` parses its options and hands ``serve_main`` a factory for its
``run_<name>(...)`` async context manager. ``serve_main`` prints ``READY <port>`` on stdout once the
port is bound (``--port 0`` picks a free one; the caller learns which from that line, see
``harness.spawn``), logs where it listens, and leaves cleanly on SIGINT/SIGTERM (exit 0). A port that
cannot be bound (in use, not permitted) is one line on stderr naming ``--port`` and what was expected,
and exit status 2, not a traceback.
Also the pieces the stand-ins' aiohttp apps share: ``requested_fault`` (the admin fault body),
``bound_port`` (what port 0 picked) and ``FirstByteTimer`` (the stand-in's own time to first byte).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from telemetry.config_errors import listen_error

T = TypeVar("T")

log = logging.getLogger(__name__)

READY_PREFIX = "READY"
_STARTED = web.RequestKey("first_byte_started", dict)
EXIT_CANNOT_LISTEN = 2


def serve_until_signal(
    start: Callable[[], AbstractAsyncContextManager[T]], on_ready: Callable[[T], None]
) -> None:
    """Enter ``start()``, call ``on_ready`` with what it yields, and leave it on SIGINT or SIGTERM."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with start() as running:
            on_ready(running)
            await stop.wait()

    asyncio.run(serve())


def ready_line(port: int, **extra: int) -> str:
    """``READY <port>`` plus ``key=value`` for any further port (e.g. ``grpc=4317``)."""
    return " ".join([READY_PREFIX, str(port), *(f"{key}={value}" for key, value in extra.items())])


def serve_main(
    name: str,
    start: Callable[[], AbstractAsyncContextManager[T]],
    *,
    host: str,
    port: int,
    url_of: Callable[[T], str] = lambda running: running.url,  # type: ignore[attr-defined]
    extra_ports: Callable[[T], dict[str, int]] | None = None,
) -> int:
    """Run one stand-in until a signal; the exit status for its ``main``.

    ``url_of`` gives the base URL of what ``start()`` yields (its port goes on the READY line);
    ``extra_ports`` adds further bound ports to that line.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    listening = False

    def ready(running: T) -> None:
        nonlocal listening
        listening = True
        url = url_of(running)
        extra = extra_ports(running) if extra_ports else {}
        log.info("%s listening on %s%s", name, url, "".join(f" ({k} port {v})" for k, v in extra.items()))
        print(ready_line(urlsplit(url).port or port, **extra), flush=True)

    try:
        serve_until_signal(start, ready)
    except OSError as exc:
        if listening:
            raise
        # The wording every entry point uses for a startup problem (telemetry.config_errors).
        print(f"{name}: error: {listen_error(exc, host, port, '--port')}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    return 0


async def requested_fault(request: web.Request, modes: Sequence[str]) -> str:
    """The ``mode`` of a ``POST /admin/fault`` body, or a 400 that names the valid modes."""
    try:
        body = await request.json()
    except ValueError:  # not JSON at all
        body = None
    mode = body.get("mode") if isinstance(body, dict) else None
    if mode not in modes:
        error = f'body must be {{"mode": one of {", ".join(modes)}}}'
        raise web.HTTPBadRequest(text=json.dumps({"error": error}), content_type="application/json")
    return str(mode)


def bound_port(runner: web.AppRunner) -> int:
    """The port an aiohttp ``AppRunner`` listens on once its site has started (what port 0 picked)."""
    return int(runner.addresses[0][1])


@dataclass
class FirstByteTimer:
    """The provider's side of a latency, per API request: request received -> response headers sent
    (the time to first byte), and request received -> handler done (the time to the last byte).

    Benchmarks subtract it from what the agent measured (the agent's own added latency); the admin
    and health routes are not counted. Headers go out with the first body byte for the stand-ins' answers (the
    streams write their first chunk right after ``prepare``), so the first is the time to first byte. A
    stream's handler returns once its last chunk is written, so the second is what a caller waits for
    when the agent needs the whole stream (an LLM's tool calls, a one-sentence reply's text); for an
    answer sent in one piece the two are the same.

    The last ``RECORDS`` requests are also kept one by one (``records``: wall-clock start, both times
    and a ``label`` the handler may set), so a benchmark can attribute a provider's time to the turn
    it served rather than to a level's mean.
    """

    RECORDS = 20_000

    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    end_total_s: float = 0.0
    records: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=FirstByteTimer.RECORDS))

    def install(self, app: web.Application) -> None:
        app.middlewares.insert(0, self._stamp)  # outermost: injected fault delays count as the provider's
        app.on_response_prepare.append(self._prepared)

    @web.middleware
    async def _stamp(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(("/admin", "/healthz")):
            return await handler(request)
        started = request[_STARTED] = {"at": time.perf_counter(), "wall": time.time()}
        try:
            return await handler(request)
        finally:
            elapsed = time.perf_counter() - started["at"]
            self.end_total_s += elapsed
            self.records.append(
                {
                    "start": started["wall"],
                    "first_byte_s": started.get("first_byte_s", elapsed),
                    "last_byte_s": elapsed,
                    "label": started.get("label", ""),
                }
            )

    @staticmethod
    def label(request: web.Request, text: str) -> None:
        """Name what this request served in its record (e.g. the LLM stand-in: the conversation)."""
        started = request.get(_STARTED)
        if started is not None:
            started["label"] = text

    async def _prepared(self, request: web.Request, _response: web.StreamResponse) -> None:
        started = request.get(_STARTED)
        if started is not None and "done" not in started:
            started["done"] = True
            elapsed = started["first_byte_s"] = time.perf_counter() - started["at"]
            self.count += 1
            self.total_s += elapsed
            self.max_s = max(self.max_s, elapsed)

    def clear(self) -> None:
        self.count, self.total_s, self.max_s, self.end_total_s = 0, 0.0, 0.0, 0.0
        self.records.clear()

    def as_dict(self) -> dict[str, float]:
        return {
            "first_byte_count": self.count,
            "first_byte_s_total": self.total_s,
            "first_byte_s_max": self.max_s,
            "last_byte_s_total": self.end_total_s,
        }
