"""The outbox in one SQLite file (WAL, ``synchronous=FULL``): the ``OutboxStore`` of one host.

Claims run in ``BEGIN IMMEDIATE`` transactions, so two processes (or two drainers) on one file take
turns and never hold the same entry. A lease names its owner ``host:pid:token``; SQLite files are
local, so a lease whose owner is a dead process of this host is ignored at once (a restarted agent
delivers what a killed one held, without waiting for the lease to run out).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from agent.crm.instruments import count_claims
from agent.crm.outbox_file import open_outbox_db
from agent.crm.outbox_store import ClaimState, Lease, NewEntry, OutboxEntry, StorageError

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
    created_at REAL NOT NULL,
    lease_owner TEXT,  -- who is sending it now (host:pid:token), NULL when nobody
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, dependency, tenant_id, contact_key, id);
"""
# Files written before leases existed get the two columns on open.
_LEASE_COLUMNS = (("lease_owner", "TEXT"), ("lease_until", "REAL"))
_ENTRY_COLUMNS = (
    "id, dependency, operation, tenant_id, contact_key, payload, idempotency_key, traceparent, "
    "attempts, created_at"
)
_HEAD_SCAN = 200  # heads read per claim: enough to find unclaimed ones behind those in flight
_HOST = socket.gethostname()


