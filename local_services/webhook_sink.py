"""A local notification sink for Alertmanager's webhook receivers (``sales-agent webhook-sink``).

``docker compose up`` points every Alertmanager receiver at this service by default, so a user sees
notifications arrive (``GET /`` on the sink, and its log) without configuring Slack, a pager or SMTP;
the alerting tests deliver to it too. It accepts a POST on any path — the path tells which receiver
sent it (``/pager``, ``/chat``, ``/low``) — logs one line per notification and keeps the last ``keep``.

Routes:
- ``POST /<any path>``: an Alertmanager webhook payload (JSON). A body that is not a JSON object is
  answered 400 with the reason, and still kept (as ``error`` + the start of the raw body).
- ``GET /``: the kept notifications, newest first, as JSON (``?limit=N`` to shorten).
- ``GET /health``: liveness for the container healthcheck.
- ``GET /runbooks/<AlertName>.md`` (with ``--runbooks DIR``): the runbook pages, as Markdown text, so
  the alerts' ``runbook_url`` links (``RUNBOOK_BASE_URL`` in compose) open something locally.
- ``POST /admin/fault`` ``{"mode": "ok|500"}``: ``500`` answers every notification with HTTP 500 (and
  keeps nothing), so Alertmanager's retries and ``alertmanager_notifications_failed_total`` can be seen;
  ``GET /admin/stats``: counts; ``POST /admin/reset``: forget everything, fault back to ``ok``.

Hand-written on aiohttp: a few lines, and no maintained image both logs and serves the history.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.vocabulary.fault_modes import WEBHOOK_SINK_FAULT_MODES
from local_services._serve import bound_port, requested_fault, serve_main

log = logging.getLogger(__name__)

DEFAULT_KEEP = 200
RAW_PREVIEW_CHARS = 2000
_RUNBOOK_NAME = re.compile(r"[A-Za-z0-9_-]+\.md")  # a page name, never a path


def summarize(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The fields a person scans for, pulled out of an Alertmanager webhook payload."""
    alerts = payload.get("alerts") if isinstance(payload.get("alerts"), list) else []
    return {
        "path": path,
        "receiver": payload.get("receiver"),
        "status": payload.get("status"),
        "group_labels": payload.get("groupLabels") or {},
        "alerts": [
            {
                "alertname": (alert.get("labels") or {}).get("alertname"),
                "severity": (alert.get("labels") or {}).get("severity"),
                "status": alert.get("status"),
                "summary": (alert.get("annotations") or {}).get("summary"),
                "starts_at": alert.get("startsAt"),
            }
            for alert in alerts
            if isinstance(alert, dict)
        ],
    }


