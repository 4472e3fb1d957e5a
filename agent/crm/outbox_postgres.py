"""The outbox in PostgreSQL: the ``OutboxStore`` that many workers on many hosts share.

Selected with ``CRM_OUTBOX_URL=postgresql://...`` (SQLite stays the embedded default). The semantics
are SQLite's (``outbox_store``); how each is kept when several hosts claim at once:

- **Order per contact.** ``add`` takes a transaction-scoped advisory lock on the contact's scope
  before it inserts, so one contact's entries are committed in id order (PostgreSQL hands out
  identity values at insert, not at commit: without the lock, entry 6 could commit while 5 is still
  in flight and be sent first). Only a contact's head (lowest pending id) is ever claimed.
- **One owner at a time.** ``claim_heads`` reads heads with ``FOR UPDATE SKIP LOCKED``: two drainers
  never wait on each other nor take the same row; a head another transaction is claiming is skipped
  for this pass, and its contact's later entries are not heads, so nothing overtakes it.
- **Dead owners.** SQLite asks "is that pid alive on this host?". Across hosts a pid means nothing,
  so each process holds a *shared* session advisory lock (its presence key, from ``host:pid``) on
  one dedicated connection for as long as it runs. A process that dies loses its connection and the
  server drops the lock at once; a lease whose owner's presence lock is gone is taken over without
  waiting (``pg_locks``). A host that vanishes without closing its sockets keeps the lock until the
  server's TCP keepalive gives up; then, or when the lease runs out, whichever is first, the entry
  is taken over. Either way the CRM sees the same idempotency key: at worst a replay, never a
  second write. A presence-key collision between two live processes only delays a take-over.
- **Durable before the first attempt.** ``add`` commits with ``synchronous_commit`` on; claims and
  marks, whose loss only means a replay, commit without waiting for the WAL flush (as SQLite's skip
  their fsync).

The schema is created and upgraded on start under an advisory lock (workers starting together do it
once); ``outbox_schema`` records the versions applied. One pool per database URL and process is
shared by every ``Outbox`` of the process (each LiveKit job has its own): ``shared()``.

psycopg 3 (sync) with ``psycopg_pool`` rather than asyncpg: the store interface is synchronous and
``Outbox`` runs it in a thread, like SQLite's, so a thread-safe sync pool fits without a second loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from agent.crm.instruments import count_claims
from agent.crm.outbox_store import ClaimState, Lease, NewEntry, OutboxEntry, StorageError
from telemetry.config_errors import ConfigError

# Advisory lock classes (the first key of the two-key form), so ours never meet another app's.
_LOCK_SCHEMA = 0x5A1E0001  # schema creation / upgrade
_LOCK_SCOPE = 0x5A1E0002  # one contact's adds, in id order
_LOCK_PRESENCE = 0x5A1E0003  # "this process is alive" (shared, session-scoped)

LATEST_SCHEMA = 1
_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dependency TEXT NOT NULL,
        operation TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        contact_key TEXT NOT NULL,
        payload JSONB NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        traceparent TEXT,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        lease_owner TEXT,               -- who is sending it now (host:pid:token), NULL when nobody
        lease_until DOUBLE PRECISION,
        lease_presence INTEGER          -- the owner's presence lock key (see the module docstring)
    );
    CREATE INDEX outbox_pending_scope ON outbox (dependency, tenant_id, contact_key, id)
        WHERE status = 'pending';
    CREATE INDEX outbox_status ON outbox (status, id);
    """,
}

_ENTRY_COLUMNS = (
    "id, dependency, operation, tenant_id, contact_key, payload, idempotency_key, traceparent, "
    "attempts, created_at"
)
# Is the lease owner's process alive (it holds its presence lock in this database)?
_OWNER_ALIVE = f"""
    (o.lease_presence IS NULL OR EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.classid = {_LOCK_PRESENCE}::bigint::oid AND l.objid = o.lease_presence::bigint::oid
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())))
"""
_HEAD_SCAN = 200
_PROBE_INTERVAL_S = 1.0
_HOST = socket.gethostname()


