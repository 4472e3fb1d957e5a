"""The outbox storage semantics every ``OutboxStore`` keeps (claims, heads, leases), on SQLite.

A PostgreSQL store (``FOR UPDATE SKIP LOCKED``) must pass the same cases.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

import pytest

from agent.crm.outbox_sqlite import SqliteOutboxStore, lease_owner
from agent.crm.outbox_store import ClaimState, Lease, NewEntry


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SqliteOutboxStore:
    s = SqliteOutboxStore(tmp_path / "outbox.sqlite3", clock=clock)
    yield s
    s.close()


def unused_pid() -> int:
    """A pid no process of this host has (without starting one: unit tests start no process)."""
    limit = (
        int(Path("/proc/sys/kernel/pid_max").read_text())
        if Path("/proc/sys/kernel/pid_max").exists()
        else 32768
    )
    for pid in range(limit - 1, 1, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no unused pid")


def entry(contact: str, n: int) -> NewEntry:
    return NewEntry("crm", "add_note", "acme", contact, {"text": str(n)}, f"{contact}-{n}", None, 0.0)


def test_a_write_may_go_only_as_its_contacts_head(store: SqliteOutboxStore) -> None:
    live, other = Lease(lease_owner(), 30), Lease(lease_owner(), 30)
    first, state = store.add(entry("ann", 1), live)
    assert state is ClaimState.CLAIMED
    second, state = store.add(entry("ann", 2), other)
    assert state is ClaimState.WAIT  # the first is being sent
    assert store.add(entry("bob", 1), other)[1] is ClaimState.CLAIMED  # another contact goes at once
    store.release(first, live.owner, "HTTP 503")  # the first failed: it waits in the queue now
    assert store.claim(second, other) == (ClaimState.QUEUED, None)
    store.complete([first])
    assert store.claim(second, other) == (ClaimState.CLAIMED, None)
    store.complete([second])
    assert store.claim(second, other) == (ClaimState.DONE, None)


def test_drainers_claim_heads_only_and_never_the_same_entry(store: SqliteOutboxStore) -> None:
    for contact in ("ann", "bob"):
        for n in (1, 2):
            store.add(entry(contact, n), None)
    one, two = Lease(lease_owner(), 30), Lease(lease_owner(), 30)
    first = store.claim_heads(one, 10, set())
    assert [(e.contact_key, e.payload["text"]) for e in first] == [("ann", "1"), ("bob", "1")]
    assert store.claim_heads(two, 10, set()) == []  # the heads are held; the seconds wait behind them
    store.complete([first[0].id])
    assert [(e.contact_key, e.payload["text"]) for e in store.claim_heads(two, 10, set())] == [("ann", "2")]


def test_a_lease_runs_out_and_a_dead_owners_lease_is_ignored(store: SqliteOutboxStore, clock: Clock) -> None:
    entry_id, _ = store.add(entry("ann", 1), Lease(lease_owner(), 30))
    drainer = Lease(lease_owner(), 30)
    assert store.claim_heads(drainer, 10, set()) == []
    clock.now += 31
    assert [e.id for e in store.claim_heads(drainer, 10, set())] == [entry_id]

    ghost = f"{lease_owner().split(':')[0]}:{unused_pid()}:gone"  # a process of this host that is gone
    other_id, state = store.add(entry("bob", 1), Lease(ghost, 3600))
    assert state is ClaimState.CLAIMED
    assert [e.id for e in store.claim_heads(drainer, 10, {entry_id})] == [other_id]


def test_parked_entries_leave_the_queue_and_requeue_with_a_new_key(store: SqliteOutboxStore) -> None:
    entry_id, _ = store.add(entry("ann", 1), None)
    later, _ = store.add(entry("ann", 2), None)
    store.park(entry_id, "HTTP 404: no such contact")
    assert store.claim(entry_id, Lease(lease_owner(), 30)) == (ClaimState.PARKED, "HTTP 404: no such contact")
    assert [e.id for e in store.claim_heads(Lease(lease_owner(), 30), 10, set())] == [later]
    assert store.requeue([entry_id]) == 1
    (back,) = [e for e in store.pending(10) if e.id == entry_id]
    assert back.idempotency_key != "ann-1" and back.idempotency_key.startswith("ann-1.r")


def test_a_file_from_before_leases_opens_and_keeps_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, dependency TEXT NOT NULL, "
            "operation TEXT NOT NULL, tenant_id TEXT NOT NULL, contact_key TEXT NOT NULL, "
            "payload TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, traceparent TEXT, "
            "status TEXT NOT NULL DEFAULT 'pending', "
            "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at REAL NOT NULL);"
            "INSERT INTO outbox (dependency, operation, tenant_id, contact_key, payload, idempotency_key, "
            "created_at) VALUES ('crm', 'add_note', 'acme', 'ann', '{\"text\": \"hi\"}', 'k1', 1.0);"
        )
        db.commit()
    store = SqliteOutboxStore(path, clock=time.time)
    try:
        (claimed,) = store.claim_heads(Lease(lease_owner(), 30), 10, set())
        assert claimed.idempotency_key == "k1" and claimed.payload == {"text": "hi"}
    finally:
        store.close()
