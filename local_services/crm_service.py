"""Local CRM + calendar service: the REST contract of ``agent/crm/README.md`` over aiohttp + SQLite.

Used by the tests, the offline demo (``sales-agent simulate``) and compose. A small tracing middleware
extracts the W3C ``traceparent`` the agent's httpx client sends and opens a SERVER span (HTTP semconv
attributes), so one trace crosses from the agent's tool into this service. (Not
opentelemetry-instrumentation-aiohttp-server: its middleware only works after the instrumentor has
patched ``aiohttp.web.Application`` process-wide, which would add spans to every other aiohttp server
sharing a test process.)

Per-tenant data (header ``X-Tenant-Id``); writes honour ``Idempotency-Key`` (same key -> applied
once, the first response replayed). Contact upserts merge (a field not given keeps the stored value)
and a lead update follows the lead-merge rule (``_lead_applies``), so a later caller cannot erase a
lead. The contact key travels in the body (``contact_key``), never in the URL. Fault injection for
tests and demos: ``POST /admin/fault``
``{"mode": "ok|down|slow|500|429", "delay_s": 2, "retry_after": 1, "count": null, "style": "503|reset",
"ratio": 1.0}`` (``count``: fault only the next N requests; ``down`` answers 503, or drops the
connection with ``"style": "reset"``; ``ratio``: the share of requests faulted, at random);
``GET /admin/stats``; ``POST /admin/reset`` (counters and fault; data stays).

Run: ``sales-agent crm-service --host 127.0.0.1 --port 8090 --db crm.sqlite3`` (``--port 0``: a free
port, announced as ``READY <port>``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.semconv.attributes import http_attributes, url_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.vocabulary.fault_modes import CRM_FAULT_MODES, CrmFaultMode
from agent.vocabulary.tenant_id import is_tenant_id
from local_services._serve import FirstByteTimer, bound_port, serve_main
from telemetry import names
from telemetry.config_errors import describe_validation, load_settings, run_main

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

CONTACT_FIELDS = ("name", "company", "role", "email", "phone")
SLOT_MINUTES = 30
BUSINESS_HOURS_UTC = (9, 17)  # slots are offered 09:00-17:00 UTC, Monday to Friday

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    tenant_id TEXT NOT NULL, contact_key TEXT NOT NULL, name TEXT NOT NULL, company TEXT, role TEXT,
    email TEXT, phone TEXT, lead_status TEXT, lead_score REAL, lead_band TEXT, lead_source TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (tenant_id, contact_key));
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, contact_key TEXT NOT NULL,
    text TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bookings (
    booking_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, contact_key TEXT NOT NULL,
    start TEXT NOT NULL, end TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant_id TEXT NOT NULL, key TEXT NOT NULL, request TEXT NOT NULL, status INTEGER NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (tenant_id, key));
"""


@dataclass
class Fault:
    mode: CrmFaultMode = "ok"
    delay_s: float = 2.0
    retry_after: float = 1.0
    count: int | None = None  # None: until changed
    style: str = "503"
    ratio: float = 1.0  # the share of requests the fault hits, at random (0.3: a flaky CRM)


@dataclass
class Stats:
    requests: int = 0
    faulted: int = 0
    writes_applied: int = 0
    idempotent_replays: int = 0
    by_route: Counter[str] = field(default_factory=Counter)


class CrmStore:
    """SQLite-backed CRM + calendar data; each write and its idempotency record commit together."""

    def __init__(self, db_path: str | Path) -> None:
        self.db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(contacts)")}
        if "lead_source" not in columns:  # a database from before the lead-merge rule
            self.db.execute("ALTER TABLE contacts ADD COLUMN lead_source TEXT")

    def close(self) -> None:
        self.db.close()

    def contact(self, tenant: str, key: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM contacts WHERE tenant_id=? AND contact_key=?", (tenant, key)
        ).fetchone()
        if row is None:
            return None
        contact = {k: row[k] for k in row.keys() if k != "tenant_id"}  # noqa: SIM118 (sqlite3.Row)
        notes = self.db.execute(
            "SELECT id, text, created_at FROM notes WHERE tenant_id=? AND contact_key=? ORDER BY id",
            (tenant, key),
        ).fetchall()
        contact["notes"] = [dict(n) for n in notes]
        return contact

    def counts(self) -> dict[str, int]:
        return {
            table: self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("contacts", "notes", "bookings")
        }


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else None
    with _tracer.start_as_current_span(
        f"{request.method} {route}" if route else request.method,
        context=propagate.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={
            http_attributes.HTTP_REQUEST_METHOD: request.method,
            url_attributes.URL_PATH: request.path,
            **({http_attributes.HTTP_ROUTE: route} if route else {}),
        },
    ) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, exc.status)
            raise
        span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return response


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def _tenant(request: web.Request) -> str:
    tenant = request.headers.get("X-Tenant-Id", "")
    if not is_tenant_id(tenant):
        raise web.HTTPBadRequest(
            text=json.dumps(
                {"error": "invalid_tenant", "message": "X-Tenant-Id header missing or malformed"}
            ),
            content_type="application/json",
        )
    trace.get_current_span().set_attribute(names.TENANT_ID, tenant)
    return tenant


