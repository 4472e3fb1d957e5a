"""What the outbox needs from its storage: durable entries, claims and leases, behind one interface.

``SqliteOutboxStore`` (one host, the embedded default) and ``PostgresOutboxStore`` (many workers on
many hosts, ``CRM_OUTBOX_URL``; ``SELECT ... FOR UPDATE SKIP LOCKED`` over the heads and the same
lease columns) implement it; ``outbox.open_store`` picks one. Every store keeps:

- **Durable before the first attempt**: ``add`` commits the entry before it returns. Given a lease,
  the same transaction claims the entry for the caller when it may be sent now (``ClaimState``).
- **Order per contact**: entries of one (dependency, tenant, contact) go out in id order. Only a
  contact's *head* (its lowest pending id) can be claimed, so a later write never overtakes an
  earlier one, live or queued, whoever sends it.
- **One owner at a time**: a claim is a lease (owner, expiry). While it is live nobody else claims
  that entry, nor the contact's next one. ``complete`` deletes the entry, ``release`` hands it back
  (counting the attempt), ``park`` sets it aside as rejected. A lease whose owner died without
  releasing it expires; a store that can tell the owner is dead (SQLite: same host, no such pid;
  PostgreSQL: the owner's presence lock is gone) ignores it at once.

Methods are synchronous (``Outbox`` runs them in a thread) and raise ``StorageError`` when the
storage itself fails (disk full, I/O error, locked for too long, not an outbox).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol


class StorageError(Exception):
    """The outbox storage could not be read or written (disk full, I/O error, busy, corrupt)."""


class ClaimState(enum.Enum):
    CLAIMED = "claimed"  # the caller holds the lease: send it now
    WAIT = "wait"  # an earlier entry of the contact (or this one) is being sent by someone
    QUEUED = "queued"  # an earlier entry of the contact waits in the queue: this one goes after it
    DONE = "done"  # already delivered by someone else
    PARKED = "parked"  # rejected meanwhile by someone else's delivery


@dataclass(frozen=True)
class Lease:
    owner: str  # who holds it (``host:pid:token`` for SQLite)
    seconds: float  # how long it holds without a word from its owner


@dataclass(frozen=True)
class NewEntry:
    dependency: str
    operation: str
    tenant_id: str
    contact_key: str
    payload: dict[str, Any]
    idempotency_key: str
    traceparent: str | None
    created_at: float


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

    @property
    def scope(self) -> tuple[str, str, str]:
        """What order is kept within: one contact of one tenant at one dependency."""
        return (self.dependency, self.tenant_id, self.contact_key)


class OutboxStore(Protocol):
    location: str  # where it is, as it may be shown (a file path; a URL without its password)

    def add(self, entry: NewEntry, lease: Lease | None) -> tuple[int, ClaimState]:
        """Commit ``entry``; with ``lease``, claim it in the same transaction when it may go now."""
        ...

    def claim(self, entry_id: int, lease: Lease) -> tuple[ClaimState, str | None]:
        """Claim an entry added earlier; the error text comes with PARKED."""
        ...

    def claim_heads(self, lease: Lease, limit: int, skip: Collection[int]) -> list[OutboxEntry]:
        """Claim up to ``limit`` contact heads nobody holds (oldest first), except ids in ``skip``."""
        ...

    def complete(self, entry_ids: Collection[int]) -> None:
        """Delivered: remove them."""
        ...

    def release(self, entry_id: int, owner: str, error: str | None) -> None:
        """Give a claim back; an ``error`` counts as a failed attempt."""
        ...

    def release_owner(self, owner: str) -> None:
        """Give back every claim ``owner`` holds (its process is shutting down)."""
        ...

    def park(self, entry_id: int, error: str) -> None:
        """Rejected by the dependency: keep it aside (``status='dead'``) for an operator."""
        ...

    def requeue(self, ids: Iterable[int] | None) -> int:
        """Parked entries back in the queue (all when None), each with a new idempotency key."""
        ...

    def pending(self, limit: int) -> list[OutboxEntry]:
        """Pending entries, oldest first (read only: works when writes fail)."""
        ...

    def has_pending(self, dependency: str, tenant_id: str, contact_key: str) -> bool:
        """Does the contact have entries waiting (read only)?"""
        ...

    def entries(self, status: str | None) -> list[dict[str, Any]]:
        """Entries without payloads, oldest first, for operators."""
        ...

    def pending_stats(self) -> dict[str, tuple[int, float]]:
        """{dependency: (pending entries, oldest created_at)}."""
        ...

    def dead_counts(self) -> dict[str, int]:
        """{dependency: parked entries}."""
        ...

    def close(self) -> None: ...
