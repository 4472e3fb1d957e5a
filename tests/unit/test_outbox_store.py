"""The outbox store cases (``outbox_store_cases.py``) on SQLite, and what only SQLite does: a dead
owner of this host is known by its pid, and files from before leases open."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from outbox_store_cases import *  # noqa: F403 - the shared cases run here on SQLite
from outbox_store_cases import Clock, entry

from agent.crm.outbox_sqlite import SqliteOutboxStore, lease_owner
from agent.crm.outbox_store import ClaimState, Lease
from telemetry import names


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[SqliteOutboxStore]:
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


def test_a_dead_owners_lease_on_this_host_is_taken_over_at_once(store: SqliteOutboxStore, otel: Any) -> None:
    gone = {names.DEPENDENCY: "crm", names.OUTBOX_TAKEOVER_REASON: "owner_gone"}
    before = otel.metric_value(names.OUTBOX_LEASE_TAKEOVERS, **gone)
    ghost = f"{lease_owner().split(':')[0]}:{unused_pid()}:gone"  # a process of this host that is gone
    entry_id, state = store.add(entry("bob", 1), Lease(ghost, 3600))
    assert state is ClaimState.CLAIMED
    assert [e.id for e in store.claim_heads(Lease(lease_owner(), 30), 10, set())] == [entry_id]
    assert otel.metric_value(names.OUTBOX_LEASE_TAKEOVERS, **gone) - before == 1


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