class OutboxDatabaseUnusable(ConfigError, StorageError):
    """The database of ``CRM_OUTBOX_URL`` cannot be used at start (unreachable, refused, a newer schema):
    one line naming the URL without its password, exit status 2 from the commands."""


def presence_key(owner: str) -> int:
    """The presence lock key of a lease owner ``host:pid:token`` (its process, not the token)."""
    host, _, rest = owner.partition(":")
    return zlib.crc32(f"{host}:{rest.partition(':')[0]}".encode()) & 0x7FFFFFFF


def redact_url(url: str) -> str:
    """The URL as it may be shown: without its password (``postgresql://user@host:port/db``)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparseable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = parts.get("host", "")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    payload = row[5] if isinstance(row[5], dict) else json.loads(row[5])
    return OutboxEntry(row[0], row[1], row[2], row[3], row[4], payload, row[6], row[7], row[8], row[9])


def _scope_key(dependency: str, tenant_id: str, contact_key: str) -> int:
    return zlib.crc32("\x1f".join((dependency, tenant_id, contact_key)).encode()) & 0x7FFFFFFF


class PostgresOutboxStore:
    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 5.0,
        pool_size: int = 8,
    ) -> None:
        self.location = redact_url(url)
        self._url = url
        self._secret = conninfo_to_dict(url).get("password") or None
        self._clock = clock
        self._presence = presence_key(f"{_HOST}:{os.getpid()}:")
        self._presence_conn: psycopg.Connection[Any] | None = None
        self._presence_lock = threading.Lock()
        self._users = 1
        self._closed = False
        timeout_ms = int(timeout_s * 1000)
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(timeout_s)),
            # A server that stops answering mid-query: the socket gives up instead of hanging a thread.
            "tcp_user_timeout": timeout_ms,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "application_name": "sales-agent-outbox",
            # A lock or statement never holds a write longer than this; a transaction left open by a
            # client that vanished is ended by the server.
            "options": " ".join(
                filter(
                    None,
                    (
                        conninfo_to_dict(url).get("options"),  # the URL's own (e.g. a search_path)
                        f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
                        "-c idle_in_transaction_session_timeout=60000",
                    ),
                )
            ),
        }
        self._timeout_s = timeout_s
        self._pool_size = pool_size
        self._pool = self._new_pool()
        self._state_lock = threading.Lock()
        self._down_since: float | None = None  # the database stopped answering (monotonic time)
        self._next_probe = 0.0
        self._presence_checked = 0.0
        try:
            # The presence connection first: when the server cannot be reached, its error says why
            # (refused, unknown host, bad password), where the pool would only report a timeout.
            self._ensure_presence()
            assert self._presence_conn is not None
            self._migrate(self._presence_conn)
            self._pool.open(wait=True, timeout=timeout_s)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            self._close_connections()
            reason = self._clean(exc)
            raise OutboxDatabaseUnusable(
                f"cannot use the outbox database {self.location} (CRM_OUTBOX_URL): {reason}"
            ) from None
        except StorageError:
            self._close_connections()
            raise

    # --- one store per URL and process ------------------------------------------------------
    _shared: dict[str, PostgresOutboxStore] = {}  # noqa: RUF012 - a process-wide registry
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, url: str, *, timeout_s: float = 5.0, pool_size: int = 8) -> PostgresOutboxStore:
        """The process's store for ``url`` (opened on first use); each caller closes it once."""
        with cls._shared_lock:
            store = cls._shared.get(url)
            if store is not None and not store._closed:
                store._users += 1
                return store
            store = cls(url, timeout_s=timeout_s, pool_size=pool_size)
            cls._shared[url] = store
            return store

    def close(self) -> None:
        with self._shared_lock:
            self._users -= 1
            if self._users > 0 or self._closed:
                return
            self._closed = True
            if self._shared.get(self._url) is self:
                del self._shared[self._url]
        self._close_connections()

    def _close_connections(self) -> None:
        self._pool.close()
        with self._presence_lock:
            if self._presence_conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._presence_conn.close()

    # --- plumbing ---------------------------------------------------------------------------
    def _clean(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return text.replace(self._secret, "***") if self._secret else text

    def _new_pool(self) -> ConnectionPool[Any]:
        return ConnectionPool(
            self._url,
            kwargs=self._kwargs,
            min_size=1,
            max_size=self._pool_size,
            timeout=self._timeout_s,
            open=False,
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced
            name="sales-agent-outbox",
        )

    def _live_pool(self) -> ConnectionPool[Any]:
        """The pool, unless the database is down: then fail at once, and probe it once a second.

        Hand-written because the pool alone waits its whole timeout for every request during an
        outage (a 5 s pause in each tool call) and, after one, reconnects on a growing backoff
        (tens of seconds). A probe that connects replaces the pool with a fresh one.
        """
        with self._state_lock:
            if self._down_since is None:
                return self._pool
            now = time.monotonic()
            if now < self._next_probe:
                raise StorageError(
                    f"outbox {self.location}: the database has not answered for "
                    f"{now - self._down_since:.0f} s (probed again every {_PROBE_INTERVAL_S:g} s)"
                )
            self._next_probe = now + _PROBE_INTERVAL_S
        try:
            psycopg.connect(self._url, **self._kwargs).close()
        except (psycopg.Error, OSError) as exc:
            raise StorageError(f"outbox {self.location}: {self._clean(exc)}") from None
        with self._state_lock:
            old, self._pool = self._pool, self._new_pool()
            self._pool.open(wait=False)
            self._down_since = None
        threading.Thread(target=old.close, name="outbox-pool-close", daemon=True).start()
        return self._pool

    def _mark_down(self) -> None:
        with self._state_lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
                self._next_probe = self._down_since + _PROBE_INTERVAL_S

    @contextlib.contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[psycopg.Cursor[Any]]:
        if self._closed:
            raise RuntimeError("outbox is closed")
        pool = self._live_pool()
        try:
            conn = pool.getconn()
        except PoolTimeout as exc:
            self._mark_down()
            raise StorageError(f"outbox {self.location}: {self._clean(exc)}") from None
        try:
            with conn.transaction(), conn.cursor() as cur:
                if not durable:
                    cur.execute("SET LOCAL synchronous_commit TO off")
                yield cur
        except (psycopg.Error, OSError) as exc:
            if conn.broken or conn.closed:  # the server went away, not a statement error
                self._mark_down()
            raise StorageError(f"outbox {self.location}: {self._clean(exc)}") from None
        finally:
            pool.putconn(conn)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_SCHEMA,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS outbox_schema "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM outbox_schema")
            current = int(cur.fetchone()[0])  # type: ignore[index]
            if current > LATEST_SCHEMA:
                raise OutboxDatabaseUnusable(
                    f"the outbox database {self.location} (CRM_OUTBOX_URL) has schema version {current}, "
                    f"newer than this agent knows ({LATEST_SCHEMA}): run the newer agent version, or "
                    "another database"
                )
            for version in range(current + 1, LATEST_SCHEMA + 1):
                cur.execute(_MIGRATIONS[version])
                cur.execute("INSERT INTO outbox_schema (version) VALUES (%s)", (version,))

    def _ensure_presence(self) -> None:
        """Hold this process's presence lock on a connection of its own (reconnect if it broke;
        checked with a round trip at most once a second, a server restart is otherwise unseen)."""
        with self._presence_lock:
            conn = self._presence_conn
            now = time.monotonic()
            if conn is not None and not conn.closed and not conn.broken:
                if now - self._presence_checked < _PROBE_INTERVAL_S:
                    return
                try:
                    conn.execute("SELECT 1")
                    self._presence_checked = now
                    return
                except psycopg.Error:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
            conn = psycopg.connect(self._url, **self._kwargs)
            conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (_LOCK_PRESENCE, self._presence))
            self._presence_conn = conn
            self._presence_checked = now

    def _held(self, owner: str | None, until: float | None, alive: bool, mine: str, now: float) -> bool:
        if owner is None or until is None or until <= now:
            return False
        return owner == mine or alive

    def _claim_in(
        self, cur: psycopg.Cursor[Any], entry_id: int, lease: Lease
    ) -> tuple[ClaimState, str | None]:
        now = self._clock()
        cur.execute(
            "SELECT status, dependency, tenant_id, contact_key, lease_owner, lease_until, last_error, "
            f"{_OWNER_ALIVE} FROM outbox o WHERE id = %s FOR UPDATE",
            (entry_id,),
        )
        row = cur.fetchone()
        if row is None:
            return ClaimState.DONE, None
        status, dependency, tenant_id, contact, owner, until, last_error, alive = row
        if status == "dead":
            return ClaimState.PARKED, last_error
        cur.execute(
            f"SELECT lease_owner, lease_until, {_OWNER_ALIVE} FROM outbox o WHERE status = 'pending' "
            "AND dependency = %s AND tenant_id = %s AND contact_key = %s AND id < %s ORDER BY id LIMIT 1",
            (dependency, tenant_id, contact, entry_id),
        )
        earlier = cur.fetchone()
        if earlier is not None:
            held = self._held(earlier[0], earlier[1], earlier[2], lease.owner, now)
            return (ClaimState.WAIT if held else ClaimState.QUEUED), None
        if owner is not None and owner != lease.owner and self._held(owner, until, alive, lease.owner, now):
            return ClaimState.WAIT, None
        cur.execute(
            "UPDATE outbox SET lease_owner = %s, lease_until = %s, lease_presence = %s WHERE id = %s",
            (lease.owner, now + lease.seconds, presence_key(lease.owner), entry_id),
        )
        count_claims(dependency, _takeover(owner, until, alive, lease.owner, now))
        return ClaimState.CLAIMED, None

    # --- OutboxStore ------------------------------------------------------------------------
    def add(self, entry: NewEntry, lease: Lease | None) -> tuple[int, ClaimState]:
        with self._tx() as cur:
            scope = _scope_key(entry.dependency, entry.tenant_id, entry.contact_key)
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_SCOPE, scope))
            cur.execute(
                "INSERT INTO outbox (dependency, operation, tenant_id, contact_key, payload, "
                "idempotency_key, traceparent, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                (
                    entry.dependency, entry.operation, entry.tenant_id, entry.contact_key,
                    json.dumps(entry.payload), entry.idempotency_key, entry.traceparent, entry.created_at,
                ),
            )  # fmt: skip
            entry_id = int(cur.fetchone()[0])  # type: ignore[index]
            if lease is None:
                return entry_id, ClaimState.QUEUED
            self._ensure_presence_or_fail()
            return entry_id, self._claim_in(cur, entry_id, lease)[0]

    def _ensure_presence_or_fail(self) -> None:
        """Inside a transaction: claims are only made while others can see this process alive."""
        try:
            self._ensure_presence()
        except (psycopg.Error, OSError) as exc:
            self._mark_down()
            raise StorageError(f"outbox {self.location}: {self._clean(exc)}") from None

    def claim(self, entry_id: int, lease: Lease) -> tuple[ClaimState, str | None]:
        with self._tx(durable=False) as cur:
            self._ensure_presence_or_fail()
            return self._claim_in(cur, entry_id, lease)

    def claim_heads(self, lease: Lease, limit: int, skip: Collection[int]) -> list[OutboxEntry]:
        with self._tx(durable=False) as cur:
            self._ensure_presence_or_fail()
            now = self._clock()
            cur.execute(
                f"SELECT {_ENTRY_COLUMNS}, lease_owner, lease_until, {_OWNER_ALIVE} FROM outbox o "
                "WHERE status = 'pending' AND id = (SELECT MIN(id) FROM outbox i WHERE i.status = 'pending' "
                "AND i.dependency = o.dependency AND i.tenant_id = o.tenant_id "
                "AND i.contact_key = o.contact_key) "
                "ORDER BY id LIMIT %s FOR UPDATE OF o SKIP LOCKED",
                (_HEAD_SCAN + len(skip),),
            )
            rows = [
                row
                for row in cur.fetchall()
                if row[0] not in skip and not self._held(row[10], row[11], row[12], lease.owner, now)
            ][:limit]
            if rows:
                cur.execute(
                    "UPDATE outbox SET lease_owner = %s, lease_until = %s, lease_presence = %s "
                    "WHERE id = ANY(%s)",
                    (lease.owner, now + lease.seconds, presence_key(lease.owner), [r[0] for r in rows]),
                )
            for row in rows:
                count_claims(row[1], _takeover(row[10], row[11], row[12], lease.owner, now))
            return [_entry(row[:10]) for row in rows]

    def complete(self, entry_ids: Collection[int]) -> None:
        ids = sorted(set(entry_ids))
        if ids:
            with self._tx(durable=False) as cur:
                cur.execute("DELETE FROM outbox WHERE id = ANY(%s)", (ids,))

    def release(self, entry_id: int, owner: str, error: str | None) -> None:
        with self._tx(durable=False) as cur:
            cur.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, lease_presence = NULL, "
                "attempts = attempts + %s, last_error = COALESCE(%s, last_error) "
                "WHERE id = %s AND lease_owner = %s",
                (0 if error is None else 1, None if error is None else error[:500], entry_id, owner),
            )

    def release_owner(self, owner: str) -> None:
        with self._tx(durable=False) as cur:
            cur.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, lease_presence = NULL "
                "WHERE lease_owner = %s",
                (owner,),
            )

    def park(self, entry_id: int, error: str) -> None:
        with self._tx() as cur:
            cur.execute(
                "UPDATE outbox SET status = 'dead', lease_owner = NULL, lease_until = NULL, "
                "lease_presence = NULL, attempts = attempts + 1, last_error = %s WHERE id = %s",
                (error[:500], entry_id),
            )

    def requeue(self, ids: Iterable[int] | None) -> int:
        wanted = None if ids is None else sorted({int(i) for i in ids})
        if wanted == []:
            return 0
        query = sql.SQL(
            "UPDATE outbox SET status = 'pending', lease_owner = NULL, lease_until = NULL, "
            "lease_presence = NULL, "
            "idempotency_key = idempotency_key || '.r' || substr(md5(random()::text), 1, 12) "
            "WHERE status = 'dead'{}"
        ).format(sql.SQL("") if wanted is None else sql.SQL(" AND id = ANY(%s)"))
        with self._tx() as cur:
            cur.execute(query, () if wanted is None else (wanted,))
            return cur.rowcount

    def pending(self, limit: int) -> list[OutboxEntry]:
        with self._tx() as cur:
            cur.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id LIMIT %s", (limit,)
            )
            return [_entry(row) for row in cur.fetchall()]

    def has_pending(self, dependency: str, tenant_id: str, contact_key: str) -> bool:
        with self._tx() as cur:
            cur.execute(
                "SELECT 1 FROM outbox WHERE status = 'pending' AND dependency = %s AND tenant_id = %s "
                "AND contact_key = %s LIMIT 1",
                (dependency, tenant_id, contact_key),
            )
            return cur.fetchone() is not None

    def entries(self, status: str | None) -> list[dict[str, Any]]:
        keys = (
            "id", "status", "dependency", "operation", "tenant_id", "contact_key", "attempts",
            "last_error", "created_at",
        )  # fmt: skip
        where, args = ("WHERE status = %s", (status,)) if status else ("", ())
        with self._tx() as cur:
            cur.execute(f"SELECT {', '.join(keys)} FROM outbox {where} ORDER BY id", args)
            return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]

    def pending_stats(self) -> dict[str, tuple[int, float]]:
        with self._tx() as cur:
            cur.execute(
                "SELECT dependency, COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending' "
                "GROUP BY dependency"
            )
            return {dep: (int(depth), float(oldest)) for dep, depth, oldest in cur.fetchall()}

    def dead_counts(self) -> dict[str, int]:
        with self._tx() as cur:
            cur.execute("SELECT dependency, COUNT(*) FROM outbox WHERE status = 'dead' GROUP BY dependency")
            return {dep: int(count) for dep, count in cur.fetchall()}


def _takeover(owner: str | None, until: float | None, alive: bool, mine: str, now: float) -> str | None:
    """Why a claim took an entry over from another owner (None: nobody else held it)."""
    if owner is None or owner == mine:
        return None
    return "lease_expired" if until is None or until <= now else "owner_gone"