def _contact_key(body: dict[str, Any]) -> str:
    key = body.get("contact_key")
    if not isinstance(key, str) or not key.strip():
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({"error": "invalid_contact_key", "message": "contact_key is required"}),
            content_type="application/json",
        )
    return key


class _Body(BaseModel):
    """The types of the fields a handler reads (other fields pass through unchecked). A body of the
    wrong shape is answered 400 ``invalid_body`` naming the field, never 500 from SQLite or ``float()``."""

    model_config = ConfigDict(extra="allow")


class _KeyedBody(_Body):
    """A request about one contact: its key travels in the body, never in the URL (access logs,
    ``url.full`` on client spans and error texts would carry it)."""

    contact_key: str | None = None


class _ContactBody(_KeyedBody):
    name: str | None = None
    company: str | None = None
    role: str | None = None
    email: str | None = None
    phone: str | None = None


class _NoteBody(_KeyedBody):
    text: str | None = None


class _LeadBody(_KeyedBody):
    status: str | None = None
    score: float | None = None
    band: str | None = None
    source: str | None = None  # the call that qualified the lead (the lead rule)


class _BookingBody(_KeyedBody):
    start: str | None = None
    duration_minutes: int | None = None


class _FaultBody(_Body):
    mode: str = "ok"
    delay_s: float = Field(default=2.0, ge=0)
    retry_after: float = Field(default=1.0, ge=0)
    count: int | None = Field(default=None, ge=0)
    style: Literal["503", "reset"] = "503"
    ratio: float = 1.0  # the share of requests faulted, in (0, 1]


async def _json_body(request: web.Request, shape: type[_Body]) -> dict[str, Any]:
    """The body's fields that were given, checked against ``shape``; 400 ``invalid_body`` otherwise."""
    try:
        body = shape.model_validate_json(await request.read())
    except ValidationError as exc:
        message = f"request body must be a JSON object of this form: {describe_validation(exc)}"
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "invalid_body", "message": message}), content_type="application/json"
        ) from None
    return body.model_dump(exclude_unset=True)


WriteFn = Callable[[sqlite3.Connection, str, dict[str, Any]], tuple[int, dict[str, Any]]]


