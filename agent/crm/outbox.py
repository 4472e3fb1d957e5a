"""The durable outbox of CRM writes (a transactional outbox) and its drainer.

Every write is committed here *before* its first attempt (``add``) and removed once the CRM has it
(``complete``): a process killed at any instant leaves each captured write either delivered or in
this file, and a restarted process delivers what is left. The live attempt (the caller hears "saved"
or "will sync shortly") and the drainer go through the same claims (``outbox_store``): entries of one
contact go out in id order, and one sender owns an entry at a time. The entry's idempotency key
makes a re-delivery after a crash between "sent" and "marked" a replay at the CRM: exactly once.

A 4xx on delivery means the entry itself is bad: it is parked (``status='dead'``) with a log line and
``sales_agent.outbox.failed`` so it cannot block the queue. Parked entries are kept, never dropped:
``sales_agent.outbox.dead_letters`` counts them (the OutboxDeadLetters alert), and ``sales-agent
outbox`` lists them and puts them back in the queue once the cause is fixed (``requeue``).

When the storage itself fails (disk full, I/O error) delivery goes on: an entry the CRM has but the
file cannot mark is remembered in memory (a restarted process would send it again: a replay), and
the drainer reads the queue without claiming it. Each failure counts in
``sales_agent.outbox.storage_errors`` (the OutboxStorageFailing alert) with an ERROR log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent.crm import wakeup
from agent.crm.instruments import instruments, live_outboxes, observe_outbox, zero_claims
from agent.crm.models import OutboxStats
from agent.crm.outbox_sqlite import SqliteOutboxStore, lease_owner
from agent.crm.outbox_store import ClaimState, Lease, NewEntry, OutboxEntry, OutboxStore, StorageError
from agent.errors import CircuitOpenError, DependencyRejected
from telemetry import names

T = TypeVar("T")
log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
_propagator = TraceContextTextMapPropagator()

__all__ = ["ClaimState", "Outbox", "OutboxDrainer", "OutboxEntry", "StorageError"]

DEFAULT_LEASE_S = 60.0
TURN_POLL_S = 0.25  # a write waiting behind one sent by another process re-checks this often
STORAGE_LOG_INTERVAL_S = 60.0  # repeated storage failures of one step: one ERROR line a minute
STORAGE_STEPS = ("add", "claim", "complete", "release", "park", "read", "requeue")

KNOWN_DEPENDENCIES = ("crm",)  # reported with depth 0 even when empty, so the gauge exists


def is_database_url(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def open_store(
    location: str | Path,
    *,
    clock: Callable[[], float] | None = None,
    timeout_s: float = 5.0,
    pool_size: int = 8,
) -> OutboxStore:
    """The store at ``location``: a ``postgresql://`` URL (shared by many workers; one pool per URL
    and process unless a test clock is given) or an SQLite file path (this host's)."""
    if is_database_url(location):
        from agent.crm.outbox_postgres import PostgresOutboxStore  # psycopg only when asked for

        if clock is not None:
            return PostgresOutboxStore(str(location), clock=clock, timeout_s=timeout_s, pool_size=pool_size)
        return PostgresOutboxStore.shared(str(location), timeout_s=timeout_s, pool_size=pool_size)
    return SqliteOutboxStore(Path(location), clock=clock or time.time)


class Outbox:
    """The queue over an ``OutboxStore`` (``open_store(location)`` unless given): async, metered, shared.

    Store calls run in a thread (an fsync or a database round trip must not stall calls). Several
    ``Outbox`` objects may use one store (each job of a worker, the worker's drainer, ``sales-agent
    outbox``, other workers on a shared database); claims keep them from sending one entry twice or a
    contact's entries out of order.
    """

    def __init__(
        self,
        location: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        lease_s: float = DEFAULT_LEASE_S,
        store: OutboxStore | None = None,
        timeout_s: float = 5.0,
        pool_size: int = 8,
    ) -> None:
        self._clock = clock
        self.store: OutboxStore = (
            store
            if store is not None
            else open_store(
                location,
                clock=None if clock is time.time else clock,
                timeout_s=timeout_s,
                pool_size=pool_size,
            )
        )
        self.location = self.store.location  # for log lines: a path, or a URL without its password
        self.lease = Lease(lease_owner(), lease_s)  # live writes
        # The drainer claims under its own name, so a live write never takes over an entry it is sending.
        self.drain_lease = Lease(f"{self.lease.owner}-drain", lease_s)
        self.work = wakeup.for_location(self.location, "work")  # an entry became the drainer's to send
        self.turns = wakeup.for_location(self.location, "turns")  # an entry left the queue or its sender
        # Delivered, but the store could not remove them (storage failure): {id: dependency}.
        self._unmarked: dict[int, str] = {}
        self._storage_logged: dict[str, float] = {}
        # Steps whose last store call failed, with the error ({} while storage works): for /health.
        self._storage_failures: dict[str, str] = {}
        self._closed = False
        # One contact's adds from this outbox, in the order they were asked for (see ``add``).
        self._adding: dict[tuple[str, str, str], tuple[asyncio.Lock, int]] = {}
        self._completing: set[asyncio.Task[None]] = set()  # removals started by complete_later
        observe_outbox(self)
        for dependency in KNOWN_DEPENDENCIES:
            zero_claims(dependency)
        for step in STORAGE_STEPS:  # series at 0 from the start: increase() then sees the first failure
            instruments().storage_errors.add(0, {names.OUTBOX_STEP: step})

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        live_outboxes.discard(self)
        with contextlib.suppress(StorageError, RuntimeError):
            for lease in (self.lease, self.drain_lease):  # what we were sending goes to the next drainer
                self.store.release_owner(lease.owner)
        self.store.close()
        self.work.notify()

    async def _call(self, step: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            result = await asyncio.to_thread(fn, *args)
        except StorageError as exc:
            self._storage_failed(step, exc)
            raise
        self._storage_failures.pop(step, None)
        return result

    def storage_error(self) -> str | None:
        """``"<step>: <error>"`` for each store step whose last call failed (``; ``-joined), else None."""
        failing = list(self._storage_failures.items())
        return "; ".join(f"{step}: {error}" for step, error in failing) if failing else None

    def _storage_failed(self, step: str, exc: StorageError) -> None:
        self._storage_failures[step] = str(exc)
        instruments().storage_errors.add(1, {names.OUTBOX_STEP: step})
        now = time.monotonic()
        if now - self._storage_logged.get(step, -STORAGE_LOG_INTERVAL_S) < STORAGE_LOG_INTERVAL_S:
            return
        self._storage_logged[step] = now
        consequence = {
            "add": "new CRM writes cannot be made durable (each is tried live; if that fails, NOT saved)",
            "complete": "delivered writes stay in the file (kept in memory; a restart would replay them)",
        }.get(step, "deliveries go on without claims")
        log.error("outbox storage failed (%s) at %s: %s; %s", self.location, step, exc, consequence)

    # --- the write path ---------------------------------------------------------------------
    async def add(
        self,
        *,
        dependency: str,
        operation: str,
        tenant_id: str,
        contact_key: str,
        payload: dict[str, Any],
        idempotency_key: str,
        claim: bool = True,
    ) -> tuple[int, ClaimState]:
        """Commit a write (durable when this returns); with ``claim``, claim it when it may go now.

        A contact's writes get their ids in the order ``add`` was called: parallel tool calls of one
        reply each run their store call in a thread, and on PostgreSQL (a pool, network round trips)
        the second thread can reach the database first. A FIFO lock per contact keeps the call order.
        """
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)  # the original call's trace, linked from the delivery span
        entry = NewEntry(
            dependency, operation, tenant_id, contact_key, payload, idempotency_key,
            carrier.get("traceparent"), self._clock(),
        )  # fmt: skip
        scope = (dependency, tenant_id, contact_key)
        lock, users = self._adding.get(scope) or (asyncio.Lock(), 0)
        self._adding[scope] = (lock, users + 1)
        try:
            async with lock:
                return await self._call("add", self.store.add, entry, self.lease if claim else None)
        finally:
            lock, users = self._adding[scope]
            if users <= 1:
                del self._adding[scope]
            else:
                self._adding[scope] = (lock, users - 1)

    async def wait_turn(self, entry_id: int, timeout_s: float) -> tuple[ClaimState, str | None]:
        """Claim ``entry_id`` once the contact's earlier write in flight is done (at most ``timeout_s``).

        Still waiting at the deadline -> QUEUED: the drainer sends it after the earlier one.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            version = self.turns.version
            state, error = await self._call("claim", self.store.claim, entry_id, self.lease)
            left = deadline - loop.time()
            if state is not ClaimState.WAIT:
                return state, error
            if left <= 0:
                return ClaimState.QUEUED, None
            await self.turns.wait(version, min(left, TURN_POLL_S))

    async def complete(self, entry: OutboxEntry | int, dependency: str = "crm") -> None:
        """Delivered (or refused live): remove it. A storage failure keeps it in memory instead."""
        entry_id = entry if isinstance(entry, int) else entry.id
        try:
            await self._call("complete", self.store.complete, [entry_id])
        except StorageError:
            self._unmarked[entry_id] = dependency if isinstance(entry, int) else entry.dependency
        self.turns.notify()

    def complete_later(self, entry_id: int) -> None:
        """Delivered live: remove it without the caller waiting (``settle`` waits).

        The removal is bookkeeping, not durability: until it lands the entry stays claimed by this
        outbox's lease, so the drainer leaves it alone and the contact's next write waits its turn
        (``wait_turn``, woken by ``complete``). A crash before it lands makes the next drainer send
        it again, which the CRM replays by its idempotency key. In a busy agent the removal's thread
        hop waits for the GIL: 9-13 ms at p50 with 20 voice calls at once, off each write's reply.
        """
        task = asyncio.get_running_loop().create_task(self.complete(entry_id))
        self._completing.add(task)
        task.add_done_callback(self._completion_done)

    def _completion_done(self, task: asyncio.Task[None]) -> None:
        self._completing.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a store failure is handled inside
            log.error("outbox: removing a delivered entry failed", exc_info=task.exception())

    async def settle(self) -> None:
        """Wait until every removal ``complete_later`` started has landed."""
        while self._completing:
            await asyncio.wait(set(self._completing))

    async def release(self, entry_id: int, error: str | None, *, drainer: bool = False) -> None:
        """Hand a claimed entry back (``error``: its attempt failed). A live write's goes to the
        drainer at once; the drainer's own waits for its next pass."""
        owner = (self.drain_lease if drainer else self.lease).owner
        with contextlib.suppress(StorageError):  # counted and logged; the lease runs out by itself
            await self._call("release", self.store.release, entry_id, owner, error)
        self.turns.notify()
        if not drainer:
            self.work.notify()

    def note_queued(self, entry_id: int, dependency: str, operation: str, tenant_id: str) -> None:
        """A write was left for the drainer (its live attempt failed, or it waits behind another)."""
        instruments().enqueued.add(1, {names.DEPENDENCY: dependency, names.OPERATION: operation})
        log.warning(
            "queued %s.%s for tenant %s in the outbox (entry %s)", dependency, operation, tenant_id, entry_id
        )

    async def park(self, entry: OutboxEntry, error: DependencyRejected) -> None:
        with contextlib.suppress(StorageError):  # counted and logged; the entry is retried and refused again
            await self._call("park", self.store.park, entry.id, error.message)
        self.turns.notify()
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

    # --- the drainer's side -----------------------------------------------------------------
    async def claim_heads(self, limit: int, skip: set[int]) -> list[OutboxEntry]:
        return await self._call("claim", self.store.claim_heads, self.drain_lease, limit, skip)

    async def flush_unmarked(self) -> bool:
        """Remove entries delivered while the storage failed; True when none is left over."""
        if not self._unmarked:
            return True
        ids = list(self._unmarked)
        try:
            await self._call("complete", self.store.complete, ids)
        except StorageError:
            return False
        for entry_id in ids:
            self._unmarked.pop(entry_id, None)
        log.info("outbox storage works again: %s delivered entries removed from %s", len(ids), self.location)
        return True

    async def pending(self, limit: int = 200) -> list[OutboxEntry]:
        """Pending entries oldest first, without those already delivered (read only)."""
        entries = await self._call("read", self.store.pending, limit + len(self._unmarked))
        return [e for e in entries if e.id not in self._unmarked][:limit]

    async def has_pending(self, dependency: str, tenant_id: str, contact_key: str) -> bool:
        return await self._call("read", self.store.has_pending, dependency, tenant_id, contact_key)

    # --- operators --------------------------------------------------------------------------
    async def requeue(self, ids: Iterable[int] | None = None) -> int:
        """Put parked entries back in the queue (all of them when ``ids`` is None); how many moved.

        For after the cause of the rejection is fixed (a missing contact or tenant in the CRM, a
        validation rule). Each requeued entry gets a new idempotency key: an idempotent API records
        the rejection under the old key and would replay it. That cannot apply a write twice: the
        CRM's answer for the old key was the rejection, so the write was not applied under it.
        """
        moved = int(await self._call("requeue", self.store.requeue, ids))
        if moved:
            log.warning("requeued %s parked outbox entries", moved)
            self.work.notify()
        return moved

    async def dead_letters(self) -> list[dict[str, Any]]:
        return await self.entries(status="dead")

    async def entries(self, status: str | None = None) -> list[dict[str, Any]]:
        """Entries (pending and parked, or one ``status``), oldest first, without payloads (for operators)."""
        return await self._call("read", self.store.entries, status)

    # --- stats (sync: read by the metric reader) --------------------------------------------
    def dead_by_dependency(self) -> dict[str, int]:
        """{dependency: parked entries}."""
        try:
            counts = self.store.dead_counts()
        except (RuntimeError, StorageError):
            return {}
        return {**dict.fromkeys(KNOWN_DEPENDENCIES, 0), **counts}

    def stats_by_dependency(self) -> dict[str, tuple[int, float | None]]:
        """{dependency: (depth, oldest age in s)} for entries not yet delivered."""
        try:
            rows = self.store.pending_stats()
        except StorageError as exc:
            self._storage_failures["read"] = str(exc)
            return {}
        except RuntimeError:  # closed
            return {}
        self._storage_failures.pop("read", None)
        now = self._clock()
        out: dict[str, tuple[int, float | None]] = {dep: (0, None) for dep in KNOWN_DEPENDENCIES}
        unmarked: dict[str, int] = {}
        for dependency in self._unmarked.values():
            unmarked[dependency] = unmarked.get(dependency, 0) + 1
        for dependency, (depth, oldest) in rows.items():
            left = max(0, depth - unmarked.get(dependency, 0))
            out[dependency] = (left, max(0.0, now - oldest) if left else None)
        return out

    def stats(self) -> OutboxStats:
        by_dep = self.stats_by_dependency()
        ages = [age for _, age in by_dep.values() if age is not None]
        return OutboxStats(
            depth=sum(d for d, _ in by_dep.values()),
            oldest_age_s=max(ages) if ages else None,
            storage_error=self.storage_error(),
        )


Deliver = Callable[[OutboxEntry], Awaitable[None]]


class _Sent(enum.Enum):
    DELIVERED = enum.auto()
    PARKED = enum.auto()
    FAILED = enum.auto()  # transient: released, its contact waits for the next pass
    STOP = enum.auto()  # the breaker is open: the pass ends


class OutboxDrainer:
    """Background task: delivers what the live attempts left, when the dependency is reachable.

    A pass claims contact heads (oldest first) and sends each once. Delivered -> removed, and that
    contact's next entry is a head in the next round. A transient failure releases the entry and
    skips its contact for the rest of the pass (order per contact); an open breaker ends the pass
    (no point, and no network call). A rejected entry (4xx) is parked and the contact goes on.
    When claims fail (storage), the pass reads the queue and sends without claiming.
    """

    def __init__(self, outbox: Outbox, deliver: Deliver, *, interval_s: float = 2.0, batch: int = 8) -> None:
        self.outbox = outbox
        self.deliver = deliver
        self.interval_s = interval_s
        self.batch = batch
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
            version = self.outbox.work.version  # before the pass: a release during it wakes the next one
            delivered = 0
            try:
                delivered = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the drainer die: log and try again next interval
                log.exception("outbox drain pass failed")
            if delivered:
                continue  # progress: a backlog larger than one batch drains without pauses
            await self.outbox.work.wait(version, self.interval_s)

    async def drain_until_empty(self, timeout_s: float) -> int:
        """Passes until nothing is pending or ``timeout_s`` passed; the entries left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            left = self.outbox.stats().depth
            if left == 0 or loop.time() >= deadline:
                return left
            if not await self.drain_once():
                await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))

    async def drain_once(self) -> int:
        """One pass; returns the number of entries delivered."""
        if not await self.outbox.flush_unmarked():
            return await self._drain_unclaimed()
        delivered, storage_failed = await self._drain_claimed()
        if storage_failed:
            delivered += await self._drain_unclaimed()
        return delivered

    async def _drain_claimed(self) -> tuple[int, bool]:
        delivered = 0
        failed: set[int] = set()
        while True:
            try:
                batch = await self.outbox.claim_heads(self.batch, failed)
            except StorageError:
                return delivered, True
            if not batch:
                return delivered, False
            for index, entry in enumerate(batch):
                try:
                    outcome = await self._send(entry)
                except asyncio.CancelledError:
                    await asyncio.shield(self._release_all(batch[index:]))
                    raise
                if outcome is _Sent.STOP:
                    await self._release_all(batch[index:])
                    return delivered, False
                if outcome is _Sent.FAILED:
                    failed.add(entry.id)
                delivered += outcome is _Sent.DELIVERED

    async def _release_all(self, entries: list[OutboxEntry]) -> None:
        for entry in entries:
            await self.outbox.release(entry.id, None, drainer=True)

    async def _drain_unclaimed(self) -> int:
        """The storage cannot take claims: send what the queue holds, in order, without claiming."""
        try:
            entries = await self.outbox.pending()
        except StorageError:
            return 0
        delivered = 0
        blocked: set[tuple[str, str, str]] = set()
        for entry in entries:
            if entry.scope in blocked:
                continue
            outcome = await self._send(entry)
            if outcome is _Sent.STOP:
                break
            if outcome is _Sent.FAILED:
                blocked.add(entry.scope)
            delivered += outcome is _Sent.DELIVERED
        return delivered

    async def _send(self, entry: OutboxEntry) -> _Sent:
        """Deliver one entry and settle it."""
        try:
            await self._deliver_one(entry)
        except CircuitOpenError:
            return _Sent.STOP  # the breaker is open: no point sending the rest now
        except DependencyRejected as exc:
            await self.outbox.park(entry, exc)
            return _Sent.PARKED
        except Exception as exc:
            await self.outbox.release(entry.id, str(exc), drainer=True)
            return _Sent.FAILED
        await self.outbox.complete(entry)
        instruments().delivered.add(1, {names.DEPENDENCY: entry.dependency, names.OPERATION: entry.operation})
        return _Sent.DELIVERED

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
