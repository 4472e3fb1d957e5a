"""Durable outbox for CRM writes that could not be delivered live (SQLite, WAL).

A write lands here when its retries are exhausted or the breaker is open, or when an earlier write
for the same contact is still queued (so writes for one contact are never reordered). The drainer
delivers entries in id order per contact; the entry's idempotency key makes a re-delivery after a
crash (delivered, but killed before the row was marked) a no-op on the CRM side: exactly once.

Rows are committed with ``synchronous=FULL`` before the tool answers "saved", so they survive a
SIGKILL (and a power cut). A 4xx on delivery means the entry itself is bad: it is parked
(``status='dead'``) with a log line and ``sales_agent.outbox.failed`` so it cannot block the queue.
Parked entries are kept, never dropped: ``sales_agent.outbox.dead_letters`` counts them (the
OutboxDeadLetters alert), and ``sales-agent outbox`` lists them and puts them back in the queue once
the cause is fixed (``requeue``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent.crm.instruments import instruments, live_outboxes, observe_outbox
from agent.crm.models import OutboxStats
from agent.errors import CircuitOpenError, DependencyRejected
from telemetry import names

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
_propagator = TraceContextTextMapPropagator()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dependency TEXT NOT NULL,
    operation TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    contact_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    traceparent TEXT,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, dependency, tenant_id, contact_key, id);
"""


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    dependency: str
    operation: str
    tenant_id: str
    contact_key: str
    payload: dict[str, Any]
    idempotency_key: str
    traceparent: str | None
    attempts: int
    created_at: float


KNOWN_DEPENDENCIES = ("crm",)  # reported with depth 0 even when empty, so the gauge exists


