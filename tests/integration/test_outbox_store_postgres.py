"""The outbox store cases (``outbox_store_cases.py``) on PostgreSQL, and what only it does: a lease
whose owner process is gone (its presence lock dropped) is taken over at once from any host; the
schema is created once when several workers start together; an unreachable or newer database is a
clear error that never shows the password."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from outbox_store_cases import *  # noqa: F403 - the shared cases run here on PostgreSQL
from outbox_store_cases import Clock, entry

from agent.crm.outbox_postgres import _LOCK_PRESENCE, LATEST_SCHEMA, PostgresOutboxStore, presence_key
from agent.crm.outbox_sqlite import lease_owner
from agent.crm.outbox_store import ClaimState, Lease, StorageError
from local_services.databases import PG_PASSWORD
from local_services.harness import free_port
from telemetry import names


@pytest.fixture
def store(pg_outbox: Any, clock: Clock) -> Iterator[PostgresOutboxStore]:
    s = PostgresOutboxStore(pg_outbox.location, clock=clock)
    yield s
    s.close()


def test_a_lease_whose_owner_process_is_gone_is_taken_over_at_once(store, pg_outbox, otel) -> None:
    """Another host's worker claimed an entry, then died: its connection (and presence lock) went with
    it, so the entry is taken over long before its lease would run out."""
    gone = {names.DEPENDENCY: "crm", names.OUTBOX_TAKEOVER_REASON: "owner_gone"}
    before = otel.metric_value(names.OUTBOX_LEASE_TAKEOVERS, **gone)
    other_host = "another-host:4242:abcd"
    presence = psycopg.connect(pg_outbox.location, autocommit=True)
    presence.execute("SELECT pg_advisory_lock_shared(%s, %s)", (_LOCK_PRESENCE, presence_key(other_host)))
    entry_id, state = store.add(entry("ann", 1), Lease(other_host, 3600))
    assert state is ClaimState.CLAIMED
    drainer = Lease(lease_owner(), 30)
    assert store.claim_heads(drainer, 10, set()) == []  # its owner is alive: hands off
    presence.close()  # the other worker is killed
    claimed = []
    for _ in range(200):  # the server drops the lock as soon as that backend has exited
        claimed = store.claim_heads(drainer, 10, set())
        if claimed:
            break
        time.sleep(0.02)
    assert [e.id for e in claimed] == [entry_id]
    assert otel.metric_value(names.OUTBOX_LEASE_TAKEOVERS, **gone) - before == 1


def test_workers_starting_together_create_the_schema_once(pg_outbox) -> None:
    stores: list[PostgresOutboxStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        try:
            barrier.wait(timeout=30)
            stores.append(PostgresOutboxStore(pg_outbox.location))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == [] and len(stores) == 6
        with psycopg.connect(pg_outbox.location) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM outbox_schema ORDER BY version")]
        assert versions == list(range(1, LATEST_SCHEMA + 1))
        stores[0].add(entry("ann", 1), None)  # one table, seen by all
        assert all(len(s.pending(10)) == 1 for s in stores)
    finally:
        for s in stores:
            s.close()


def test_a_restart_keeps_the_schema_and_the_entries(pg_outbox) -> None:
    first = PostgresOutboxStore(pg_outbox.location)
    first.add(entry("ann", 1), None)
    first.close()
    again = PostgresOutboxStore(pg_outbox.location)
    try:
        assert [e.contact_key for e in again.pending(10)] == ["ann"]
    finally:
        again.close()


def test_a_database_from_a_newer_agent_is_refused_clearly(pg_outbox) -> None:
    PostgresOutboxStore(pg_outbox.location).close()
    with psycopg.connect(pg_outbox.location, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox_schema (version) VALUES (%s)", (LATEST_SCHEMA + 1,))
    with pytest.raises(StorageError, match=f"schema version {LATEST_SCHEMA + 1}, newer than this agent"):
        PostgresOutboxStore(pg_outbox.location)


def test_an_unreachable_database_is_named_without_its_password() -> None:
    url = f"postgresql://agent:{PG_PASSWORD}@127.0.0.1:{free_port()}/outbox"
    with pytest.raises(StorageError) as raised:
        PostgresOutboxStore(url, timeout_s=2)
    message = str(raised.value)
    assert f"postgresql://agent@127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/outbox" in message
    assert "refused" in message.lower()
    assert PG_PASSWORD not in message