class NotificationSink:
    """Keeps the last ``keep`` notifications; ``app`` is the aiohttp application serving them."""

    def __init__(self, keep: int = DEFAULT_KEEP, fault: str = "ok", runbooks: Path | None = None) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        if fault not in WEBHOOK_SINK_FAULT_MODES:
            raise ValueError(
                f"unknown fault mode {fault!r}; expected one of {', '.join(WEBHOOK_SINK_FAULT_MODES)}"
            )
        if runbooks is not None and not runbooks.is_dir():
            raise ValueError(f"--runbooks: {runbooks} is not a directory")
        self.fault = fault
        self.runbooks = runbooks
        self.notifications: deque[dict[str, Any]] = deque(maxlen=keep)
        self.received_total = 0
        self.rejected_total = 0
        self.failed_total = 0  # answered 500 by the injected fault
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/", self._list),
                web.get("/health", self._health),
                web.get("/runbooks/{name}", self._runbook),
                web.post("/admin/fault", self._set_fault),
                web.get("/admin/stats", self._stats),
                web.post("/admin/reset", self._reset),
                web.post("/{path:.*}", self._receive),
            ]
        )

    async def _receive(self, request: web.Request) -> web.Response:
        raw = await request.text()
        received_at = datetime.now(UTC).isoformat()
        self.received_total += 1
        if self.fault == "500":
            self.failed_total += 1
            return web.json_response({"error": "injected fault: 500"}, status=500)
        try:
            payload = json.loads(raw)
            if not isinstance(payload, dict):
                raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            reason = f"body is not an Alertmanager webhook payload: {exc}"
            self.rejected_total += 1
            rejected = {"received_at": received_at, "path": request.path, "error": reason}
            self.notifications.append({**rejected, "raw": raw[:RAW_PREVIEW_CHARS]})
            log.warning("notification via %s rejected: %s", request.path, reason)
            return web.json_response({"error": reason}, status=400)

        entry = {"received_at": received_at, **summarize(request.path, payload), "payload": payload}
        self.notifications.append(entry)
        alerts = ", ".join(f"{a['alertname']}({a['severity']},{a['status']})" for a in entry["alerts"])
        log.info(
            "notification via %s: receiver=%s status=%s alerts=[%s]",
            request.path,
            entry["receiver"],
            entry["status"],
            alerts,
        )
        return web.json_response({"ok": True})

    async def _list(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", len(self.notifications)))
        except ValueError:
            return web.json_response({"error": "limit must be an integer"}, status=400)
        newest_first = list(reversed(self.notifications))[: max(limit, 0)]
        body = {"received_total": self.received_total, "kept": len(self.notifications)}
        return web.json_response(
            {**body, "notifications": newest_first}, dumps=lambda obj: json.dumps(obj, indent=2)
        )

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _runbook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.runbooks is None:
            return web.json_response({"error": "no runbooks served (start with --runbooks DIR)"}, status=404)
        page = self.runbooks / name
        if not _RUNBOOK_NAME.fullmatch(name) or not page.is_file():
            return web.json_response({"error": f"no runbook {name!r}"}, status=404)
        return web.Response(text=page.read_text(encoding="utf-8"), content_type="text/markdown")

    async def _set_fault(self, request: web.Request) -> web.Response:
        mode = await requested_fault(request, WEBHOOK_SINK_FAULT_MODES)
        self.fault = mode
        log.info("notification sink fault set to %s", mode)
        return web.json_response({"fault": mode})

    async def _stats(self, _request: web.Request) -> web.Response:
        by_path: dict[str, int] = {}
        for entry in self.notifications:
            by_path[entry["path"]] = by_path.get(entry["path"], 0) + 1
        return web.json_response(
            {
                "fault": self.fault,
                "received_total": self.received_total,
                "rejected_total": self.rejected_total,
                "failed_total": self.failed_total,
                "kept": len(self.notifications),
                "kept_by_path": by_path,
            }
        )

    async def _reset(self, _request: web.Request) -> web.Response:
        self.notifications.clear()
        self.received_total = self.rejected_total = self.failed_total = 0
        self.fault = "ok"
        return web.json_response({"reset": True})


@dataclass
class RunningSink:
    sink: NotificationSink
    url: str  # no trailing slash
    port: int


@contextlib.asynccontextmanager
async def run_webhook_sink(
    host: str = "127.0.0.1",
    port: int = 0,
    keep: int = DEFAULT_KEEP,
    fault: str = "ok",
    runbooks: Path | None = None,
) -> AsyncIterator[RunningSink]:
    """Serve a sink in this event loop for the block (``port=0`` picks a free port)."""
    sink = NotificationSink(keep, fault, runbooks)
    runner = web.AppRunner(sink.app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = bound_port(runner)
        yield RunningSink(sink, f"http://{host}:{bound}", bound)
    finally:
        await runner.cleanup()


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webhook-sink", description="Local Alertmanager notification sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300, help="0 picks a free port (see the READY line)")
    parser.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="notifications kept for GET /")
    parser.add_argument("--fault", default="ok", choices=WEBHOOK_SINK_FAULT_MODES, help="fault mode at start")
    parser.add_argument(
        "--runbooks", type=Path, default=None, help="serve this directory's runbook pages at /runbooks/"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.runbooks is not None and not args.runbooks.is_dir():
        parser.error(f"--runbooks: {args.runbooks} is not a directory")
    return serve_main(
        "webhook-sink",
        lambda: run_webhook_sink(args.host, args.port, args.keep, args.fault, args.runbooks),
        host=args.host,
        port=args.port,
    )


if __name__ == "__main__":
    raise SystemExit(main())