class Outbox:
    """SQLite-backed queue. Methods are async (SQLite work runs in a thread: fsync must not stall calls)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._closed = False
        self.changed = asyncio.Event()  # set on enqueue: wakes the drainer
        observe_outbox(self)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                live_outboxes.discard(self)
                self._db.close()

    def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            if self._closed:
                raise RuntimeError("outbox is closed")
            return fn(self._db)

    async def _arun(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return await asyncio.to_thread(self._run, fn)

    # --- writes -----------------------------------------------------------------------------
    async def enqueue(
        self,
        *,
        dependency: str,
        operation: str,
        tenant_id: str,
        contact_key: str,
        payload: dict[str, Any],
        idempotency_key: str,
    ) -> int:
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)  # the original call's trace, linked from the delivery span
        row = (
            dependency,
            operation,
            tenant_id,
            contact_key,
            json.dumps(payload),
            idempotency_key,
            carrier.get("traceparent"),
            self._clock(),
        )
        entry_id = await self._arun(
            lambda db: (
                db.execute(
                    "INSERT INTO outbox (dependency, operation, tenant_id, contact_key, payload, "
                    "idempotency_key, traceparent, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    row,
                ).lastrowid
            )
        )
        instruments().enqueued.add(1, {names.DEPENDENCY: dependency, names.OPERATION: operation})
        log.warning(
            "queued %s.%s for tenant %s in the outbox (entry %s)", dependency, operation, tenant_id, entry_id
        )
        self.changed.set()
        return int(entry_id)

    async def mark_delivered(self, entry: OutboxEntry) -> None:
        await self._arun(lambda db: db.execute("DELETE FROM outbox WHERE id=?", (entry.id,)))
        instruments().delivered.add(1, {names.DEPENDENCY: entry.dependency, names.OPERATION: entry.operation})

    async def mark_failed_attempt(self, entry: OutboxEntry, error: str) -> None:
        await self._arun(
            lambda db: db.execute(
                "UPDATE outbox SET attempts=attempts+1, last_error=? WHERE id=?", (error[:500], entry.id)
            )
        )

    async def park(self, entry: OutboxEntry, error: DependencyRejected) -> None:
        await self._arun(
            lambda db: db.execute(
                "UPDATE outbox SET status='dead', attempts=attempts+1, last_error=? WHERE id=?",
                (error.message[:500], entry.id),
            )
        )
        instruments().failed.add(
            1,
            {
                names.DEPENDENCY: entry.dependency,
                names.OPERATION: entry.operation,
                names.ERROR_TYPE: error.error_type,
            },
        )
        log.error(
            "outbox entry %s (%s.%s, tenant %s) rejected by %s and parked as dead letter: %s",
            entry.id,
            entry.dependency,
            entry.operation,
            entry.tenant_id,
            entry.dependency,
            error.message,
        )

    async def requeue(self, ids: Iterable[int] | None = None) -> int:
        """Put parked entries back in the queue (all of them when ``ids`` is None); how many moved.

        For after the cause of the rejection is fixed (a missing contact or tenant in the CRM, a
        validation rule). Each requeued entry gets a new idempotency key: an idempotent API records
        the rejection under the old key and would replay it. That cannot apply a write twice: the
        CRM's answer for the old key was the rejection, so the write was not applied under it.
        """
        wanted = None if ids is None else sorted({int(i) for i in ids})
        if wanted == []:
            return 0
        requeue = (
            "UPDATE outbox SET status='pending', "
            "idempotency_key = idempotency_key || '.r' || lower(hex(randomblob(6))) WHERE status='dead'"
        )

        def move(db: sqlite3.Connection) -> int:
            if wanted is None:
                return db.execute(requeue).rowcount
            return db.execute(f"{requeue} AND id IN ({','.join('?' * len(wanted))})", wanted).rowcount

        moved = int(await self._arun(move))
        if moved:
            log.warning("requeued %s parked outbox entries", moved)
            self.changed.set()
        return moved

    # --- reads ------------------------------------------------------------------------------
    async def has_pending(self, dependency: str, tenant_id: str, contact_key: str) -> bool:
        row = await self._arun(
            lambda db: db.execute(
                "SELECT 1 FROM outbox WHERE status='pending' AND dependency=? AND tenant_id=? "
                "AND contact_key=? LIMIT 1",
                (dependency, tenant_id, contact_key),
            ).fetchone()
        )
        return row is not None

    async def pending(self, limit: int = 200) -> list[OutboxEntry]:
        rows = await self._arun(
            lambda db: db.execute(
                "SELECT id, dependency, operation, tenant_id, contact_key, payload, idempotency_key, "
                "traceparent, attempts, created_at FROM outbox WHERE status='pending' ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            OutboxEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9]) for r in rows
        ]

    async def dead_letters(self) -> list[dict[str, Any]]:
        return await self.entries(status="dead")

    async def entries(self, status: str | None = None) -> list[dict[str, Any]]:
        """Entries (pending and parked, or one ``status``), oldest first, without payloads (for operators)."""
        keys = (
            "id",
            "status",
            "dependency",
            "operation",
            "tenant_id",
            "contact_key",
            "attempts",
            "last_error",
            "created_at",
        )
        where, args = ("WHERE status=?", (status,)) if status else ("", ())
        query = f"SELECT {', '.join(keys)} FROM outbox {where} ORDER BY id"
        rows = await self._arun(lambda db: db.execute(query, args).fetchall())
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def dead_by_dependency(self) -> dict[str, int]:
        """{dependency: parked entries}; sync: read by the metric reader."""
        try:
            rows = self._run(
                lambda db: db.execute(
                    "SELECT dependency, COUNT(*) FROM outbox WHERE status='dead' GROUP BY dependency"
                ).fetchall()
            )
        except (RuntimeError, sqlite3.Error):
            return {}
        out = dict.fromkeys(KNOWN_DEPENDENCIES, 0)
        out.update({dependency: int(count) for dependency, count in rows})
        return out

    def stats_by_dependency(self) -> dict[str, tuple[int, float | None]]:
        """{dependency: (depth, oldest age in s)} for pending entries; sync: read by the metric reader."""
        try:
            rows = self._run(
                lambda db: db.execute(
                    "SELECT dependency, COUNT(*), MIN(created_at) FROM outbox WHERE status='pending' "
                    "GROUP BY dependency"
                ).fetchall()
            )
        except (RuntimeError, sqlite3.Error):
            return {}
        now = self._clock()
        out: dict[str, tuple[int, float | None]] = {dep: (0, None) for dep in KNOWN_DEPENDENCIES}
        for dependency, depth, oldest in rows:
            out[dependency] = (int(depth), max(0.0, now - oldest))
        return out

    def stats(self) -> OutboxStats:
        by_dep = self.stats_by_dependency()
        ages = [age for _, age in by_dep.values() if age is not None]
        return OutboxStats(depth=sum(d for d, _ in by_dep.values()), oldest_age_s=max(ages) if ages else None)


Deliver = Callable[[OutboxEntry], Awaitable[None]]


class OutboxDrainer:
    """Background task: delivers pending entries when the dependency is reachable.

    One pass walks pending entries in id order. A contact whose entry failed transiently is skipped
    for the rest of the pass (its later writes must wait: order per contact); an open breaker ends
    the pass (no point, and no network call). A rejected entry (4xx) is parked and the contact's
    next entries go on.
    """

    def __init__(self, outbox: Outbox, deliver: Deliver, *, interval_s: float = 2.0) -> None:
        self.outbox = outbox
        self.deliver = deliver
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="crm-outbox-drainer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self.outbox.changed.clear()  # before the pass: an enqueue during it wakes the next one
            delivered = 0
            try:
                delivered = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the drainer die: log and try again next interval
                log.exception("outbox drain pass failed")
            if delivered:
                continue  # progress: a backlog larger than one batch drains without pauses
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.changed.wait(), timeout=self.interval_s)

    async def drain_once(self) -> int:
        """One pass; returns the number of entries delivered."""
        delivered = 0
        blocked: set[tuple[str, str, str]] = set()
        for entry in await self.outbox.pending():
            scope = (entry.dependency, entry.tenant_id, entry.contact_key)
            if scope in blocked:
                continue
            try:
                await self._deliver_one(entry)
            except CircuitOpenError:
                break
            except DependencyRejected as exc:
                await self.outbox.park(entry, exc)
                continue
            except Exception as exc:
                blocked.add(scope)
                await self.outbox.mark_failed_attempt(entry, str(exc))
                continue
            await self.outbox.mark_delivered(entry)
            delivered += 1
        return delivered

    async def _deliver_one(self, entry: OutboxEntry) -> None:
        links = []
        if entry.traceparent:
            origin = trace.get_current_span(_propagator.extract({"traceparent": entry.traceparent}))
            links.append(trace.Link(origin.get_span_context()))
        with _tracer.start_as_current_span(
            "outbox.deliver",
            links=links,
            attributes={
                names.DEPENDENCY: entry.dependency,
                names.OPERATION: entry.operation,
                names.TENANT_ID: entry.tenant_id,
                names.IDEMPOTENCY_KEY: entry.idempotency_key,
            },
        ):
            await self.deliver(entry)