def lease_owner() -> str:
    """A lease owner id for this process (one per ``Outbox``)."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    return OutboxEntry(
        row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7], row[8], row[9]
    )


class SqliteOutboxStore:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._clock = clock
        self._lock = threading.Lock()  # one connection, used from worker threads in turn
        self._closed = False
        try:
            # OutboxUnusable (exit 2) for a directory, a non-SQLite file or another application's
            # database; a file from before leases is ours and gets its columns below.
            self._db = open_outbox_db(self.path, _SCHEMA, optional_columns={c for c, _ in _LEASE_COLUMNS})
            have = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
            for column, kind in _LEASE_COLUMNS:
                if column not in have:
                    self._db.execute(f"ALTER TABLE outbox ADD COLUMN {column} {kind}")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the outbox {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # --- plumbing ---------------------------------------------------------------------------
    def _run(self, fn: Callable[[sqlite3.Connection], Any], *, write: bool = False, sync: bool = True) -> Any:
        """``sync=False``: a write whose loss in a power cut is harmless (a claim, a mark after
        delivery: at worst the entry is sent again and the CRM replays it) commits without an fsync.
        What must survive one (a new entry, a requeue) is fsynced (``synchronous=FULL``)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("outbox is closed")
            try:
                if not write:
                    return fn(self._db)
                if not sync:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(self._db)
                        self._db.execute("COMMIT")
                    except BaseException:
                        if self._db.in_transaction:
                            with contextlib.suppress(sqlite3.Error):
                                self._db.execute("ROLLBACK")
                        raise
                finally:
                    if not sync:
                        self._db.execute("PRAGMA synchronous=FULL")
                return result
            except sqlite3.Error as exc:
                raise StorageError(f"outbox {self.path}: {exc}") from exc

    def _held(self, owner: str | None, until: float | None, now: float) -> bool:
        """Is this lease still someone's? Expired, or its owner is a dead process here: no."""
        if owner is None or until is None or until <= now:
            return False
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if host == _HOST and pid.isdigit() and int(pid) != os.getpid():
            return _pid_alive(int(pid))
        return True

    def _claim_in(self, db: sqlite3.Connection, entry_id: int, lease: Lease) -> tuple[ClaimState, str | None]:
        now = self._clock()
        row = db.execute(
            "SELECT status, dependency, tenant_id, contact_key, lease_owner, lease_until, last_error "
            "FROM outbox WHERE id=?",
            (entry_id,),
        ).fetchone()
        if row is None:
            return ClaimState.DONE, None
        status, dependency, tenant_id, contact, owner, until, last_error = row
        if status == "dead":
            return ClaimState.PARKED, last_error
        earlier = db.execute(
            "SELECT lease_owner, lease_until FROM outbox WHERE status='pending' AND dependency=? "
            "AND tenant_id=? AND contact_key=? AND id<? ORDER BY id LIMIT 1",
            (dependency, tenant_id, contact, entry_id),
        ).fetchone()
        if earlier is not None:
            return (ClaimState.WAIT if self._held(*earlier, now) else ClaimState.QUEUED), None
        if owner is not None and owner != lease.owner and self._held(owner, until, now):
            return ClaimState.WAIT, None
        db.execute(
            "UPDATE outbox SET lease_owner=?, lease_until=? WHERE id=?",
            (lease.owner, now + lease.seconds, entry_id),
        )
        count_claims(dependency, _takeover(owner, until, lease.owner, now))
        return ClaimState.CLAIMED, None

    # --- OutboxStore ------------------------------------------------------------------------
    def add(self, entry: NewEntry, lease: Lease | None) -> tuple[int, ClaimState]:
        row = (
            entry.dependency,
            entry.operation,
            entry.tenant_id,
            entry.contact_key,
            json.dumps(entry.payload),
            entry.idempotency_key,
            entry.traceparent,
            entry.created_at,
        )

        def tx(db: sqlite3.Connection) -> tuple[int, ClaimState]:
            entry_id = int(
                db.execute(
                    "INSERT INTO outbox (dependency, operation, tenant_id, contact_key, payload, "
                    "idempotency_key, traceparent, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    row,
                ).lastrowid
                or 0
            )
            if lease is None:
                return entry_id, ClaimState.QUEUED
            return entry_id, self._claim_in(db, entry_id, lease)[0]

        return self._run(tx, write=True)

    def claim(self, entry_id: int, lease: Lease) -> tuple[ClaimState, str | None]:
        return self._run(lambda db: self._claim_in(db, entry_id, lease), write=True, sync=False)

    def claim_heads(self, lease: Lease, limit: int, skip: Collection[int]) -> list[OutboxEntry]:
        def tx(db: sqlite3.Connection) -> list[OutboxEntry]:
            now = self._clock()
            rows = db.execute(
                f"SELECT {_ENTRY_COLUMNS}, lease_owner, lease_until FROM outbox o "
                "WHERE status='pending' AND id = (SELECT MIN(id) FROM outbox i WHERE i.status='pending' "
                "AND i.dependency=o.dependency AND i.tenant_id=o.tenant_id AND i.contact_key=o.contact_key) "
                "ORDER BY id LIMIT ?",
                (_HEAD_SCAN + len(skip),),
            ).fetchall()
            chosen = [row for row in rows if row[0] not in skip and not self._held(row[10], row[11], now)][
                :limit
            ]
            db.executemany(
                "UPDATE outbox SET lease_owner=?, lease_until=? WHERE id=?",
                [(lease.owner, now + lease.seconds, row[0]) for row in chosen],
            )
            for row in chosen:
                count_claims(row[1], _takeover(row[10], row[11], lease.owner, now))
            return [_entry(row[:10]) for row in chosen]

        return self._run(tx, write=True, sync=False)

    def complete(self, entry_ids: Collection[int]) -> None:
        ids = sorted(set(entry_ids))
        if ids:
            self._run(
                lambda db: db.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))})", ids),
                write=True,
                sync=False,
            )

    def release(self, entry_id: int, owner: str, error: str | None) -> None:
        self._run(
            lambda db: db.execute(
                "UPDATE outbox SET lease_owner=NULL, lease_until=NULL, attempts=attempts+?, "
                "last_error=COALESCE(?, last_error) WHERE id=? AND lease_owner=?",
                (0 if error is None else 1, None if error is None else error[:500], entry_id, owner),
            ),
            write=True,
            sync=False,
        )

    def release_owner(self, owner: str) -> None:
        self._run(
            lambda db: db.execute(
                "UPDATE outbox SET lease_owner=NULL, lease_until=NULL WHERE lease_owner=?", (owner,)
            ),
            write=True,
            sync=False,
        )

    def park(self, entry_id: int, error: str) -> None:
        self._run(
            lambda db: db.execute(
                "UPDATE outbox SET status='dead', lease_owner=NULL, lease_until=NULL, "
                "attempts=attempts+1, last_error=? WHERE id=?",
                (error[:500], entry_id),
            ),
            write=True,
        )

    def requeue(self, ids: Iterable[int] | None) -> int:
        wanted = None if ids is None else sorted({int(i) for i in ids})
        if wanted == []:
            return 0
        requeue = (
            "UPDATE outbox SET status='pending', lease_owner=NULL, lease_until=NULL, "
            "idempotency_key = idempotency_key || '.r' || lower(hex(randomblob(6))) WHERE status='dead'"
        )

        def move(db: sqlite3.Connection) -> int:
            if wanted is None:
                return db.execute(requeue).rowcount
            return db.execute(f"{requeue} AND id IN ({','.join('?' * len(wanted))})", wanted).rowcount

        return int(self._run(move, write=True))

    def pending(self, limit: int) -> list[OutboxEntry]:
        rows = self._run(
            lambda db: db.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE status='pending' ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        )
        return [_entry(row) for row in rows]

    def has_pending(self, dependency: str, tenant_id: str, contact_key: str) -> bool:
        row = self._run(
            lambda db: db.execute(
                "SELECT 1 FROM outbox WHERE status='pending' AND dependency=? AND tenant_id=? "
                "AND contact_key=? LIMIT 1",
                (dependency, tenant_id, contact_key),
            ).fetchone()
        )
        return row is not None

    def entries(self, status: str | None) -> list[dict[str, Any]]:
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
        rows = self._run(lambda db: db.execute(query, args).fetchall())
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def pending_stats(self) -> dict[str, tuple[int, float]]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT dependency, COUNT(*), MIN(created_at) FROM outbox WHERE status='pending' "
                "GROUP BY dependency"
            ).fetchall()
        )
        return {dependency: (int(depth), float(oldest)) for dependency, depth, oldest in rows}

    def dead_counts(self) -> dict[str, int]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT dependency, COUNT(*) FROM outbox WHERE status='dead' GROUP BY dependency"
            ).fetchall()
        )
        return {dependency: int(count) for dependency, count in rows}


def _takeover(owner: str | None, until: float | None, mine: str, now: float) -> str | None:
    """Why a claim took an entry over from another sender (None: nobody else held it)."""
    if owner is None or owner == mine:
        return None
    return "lease_expired" if until is None or until <= now else "owner_gone"