class CrmService:
    def __init__(self, db_path: str | Path) -> None:
        self.store = CrmStore(db_path)
        self.fault = Fault()
        self.stats = Stats()
        self.first_byte = FirstByteTimer()  # the CRM's own time per request (benchmarks subtract it)

    # --- app --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[_tracing_middleware, self._fault_middleware])
        app.router.add_get("/healthz", self.healthz)
        # The contact key is in the body (agent/crm/README.md): no e-mail or phone number in any URL.
        app.router.add_put("/v1/contacts", self.upsert_contact)
        app.router.add_post("/v1/contacts/lookup", self.get_contact)
        app.router.add_post("/v1/contacts/notes", self.add_note)
        app.router.add_put("/v1/contacts/lead", self.set_lead)
        app.router.add_get("/v1/calendar/slots", self.list_slots)
        app.router.add_post("/v1/calendar/bookings", self.book)
        app.router.add_delete("/v1/calendar/bookings/{booking_id}", self.cancel)
        app.router.add_post("/admin/fault", self.set_fault)
        app.router.add_get("/admin/stats", self.get_stats)
        app.router.add_post("/admin/reset", self.reset)
        app.on_cleanup.append(self._close)
        self.first_byte.install(app)
        return app

    async def _close(self, _app: web.Application) -> None:
        self.store.close()

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/admin/"):
            return await handler(request)
        self.stats.requests += 1
        route = request.match_info.route.resource
        self.stats.by_route[f"{request.method} {route.canonical if route else request.path}"] += 1
        fault = self.fault
        if fault.mode == "ok" or (fault.ratio < 1.0 and random.random() >= fault.ratio):
            return await handler(request)
        self.stats.faulted += 1
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                self.fault = Fault()
        if fault.mode == "slow":
            await asyncio.sleep(fault.delay_s)
            return await handler(request)
        if fault.mode == "429":
            return _error(429, "rate_limited", "slow down", **{"Retry-After": f"{fault.retry_after:g}"})
        if fault.mode == "500":
            return _error(500, "internal", "injected failure")
        if fault.style == "reset" and request.transport is not None:
            request.transport.abort()  # the client sees the connection drop without a response
            raise asyncio.CancelledError
        return _error(503, "unavailable", "injected outage")

    # --- idempotent writes ----------------------------------------------------------------------
    async def _write(
        self, request: web.Request, tenant: str, body: dict[str, Any], fn: WriteFn
    ) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        # The same key for another contact is another request, though the path is the same.
        fingerprint = f"{request.method} {request.path} {body.get('contact_key', '')}"
        db = self.store.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if key:
                row = db.execute(
                    "SELECT request, status, body FROM idempotency WHERE tenant_id=? AND key=?", (tenant, key)
                ).fetchone()
                if row is not None:
                    db.execute("ROLLBACK")
                    if row["request"] != fingerprint:
                        return _error(
                            422, "idempotency_key_reused", "Idempotency-Key was used for another request"
                        )
                    self.stats.idempotent_replays += 1
                    return web.json_response(
                        json.loads(row["body"]), status=row["status"], headers={"Idempotent-Replayed": "true"}
                    )
            status, payload = fn(db, tenant, body)
            if key and status < 500:
                db.execute(
                    "INSERT INTO idempotency (tenant_id, key, request, status, body) VALUES (?,?,?,?,?)",
                    (tenant, key, fingerprint, status, json.dumps(payload)),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if status < 300:
            self.stats.writes_applied += 1
        return web.json_response(payload, status=status)

    # --- handlers -------------------------------------------------------------------------------
    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def upsert_contact(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        body = await _json_body(request, _ContactBody)
        key = _contact_key(body)
        if not isinstance(body.get("name"), str) or not body["name"].strip():
            return _error(422, "invalid_contact", "name is required")

        def write(db: sqlite3.Connection, tenant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            now = _now()
            exists = db.execute(
                "SELECT 1 FROM contacts WHERE tenant_id=? AND contact_key=?", (tenant, key)
            ).fetchone()
            given = {f: body[f] for f in CONTACT_FIELDS if body.get(f) not in (None, "")}
            if exists:
                # Merge: a field the caller did not give (absent, null or "") keeps what the CRM has.
                assignments = "".join(f"{f}=?, " for f in given)
                db.execute(
                    f"UPDATE contacts SET {assignments}updated_at=? WHERE tenant_id=? AND contact_key=?",
                    (*given.values(), now, tenant, key),
                )
            else:
                fields = [given.get(f) for f in CONTACT_FIELDS]
                db.execute(
                    "INSERT INTO contacts (tenant_id, contact_key, name, company, role, email, phone, "
                    "lead_status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,'new',?,?)",
                    (tenant, key, *fields, now, now),
                )
            return (200 if exists else 201), {"contact_key": key, "created": not exists}

        return await self._write(request, tenant, body, write)

    async def get_contact(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        key = _contact_key(await _json_body(request, _KeyedBody))
        contact = self.store.contact(tenant, key)
        if contact is None:
            return _error(404, "contact_not_found", "no such contact (save the contact first)")
        return web.json_response(contact)

    async def add_note(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        body = await _json_body(request, _NoteBody)
        key = _contact_key(body)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error(422, "invalid_note", "text is required")

        def write(db: sqlite3.Connection, tenant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if not db.execute(
                "SELECT 1 FROM contacts WHERE tenant_id=? AND contact_key=?", (tenant, key)
            ).fetchone():
                return 404, {
                    "error": "contact_not_found",
                    "message": "no such contact (save the contact first)",
                }
            cur = db.execute(
                "INSERT INTO notes (tenant_id, contact_key, text, created_at) VALUES (?,?,?,?)",
                (tenant, key, text, _now()),
            )
            return 201, {"note_id": cur.lastrowid}

        return await self._write(request, tenant, body, write)

    async def set_lead(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        body = await _json_body(request, _LeadBody)
        key = _contact_key(body)
        if not isinstance(body.get("status"), str):
            return _error(422, "invalid_lead", "status is required")

        def write(db: sqlite3.Connection, tenant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            row = db.execute(
                "SELECT lead_status, lead_score, lead_band, lead_source FROM contacts "
                "WHERE tenant_id=? AND contact_key=?",
                (tenant, key),
            ).fetchone()
            if row is None:
                return 404, {
                    "error": "contact_not_found",
                    "message": "no such contact (save the contact first)",
                }
            source = body.get("source") if isinstance(body.get("source"), str) else None
            if not _lead_applies(row, body.get("score"), source):
                # A lower qualification from another call never replaces the lead: it becomes a note.
                text = (
                    f"Qualification from another call not applied: {body['status']}, "
                    f"{body.get('band') or 'no band'}, score {body.get('score')} "
                    f"(kept {row['lead_band'] or row['lead_status']}, score {row['lead_score']})."
                )
                db.execute(
                    "INSERT INTO notes (tenant_id, contact_key, text, created_at) VALUES (?,?,?,?)",
                    (tenant, key, text, _now()),
                )
                return 200, {"contact_key": key, "status": row["lead_status"], "applied": False}
            db.execute(
                "UPDATE contacts SET lead_status=?, lead_score=?, lead_band=?, lead_source=?, updated_at=? "
                "WHERE tenant_id=? AND contact_key=?",
                (body["status"], body.get("score"), body.get("band"), source, _now(), tenant, key),
            )
            return 200, {"contact_key": key, "status": body["status"], "applied": True}

        return await self._write(request, tenant, body, write)

    def _booked(self, tenant: str) -> list[tuple[datetime, datetime]]:
        rows = self.store.db.execute(
            "SELECT start, end FROM bookings WHERE tenant_id=?", (tenant,)
        ).fetchall()
        return [(datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"])) for r in rows]

    async def list_slots(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        try:
            days_ahead = int(request.query.get("days_ahead", "7"))
            limit = int(request.query.get("limit", "5"))
        except ValueError:
            return _error(422, "invalid_query", "days_ahead and limit must be integers")
        if not (1 <= days_ahead <= 60 and 1 <= limit <= 100):
            return _error(422, "invalid_query", "days_ahead must be 1..60 and limit 1..100")
        booked = self._booked(tenant)
        slots = []
        for start in _candidate_slots(datetime.now(UTC), days_ahead):
            end = start + timedelta(minutes=SLOT_MINUTES)
            if any(s < end and start < e for s, e in booked):
                continue
            slots.append({"start": start.isoformat(), "end": end.isoformat()})
            if len(slots) >= limit:
                break
        return web.json_response({"slots": slots})

    async def book(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        body = await _json_body(request, _BookingBody)
        try:
            start = datetime.fromisoformat(str(body["start"]))
            minutes = int(body.get("duration_minutes", SLOT_MINUTES))
            contact = str(body["contact_key"])
        except (KeyError, ValueError, TypeError):
            return _error(
                422, "invalid_booking", "contact_key, start (ISO 8601) and duration_minutes required"
            )
        if start.tzinfo is None:
            return _error(422, "invalid_booking", "start must include a timezone offset")
        if not 5 <= minutes <= 240:
            return _error(422, "invalid_booking", "duration_minutes must be 5..240")
        end = start + timedelta(minutes=minutes)
        if start < datetime.now(UTC):
            return _error(422, "slot_in_past", "start is in the past")

        def write(db: sqlite3.Connection, tenant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if any(s < end and start < e for s, e in self._booked(tenant)):
                return 409, {"error": "slot_taken", "message": "that time is already booked"}
            booking_id = uuid.uuid4().hex
            db.execute(
                "INSERT INTO bookings (booking_id, tenant_id, contact_key, start, end, created_at) "
                "VALUES (?,?,?,?,?,?)",
                (booking_id, tenant, contact, start.isoformat(), end.isoformat(), _now()),
            )
            return 201, {"booking_id": booking_id, "contact_key": contact, "start": start.isoformat(),
                         "end": end.isoformat()}  # fmt: skip

        return await self._write(request, tenant, body, write)

    async def cancel(self, request: web.Request) -> web.Response:
        tenant, booking_id = _tenant(request), request.match_info["booking_id"]

        def write(db: sqlite3.Connection, tenant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            cur = db.execute("DELETE FROM bookings WHERE tenant_id=? AND booking_id=?", (tenant, booking_id))
            if cur.rowcount == 0:
                return 404, {"error": "booking_not_found", "message": f"no booking {booking_id!r}"}
            return 200, {"booking_id": booking_id, "cancelled": True}

        return await self._write(request, tenant, {}, write)

    # --- admin ------------------------------------------------------------------------------
    async def set_fault(self, request: web.Request) -> web.Response:
        body = await _json_body(request, _FaultBody)
        mode = str(body.get("mode", "ok"))
        if mode not in CRM_FAULT_MODES:
            return _error(422, "invalid_fault", f"mode must be one of {', '.join(CRM_FAULT_MODES)}")
        count = body.get("count")
        ratio = float(body.get("ratio", 1.0))
        if not 0.0 < ratio <= 1.0:
            return _error(422, "invalid_fault", "ratio must be a number in (0, 1]")
        self.fault = Fault(
            mode=mode,  # type: ignore[arg-type]  # checked against CRM_FAULT_MODES above
            delay_s=float(body.get("delay_s", 2.0)),
            retry_after=float(body.get("retry_after", 1.0)),
            count=int(count) if count is not None else None,
            style=str(body.get("style", "503")),
            ratio=ratio,
        )
        log.info("crm fault set: %s", self.fault)
        return web.json_response({"mode": mode})

    async def reset(self, _request: web.Request) -> web.Response:
        """Counters to zero and the fault back to ``ok``; the stored contacts and bookings stay."""
        self.stats = Stats()
        self.fault = Fault()
        self.first_byte.clear()
        return web.json_response({"reset": True})

    async def get_stats(self, _request: web.Request) -> web.Response:
        s = self.stats
        return web.json_response(
            {
                "requests": s.requests,
                "faulted": s.faulted,
                "writes_applied": s.writes_applied,
                "idempotent_replays": s.idempotent_replays,
                "by_route": dict(s.by_route),
                "fault": self.fault.mode,
                **self.store.counts(),
                **self.first_byte.as_dict(),
            }
        )


def _lead_applies(stored: sqlite3.Row, score: object, source: str | None) -> bool:
    """The lead-merge rule (agent/crm/README.md): a qualification replaces the stored one when there
    is none yet, when it comes from the same call (a correction), or when it scores at least as high."""
    if stored["lead_score"] is None:
        return True
    if source is not None and source == stored["lead_source"]:
        return True
    return isinstance(score, int | float) and score >= stored["lead_score"]


def _candidate_slots(now: datetime, days_ahead: int) -> list[datetime]:
    """Half-hour slots in business hours from the next half hour for ``days_ahead`` days."""
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=SLOT_MINUTES - now.minute % SLOT_MINUTES)
    horizon = now + timedelta(days=days_ahead)
    out = []
    t = start
    while t < horizon:
        if t.weekday() < 5 and BUSINESS_HOURS_UTC[0] <= t.hour < BUSINESS_HOURS_UTC[1]:
            out.append(t)
        t += timedelta(minutes=SLOT_MINUTES)
    return out


@contextlib.asynccontextmanager
async def run_crm_service(db_path: str | Path, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run the service in this event loop; yields its base URL (``port=0`` picks a free port)."""
    runner = web.AppRunner(CrmService(db_path).app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield f"http://{host}:{bound_port(runner)}"
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm-service", description="Local CRM + calendar service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port (see the READY line)")
    parser.add_argument("--db", default="crm.sqlite3", help="SQLite file (created if missing)")
    args = parser.parse_args(argv)

    from telemetry.settings import TelemetrySettings
    from telemetry.setup import setup_telemetry

    settings = load_settings(TelemetrySettings)
    if "service_name" not in settings.model_fields_set:
        settings = settings.model_copy(update={"service_name": "crm-service"})
    telemetry = setup_telemetry(settings, wire_livekit=False)  # no LiveKit session runs here
    try:
        return serve_main(
            "crm-service",
            lambda: run_crm_service(args.db, args.host, args.port),
            host=args.host,
            port=args.port,
            url_of=str,
        )
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    raise SystemExit(run_main("crm-service", main))
